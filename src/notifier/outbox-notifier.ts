import { buildEvent, type EventInput, type StoreEvent } from './events.js';
import type { Outbox } from './outbox.js';
import type { Notifier, PublishOptions } from './types.js';

/** The notifier the service uses: builds the CloudEvent and journals it; the Dispatcher delivers it. */
export class OutboxNotifier implements Notifier {
  constructor(
    private readonly outbox: Outbox,
    private readonly source: string,
  ) {}

  async publish(input: EventInput, { reqId, durable }: PublishOptions): Promise<StoreEvent> {
    const event = buildEvent(input, this.source, reqId);
    await this.outbox.append(event, durable);
    return event;
  }
}

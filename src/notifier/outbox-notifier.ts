import { buildEvent, type EventInput, type StoreEvent } from './events.js';
import type { Outbox } from './outbox.js';
import type { Notifier, PublishOptions } from './types.js';

/** The notifier the service uses: builds the CloudEvent and journals it; the Dispatcher delivers it. */
export class OutboxNotifier implements Notifier {
  constructor(
    private readonly outbox: Outbox,
    private readonly source: string,
  ) {}

  async change<T>(make: () => Promise<T>, eventOf: (result: T) => EventInput | undefined, { reqId }: { reqId?: string } = {}): Promise<T> {
    const release = await this.outbox.admit();
    try {
      const result = await make();
      const input = eventOf(result);
      if (input) await this.outbox.append(buildEvent(input, this.source, reqId), true);
      return result;
    } finally {
      release();
    }
  }

  async publish(input: EventInput, { reqId, durable }: PublishOptions): Promise<StoreEvent> {
    const event = buildEvent(input, this.source, reqId);
    if (!durable) {
      await this.outbox.append(event, false);
      return event;
    }
    const release = await this.outbox.admit();
    try {
      await this.outbox.append(event, true);
    } finally {
      release();
    }
    return event;
  }
}

import type { ChangeJournal, StoreChange } from '../../src/albums/changes.js';
import { InsufficientStorageError } from '../../src/errors.js';
import { buildEvent, type EventInput, type StoreEvent } from '../../src/notifier/events.js';
import type { Notifier, PublishOptions } from '../../src/notifier/types.js';

/** One recorded publication: the event, whether it was journaled durably, and the change it announced. */
export interface Recorded {
  event: StoreEvent;
  durable: boolean;
  change?: StoreChange;
}

/**
 * A Notifier that keeps every event in memory, in the order they would be published, with the
 * OutboxNotifier's rules: a store change's event is recorded only once the store says the change
 * is applied (never for a change that was not made), and with `full` set every change is refused
 * before it runs (507, as with a full journal) while fetch events are dropped.
 */
export class RecordingNotifier implements Notifier {
  readonly recorded: Recorded[] = [];
  /** Changes committed through the journal, applied or not. */
  readonly committed: StoreChange[] = [];
  /** Simulates a full disk: changes are refused, fetch events dropped. */
  full = false;

  /** The recorded events' types, in order. */
  get types(): string[] {
    return this.recorded.map((r) => r.event.type);
  }

  async publish(input: EventInput, options: PublishOptions): Promise<StoreEvent> {
    const event = buildEvent(input, '/test', options.reqId);
    if (this.full && options.durable) throw new InsufficientStorageError('the journal is full');
    if (!this.full) this.recorded.push({ event, durable: options.durable });
    return event;
  }

  async change<T>(make: () => Promise<T>, eventOf: (result: T) => EventInput | undefined, options: { reqId?: string } = {}): Promise<T> {
    this.refuseWhenFull();
    const result = await make();
    const input = eventOf(result);
    if (input) this.recorded.push({ event: buildEvent(input, '/test', options.reqId), durable: true });
    return result;
  }

  async storeChange<T>(make: (journal: ChangeJournal) => Promise<T>, eventOf: (change: StoreChange) => EventInput, options: { reqId?: string } = {}): Promise<T> {
    this.refuseWhenFull();
    const journal: ChangeJournal = {
      commit: async (change) => {
        this.committed.push(change);
        return {
          applied: async () => {
            this.recorded.push({ event: buildEvent(eventOf(change), '/test', options.reqId), durable: true, change });
          },
          aborted: async () => undefined,
          fatal: (err) => {
            throw err;
          },
        };
      },
    };
    return make(journal);
  }

  private refuseWhenFull(): void {
    if (this.full) throw new InsufficientStorageError('not enough storage space: the disk holding the store is full');
  }
}

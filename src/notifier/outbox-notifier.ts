import { isAlbumChange, type ChangeJournal, type CommittedChange, type StoreChange } from '../albums/changes.js';
import { ServiceUnavailableError } from '../errors.js';
import { buildEvent, type EventInput, type StoreEvent } from './events.js';
import type { Outbox } from './outbox.js';
import type { Notifier, PublishOptions } from './types.js';

/** What the notifier needs of the checkpointer (checkpointer.ts). */
export interface Checkpoints {
  /** Checkpoints every change committed so far (before an album change is committed). */
  barrier(): Promise<void>;
  /** A change was applied. */
  changeApplied(): void;
}

/** Options of the OutboxNotifier. */
export interface OutboxNotifierOptions {
  checkpoints: Checkpoints;
  /**
   * A committed change could be neither applied nor aborted: the process must stop, and the
   * next start redoes the change (main.ts exits). The notifier refuses every change from then on.
   */
  onFatal?: (err: unknown) => void;
}

/**
 * The notifier the service uses: builds the CloudEvent and journals it; the Dispatcher
 * delivers it. For a store change it is the change's journal: the commit record (change
 * and event in one fsynced record) is the commit point; the record is marked applied once
 * the store has applied the change, and only then may its event be delivered.
 */
export class OutboxNotifier implements Notifier {
  /** Album changes are committed one at a time, each after a checkpoint (Checkpointer.barrier). */
  private albumTurn: Promise<void> = Promise.resolve();
  private failed: unknown;

  constructor(
    private readonly outbox: Outbox,
    private readonly source: string,
    private readonly options: OutboxNotifierOptions,
  ) {}

  async change<T>(make: () => Promise<T>, eventOf: (result: T) => EventInput | undefined, { reqId }: { reqId?: string } = {}): Promise<T> {
    this.refuseIfFailed();
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

  async storeChange<T>(make: (journal: ChangeJournal) => Promise<T>, eventOf: (change: StoreChange) => EventInput, { reqId }: { reqId?: string } = {}): Promise<T> {
    this.refuseIfFailed();
    const release = await this.outbox.admit();
    try {
      return await make({ commit: (change) => this.commit(change, eventOf(change), reqId) });
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
    this.refuseIfFailed();
    const release = await this.outbox.admit();
    try {
      await this.outbox.append(event, true);
    } finally {
      release();
    }
    return event;
  }

  private async commit(change: StoreChange, input: EventInput, reqId: string | undefined): Promise<CommittedChange> {
    this.refuseIfFailed();
    let endTurn = () => undefined as void;
    if (isAlbumChange(change)) {
      const previous = this.albumTurn;
      this.albumTurn = new Promise<void>((resolve) => (endTurn = resolve));
      await previous;
    }
    let seq: number;
    try {
      if (isAlbumChange(change)) await this.options.checkpoints.barrier();
      seq = (await this.outbox.append(buildEvent(input, this.source, reqId), true, change))!;
    } catch (err) {
      endTurn();
      throw err;
    }
    return {
      seq,
      applied: async () => {
        this.outbox.applied(seq);
        endTurn();
        this.options.checkpoints.changeApplied();
      },
      aborted: async () => {
        try {
          await this.outbox.abort(seq);
        } finally {
          endTurn();
        }
      },
      fatal: (err) => {
        endTurn();
        this.fail(err);
      },
    };
  }

  private fail(err: unknown): void {
    if (this.failed !== undefined) return;
    this.failed = err;
    this.options.onFatal?.(err);
  }

  private refuseIfFailed(): void {
    if (this.failed !== undefined) {
      throw new ServiceUnavailableError('the event journal stopped after a change could not be undone; the service must be restarted', 60);
    }
  }
}

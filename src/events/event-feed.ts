import type { StoreEvent } from '../notifier/events.js';
import type { JournalPage } from '../notifier/outbox.js';

/** What the HTTP event consumers (replay, live streams, webhooks) need of the journal (notifier/outbox.ts). */
export interface EventJournal {
  read(after: number, limit: number, filter?: (event: StoreEvent) => boolean): Promise<JournalPage | undefined>;
  readableThrough(): number;
  readonly oldestSeq: number;
  readonly lastSeq: number;
  onAppend(listener: () => void): void;
  addFloor(floor: () => number): void;
}

/**
 * The journal as its HTTP readers see it: reads by cursor, and a wake-up when it moves. One
 * journal listener fans out to every reader, and a reader that leaves is forgotten (the
 * journal's own listener list only grows).
 */
export class EventFeed {
  private readonly waiting = new Set<() => void>();

  constructor(readonly journal: EventJournal) {
    journal.onAppend(() => {
      const wake = [...this.waiting];
      this.waiting.clear();
      for (const resolve of wake) resolve();
    });
  }

  /**
   * Resolves at the next journal move, after `timeoutMs`, or when `signal` aborts,
   * whichever comes first. Nothing is kept once it resolved.
   */
  async next(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        this.waiting.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      signal?.addEventListener('abort', done, { once: true });
      this.waiting.add(done);
    });
  }
}

import type { JournalRecord } from './outbox.js';

/**
 * The latest journal events in a ring of fixed size, shared by every reader that follows the
 * head of the journal (live streams, webhook endpoints): they read here instead of the files,
 * and memory stays the same whatever the number of readers.
 */
export class RecentRecords {
  private readonly ring: Array<JournalRecord | undefined>;
  private start = 0;
  private size = 0;
  /** Every event after this sequence number is in the ring. */
  private floor = 0;

  constructor(readonly capacity = 8192) {
    this.ring = new Array(capacity);
  }

  /** Adds the next event (sequence numbers ascending); the oldest one leaves a full ring. */
  push(record: JournalRecord): void {
    if (this.size === this.capacity) {
      this.floor = this.ring[this.start]!.seq;
      this.ring[this.start] = record;
      this.start = (this.start + 1) % this.capacity;
      return;
    }
    this.ring[(this.start + this.size) % this.capacity] = record;
    this.size += 1;
  }

  /**
   * Marks that events up to `seq` may be missing (the ring was filled from the end of a longer journal).
   */
  startAfter(seq: number): void {
    this.floor = Math.max(this.floor, seq);
  }

  /** True when every event after `seq` is in the ring. */
  covers(seq: number): boolean {
    return seq >= this.floor;
  }

  /** The events after `seq`, oldest first (call only when `covers(seq)`). */
  *after(seq: number): Generator<JournalRecord> {
    let lo = 0;
    let hi = this.size;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.at(mid).seq <= seq) lo = mid + 1;
      else hi = mid;
    }
    // The ring may turn under a reader that yields between records: it ends at what it held.
    for (let i = lo; i < this.size; i += 1) yield this.at(i);
  }

  private at(i: number): JournalRecord {
    return this.ring[(this.start + i) % this.capacity]!;
  }
}

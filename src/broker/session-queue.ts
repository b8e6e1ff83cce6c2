/** One message queued for a session, as the store keys it. */
export interface QueuedMessage {
  brokerId: string;
  brokerCounter: number;
  /** Approximate bytes it takes in the store. */
  bytes: number;
  /** Set once it was sent: it is then stored under this id too, until its PUBACK. */
  messageId?: number;
}

/** Compact the array once this many removed entries lead it. */
const COMPACT_AFTER = 1024;

/**
 * The messages queued for one session, oldest first: what the store holds for
 * it, kept in memory so that finding the oldest never takes a store iterator
 * (classic-level iterators opened at message rate grow the process' native
 * memory steadily). About 80 bytes a message.
 */
export class SessionQueue {
  private entries: Array<QueuedMessage | undefined> = [];
  private head = 0;
  /** Messages queued. */
  length = 0;
  /** Their approximate bytes in the store. */
  bytes = 0;

  push(message: QueuedMessage): void {
    this.entries.push(message);
    this.length += 1;
    this.bytes += message.bytes;
  }

  /** The queued message stored under this broker id and counter. Acknowledgements come oldest first, sends newest first. */
  find(brokerId: string, brokerCounter: number, from: 'oldest' | 'newest'): QueuedMessage | undefined {
    const matches = (m: QueuedMessage | undefined) => m !== undefined && m.brokerCounter === brokerCounter && m.brokerId === brokerId;
    if (from === 'oldest') {
      for (let i = this.head; i < this.entries.length; i++) if (matches(this.entries[i])) return this.entries[i];
    } else {
      for (let i = this.entries.length - 1; i >= this.head; i--) if (matches(this.entries[i])) return this.entries[i];
    }
    return undefined;
  }

  /** Forgets `message` (acknowledged). */
  remove(message: QueuedMessage): void {
    const i = this.entries.indexOf(message, this.head);
    if (i === -1) return;
    this.entries[i] = undefined;
    this.length -= 1;
    this.bytes -= message.bytes;
    this.skipRemoved();
  }

  /** Removes and returns the `count` oldest messages. */
  takeOldest(count: number): QueuedMessage[] {
    const taken: QueuedMessage[] = [];
    while (taken.length < count && this.head < this.entries.length) {
      const message = this.entries[this.head];
      this.entries[this.head] = undefined;
      this.head += 1;
      if (message) taken.push(message);
    }
    for (const message of taken) {
      this.length -= 1;
      this.bytes -= message.bytes;
    }
    this.skipRemoved();
    return taken;
  }

  private skipRemoved(): void {
    while (this.head < this.entries.length && this.entries[this.head] === undefined) this.head += 1;
    if (this.head >= COMPACT_AFTER && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }
}

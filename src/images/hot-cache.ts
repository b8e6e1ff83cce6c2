/** Size and counters of the hot-file cache (for /metrics and tests). */
export interface HotCacheStats {
  /** Bytes held: always at most the budget. */
  bytes: number;
  entries: number;
  hits: number;
  misses: number;
  evictions: number;
}

/**
 * Small files' bytes in memory, so that a download of a popular image or
 * derivative opens no file. Keyed by content (an original's sha256, a
 * derivative's cache key): the bytes of one key never change, so an entry is
 * never stale, and which name points at which content stays the store's
 * business. Least recently used entries leave first past the byte budget;
 * files over `maxFileBytes` are never kept (they stream from disk).
 */
export class HotCache {
  /** Map order is the LRU order (oldest first). */
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  private readonly counters = { hits: 0, misses: 0, evictions: 0 };

  /**
   * @param budgetBytes bytes held at most (0 turns the cache off)
   * @param maxFileBytes largest file kept
   */
  constructor(
    readonly budgetBytes: number,
    readonly maxFileBytes: number,
  ) {}

  /** True when a file of this size would be kept. */
  accepts(size: number): boolean {
    return size <= this.maxFileBytes && size <= this.budgetBytes;
  }

  /** The bytes under `key`, now the most recently used; undefined (a miss) when not held. */
  get(key: string): Buffer | undefined {
    if (this.budgetBytes === 0) return undefined;
    const bytes = this.entries.get(key);
    if (bytes === undefined) {
      this.counters.misses += 1;
      return undefined;
    }
    this.counters.hits += 1;
    this.entries.delete(key);
    this.entries.set(key, bytes);
    return bytes;
  }

  /**
   * Keeps `bytes` under `key` when they fit, evicting the least recently used.
   * The buffer must not change afterwards and should own its memory (not a slice of a pool).
   */
  set(key: string, bytes: Buffer): void {
    if (!this.accepts(bytes.length)) return;
    this.delete(key);
    this.entries.set(key, bytes);
    this.bytes += bytes.length;
    for (const [oldest, held] of this.entries) {
      if (this.bytes <= this.budgetBytes) break;
      this.entries.delete(oldest);
      this.bytes -= held.length;
      this.counters.evictions += 1;
    }
  }

  /** Drops `key` (its content is no longer stored). */
  delete(key: string): void {
    const held = this.entries.get(key);
    if (held === undefined) return;
    this.entries.delete(key);
    this.bytes -= held.length;
  }

  stats(): HotCacheStats {
    return { ...this.counters, bytes: this.bytes, entries: this.entries.size };
  }
}

import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { isErrno } from '../lib/durable.js';
import { readRange } from '../lib/read-range.js';
import type { HotCache } from './hot-cache.js';

/** One cached transform result. */
export interface Derivative {
  file: string;
  size: number;
  /** Strong validator: hash of the source content and the normalised spec. */
  etag: string;
}

/**
 * A derivative ready to send: its bytes from the hot-file cache (no file opened), or
 * its file opened for reading (the caller closes `handle`; an eviction after the open cannot cut the read).
 */
export type OpenDerivative = Derivative & ({ bytes: Buffer; handle?: undefined } | { handle: FileHandle; bytes?: undefined });

/** Where a derivative is cached, and its ETag: both follow from the source's sha256 and the spec alone. */
export interface DerivativeKey {
  key: string;
  /** Strong validator, quoted. */
  etag: string;
}

/** Spec hashes remembered (a request for a known spec hashes nothing). */
const SPEC_HASHES = 1024;

/** Counters for tests and metrics. */
export interface CacheStats {
  hits: number;
  misses: number;
  /** Transforms actually run (concurrent identical requests share one). */
  transforms: number;
  evictions: number;
  bytes: number;
  entries: number;
}

/**
 * Transform results on disk under `dir`, keyed by the original's sha256 and
 * the normalised spec: `dir/<sha[0..2]>/<sha>-<specHash>.<ext>`. A result is
 * computed once (concurrent identical requests wait for the same run),
 * then served from disk. Least recently used entries are evicted past the
 * byte budget. It is only a cache: files are not fsynced, and a lost or
 * partial entry (never visible: written to a temp name, then renamed) is
 * just computed again.
 */
export class DerivativeCache {
  /** key → size; Map order is the LRU order (oldest first). */
  private readonly entries = new Map<string, number>();
  private readonly inFlight = new Map<string, Promise<Derivative>>();
  /** Keys between lookup and open, with their request counts: eviction skips them (it would unlink the file before the open). */
  private readonly pinned = new Map<string, number>();
  private bytes = 0;
  private readonly counters = { hits: 0, misses: 0, transforms: 0, evictions: 0 };
  private readonly specHashes = new Map<string, string>();

  private constructor(
    private readonly dir: string,
    readonly budgetBytes: number,
    private readonly hot?: HotCache,
  ) {}

  /**
   * Opens the cache, indexing the files already there (oldest access first).
   * @param hot small derivatives' bytes are kept there too, and served without opening their file
   */
  static async open(dir: string, budgetBytes: number, hot?: HotCache): Promise<DerivativeCache> {
    const cache = new DerivativeCache(dir, budgetBytes, hot);
    await fs.mkdir(dir, { recursive: true });
    const found: Array<{ key: string; size: number; atime: number }> = [];
    for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      if (entry.name.startsWith('tmp-')) {
        await fs.rm(file, { force: true });
        continue;
      }
      const stat = await fs.stat(file);
      found.push({ key: entry.name, size: stat.size, atime: stat.atimeMs });
    }
    for (const { key, size } of found.sort((a, b) => a.atime - b.atime)) cache.remember(key, size);
    await cache.evict();
    return cache;
  }

  stats(): CacheStats {
    return { ...this.counters, bytes: this.bytes, entries: this.entries.size };
  }

  /**
   * The cache key and ETag of the derivative of `sha256` for `specKey`, computed, not looked up.
   * @param ext file extension of the output format
   */
  keyOf(sha256: string, specKey: string, ext: string): DerivativeKey {
    let specHash = this.specHashes.get(specKey);
    if (specHash === undefined) {
      specHash = createHash('sha256').update(specKey).digest('hex').slice(0, 24);
      if (this.specHashes.size >= SPEC_HASHES) this.specHashes.clear();
      this.specHashes.set(specKey, specHash);
    }
    return { key: `${sha256}-${specHash}.${ext}`, etag: `"${sha256.slice(0, 32)}-${specHash}"` };
  }

  /**
   * The derivative `key` (from keyOf), made by `produce(tmpFile)` on a miss: its bytes
   * when the hot-file cache has them or takes them, else its file opened for reading.
   */
  async get({ key, etag }: DerivativeKey, produce: (file: string) => Promise<void>): Promise<OpenDerivative> {
    this.pinned.set(key, (this.pinned.get(key) ?? 0) + 1);
    try {
      const size = this.entries.get(key);
      if (size !== undefined) {
        const file = this.pathOf(key);
        const bytes = this.hot?.get(key);
        if (bytes !== undefined && bytes.length === size) {
          this.counters.hits += 1;
          this.remember(key, size);
          return { file, size, etag, bytes };
        }
        // Else a hit costs one file operation: the open itself (a file removed behind the cache's back is made again).
        const handle = await fs.open(file, 'r').catch((err: unknown) => {
          if (isErrno(err, 'ENOENT')) return undefined;
          throw err;
        });
        if (handle) {
          this.counters.hits += 1;
          this.remember(key, size);
          return this.keepHot(key, { file, size, etag, handle });
        }
      }
      const derivative = await this.lookup(key, etag, produce);
      return this.keepHot(key, { ...derivative, handle: await fs.open(derivative.file, 'r') });
    } finally {
      const count = this.pinned.get(key)! - 1;
      if (count === 0) this.pinned.delete(key);
      else this.pinned.set(key, count);
    }
  }

  /** A small derivative just opened: read whole into the hot-file cache, and sent from there. */
  private async keepHot(key: string, opened: Derivative & { handle: FileHandle }): Promise<OpenDerivative> {
    if (!this.hot?.accepts(opened.size)) return opened;
    let bytes: Buffer;
    try {
      bytes = await readRange(opened.handle, 0, opened.size);
    } finally {
      await opened.handle.close();
    }
    // A file shorter than recorded (changed behind the cache's back) is sent as read, not kept.
    if (bytes.length === opened.size && this.entries.get(key) === opened.size) this.hot.set(key, bytes);
    return { file: opened.file, size: opened.size, etag: opened.etag, bytes };
  }

  /** A derivative not on disk: joins the run making it, or starts one. */
  private async lookup(key: string, etag: string, produce: (file: string) => Promise<void>): Promise<Derivative> {
    const file = this.pathOf(key);
    let running = this.inFlight.get(key);
    if (running) {
      this.counters.hits += 1;
      return running;
    }
    this.counters.misses += 1;
    running = this.produce(key, file, etag, produce).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, running);
    return running;
  }

  /** Removes every derivative of a source (after the last image with that content is deleted). */
  async forget(sha256: string): Promise<void> {
    for (const key of [...this.entries.keys()].filter((k) => k.startsWith(`${sha256}-`))) await this.remove(key);
  }

  private async produce(key: string, file: string, etag: string, produce: (file: string) => Promise<void>): Promise<Derivative> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const tmp = path.join(path.dirname(file), `tmp-${randomUUID()}`);
    try {
      this.counters.transforms += 1;
      await produce(tmp);
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
    const { size } = await fs.stat(file);
    this.remember(key, size);
    await this.evict(key);
    return { file, size, etag };
  }

  private remember(key: string, size: number): void {
    const previous = this.entries.get(key);
    if (previous !== undefined) this.bytes -= previous;
    this.entries.delete(key);
    this.entries.set(key, size);
    this.bytes += size;
  }

  /** Evicts oldest entries until within budget; `keep` (just produced) is evicted last. */
  private async evict(keep?: string): Promise<void> {
    for (const key of this.entries.keys()) {
      if (this.bytes <= this.budgetBytes) return;
      if (key === keep || this.pinned.has(key)) continue;
      this.counters.evictions += 1;
      await this.remove(key);
    }
  }

  private async remove(key: string): Promise<void> {
    const size = this.entries.get(key);
    if (size === undefined) return;
    this.entries.delete(key);
    this.bytes -= size;
    this.hot?.delete(key);
    await fs.rm(this.pathOf(key), { force: true });
  }

  private pathOf(key: string): string {
    return path.join(this.dir, key.slice(0, 2), key);
  }
}

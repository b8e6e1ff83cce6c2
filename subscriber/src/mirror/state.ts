import { promises as fs } from 'node:fs';
import type { LocalCopy, MirrorFs } from './fs-ops.js';

/** How many processed event ids are remembered to drop duplicates (delivery is at least once). */
export const RECENT_EVENT_IDS = 1000;

const STATE_VERSION = 1;

/** What the state file remembers of an image: the local copy and the service's image id. */
export interface ImageEntry extends LocalCopy {
  /** The service's stable image id, when known (events carry it; listings too). */
  id?: string;
}

/** The JSON form of the state file. Album and image names are object keys. */
interface StateFile {
  version: number;
  albums: Record<string, Record<string, ImageEntry>>;
  recentEventIds: string[];
  /** The highest event sequence processed: where a catch-up by replay starts. */
  lastSequence?: number;
}

/**
 * The mirror's memory, kept in DIR/.imagestore-mirror-state.json so it survives a restart: for
 * each local file, the SHA-256, size and mtime it was written with (reconcile downloads only what
 * differs), and the ids of the last RECENT_EVENT_IDS events processed.
 * Names live in Maps: an album may be called "__proto__".
 */
export class MirrorState {
  private readonly albums = new Map<string, Map<string, ImageEntry>>();
  private readonly recent: string[] = [];
  private readonly recentSet = new Set<string>();
  /** True when something changed since the last save. */
  dirty = false;
  /** The highest `sequence` of the events processed (undefined: none seen, or a service without sequences). */
  lastSequence: number | undefined;

  private constructor(private readonly files: MirrorFs) {}

  /**
   * Reads the state file; a missing or unreadable one gives an empty state (reconcile then
   * compares every file again and downloads what it cannot vouch for).
   * @returns the state and, when the file was unreadable, why
   */
  static async load(files: MirrorFs): Promise<{ state: MirrorState; problem?: string }> {
    const state = new MirrorState(files);
    let text: string;
    try {
      text = await fs.readFile(files.statePath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state };
      throw err;
    }
    try {
      state.restore(JSON.parse(text) as unknown);
      return { state };
    } catch (err) {
      return { state: new MirrorState(files), problem: `state file ${files.statePath} ignored: ${(err as Error).message}` };
    }
  }

  /** Whether a state file exists in the mirror directory. */
  static async exists(files: MirrorFs): Promise<boolean> {
    return files.exists(files.statePath);
  }

  private restore(value: unknown): void {
    const file = value as Partial<StateFile> | null;
    if (typeof file !== 'object' || file === null || file.version !== STATE_VERSION) throw new Error(`expected version ${STATE_VERSION}`);
    if (typeof file.albums !== 'object' || file.albums === null || !Array.isArray(file.recentEventIds)) throw new Error('expected albums and recentEventIds');
    for (const [album, images] of Object.entries(file.albums)) {
      const map = new Map<string, ImageEntry>();
      for (const [image, entry] of Object.entries(images)) {
        if (typeof entry?.sha256 !== 'string' || typeof entry.size !== 'number' || typeof entry.mtimeMs !== 'number') continue;
        map.set(image, { sha256: entry.sha256, size: entry.size, mtimeMs: entry.mtimeMs, ...(typeof entry.id === 'string' ? { id: entry.id } : {}) });
      }
      this.albums.set(album, map);
    }
    for (const id of file.recentEventIds) if (typeof id === 'string') this.remember(id);
    if (Number.isSafeInteger(file.lastSequence)) this.lastSequence = file.lastSequence;
    this.dirty = false;
  }

  get(album: string, image: string): ImageEntry | undefined {
    return this.albums.get(album)?.get(image);
  }

  set(album: string, image: string, entry: ImageEntry): void {
    let images = this.albums.get(album);
    if (!images) this.albums.set(album, (images = new Map()));
    images.set(image, entry);
    this.dirty = true;
  }

  delete(album: string, image: string): void {
    if (this.albums.get(album)?.delete(image)) this.dirty = true;
  }

  /** Names of the images remembered for `album`. */
  images(album: string): string[] {
    return [...(this.albums.get(album)?.keys() ?? [])];
  }

  albumNames(): string[] {
    return [...this.albums.keys()];
  }

  deleteAlbum(album: string): void {
    if (this.albums.delete(album)) this.dirty = true;
  }

  /** Moves the entries of album `from` to `to` (replacing those of `to`). */
  renameAlbum(from: string, to: string): void {
    const images = this.albums.get(from);
    this.albums.delete(from);
    if (images) this.albums.set(to, images);
    else this.albums.delete(to);
    this.dirty = true;
  }

  /** Whether the event with this id was processed already. */
  seen(id: string): boolean {
    return this.recentSet.has(id);
  }

  /** Records the sequence of a processed event (the highest is kept). */
  processedSequence(seq: number): void {
    if (this.lastSequence !== undefined && seq <= this.lastSequence) return;
    this.lastSequence = seq;
    this.dirty = true;
  }

  /** Records a processed event id, forgetting the oldest beyond RECENT_EVENT_IDS. */
  remember(id: string): void {
    if (this.recentSet.has(id)) return;
    this.recent.push(id);
    this.recentSet.add(id);
    while (this.recent.length > RECENT_EVENT_IDS) this.recentSet.delete(this.recent.shift()!);
    this.dirty = true;
  }

  /** Writes the state file atomically and clears `dirty`. */
  async save(): Promise<void> {
    const file: StateFile = {
      version: STATE_VERSION,
      albums: Object.fromEntries([...this.albums].map(([album, images]) => [album, Object.fromEntries(images)])),
      recentEventIds: this.recent,
      lastSequence: this.lastSequence,
    };
    this.dirty = false;
    try {
      await this.files.writeFileAtomic(this.files.statePath, `${JSON.stringify(file)}\n`);
    } catch (err) {
      this.dirty = true;
      throw err;
    }
  }
}

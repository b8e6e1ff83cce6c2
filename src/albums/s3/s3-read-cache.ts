import type { StoredImageMeta } from '../image-meta.js';
import type { ObjectVersion } from './s3-bucket.js';
import type { AlbumMarker } from './s3-objects.js';

/** An image as last seen in the bucket: its metadata and the version of its bytes object. */
export interface CachedImage {
  meta: StoredImageMeta;
  etag: string;
  /** Last change of the bytes object (ms), when known (a PUT does not return it; a GET, HEAD or listing does). */
  lastModified?: number;
}

/** How long this node may answer from memory, and with how much. */
export interface ReadCacheOptions {
  /** Bytes of metadata kept at most (least recently used out first); 0 turns the cache off. */
  budgetBytes: number;
  /** No entry is used without asking the bucket once it is older than this, events or not. */
  ttlMs: number;
  /** S3_STRICT_READS: every read asks the bucket (entries then only save the metadata GETs of unchanged images). */
  strict: boolean;
  now?: () => number;
}

/** The part of a change event the cache needs (notifier/events.ts StoreEvent). */
export interface ChangeNotice {
  type: string;
  data: { album: string; image?: string; previousName?: string };
}

type Entry =
  | { kind: 'image'; value: CachedImage; epoch: number; bytes: number }
  | { kind: 'marker'; value: AlbumMarker; epoch: number; bytes: number };

/**
 * The S3 store's node-local memory of metadata and album markers, kept coherent across
 * nodes by the event stream: every node publishes each change it makes, and each node
 * drops what a change event names (`changed`), so an entry is used only while no event
 * has said otherwise. Bounded staleness: a read on this node after a 2xx on another is
 * fresh as soon as that node's event has arrived here; before that it may answer from the
 * state before. Entries are trusted only while the event stream is followed (`following`:
 * a gap in it, a disconnect, drops everything) and for at most `ttlMs` (the fallback
 * should events be lost); in strict mode never (every read asks the bucket).
 *
 * Also gives each album (and the album list) a version for the listing cache: a number
 * taken from one counter at every change, event, TTL period and (re)connection, so it is
 * never the same for two states; undefined whenever entries are not trusted.
 */
export class S3ReadCache {
  /** Map order is the LRU order (oldest first). */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private seq = 0;
  /** Entries from an earlier epoch are not trusted; a new epoch starts every ttlMs and at each (re)connection. */
  private epoch = 0;
  private epochAt = 0;
  private following = false;
  private events = 0;
  private readonly versions = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly options: ReadCacheOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Whether entries may be used: the event stream is followed and reads are not strict. */
  get trusted(): boolean {
    return this.following && !this.options.strict && this.options.budgetBytes > 0;
  }

  /** Bytes held (at most the budget), entries, change events applied, and whether the stream is followed, for tests and metrics. */
  stats(): { bytes: number; entries: number; events: number; following: boolean } {
    return { bytes: this.bytes, entries: this.entries.size, events: this.events, following: this.following };
  }

  /** The event stream is followed from now on (subscribed), or not any more: either way nothing older is trusted. */
  setFollowing(following: boolean): void {
    this.following = following;
    this.newEpoch();
  }

  /** Nothing held so far is trusted any more (the bucket was changed behind the cache's back). */
  forgetAll(): void {
    this.newEpoch();
  }

  /** A trusted image entry (undefined when not held, too old, or not trusted). */
  image(album: string, name: string): CachedImage | undefined {
    const entry = this.trustedEntry(imageKey(album, name));
    return entry?.kind === 'image' ? entry.value : undefined;
  }

  /** An image entry whatever its age, to be revalidated against the bucket (a listing's ETags). */
  imageToRevalidate(album: string, name: string): CachedImage | undefined {
    const entry = this.entries.get(imageKey(album, name));
    return entry?.kind === 'image' ? entry.value : undefined;
  }

  /**
   * A listing saw the image's bytes object at `version`: an entry of the same version is
   * current (trusted again for a TTL period, so an expired entry costs no HEAD), another is dropped.
   * An entry without a last change (from a PUT) takes the listing's when the ETag matches.
   */
  observe(album: string, name: string, version: ObjectVersion): void {
    const entry = this.entries.get(imageKey(album, name));
    if (entry?.kind !== 'image') return;
    const { etag, lastModified } = entry.value;
    if (etag === version.etag && (lastModified === undefined || lastModified === version.lastModified)) {
      entry.value.lastModified = version.lastModified;
      entry.epoch = this.currentEpoch();
    } else {
      this.remove(imageKey(album, name));
    }
  }

  /**
   * Taken before a read of the bucket and given to setImage/setMarker with its result: a change
   * to the album told meanwhile (an event that overtook the read's answer) makes that result
   * too old to keep.
   */
  stamp(album: string): number {
    return this.versions.get(album) ?? 0;
  }

  setImage(album: string, name: string, value: CachedImage, stamp?: number): void {
    if (stamp !== undefined && stamp !== this.stamp(album)) return;
    this.set(imageKey(album, name), { kind: 'image', value, epoch: this.currentEpoch(), bytes: estimate(album, name, value) });
  }

  /** A trusted album marker (absence is never cached: a missing album is always asked for). */
  marker(album: string): AlbumMarker | undefined {
    const entry = this.trustedEntry(markerKey(album));
    return entry?.kind === 'marker' ? entry.value : undefined;
  }

  setMarker(album: string, marker: AlbumMarker, stamp?: number): void {
    if (stamp !== undefined && stamp !== this.stamp(album)) return;
    this.set(markerKey(album), { kind: 'marker', value: marker, epoch: this.currentEpoch(), bytes: estimate(album, '', marker) });
  }

  /** A change to one image, made here or told by an event: its entry goes, its album's version moves. */
  imageChanged(album: string, name: string): void {
    this.remove(imageKey(album, name));
    this.versions.set(album, ++this.seq);
  }

  /** A change to an album as a whole (created, renamed, deleted): its marker and images go, the album list's version moves. */
  albumChanged(album: string): void {
    const prefix = imageKey(album, '');
    for (const key of [...this.entries.keys()]) if (key.startsWith(prefix)) this.remove(key);
    this.remove(markerKey(album));
    this.versions.set(album, ++this.seq);
    this.versions.set('', ++this.seq);
  }

  /** A change event from any node (this one's own included: dropping a fresh entry only costs a read). */
  changed(event: ChangeNotice): void {
    const { album, image, previousName } = event.data;
    if (typeof album !== 'string') return;
    if (event.type.startsWith('imagestore.image.') && event.type !== 'imagestore.image.fetched' && typeof image === 'string') {
      this.events += 1;
      this.imageChanged(album, image);
      if (typeof previousName === 'string') this.imageChanged(album, previousName);
    } else if (event.type.startsWith('imagestore.album.')) {
      this.events += 1;
      this.albumChanged(album);
      if (typeof previousName === 'string') this.albumChanged(previousName);
    }
  }

  /** AlbumStore.version: undefined while entries are not trusted (then nothing may be cached under it). */
  version(album?: string): number | undefined {
    if (!this.trusted) return undefined;
    return Math.max(this.versions.get(album ?? '') ?? 0, this.currentEpoch());
  }

  private trustedEntry(key: string): Entry | undefined {
    if (!this.trusted) return undefined;
    const entry = this.entries.get(key);
    if (entry === undefined || entry.epoch !== this.currentEpoch()) return undefined;
    this.entries.delete(key);
    this.entries.set(key, entry);
    return entry;
  }

  private set(key: string, entry: Entry): void {
    if (this.options.budgetBytes === 0 || entry.bytes > this.options.budgetBytes) return;
    this.remove(key);
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    for (const [oldest, old] of this.entries) {
      if (this.bytes <= this.options.budgetBytes) break;
      this.entries.delete(oldest);
      this.bytes -= old.bytes;
    }
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (entry === undefined) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  /** The epoch, renewed once ttlMs have passed since it started. */
  private currentEpoch(): number {
    if (this.now() - this.epochAt > this.options.ttlMs) this.newEpoch();
    return this.epoch;
  }

  private newEpoch(): void {
    this.epoch = ++this.seq;
    this.epochAt = this.now();
  }
}

function imageKey(album: string, name: string): string {
  return `i\n${album}\n${name}`;
}

function markerKey(album: string): string {
  return `m\n${album}`;
}

/** Memory an entry takes, roughly: its JSON (two bytes a character, as V8 may hold it) plus the Map's overhead. */
function estimate(album: string, name: string, value: unknown): number {
  return 2 * (album.length + name.length + JSON.stringify(value).length) + 100;
}

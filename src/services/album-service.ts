import { DuplicateImageError, NotConfiguredError, NotFoundError, ValidationError } from '../errors.js';
import type { EventInput } from '../notifier/events.js';
import type { Notifier } from '../notifier/types.js';
import type { StoreChange } from '../albums/changes.js';
import { describeFile, type StoredImageMeta } from '../albums/image-meta.js';
import { SNIFF_BYTES, sniffType } from '../albums/sniff.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, SimilarImage, StagedFile, StoreCheck, StoreCheckOptions } from '../albums/types.js';

/** Checks an uploaded file (its path, or its bytes) is an acceptable image and tells what it is (images/inspect.ts). */
export type ImageInspector = (file: string | Buffer) => Promise<NonNullable<StagedFile['facts']> & { type: string }>;

/** Size and sha256 of a staged file, when the caller computed them while receiving it. */
export interface KnownContent {
  size: number;
  sha256: string;
  /** The bytes themselves, when the upload kept them in memory too: checked from there, not read back. */
  bytes?: Buffer;
  /** The file's data is already fdatasynced. */
  synced?: boolean;
}

/** Told when no stored image has some content any more (the derivative cache drops its entries). */
export type ContentReleased = (sha256: string) => Promise<void>;

/** Per-call context: ties store changes and events to the HTTP request. */
export interface CallContext {
  reqId?: string;
}

/**
 * Most ids an image's `duplicateOf` names. Bytes uploaded thousands of times (a placeholder, a
 * re-sent file) would otherwise make every new copy's metadata and event list every earlier one.
 */
export const MAX_DUPLICATE_IDS = 10;

/** What an upload whose exact bytes are already stored gets: stored all the same (with `duplicateOf`), or 409. */
export type DuplicatePolicy = 'allow' | 'reject';

/** A listing page of names, with details when asked for. */
export interface Listing<T> extends Page<string> {
  details?: T[];
}

/**
 * The album use cases: each change goes through `notifier.storeChange`, which lets
 * it touch the store only when its event is sure to fit in the journal, and
 * gives the store the journal whose commit record (the change and its event,
 * `changeEvent`) is the change's commit point. A download's event is journaled
 * without waiting for the disk, best effort, once its answer is ready (announceFetch).
 */
export class AlbumService {
  constructor(
    private readonly store: AlbumStore,
    private readonly notifier: Notifier,
    private readonly inspect?: ImageInspector,
    private readonly contentReleased: ContentReleased = async () => undefined,
    /** The policy when an upload does not name one (ON_DUPLICATE). */
    private readonly onDuplicate: DuplicatePolicy = 'allow',
  ) {}

  get stagingDir(): string {
    return this.store.stagingDir;
  }

  /** The store's version of an album or of the album list (AlbumStore.version): listings are cached under it. */
  version(album?: string): number | undefined {
    return this.store.version?.(album);
  }

  async listAlbums(page: PageRequest, withDetails: boolean): Promise<Listing<AlbumInfo>> {
    const listing: Listing<AlbumInfo> = await this.store.listAlbums(page);
    if (withDetails) listing.details = await this.store.albumInfos(listing.items);
    return listing;
  }

  async createAlbum(name: string, ctx: CallContext = {}): Promise<AlbumInfo> {
    return this.notifier.storeChange((journal) => this.store.createAlbum(name, journal), changeEvent, ctx);
  }

  async renameAlbum(from: string, to: string, ctx: CallContext = {}): Promise<AlbumInfo> {
    if (from === to) return this.store.renameAlbum(from, to); // no change, no event
    return this.notifier.storeChange((journal) => this.store.renameAlbum(from, to, journal), changeEvent, ctx);
  }

  async deleteAlbum(name: string, ctx: CallContext = {}): Promise<void> {
    const { unusedContent } = await this.notifier.storeChange((journal) => this.store.deleteAlbum(name, journal), changeEvent, ctx);
    await Promise.all(unusedContent.map((sha) => this.contentReleased(sha)));
  }

  /**
   * A page of an album's images, by name, or with `sort` captured by capture time (EXIF,
   * oldest first; images without one last), then by name.
   */
  async listImages(album: string, page: PageRequest, withDetails: boolean, sort: 'name' | 'captured' = 'name'): Promise<Listing<ImageInfo>> {
    if (sort === 'captured') return this.listByCapture(album, page, withDetails);
    const listing: Listing<ImageInfo> = await this.store.listImages(album, page);
    if (withDetails) listing.details = await this.store.imageInfos(album, listing.items);
    return listing;
  }

  /**
   * The album ordered by capture time, paged with a cursor holding the last (time, name) sent.
   * Every image's metadata is read to sort them: from memory on the filesystem store; the
   * listing cache keeps the answer until the album changes.
   */
  private async listByCapture(album: string, page: PageRequest, withDetails: boolean): Promise<Listing<ImageInfo>> {
    const { items } = await this.store.listImages(album, {});
    const keyOf = (info: ImageInfo): [string, string] => [captureKey(info.capture?.capturedAt), info.name];
    const infos = (await this.store.imageInfos(album, items)).map((info) => ({ info, key: keyOf(info) }));
    infos.sort((a, b) => compareKeys(a.key, b.key));
    const after = page.cursor === undefined ? undefined : decodeCaptureCursor(page.cursor);
    const start = after === undefined ? 0 : infos.findIndex(({ key }) => compareKeys(key, after) > 0);
    const rest = start < 0 ? [] : infos.slice(start);
    const chosen = page.limit === undefined ? rest : rest.slice(0, page.limit);
    const last = chosen[chosen.length - 1];
    return {
      items: chosen.map(({ info }) => info.name),
      nextCursor: last && chosen.length < rest.length ? Buffer.from(JSON.stringify(last.key)).toString('base64url') : undefined,
      ...(withDetails ? { details: chosen.map(({ info }) => info) } : {}),
    };
  }

  /**
   * Stores a received file (in the staging dir) as an image: checks it (415 not an
   * accepted image, 422 corrupt or too many pixels), then commits it (the store makes
   * the file durable and takes it away from its path). Bytes some stored image already
   * has are stored with `duplicateOf`, or refused (409) when the policy says `reject`.
   * @throws {DuplicateImageError} a duplicate under the `reject` policy
   */
  async addImage(album: string, name: string, file: string, ctx: CallContext = {}, known?: KnownContent, onDuplicate = this.onDuplicate): Promise<ImageInfo> {
    // The upload parser (or the importer) has often hashed the bytes already: read them again only when not.
    // Without an inspector the type comes from sniffing, so the file is read then.
    const bytes = known?.bytes;
    const [described, facts, knownDuplicates] = await Promise.all([
      known && (this.inspect || bytes) ? known : describeFile(file), this.inspect?.(bytes ?? file), known ? this.store.contentIds(known.sha256) : undefined,
    ]);
    const duplicateOf = (knownDuplicates ?? (await this.store.contentIds(described.sha256))).slice(0, MAX_DUPLICATE_IDS);
    if (duplicateOf.length > 0 && onDuplicate === 'reject') {
      const existing = await this.store.findImage(duplicateOf[0]);
      const location = existing ? `/api/v1/albums/${encodeURIComponent(existing.album)}/images/${encodeURIComponent(existing.name)}` : `/api/v1/images/${duplicateOf[0]}`;
      throw new DuplicateImageError(`these bytes are already stored as image ${duplicateOf[0]}${existing ? ` (${existing.name} in album ${existing.album})` : ''}; upload with onDuplicate=allow to store a copy`, location);
    }
    const { type, ...rest } = facts ?? { type: 'type' in described ? described.type : sniffType(bytes!.subarray(0, SNIFF_BYTES)) };
    const staged: StagedFile = {
      path: file, bytes, synced: known?.synced, size: described.size, sha256: described.sha256, type, facts: facts ? rest : undefined,
      duplicateOf: duplicateOf.length > 0 ? duplicateOf : undefined,
    };
    return this.notifier.storeChange((journal) => this.store.commitImage(album, name, staged, journal), changeEvent, ctx);
  }

  /**
   * Opens an image for download. Its fetch event is recorded apart (announceFetch), once
   * the answer is ready to go: an image that turns out not to be sendable (a transform
   * that fails, a signed URL for another image) announces nothing, and neither does HEAD.
   */
  async openImage(album: string, name: string): Promise<ImageHandle> {
    return this.store.openImage(album, name);
  }

  /** Like openImage, by the image's stable id. */
  async openImageById(id: string): Promise<ImageHandle> {
    const found = await this.store.findImage(id);
    if (!found) throw new NotFoundError(`no image with id ${id}`);
    return this.store.openImage(found.album, found.name);
  }

  /** Records the fetch event of an opened image, once its answer is ready to send. */
  async announceFetch(image: ImageInfo, ctx: CallContext = {}): Promise<void> {
    await this.notifier.publish({ type: 'imagestore.image.fetched', ...eventFields(image) }, { reqId: ctx.reqId, durable: false });
  }

  /**
   * Near-duplicates of an image across the store (perceptual hash within `maxDistance` bits).
   * @throws {NotFoundError} unknown id; {NotConfiguredError} a store without the index (object storage)
   */
  async similarImages(id: string, maxDistance: number, limit: number): Promise<SimilarImage[]> {
    if (!this.store.similarImages) throw new NotConfiguredError('near-duplicate search needs the filesystem store (STORAGE=fs)');
    const found = await this.store.similarImages(id, maxDistance, limit);
    if (!found) throw new NotFoundError(`no image with id ${id}`);
    return found;
  }

  /** An image's metadata, without fetching it. */
  async imageInfo(album: string, name: string): Promise<ImageInfo> {
    const [[info]] = await Promise.all([this.store.imageInfos(album, [name]), this.requireAlbum(album)]);
    if (!info) throw new NotFoundError(`${name} image is not present`);
    return info;
  }

  /** @throws {NotFoundError} the album does not exist */
  async requireAlbum(album: string): Promise<void> {
    if (!(await this.store.hasAlbum(album))) throw new NotFoundError(`${album} album is not present`);
  }

  async renameImage(album: string, from: string, to: string, ctx: CallContext = {}): Promise<ImageInfo> {
    if (from === to) return this.store.renameImage(album, from, to); // no change, no event
    return this.notifier.storeChange((journal) => this.store.renameImage(album, from, to, journal), changeEvent, ctx);
  }

  async deleteImage(album: string, name: string, ctx: CallContext = {}): Promise<ImageInfo> {
    const image = await this.notifier.storeChange((journal) => this.store.deleteImage(album, name, journal), changeEvent, ctx);
    if (!(await this.store.isContentUsed(image.sha256))) await this.contentReleased(image.sha256);
    return image;
  }

  async checkWritable(): Promise<void> {
    await this.store.checkWritable();
  }

  /** fsck of the store, wherever it keeps its data (AlbumStore.check). */
  async check(options: StoreCheckOptions): Promise<StoreCheck> {
    return this.store.check(options);
  }
}

/** A capture time as a sortable UTC string; no (or an unreadable) time sorts last. */
function captureKey(capturedAt: string | undefined): string {
  const time = capturedAt === undefined ? NaN : Date.parse(/[+-]\d{2}:\d{2}$|Z$/.test(capturedAt) ? capturedAt : `${capturedAt}Z`);
  return Number.isNaN(time) ? '~' : new Date(time).toISOString();
}

function compareKeys(a: [string, string], b: [string, string]): number {
  return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0;
}

/** @throws {ValidationError} a cursor this listing did not make */
function decodeCaptureCursor(cursor: string): [string, string] {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(key) && key.length === 2 && key.every((part) => typeof part === 'string')) return key as [string, string];
  } catch {
    // reported below
  }
  throw new ValidationError('cursor: not a cursor of a sort=captured listing');
}

function defined<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function eventFields(image: ImageInfo) {
  return { album: image.album, image: image.name, id: image.id, size: image.size, contentType: image.type };
}

/** The event a store change announces (carried in its commit record). */
export function changeEvent(change: StoreChange): EventInput {
  const image = (meta: StoredImageMeta) => eventFields({ ...meta, album: change.album });
  switch (change.op) {
    case 'album.create':
      return { type: 'imagestore.album.created', album: change.album };
    case 'album.rename':
      return { type: 'imagestore.album.renamed', album: change.to, previousName: change.album };
    case 'album.delete':
      return { type: 'imagestore.album.deleted', album: change.album };
    case 'image.add': {
      // GPS and the other capture metadata stay out of events: only keys with read access see them (metadata answers).
      const { thumbhash, dominantColor, duplicateOf } = change.meta;
      return { type: 'imagestore.image.created', ...image(change.meta), ...defined({ thumbhash, dominantColor, duplicateOf }) };
    }
    case 'image.rename':
      return { type: 'imagestore.image.renamed', ...image(change.meta), previousName: change.from };
    case 'image.delete':
      return { type: 'imagestore.image.deleted', ...image(change.meta) };
  }
}

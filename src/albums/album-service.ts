import { NotFoundError } from '../errors.js';
import type { EventInput } from '../notifier/events.js';
import type { Notifier } from '../notifier/types.js';
import type { StoreChange } from './changes.js';
import { describeFile, type StoredImageMeta } from './image-meta.js';
import { SNIFF_BYTES, sniffType } from './sniff.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, StagedFile, StoreCheck, StoreCheckOptions } from './types.js';

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

/** A listing page of names, with details when asked for. */
export interface Listing<T> extends Page<string> {
  details?: T[];
}

/**
 * The album use cases: each change goes through `notifier.storeChange`, which lets
 * it touch the store only when its event is sure to fit in the journal, and
 * gives the store the journal whose commit record (the change and its event,
 * `changeEvent`) is the change's commit point. A download's event is journaled
 * without waiting for the disk, best effort.
 */
export class AlbumService {
  constructor(
    private readonly store: AlbumStore,
    private readonly notifier: Notifier,
    private readonly inspect?: ImageInspector,
    private readonly contentReleased: ContentReleased = async () => undefined,
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

  async listImages(album: string, page: PageRequest, withDetails: boolean): Promise<Listing<ImageInfo>> {
    const listing: Listing<ImageInfo> = await this.store.listImages(album, page);
    if (withDetails) listing.details = await this.store.imageInfos(album, listing.items);
    return listing;
  }

  /**
   * Stores a received file (in the staging dir) as an image: checks it (415 not an
   * accepted image, 422 corrupt or too many pixels), then commits it (the store makes
   * the file durable and takes it away from its path).
   */
  async addImage(album: string, name: string, file: string, ctx: CallContext = {}, known?: KnownContent): Promise<ImageInfo> {
    // The upload parser (or the importer) has often hashed the bytes already: read them again only when not.
    // Without an inspector the type comes from sniffing, so the file is read then.
    const bytes = known?.bytes;
    const [described, facts] = await Promise.all([
      known && (this.inspect || bytes) ? known : describeFile(file), this.inspect?.(bytes ?? file),
    ]);
    const { type, ...rest } = facts ?? { type: 'type' in described ? described.type : sniffType(bytes!.subarray(0, SNIFF_BYTES)) };
    const staged: StagedFile = {
      path: file, bytes, synced: known?.synced, size: described.size, sha256: described.sha256, type, facts: facts ? rest : undefined,
    };
    return this.notifier.storeChange((journal) => this.store.commitImage(album, name, staged, journal), changeEvent, ctx);
  }

  /**
   * Opens an image for download and records the fetch event (not for HEAD:
   * `announce` false, since no image is sent).
   */
  async fetchImage(album: string, name: string, ctx: CallContext = {}, announce = true): Promise<ImageHandle> {
    const handle = await this.store.openImage(album, name);
    if (announce) await this.announceFetch(handle.info, ctx);
    return handle;
  }

  /** Records the fetch event of an image opened with `announce` false, once it is really used. */
  async announceFetch(image: ImageInfo, ctx: CallContext = {}): Promise<void> {
    await this.notifier.publish({ type: 'imagestore.image.fetched', ...eventFields(image) }, { reqId: ctx.reqId, durable: false });
  }

  /** Like fetchImage, by the image's stable id. */
  async fetchImageById(id: string, ctx: CallContext = {}, announce = true): Promise<ImageHandle> {
    const found = await this.store.findImage(id);
    if (!found) throw new NotFoundError(`no image with id ${id}`);
    return this.fetchImage(found.album, found.name, ctx, announce);
  }

  /** An image's metadata, without fetching it. */
  async imageInfo(album: string, name: string): Promise<ImageInfo> {
    const [info] = await this.store.imageInfos(album, [name]);
    await this.store.listImages(album, { limit: 1 }); // 404 for an unknown album
    if (!info) throw new NotFoundError(`${name} image is not present`);
    return info;
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
    case 'image.add':
      return { type: 'imagestore.image.created', ...image(change.meta) };
    case 'image.rename':
      return { type: 'imagestore.image.renamed', ...image(change.meta), previousName: change.from };
    case 'image.delete':
      return { type: 'imagestore.image.deleted', ...image(change.meta) };
  }
}

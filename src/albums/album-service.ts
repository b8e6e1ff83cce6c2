import type { Notifier } from '../notifier/types.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, StagedFile } from './types.js';

/** Per-call context: ties store changes and events to the HTTP request. */
export interface CallContext {
  reqId?: string;
}

/** A listing page of names, with details when asked for. */
export interface Listing<T> extends Page<string> {
  details?: T[];
}

/**
 * The album use cases: each change goes to the store first and, once it is
 * durable, its event to the notifier (which journals it durably before
 * returning). A download's event is journaled without waiting for the disk.
 */
export class AlbumService {
  constructor(
    private readonly store: AlbumStore,
    private readonly notifier: Notifier,
  ) {}

  get stagingDir(): string {
    return this.store.stagingDir;
  }

  async listAlbums(page: PageRequest, withDetails: boolean): Promise<Listing<AlbumInfo>> {
    const listing: Listing<AlbumInfo> = await this.store.listAlbums(page);
    if (withDetails) listing.details = await this.store.albumInfos(listing.items);
    return listing;
  }

  async createAlbum(name: string, ctx: CallContext = {}): Promise<AlbumInfo> {
    const album = await this.store.createAlbum(name);
    await this.notifier.publish({ type: 'imagestore.album.created', album: name }, { reqId: ctx.reqId, durable: true });
    return album;
  }

  async renameAlbum(from: string, to: string, ctx: CallContext = {}): Promise<AlbumInfo> {
    const album = await this.store.renameAlbum(from, to);
    if (from !== to) {
      await this.notifier.publish({ type: 'imagestore.album.renamed', album: to, previousName: from }, { reqId: ctx.reqId, durable: true });
    }
    return album;
  }

  async deleteAlbum(name: string, ctx: CallContext = {}): Promise<void> {
    await this.store.deleteAlbum(name);
    await this.notifier.publish({ type: 'imagestore.album.deleted', album: name }, { reqId: ctx.reqId, durable: true });
  }

  async listImages(album: string, page: PageRequest, withDetails: boolean): Promise<Listing<ImageInfo>> {
    const listing: Listing<ImageInfo> = await this.store.listImages(album, page);
    if (withDetails) listing.details = await this.store.imageInfos(album, listing.items);
    return listing;
  }

  async addImage(album: string, name: string, staged: StagedFile, ctx: CallContext = {}): Promise<ImageInfo> {
    const image = await this.store.commitImage(album, name, staged);
    await this.notifier.publish({ type: 'imagestore.image.created', ...eventFields(image) }, { reqId: ctx.reqId, durable: true });
    return image;
  }

  /** Opens an image for download and records the fetch event. */
  async fetchImage(album: string, name: string, ctx: CallContext = {}): Promise<ImageHandle> {
    const handle = await this.store.openImage(album, name);
    await this.notifier.publish({ type: 'imagestore.image.fetched', ...eventFields(handle.info) }, { reqId: ctx.reqId, durable: false });
    return handle;
  }

  async renameImage(album: string, from: string, to: string, ctx: CallContext = {}): Promise<ImageInfo> {
    const image = await this.store.renameImage(album, from, to);
    if (from !== to) {
      await this.notifier.publish(
        { type: 'imagestore.image.renamed', ...eventFields(image), previousName: from },
        { reqId: ctx.reqId, durable: true },
      );
    }
    return image;
  }

  async deleteImage(album: string, name: string, ctx: CallContext = {}): Promise<ImageInfo> {
    const image = await this.store.deleteImage(album, name);
    await this.notifier.publish({ type: 'imagestore.image.deleted', ...eventFields(image) }, { reqId: ctx.reqId, durable: true });
    return image;
  }

  async checkWritable(): Promise<void> {
    await this.store.checkWritable();
  }
}

function eventFields(image: ImageInfo) {
  return { album: image.album, image: image.name, id: image.id, size: image.size, contentType: image.type };
}

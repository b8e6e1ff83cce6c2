import { ConflictError, NotFoundError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { parseImageMeta, type StoredImageMeta } from '../image-meta.js';
import { mapLimit } from '../../lib/map-limit.js';
import type { ObjectVersion, S3Bucket } from './s3-bucket.js';
import type { S3Layout } from './s3-layout.js';
import { decodeCursor, encodeCursor } from '../sorted-names.js';
import type { Page, PageRequest } from '../types.js';

/** An album marker's content. `renamingTo`/`renamedFrom` journal an album rename in progress. */
export interface AlbumMarker {
  createdAt: string;
  renamingTo?: string;
  renamedFrom?: string;
}

/** Requests in flight at once for listings with details and album copies. */
export const PARALLEL_REQUESTS = 16;

/**
 * The S3 store's objects (s3-layout.ts) and the multi-object steps its
 * operations are made of: album markers, metadata, name claims, id and content
 * records, paged listings, and the bulk moves and deletes of whole albums.
 * No locking here: S3AlbumStore decides what runs when.
 */
export class S3Objects {
  constructor(
    readonly bucket: S3Bucket,
    readonly layout: S3Layout,
    private readonly log: Logger,
    /** Metadata without image bytes older than this is a dead upload's claim and may be taken over. */
    private readonly claimTtlMs: number,
  ) {}

  /** One page of names under `prefix`, with their objects' versions (same order). */
  async page(prefix: string, request: PageRequest = {}): Promise<Page<string> & { versions?: ObjectVersion[] }> {
    if (request.limit === 0) return { items: [] };
    const after = request.cursor === undefined ? undefined : prefix + decodeCursor(request.cursor);
    const { keys, versions, more } = await this.bucket.listPage(prefix, after, request.limit ?? Number.POSITIVE_INFINITY);
    const items = keys.map((key) => key.slice(prefix.length));
    return more && items.length > 0 ? { items, versions, nextCursor: encodeCursor(items[items.length - 1]) } : { items, versions };
  }

  async marker(album: string): Promise<AlbumMarker | undefined> {
    return this.bucket.getJson<AlbumMarker>(this.layout.albumKey(album));
  }

  async requireMarker(album: string): Promise<AlbumMarker> {
    const marker = await this.marker(album);
    if (!marker) throw new NotFoundError(`${album} album is not present`);
    return marker;
  }

  async requireImage(album: string, name: string): Promise<StoredImageMeta> {
    const [, meta] = await Promise.all([this.requireMarker(album), this.readMetaKey(this.layout.metaKey(album, name))]);
    if (!meta) throw new NotFoundError(`${name} image is not present`);
    return meta;
  }

  async readMetaKey(key: string): Promise<StoredImageMeta | undefined> {
    const text = await this.bucket.getText(key);
    return text === undefined ? undefined : parseImageMeta(text);
  }

  /**
   * Creates the name's metadata object if absent. A name whose metadata exists but
   * whose bytes do not, unchanged for `claimTtlMs`, was claimed by an upload that
   * died (or left by an interrupted delete) and is taken over.
   * @throws {ConflictError} the name is taken
   */
  async claimName(album: string, name: string, meta: StoredImageMeta): Promise<void> {
    const key = this.layout.metaKey(album, name);
    if (await this.bucket.createIfAbsent(key, JSON.stringify(meta))) return;
    const [existing, bytes] = await Promise.all([this.readMetaKey(key), this.bucket.head(this.layout.imageKey(album, name))]);
    const age = existing ? Date.now() - Date.parse(existing.modifiedAt ?? existing.createdAt) : Number.POSITIVE_INFINITY;
    if (bytes || age <= this.claimTtlMs) throw new ConflictError(`${name} image already present`);
    this.log.warn({ album, image: name }, 'taking over a stale claim (metadata without image bytes)');
    await this.bucket.putJson(key, meta);
  }

  /** Removes a claim after a failed write, if it is still ours. */
  async releaseClaim(album: string, name: string, id: string): Promise<void> {
    const key = this.layout.metaKey(album, name);
    if ((await this.readMetaKey(key).catch(() => undefined))?.id === id) await this.bucket.delete(key).catch(() => undefined);
  }

  /** Id location and content reference of a stored image. */
  async recordImage(album: string, meta: StoredImageMeta): Promise<void> {
    await Promise.all([
      this.bucket.putJson(this.layout.idKey(meta.id), { album, name: meta.name }),
      this.bucket.putJson(this.layout.contentKey(meta.sha256, meta.id), {}),
    ]);
  }

  /** Drops an image's id (unless it points elsewhere now, after an interrupted rename) and content reference. */
  async forgetImage(album: string, meta: StoredImageMeta): Promise<void> {
    const keys = await this.forgettableKeys(album, meta);
    await Promise.all(keys.map((key) => this.bucket.delete(key)));
  }

  async forgettableKeys(album: string, meta: StoredImageMeta): Promise<string[]> {
    const where = await this.bucket.getJson<{ album: string; name: string }>(this.layout.idKey(meta.id));
    if (where !== undefined && (where.album !== album || where.name !== meta.name)) return [];
    return [this.layout.idKey(meta.id), this.layout.contentKey(meta.sha256, meta.id)];
  }

  /** Copies an album's images and metadata to another name, repoints their ids, deletes the originals. */
  async moveImages(from: string, to: string): Promise<void> {
    const imagesPrefix = this.layout.imagesPrefix(from);
    for await (const keys of this.bucket.keys(imagesPrefix)) {
      const names = keys.map((key) => key.slice(imagesPrefix.length));
      await mapLimit(names, PARALLEL_REQUESTS, async (name) => {
        const meta = await this.readMetaKey(this.layout.metaKey(from, name));
        const size = meta?.size ?? (await this.bucket.head(this.layout.imageKey(from, name)))?.size ?? 0;
        await this.bucket.copy(this.layout.imageKey(from, name), this.layout.imageKey(to, name), size);
        if (!meta) return;
        await this.bucket.putJson(this.layout.metaKey(to, name), meta);
        await this.bucket.putJson(this.layout.idKey(meta.id), { album: to, name });
      });
      await this.bucket.deleteKeys(keys);
      await this.bucket.deleteKeys(names.map((name) => this.layout.metaKey(from, name)));
    }
    await this.bucket.deletePrefix(this.layout.metaPrefix(from)); // claims of uploads that never finished
  }

  /**
   * Deletes every image of an album: bytes first (they leave listings first), then
   * metadata, ids and content references; then bytes without metadata, if any.
   * @returns the contents (sha256) of the deleted images and the number of objects deleted
   */
  async removeImages(album: string): Promise<{ contents: Set<string>; objects: number }> {
    const contents = new Set<string>();
    let objects = 0;
    const metaPrefix = this.layout.metaPrefix(album);
    for await (const keys of this.bucket.keys(metaPrefix)) {
      const metas = await mapLimit(keys, PARALLEL_REQUESTS, (key) => this.readMetaKey(key));
      await this.bucket.deleteKeys(keys.map((key) => this.layout.imageKey(album, key.slice(metaPrefix.length))));
      await this.bucket.deleteKeys(keys);
      const present = metas.filter((m): m is StoredImageMeta => m !== undefined);
      await this.bucket.deleteKeys((await mapLimit(present, PARALLEL_REQUESTS, (meta) => this.forgettableKeys(album, meta))).flat());
      for (const meta of present) contents.add(meta.sha256);
      objects += keys.length;
    }
    objects += await this.bucket.deletePrefix(this.layout.imagesPrefix(album));
    return { contents, objects };
  }

  /** Removes objects left under an album name with no marker (an interrupted delete), so a new album starts empty. */
  async purgeAlbumObjects(album: string): Promise<void> {
    const [metas, images] = await Promise.all([this.bucket.hasAny(this.layout.metaPrefix(album)), this.bucket.hasAny(this.layout.imagesPrefix(album))]);
    if (!metas && !images) return;
    const { objects } = await this.removeImages(album);
    this.log.warn({ album, objects }, 'removed objects left by an interrupted album delete');
  }
}

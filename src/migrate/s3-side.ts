import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { S3Settings } from '../config.js';
import type { StoredImageMeta } from '../albums/image-meta.js';
import type { Logger } from '../logger.js';
import { S3Bucket, createS3Client } from '../albums/s3/s3-bucket.js';
import { S3AlbumStore } from '../albums/s3/s3-store.js';
import type { AlbumInfo } from '../albums/types.js';
import type { MigrationSource, MigrationTarget } from './migrate.js';

/** Names listed per request. */
const PAGE = 1000;

/**
 * A bucket (S3_* settings) as migration source and target, through the S3 store
 * itself, so the layout is written exactly as the service writes it (ids and
 * content references included). Downloads are staged in a private temp dir.
 */
export class S3Side implements MigrationSource, MigrationTarget {
  /** The target album last looked at: which names have metadata, and image sizes (one listing, not a request per image). */
  private listed?: { album: string; index: Promise<{ metas: Set<string>; sizes: Map<string, number> }> };

  private constructor(
    private readonly store: S3AlbumStore,
    private readonly settings: S3Settings,
    private readonly tmpDir: string,
  ) {}

  get description(): string {
    return `s3://${this.settings.bucket}/${this.store.layout.prefix}${this.settings.endpoint ? ` at ${this.settings.endpoint}` : ''}`;
  }

  /** @param create create the bucket when missing (as a target) */
  static async open(settings: S3Settings, log: Logger, create = false): Promise<S3Side> {
    const tmpDir = await fs.mkdtemp(path.join(os.tmpdir(), 'imagestore-migrate-'));
    try {
      if (create) {
        const client = createS3Client(settings);
        await new S3Bucket(client, settings.bucket).ensureExists().finally(() => client.destroy());
      }
      const { store } = await S3AlbumStore.open(settings, tmpDir, log);
      return new S3Side(store, settings, tmpDir);
    } catch (err) {
      await fs.rm(tmpDir, { recursive: true, force: true });
      throw err;
    }
  }

  async *albums(): AsyncIterable<AlbumInfo[]> {
    let cursor: string | undefined;
    do {
      const page = await this.store.listAlbums({ limit: PAGE, cursor });
      yield await this.store.albumInfos(page.items);
      cursor = page.nextCursor;
    } while (cursor);
  }

  async *images(album: string): AsyncIterable<StoredImageMeta[]> {
    let cursor: string | undefined;
    do {
      const page = await this.store.listImages(album, { limit: PAGE, cursor });
      yield (await this.store.imageInfos(album, page.items)).map(({ album: _album, ...meta }) => meta);
      cursor = page.nextCursor;
    } while (cursor);
  }

  async fetch(album: string, meta: StoredImageMeta): Promise<{ file: string; release(): Promise<void> }> {
    const file = path.join(this.tmpDir, randomUUID());
    const release = () => fs.rm(file, { force: true });
    try {
      await this.store.bucket.download(this.store.layout.imageKey(album, meta.name), file);
    } catch (err) {
      await release();
      throw err;
    }
    return { file, release };
  }

  async hasAlbum(name: string): Promise<boolean> {
    return (await this.store.albumInfos([name])).length > 0;
  }

  async putAlbum(info: AlbumInfo): Promise<void> {
    await this.store.importAlbum(info);
  }

  async existing(album: string, name: string): Promise<{ sha256: string; size?: number } | undefined> {
    if (this.listed?.album !== album) this.listed = { album, index: this.listAlbum(album) };
    const { metas, sizes } = await this.listed.index;
    if (!metas.has(name)) return undefined;
    const meta = await this.store.storedMeta(album, name);
    return meta ? { sha256: meta.sha256, size: sizes.get(name) } : undefined;
  }

  async put(album: string, meta: StoredImageMeta, file: string): Promise<void> {
    await this.store.importImage(album, meta, file);
  }

  async read(album: string, name: string): Promise<Readable> {
    return this.store.bucket.getStream(this.store.layout.imageKey(album, name));
  }

  private async listAlbum(album: string): Promise<{ metas: Set<string>; sizes: Map<string, number> }> {
    const { bucket, layout } = this.store;
    const [metas, sizes] = [new Set<string>(), new Map<string, number>()];
    for await (const keys of bucket.keys(layout.metaPrefix(album))) for (const key of keys) metas.add(key.slice(layout.metaPrefix(album).length));
    for await (const objects of bucket.objects(layout.imagesPrefix(album))) {
      for (const { key, size } of objects) sizes.set(key.slice(layout.imagesPrefix(album).length), size);
    }
    return { metas, sizes };
  }

  async close(): Promise<void> {
    await this.store.close();
    await fs.rm(this.tmpDir, { recursive: true, force: true });
  }
}

import { randomUUID } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { fsyncDir, fsyncFile, writeFileAtomic } from '../lib/durable.js';
import { fsck } from '../albums/fs/fsck.js';
import { readImageMeta, type StoredImageMeta } from '../albums/image-meta.js';
import { Layout } from '../albums/layout.js';
import { lockDataDir, type DataDirLock } from '../albums/owner.js';
import type { AlbumInfo } from '../albums/types.js';
import type { MigrationSource, MigrationTarget } from './migrate.js';

/** Albums (and images) handed out per batch. */
const BATCH = 500;

/**
 * A data dir read as a migration source, without changing it (the service may
 * keep running; a last run after stopping it picks up what changed). Images are
 * those fsck finds with their metadata; `problems` counts what it could not use.
 */
export class FsSource implements MigrationSource {
  private constructor(
    private readonly layout: Layout,
    private readonly index: Map<string, StoredImageMeta[]>,
    readonly problems: number,
  ) {}

  get description(): string {
    return `fs:${this.layout.root}`;
  }

  /** @throws {Error} when `root` is not a data dir */
  static async open(root: string): Promise<FsSource> {
    const report = await fsck(path.resolve(root), { repair: false, verifyContent: false });
    return new FsSource(new Layout(path.resolve(root)), report.index, report.problems.length);
  }

  async *albums(): AsyncIterable<AlbumInfo[]> {
    const names = [...this.index.keys()].sort();
    for (let i = 0; i < names.length; i += BATCH) {
      yield await Promise.all(names.slice(i, i + BATCH).map((name) => this.albumInfo(name)));
    }
  }

  async *images(album: string): AsyncIterable<StoredImageMeta[]> {
    const metas = [...(this.index.get(album) ?? [])].sort((a, b) => (a.name < b.name ? -1 : 1));
    for (let i = 0; i < metas.length; i += BATCH) yield metas.slice(i, i + BATCH);
  }

  async fetch(album: string, meta: StoredImageMeta): Promise<{ file: string; release(): Promise<void> }> {
    return { file: this.layout.imageFile(album, meta.name), release: async () => undefined };
  }

  async close(): Promise<void> {}

  private async albumInfo(name: string): Promise<AlbumInfo> {
    try {
      const { createdAt } = JSON.parse(await fs.readFile(this.layout.albumInfoFile(name), 'utf8'));
      if (typeof createdAt === 'string') return { name, createdAt };
    } catch {
      // no album metadata: use the directory's time
    }
    return { name, createdAt: (await fs.stat(this.layout.albumDir(name))).mtime.toISOString() };
  }
}

/**
 * A data dir written as a migration target, in the filesystem store's layout
 * (layout.ts), durably: bytes to a temporary file and fsynced, metadata written
 * atomically, then the file renamed into place. The data dir is claimed, so
 * the service cannot run on it meanwhile; its next start indexes what was written.
 */
export class FsTarget implements MigrationTarget {
  private constructor(
    private readonly layout: Layout,
    private readonly owner: DataDirLock,
  ) {}

  get description(): string {
    return `fs:${this.layout.root}`;
  }

  /** Creates the data dir if needed and claims it. @throws {Error} when the service runs on it */
  static async open(root: string): Promise<FsTarget> {
    const layout = new Layout(path.resolve(root));
    await fs.mkdir(layout.tmpDir, { recursive: true });
    await fs.mkdir(layout.albumsDir, { recursive: true });
    return new FsTarget(layout, await lockDataDir(layout.ownerFile));
  }

  async hasAlbum(name: string): Promise<boolean> {
    return fs.stat(this.layout.albumInfoFile(name)).then(() => true, () => false);
  }

  async putAlbum(info: AlbumInfo): Promise<void> {
    await fs.mkdir(this.layout.imageMetaDir(info.name), { recursive: true });
    await writeFileAtomic(this.layout.albumInfoFile(info.name), JSON.stringify({ createdAt: info.createdAt }), this.layout.tmpDir);
    await fsyncDir(this.layout.albumMetaDir(info.name));
    await fsyncDir(this.layout.albumsDir);
  }

  async existing(album: string, name: string): Promise<{ sha256: string; size?: number } | undefined> {
    const meta = await readImageMeta(this.layout.imageMetaFile(album, name));
    if (!meta) return undefined;
    const stat = await fs.stat(this.layout.imageFile(album, name)).catch(() => undefined);
    return { sha256: meta.sha256, size: stat?.size };
  }

  async put(album: string, meta: StoredImageMeta, file: string): Promise<void> {
    const tmp = path.join(this.layout.tmpDir, `migrate-${randomUUID()}`);
    try {
      await fs.copyFile(file, tmp);
      await fsyncFile(tmp);
      // Metadata first, as the store does: a crash before the rename leaves metadata without a file, which the next run re-copies.
      await writeFileAtomic(this.layout.imageMetaFile(album, meta.name), JSON.stringify(meta), this.layout.tmpDir);
      await fs.rename(tmp, this.layout.imageFile(album, meta.name));
    } finally {
      await fs.rm(tmp, { force: true });
    }
    await Promise.all([fsyncDir(this.layout.imageMetaDir(album)), fsyncDir(this.layout.albumDir(album))]);
  }

  async read(album: string, name: string): Promise<Readable> {
    return createReadStream(this.layout.imageFile(album, name));
  }

  async close(): Promise<void> {
    await this.owner.release();
  }
}

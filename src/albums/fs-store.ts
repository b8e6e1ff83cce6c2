import { randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ConflictError, NotFoundError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, StagedFile } from './types.js';
import { Layout } from './layout.js';
import { KeyedLock } from './keyed-lock.js';
import { SortedNames } from './sorted-names.js';
import { fsck, type FsckReport } from './fsck.js';
import { fsyncDir, isErrno, writeFileAtomic } from './durable.js';
import { newImageId, readImageMeta, type StoredImageMeta } from './image-meta.js';
import { lockDataDir, type DataDirLock } from './owner.js';
import { ImageIndex, type AlbumRef } from './image-index.js';
import { readRange } from './read-range.js';
import { mapLimit } from './map-limit.js';

/** On Linux, an open file can be read again by path through /proc, whatever renames happen meanwhile. */
const PROC_FD = existsSync('/proc/self/fd');

/**
 * Metadata files a listing with details reads at once. Reading all of a 10,000-name page
 * together ran the process out of file descriptors; libuv's 4 pool threads are busy with far fewer.
 */
const METADATA_READS = 16;

/**
 * The filesystem store: albums are directories, images plain files (see layout.ts).
 *
 * Durability: every change is written to a temporary file, fsynced, renamed or
 * linked into place, and the directory fsynced before the call returns.
 * Concurrency: changes to one album are serialised by a lock on its name;
 * reads take no lock. The process must be the data dir's only writer (owner.ts).
 */
export class FsAlbumStore implements AlbumStore {
  readonly stagingDir: string;
  private readonly lock = new KeyedLock();

  private readonly ids = new ImageIndex();
  /** Per album: its image names (sorted) and its entry in the id index. */
  private readonly images = new Map<string, { names: SortedNames; ref: AlbumRef }>();
  private readonly albums: SortedNames;

  private constructor(
    private readonly layout: Layout,
    index: Map<string, StoredImageMeta[]>,
    private readonly owner: DataDirLock,
  ) {
    this.stagingDir = layout.tmpDir;
    for (const [album, metas] of index) {
      const ref: AlbumRef = { name: album, ids: new Set() };
      this.images.set(album, { names: new SortedNames(metas.map((m) => m.name)), ref });
      for (const meta of metas) this.ids.add(ref, meta);
    }
    this.albums = new SortedNames(this.images.keys());
  }

  /**
   * Opens a data dir, creating it if needed, and recovers it after a crash
   * (fsck with repair: temp files removed, files and metadata reconciled).
   */
  static async open(root: string, log: Logger): Promise<{ store: FsAlbumStore; recovery: FsckReport }> {
    const layout = new Layout(path.resolve(root));
    await fs.mkdir(layout.internalDir, { recursive: true });
    const owner = await lockDataDir(layout.ownerFile);
    try {
      const recovery = await fsck(layout.root, { repair: true, verifyContent: false });
      for (const problem of recovery.problems) log.warn({ problem }, 'data dir recovery');
      return { store: new FsAlbumStore(layout, recovery.index, owner), recovery };
    } catch (err) {
      await owner.release();
      throw err;
    }
  }

  async listAlbums(page?: PageRequest): Promise<Page<string>> {
    return this.albums.page(page);
  }

  async albumInfos(names: string[]): Promise<AlbumInfo[]> {
    const infos = await mapLimit(names, METADATA_READS, (name) => this.readAlbumInfo(name));
    return infos.filter((info): info is AlbumInfo => info !== undefined);
  }

  async createAlbum(name: string): Promise<AlbumInfo> {
    return this.lock.with([name], async () => {
      if (this.albums.has(name)) throw new ConflictError(`${name} album already present`);
      // Build the album with its metadata in the staging dir, then rename it into place in one step.
      const staged = path.join(this.layout.tmpDir, `album-${randomUUID()}`);
      const info: AlbumInfo = { name, createdAt: new Date().toISOString() };
      try {
        // One level at a time: a recursive mkdir reports a read-only file system as ENOENT.
        for (const dir of [staged, path.join(staged, '.imagestore'), path.join(staged, '.imagestore', 'meta')]) await fs.mkdir(dir);
        await writeFileAtomic(path.join(staged, '.imagestore', 'album.json'), JSON.stringify({ createdAt: info.createdAt }), this.layout.tmpDir);
        await fsyncDir(path.join(staged, '.imagestore'));
        await fs.rename(staged, this.layout.albumDir(name));
      } catch (err) {
        await fs.rm(staged, { recursive: true, force: true }); // a full disk must not keep the half-built album
        throw err;
      }
      await fsyncDir(this.layout.albumsDir);
      this.albums.add(name);
      this.images.set(name, { names: new SortedNames(), ref: { name, ids: new Set() } });
      return info;
    });
  }

  async renameAlbum(from: string, to: string): Promise<AlbumInfo> {
    return this.lock.with([from, to], async () => {
      const album = this.requireAlbumState(from);
      if (from === to) return (await this.readAlbumInfo(to))!;
      if (this.albums.has(to)) throw new ConflictError(`${to} album already present`);
      await fs.rename(this.layout.albumDir(from), this.layout.albumDir(to));
      await fsyncDir(this.layout.albumsDir);
      this.albums.delete(from);
      this.albums.add(to);
      this.images.delete(from);
      this.images.set(to, album);
      album.ref.name = to;
      return (await this.readAlbumInfo(to))!;
    });
  }

  async deleteAlbum(name: string): Promise<{ unusedContent: string[] }> {
    return this.lock.with([name], async () => {
      const album = this.requireAlbumState(name);
      // One rename makes the deletion atomic; the trash is emptied afterwards (and on start).
      const trashed = path.join(this.layout.trashDir, randomUUID());
      await fs.rename(this.layout.albumDir(name), trashed);
      await fsyncDir(this.layout.albumsDir);
      this.albums.delete(name);
      this.images.delete(name);
      const unusedContent = [...album.ref.ids].map((id) => this.ids.remove(id)).filter((sha): sha is string => sha !== undefined);
      void fs.rm(trashed, { recursive: true, force: true }).catch(() => undefined);
      return { unusedContent };
    });
  }

  async listImages(album: string, page?: PageRequest): Promise<Page<string>> {
    return this.requireAlbum(album).page(page);
  }

  async imageInfos(album: string, names: string[]): Promise<ImageInfo[]> {
    // Undefined: deleted since the page was taken, so left out; any other failure fails the listing.
    const metas = await mapLimit(names, METADATA_READS, (name) => readImageMeta(this.layout.imageMetaFile(album, name)));
    return metas.filter((m): m is StoredImageMeta => m !== undefined).map((m) => ({ ...m, album }));
  }

  async commitImage(album: string, name: string, staged: StagedFile): Promise<ImageInfo> {
    return this.lock.with([album], async () => {
      const names = this.requireAlbum(album);
      if (names.has(name)) throw new ConflictError(`${name} image already present`);
      const now = new Date().toISOString();
      const meta: StoredImageMeta = {
        id: newImageId(), name, size: staged.size, type: staged.type, sha256: staged.sha256, ...staged.facts, createdAt: now, modifiedAt: now,
      };
      // Metadata first: a crash before the link leaves metadata without a file, which recovery drops.
      await writeFileAtomic(this.layout.imageMetaFile(album, name), JSON.stringify(meta), this.layout.tmpDir);
      try {
        await fs.link(staged.path, this.layout.imageFile(album, name)); // link never replaces an existing file
      } catch (err) {
        await fs.rm(this.layout.imageMetaFile(album, name), { force: true });
        if (isErrno(err, 'EEXIST')) throw new ConflictError(`${name} image already present`);
        throw err;
      }
      await Promise.all([fsyncDir(this.layout.imageMetaDir(album)), fsyncDir(this.layout.albumDir(album))]);
      await fs.rm(staged.path, { force: true });
      names.add(name);
      this.ids.add(this.requireAlbumState(album).ref, meta);
      return { ...meta, album };
    });
  }

  async openImage(album: string, name: string): Promise<ImageHandle> {
    if (!this.requireAlbum(album).has(name)) throw new NotFoundError(`${name} image is not present`);
    // Open first: a rename or delete racing the download then cannot cut the stream.
    let file: FileHandle;
    try {
      file = await fs.open(this.layout.imageFile(album, name), 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw new NotFoundError(`${name} image is not present`);
      throw err;
    }
    try {
      const info = await this.readImage(album, name);
      const localPath = PROC_FD ? `/proc/self/fd/${file.fd}` : this.layout.imageFile(album, name);
      return {
        info, localPath: async () => localPath, stream: (range) => file.createReadStream(range ?? {}), close: () => file.close(),
        read: (range) => readRange(file, range?.start ?? 0, range ? range.end - range.start + 1 : info.size).finally(() => file.close()),
      };
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  async renameImage(album: string, from: string, to: string): Promise<ImageInfo> {
    return this.lock.with([album], async () => {
      const names = this.requireAlbum(album);
      const old = await this.readImageLocked(names, album, from);
      if (from === to) return old;
      if (names.has(to)) throw new ConflictError(`${to} image already present`);
      const meta: StoredImageMeta = { ...stripAlbum(old), name: to, modifiedAt: new Date().toISOString() };
      // New metadata, then the file, then the old metadata: at every crash point recovery finds one consistent image.
      await writeFileAtomic(this.layout.imageMetaFile(album, to), JSON.stringify(meta), this.layout.tmpDir);
      await fs.rename(this.layout.imageFile(album, from), this.layout.imageFile(album, to));
      await fs.rm(this.layout.imageMetaFile(album, from), { force: true });
      await Promise.all([fsyncDir(this.layout.imageMetaDir(album)), fsyncDir(this.layout.albumDir(album))]);
      names.delete(from);
      names.add(to);
      this.ids.rename(meta.id, to);
      return { ...meta, album };
    });
  }

  async deleteImage(album: string, name: string): Promise<ImageInfo> {
    return this.lock.with([album], async () => {
      const names = this.requireAlbum(album);
      const info = await this.readImageLocked(names, album, name);
      await fs.rm(this.layout.imageFile(album, name), { force: true });
      await fs.rm(this.layout.imageMetaFile(album, name), { force: true });
      await Promise.all([fsyncDir(this.layout.imageMetaDir(album)), fsyncDir(this.layout.albumDir(album))]);
      names.delete(name);
      this.ids.remove(info.id);
      return info;
    });
  }

  async counts(): Promise<{ albums: number; images: number }> {
    return { albums: this.albums.size, images: this.ids.size };
  }

  async findImage(id: string): Promise<{ album: string; name: string } | undefined> {
    return this.ids.find(id);
  }

  async isContentUsed(sha256: string): Promise<boolean> {
    return this.ids.hasContent(sha256);
  }

  /** Gives up ownership of the data dir. */
  async close(): Promise<void> {
    await this.owner.release();
  }

  async checkWritable(): Promise<void> {
    const probe = path.join(this.layout.tmpDir, `probe-${randomUUID()}`);
    await fs.writeFile(probe, 'ok');
    await fs.rm(probe, { force: true });
  }

  private requireAlbum(album: string): SortedNames {
    return this.requireAlbumState(album).names;
  }

  private requireAlbumState(album: string): { names: SortedNames; ref: AlbumRef } {
    const state = this.images.get(album);
    if (!state) throw new NotFoundError(`${album} album is not present`);
    return state;
  }

  private async readImageLocked(names: SortedNames, album: string, name: string): Promise<ImageInfo> {
    if (!names.has(name)) throw new NotFoundError(`${name} image is not present`);
    return this.readImage(album, name);
  }

  private async readImage(album: string, name: string): Promise<ImageInfo> {
    const meta = await readImageMeta(this.layout.imageMetaFile(album, name));
    if (!meta) throw new NotFoundError(`${name} image is not present`);
    return { ...meta, album };
  }

  private async readAlbumInfo(name: string): Promise<AlbumInfo | undefined> {
    try {
      const { createdAt } = JSON.parse(await fs.readFile(this.layout.albumInfoFile(name), 'utf8'));
      return { name, createdAt };
    } catch (err) {
      // Out of file descriptors is a passing overload, not a missing album: the error handler answers 503.
      if (!isErrno(err, 'ENOENT') && !(err instanceof SyntaxError)) throw err;
      return this.albums.has(name) ? { name, createdAt: new Date(0).toISOString() } : undefined;
    }
  }
}

function stripAlbum(info: ImageInfo): StoredImageMeta {
  const { album: _album, ...meta } = info;
  return meta;
}

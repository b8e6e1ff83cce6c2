import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
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
import { FsImageHandle } from './fs-image-handle.js';
import { mapLimit } from './map-limit.js';

/** album.json files read at once when the store opens. */
const METADATA_READS = 16;

/**
 * An album in memory: what every read needs, so that no read touches the disk
 * (the file of a download excepted). Kept by the write methods, after the disk.
 */
interface AlbumState {
  /** Image names, sorted. */
  names: SortedNames;
  /** Its entry in the id index. */
  ref: AlbumRef;
  /**
   * Metadata of every image, frozen. An entry's `album` is the album's name when it was
   * made; after an album rename it is remade on its next read (see imageOf).
   */
  metas: Map<string, ImageInfo>;
  /** From album.json, read at start (it never changes: a rename keeps it). */
  createdAt: string;
  /** Listing cache key: see version(). */
  version: number;
}

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
  private readonly images = new Map<string, AlbumState>();
  private readonly albums: SortedNames;
  /** Store-wide change counter: every album state and the album list take a new value on each change (see version()). */
  private changes = 0;
  private albumsVersion = 0;

  private constructor(
    private readonly layout: Layout,
    index: Map<string, StoredImageMeta[]>,
    private readonly owner: DataDirLock,
  ) {
    this.stagingDir = layout.tmpDir;
    for (const [album, metas] of index) {
      const state = this.newAlbumState(album);
      state.names = new SortedNames(metas.map((m) => m.name));
      this.images.set(album, state);
      for (const meta of metas) {
        this.ids.add(state.ref, meta);
        state.metas.set(meta.name, Object.freeze({ ...meta, album }));
      }
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
      const store = new FsAlbumStore(layout, recovery.index, owner);
      await store.loadAlbumTimes();
      return { store, recovery };
    } catch (err) {
      await owner.release();
      throw err;
    }
  }

  async listAlbums(page?: PageRequest): Promise<Page<string>> {
    return this.albums.page(page);
  }

  /** From memory. */
  async albumInfos(names: string[]): Promise<AlbumInfo[]> {
    const infos: AlbumInfo[] = [];
    for (const name of names) {
      const state = this.images.get(name);
      if (state) infos.push({ name, createdAt: state.createdAt });
    }
    return infos;
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
      this.images.set(name, { ...this.newAlbumState(name), createdAt: info.createdAt });
      this.albumsVersion = ++this.changes; // read model
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
      this.albumsVersion = album.version = ++this.changes; // read model: its images' `album` changes
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
      this.albumsVersion = ++this.changes; // read model
      const unusedContent = [...album.ref.ids].map((id) => this.ids.remove(id)).filter((sha): sha is string => sha !== undefined);
      void fs.rm(trashed, { recursive: true, force: true }).catch(() => undefined);
      return { unusedContent };
    });
  }

  async listImages(album: string, page?: PageRequest): Promise<Page<string>> {
    return this.requireAlbum(album).page(page);
  }

  /** From memory (frozen objects: callers must not change them). */
  async imageInfos(album: string, names: string[]): Promise<ImageInfo[]> {
    const state = this.images.get(album);
    if (!state) return [];
    const infos: ImageInfo[] = [];
    for (const name of names) {
      const info = this.imageOf(state, name);
      if (info) infos.push(info);
    }
    return infos;
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
      this.imageStored(album, meta); // read model
      return { ...meta, album };
    });
  }

  /** Metadata from memory; the file is opened only when its bytes are wanted (FsImageHandle). */
  async openImage(album: string, name: string): Promise<ImageHandle> {
    const state = this.requireAlbumState(album);
    const info = this.imageOf(state, name);
    if (!info) throw new NotFoundError(`${name} image is not present`);
    return new FsImageHandle(info, this.layout.imageFile(album, name), () => (this.images.get(album) === state ? state.metas.get(name) : undefined));
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
      this.imageRemoved(album, from); // read model
      this.imageStored(album, meta); // read model
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
      this.imageRemoved(album, name); // read model
      return info;
    });
  }

  async counts(): Promise<{ albums: number; images: number }> {
    return { albums: this.albums.size, images: this.ids.size };
  }

  async findImage(id: string): Promise<{ album: string; name: string } | undefined> {
    return this.ids.find(id);
  }

  /**
   * A value of the store-wide change counter, taken by the album (or the album list)
   * at its last change: a (name, version) pair never stands for two different states,
   * even across renames and deletes, so listings cached under it are never stale.
   */
  version(album?: string): number | undefined {
    return album === undefined ? this.albumsVersion : this.images.get(album)?.version;
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

  private requireAlbumState(album: string): AlbumState {
    const state = this.images.get(album);
    if (!state) throw new NotFoundError(`${album} album is not present`);
    return state;
  }

  private newAlbumState(name: string): AlbumState {
    return { names: new SortedNames(), ref: { name, ids: new Set() }, metas: new Map(), createdAt: new Date(0).toISOString(), version: ++this.changes };
  }

  /** Reads every album's creation time (album.json), before the store is used. */
  private async loadAlbumTimes(): Promise<void> {
    await mapLimit([...this.images], METADATA_READS, async ([name, state]) => {
      state.createdAt = (await this.readAlbumInfo(name))!.createdAt;
    });
  }

  /** An image's metadata from memory, with the album's current name. */
  private imageOf(state: AlbumState, name: string): ImageInfo | undefined {
    const info = state.metas.get(name);
    if (info === undefined || info.album === state.ref.name) return info;
    // The album was renamed since this entry was made: remade once, here, so a rename costs O(1).
    const renamed = Object.freeze({ ...info, album: state.ref.name });
    state.metas.set(name, renamed);
    return renamed;
  }

  /** Read model: an image written (new, or renamed to this name). Called after the disk change, under the album's lock. */
  private imageStored(album: string, meta: StoredImageMeta): void {
    const state = this.requireAlbumState(album);
    state.metas.set(meta.name, Object.freeze({ ...meta, album }));
    state.version = ++this.changes;
  }

  /** Read model: an image gone from this name. */
  private imageRemoved(album: string, name: string): void {
    const state = this.requireAlbumState(album);
    state.metas.delete(name);
    state.version = ++this.changes;
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

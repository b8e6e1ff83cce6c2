import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, SimilarImage, StagedFile, StoreCheck, StoreCheckOptions } from '../types.js';
import { NO_CRASH, type ChangeJournal, type CrashPoint, type RecoveryJournal } from '../changes.js';
import { Layout } from '../layout.js';
import { SharedKeyedLock } from '../../lib/shared-keyed-lock.js';
import { SortedNames } from '../sorted-names.js';
import { fsck, type FsckReport } from './fsck.js';
import type { FsckProblem } from '../../contract/types.js';
import { isErrno } from '../../lib/durable.js';
import { newImageId, readImageMeta, type StoredImageMeta } from '../image-meta.js';
import { lockDataDir, type DataDirLock } from '../owner.js';
import { ImageIndex, type AlbumRef } from './image-index.js';
import { FsImageHandle } from './fs-image-handle.js';
import { mapLimit } from '../../lib/map-limit.js';
import { FsChanges } from './fs-changes.js';
import { makeChange } from '../make-change.js';
import { PendingSync } from './pending-sync.js';
import { StagedUploads } from '../staged-uploads.js';
import { redoJournal } from '../redo.js';

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

/** Options of `FsAlbumStore.open`. */
export interface FsStoreOptions {
  /** The data dir's lock, when the caller took it (to open the journal first); else `open` takes it. */
  owner?: DataDirLock;
  /** The event journal: its commit records after the checkpoint are redone before the store is indexed. */
  journal?: RecoveryJournal;
  /** Test-only crash points (CRASH_POINT). */
  crash?: CrashPoint;
  /** fsyncs at once when a checkpoint flushes what applies wrote (default 2; see PendingSync). */
  flushConcurrency?: number;
}

/**
 * The filesystem store: albums are directories, images plain files (see layout.ts).
 *
 * Durability: a change is made durable by its commit record in the event journal,
 * passed in as `journal` (make-change.ts tells the order and why it is crash-safe);
 * applying it afterwards needs no fsync, and the checkpointer (notifier/checkpointer.ts)
 * fsyncs what it wrote later, for many changes at once (`flush`). Called without a
 * journal (tests, tools), a change is flushed before the call returns.
 * Concurrency: a change holds the keys of the image names it touches alone and its
 * album's key shared, so changes to different images of one album run side by side; an
 * album change holds the album's key alone. Reads take no lock. The process must be
 * the data dir's only writer (owner.ts).
 */
export class FsAlbumStore implements AlbumStore {
  readonly stagingDir: string;
  private readonly lock = new SharedKeyedLock();

  private readonly ids = new ImageIndex();
  private readonly images = new Map<string, AlbumState>();
  private readonly albums: SortedNames;
  /** Store-wide change counter: every album state and the album list take a new value on each change (see version()). */
  private changeCount = 0;
  private albumsVersion = 0;
  /** Without a journal: each change is flushed before it returns. */
  private readonly direct: ChangeJournal = {
    commit: async () => ({ applied: () => this.pending.flush(), aborted: async () => undefined, fatal: () => undefined }),
  };

  private constructor(
    private readonly layout: Layout,
    index: Map<string, StoredImageMeta[]>,
    private readonly owner: DataDirLock,
    private readonly pending: PendingSync,
    private readonly staged: StagedUploads,
    private readonly changes: FsChanges,
    private readonly crash: CrashPoint,
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
   * Opens a data dir, creating it if needed, and recovers it after a crash: the journal's
   * changes after its checkpoint are redone and checkpointed, then fsck repairs the rest
   * (temp files removed, files and metadata reconciled) and builds the index.
   */
  static async open(root: string, log: Logger, options: FsStoreOptions = {}): Promise<{ store: FsAlbumStore; recovery: FsckReport }> {
    const layout = new Layout(path.resolve(root));
    await fs.mkdir(layout.internalDir, { recursive: true });
    const owner = options.owner ?? (await lockDataDir(layout.ownerFile));
    try {
      for (const dir of [layout.tmpDir, layout.stagedDir]) await fs.mkdir(dir, { recursive: true });
      const crash = options.crash ?? NO_CRASH;
      const pending = new PendingSync(options.flushConcurrency);
      const staged = new StagedUploads(layout.root, layout.stagedDir);
      const changes = new FsChanges(layout, pending, staged, crash);
      const redoProblems = options.journal ? await redoChanges(layout, options.journal, log, { pending, staged, changes }) : [];
      const recovery = await fsck(layout.root, { repair: true, verifyContent: false });
      recovery.problems.unshift(...redoProblems);
      for (const problem of recovery.problems) log.warn({ problem }, 'data dir recovery');
      const store = new FsAlbumStore(layout, recovery.index, owner, pending, staged, changes, crash);
      await store.loadAlbumTimes();
      return { store, recovery };
    } catch (err) {
      if (!options.owner) await owner.release();
      throw err;
    }
  }

  async listAlbums(page?: PageRequest): Promise<Page<string>> {
    return this.albums.page(page);
  }

  /** From memory. */
  async hasAlbum(name: string): Promise<boolean> {
    return this.images.has(name);
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

  async createAlbum(name: string, journal = this.direct): Promise<AlbumInfo> {
    return this.lock.with({ exclusive: [name] }, async () => {
      if (this.albums.has(name)) throw new ConflictError(`${name} album already present`);
      const info: AlbumInfo = { name, createdAt: new Date().toISOString() };
      const prepared = await this.changes.prepareAlbum(info.createdAt);
      await makeChange({
        journal, crash: this.crash, change: { op: 'album.create', album: name, createdAt: info.createdAt },
        apply: () => this.changes.createAlbum(name, prepared),
        discard: () => this.changes.discard(prepared),
        flushUndo: () => this.pending.flush(),
        update: () => {
          this.albums.add(name);
          this.images.set(name, { ...this.newAlbumState(name), createdAt: info.createdAt });
          this.albumsVersion = ++this.changeCount; // read model
        },
      });
      return info;
    });
  }

  async renameAlbum(from: string, to: string, journal = this.direct): Promise<AlbumInfo> {
    return this.lock.with({ exclusive: [from, to] }, async () => {
      const album = this.requireAlbumState(from);
      if (from === to) return (await this.readAlbumInfo(to))!;
      if (this.albums.has(to)) throw new ConflictError(`${to} album already present`);
      await makeChange({
        journal, crash: this.crash, change: { op: 'album.rename', album: from, to },
        apply: () => this.changes.renameAlbum(from, to),
        flushUndo: () => this.pending.flush(),
        update: () => {
          this.albums.delete(from);
          this.albums.add(to);
          this.images.delete(from);
          this.images.set(to, album);
          album.ref.name = to;
          this.albumsVersion = album.version = ++this.changeCount; // read model: its images' `album` changes
        },
      });
      return (await this.readAlbumInfo(to))!;
    });
  }

  async deleteAlbum(name: string, journal = this.direct): Promise<{ unusedContent: string[] }> {
    return this.lock.with({ exclusive: [name] }, async () => {
      const album = this.requireAlbumState(name);
      let unusedContent: string[] = [];
      await makeChange({
        journal, crash: this.crash, change: { op: 'album.delete', album: name },
        apply: () => this.changes.deleteAlbum(name),
        flushUndo: () => this.pending.flush(),
        update: () => {
          this.albums.delete(name);
          this.images.delete(name);
          this.albumsVersion = ++this.changeCount; // read model
          unusedContent = [...album.ref.ids].map((id) => this.ids.remove(id)).filter((sha): sha is string => sha !== undefined);
        },
      });
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

  async commitImage(album: string, name: string, staged: StagedFile, journal = this.direct): Promise<ImageInfo> {
    // Bytes already stored are shared (a hard link to a copy): that copy's name is locked too, so it stays what the index says.
    const copy = this.storedCopy(staged.sha256);
    const copyKey = copy && copy.album !== album ? [copy.album] : [];
    const copyName = copy && !(copy.album === album && copy.name === name) ? [`${copy.album}/${copy.name}`] : [];
    return this.lock.with({ shared: [album, ...copyKey], exclusive: [`${album}/${name}`, ...copyName] }, async () => {
      const state = this.requireAlbumState(album);
      if (state.names.has(name)) throw new ConflictError(`${name} image already present`);
      const now = new Date().toISOString();
      const meta: StoredImageMeta = {
        id: newImageId(), name, size: staged.size, type: staged.type, sha256: staged.sha256, ...staged.facts,
        ...(staged.duplicateOf?.length ? { duplicateOf: staged.duplicateOf } : {}), createdAt: now, modifiedAt: now,
      };
      const linkFrom = copy && this.isStoredCopy(copy, staged.sha256) ? this.layout.imageFile(copy.album, copy.name) : undefined;
      const [kept, prepared] = await Promise.allSettled([this.staged.keep(staged.path, meta.id, staged.synced), this.changes.prepareMeta(meta)]);
      if (kept.status === 'rejected' || prepared.status === 'rejected') {
        if (kept.status === 'fulfilled') await this.staged.drop(kept.value);
        if (prepared.status === 'fulfilled') await this.changes.discard(prepared.value);
        throw kept.status === 'rejected' ? kept.reason : (prepared as PromiseRejectedResult).reason;
      }
      await makeChange({
        journal, crash: this.crash, change: { op: 'image.add', album, meta, staged: kept.value },
        staged: { uploads: this.staged, file: kept.value },
        apply: () => this.changes.addImage(album, name, this.staged.resolve(kept.value), prepared.value, linkFrom),
        discard: () => this.changes.discard(prepared.value),
        flushUndo: () => this.pending.flush(),
        update: () => {
          state.names.add(name);
          this.ids.add(state.ref, meta);
          this.imageStored(album, meta); // read model
        },
      });
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

  async renameImage(album: string, from: string, to: string, journal = this.direct): Promise<ImageInfo> {
    return this.lockImages(album, [from, to], async () => {
      const { names } = this.requireAlbumState(album);
      const old = await this.readImageLocked(names, album, from);
      if (from === to) return old;
      if (names.has(to)) throw new ConflictError(`${to} image already present`);
      const meta: StoredImageMeta = { ...stripAlbum(old), name: to, modifiedAt: new Date().toISOString() };
      const prepared = await this.changes.prepareMeta(meta);
      await makeChange({
        journal, crash: this.crash, change: { op: 'image.rename', album, from, meta },
        apply: () => this.changes.renameImage(album, from, to, prepared),
        discard: () => this.changes.discard(prepared),
        flushUndo: () => this.pending.flush(),
        update: () => {
          names.delete(from);
          names.add(to);
          this.ids.rename(meta.id, to);
          this.imageRemoved(album, from); // read model
          this.imageStored(album, meta); // read model
        },
      });
      return { ...meta, album };
    });
  }

  async deleteImage(album: string, name: string, journal = this.direct): Promise<ImageInfo> {
    return this.lockImages(album, [name], async () => {
      const { names } = this.requireAlbumState(album);
      const info = await this.readImageLocked(names, album, name);
      await makeChange({
        journal, crash: this.crash, change: { op: 'image.delete', album, meta: stripAlbum(info) },
        apply: () => this.changes.deleteImage(album, name, info.id),
        flushUndo: () => this.pending.flush(),
        update: () => {
          names.delete(name);
          this.ids.remove(info.id);
          this.imageRemoved(album, name); // read model
        },
      });
      return info;
    });
  }

  /** fsyncs what changes applied since the last flush wrote (for the checkpointer). */
  async flush(): Promise<void> {
    await this.pending.flush();
  }

  /** Deletes the staged files of the changes up to `seq`, now checkpointed. */
  async checkpointed(seq: number): Promise<void> {
    await this.staged.release(seq);
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

  async contentIds(sha256: string): Promise<string[]> {
    return this.ids.withContent(sha256);
  }

  async similarImages(id: string, maxDistance: number, limit: number): Promise<SimilarImage[] | undefined> {
    if (!this.ids.find(id)) return undefined;
    const phash = this.ids.similar.hashOf(id);
    if (phash === undefined) return [];
    return this.ids.similar.near(phash, maxDistance, limit, id).flatMap(({ id: other, distance }) => {
      const where = this.ids.find(other);
      return where ? [{ id: other, ...where, distance }] : [];
    });
  }

  /**
   * fsck of the data dir (fsck.ts), read-only: repairs change files under the running store
   * (temporary files of uploads in flight among them), so they are made at every open and by
   * `npm run fsck -- --repair` with the service stopped.
   * @throws {ConflictError} asked to repair
   */
  async check(options: StoreCheckOptions): Promise<StoreCheck> {
    if (options.repair) throw new ConflictError('a data dir is repaired with the service stopped (npm run fsck -- --repair) or by its next start');
    const { albums, images, problems } = await fsck(this.layout.root, { repair: false, verifyContent: options.verify });
    return { albums, images, problems };
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

  /** Where a stored image with this content is (the first one indexed), if any. */
  private storedCopy(sha256: string): { id: string; album: string; name: string } | undefined {
    const [id] = this.ids.withContent(sha256);
    const where = id === undefined ? undefined : this.ids.find(id);
    return where && { id, ...where };
  }

  /** Under the copy's lock: it is still the image with this content at that name (not renamed, deleted or replaced meanwhile). */
  private isStoredCopy(copy: { id: string; album: string; name: string }, sha256: string): boolean {
    const now = this.ids.find(copy.id);
    return now?.album === copy.album && now.name === copy.name && this.images.get(copy.album)?.metas.get(copy.name)?.sha256 === sha256;
  }

  /** Image changes: the album's key shared (no album change meanwhile), the names' keys alone. */
  private lockImages<T>(album: string, names: string[], fn: () => Promise<T>): Promise<T> {
    return this.lock.with({ shared: [album], exclusive: names.map((name) => `${album}/${name}`) }, fn);
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
    return { names: new SortedNames(), ref: { name, ids: new Set() }, metas: new Map(), createdAt: new Date(0).toISOString(), version: ++this.changeCount };
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
    state.version = ++this.changeCount;
  }

  /** Read model: an image gone from this name. */
  private imageRemoved(album: string, name: string): void {
    const state = this.requireAlbumState(album);
    state.metas.delete(name);
    state.version = ++this.changeCount;
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

/**
 * Recovery's first step (FsAlbumStore.open, and `npm run fsck -- --repair`): redoes the
 * journal's changes committed after its checkpoint and checkpoints them, then deletes the
 * staged uploads, none of which is needed any more.
 * @returns the changes that could not be redone (aborted)
 */
export async function redoChanges(
  layout: Layout,
  journal: RecoveryJournal,
  log: Logger,
  parts?: { pending: PendingSync; staged: StagedUploads; changes: FsChanges },
): Promise<FsckProblem[]> {
  for (const dir of [layout.tmpDir, layout.stagedDir, layout.trashDir]) await fs.mkdir(dir, { recursive: true });
  const pending = parts?.pending ?? new PendingSync();
  const staged = parts?.staged ?? new StagedUploads(layout.root, layout.stagedDir);
  const changes = parts?.changes ?? new FsChanges(layout, pending, staged);
  const { problems, checkpointed } = await redoJournal(journal, (change) => changes.redo(change), () => pending.flush(), log);
  if (checkpointed) await staged.clear(); // else the next start redoes them, from their staged files
  return problems;
}

function stripAlbum(info: ImageInfo): StoredImageMeta {
  const { album: _album, ...meta } = info;
  return meta;
}

import { createHash, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { ConflictError, NotFoundError } from '../errors.js';
import type { ChangeJournal, StoreChange } from './changes.js';
import { newImageId, type StoredImageMeta } from './image-meta.js';
import { SortedNames } from './sorted-names.js';
import type { FsckProblem } from '../contract/types.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, StagedFile, StoreCheck, StoreCheckOptions } from './types.js';

interface MemoryAlbum {
  createdAt: string;
  names: SortedNames;
  images: Map<string, { meta: StoredImageMeta; bytes: Buffer }>;
}

/**
 * An AlbumStore kept in memory, for tests of the rules above the store (the album and import
 * services) that run in milliseconds. It passes the same contract suite as the filesystem and
 * S3 stores (test/contract/album-store.contract.ts) and commits each change through the journal
 * it is given, as they do: decided, committed, applied, then `applied()`. Only uploads touch the
 * disk: a staged file is read, then removed, from `stagingDir`.
 */
export class MemoryAlbumStore implements AlbumStore {
  private readonly albums = new Map<string, MemoryAlbum>();
  private readonly albumNames = new SortedNames();
  private readonly ids = new Map<string, { album: MemoryAlbum; name: string }>();
  private changeCount = 0;
  private readonly versions = new Map<string, number>();
  private listVersion = 0;

  /** @param stagingDir where uploads are received (an existing directory; temporary copies for localPath go there too) */
  constructor(readonly stagingDir: string) {}

  async listAlbums(page?: PageRequest): Promise<Page<string>> {
    return this.albumNames.page(page);
  }

  async albumInfos(names: string[]): Promise<AlbumInfo[]> {
    return names.flatMap((name) => {
      const album = this.albums.get(name);
      return album ? [{ name, createdAt: album.createdAt }] : [];
    });
  }

  async hasAlbum(name: string): Promise<boolean> {
    return this.albums.has(name);
  }

  async createAlbum(name: string, journal?: ChangeJournal): Promise<AlbumInfo> {
    if (this.albums.has(name)) throw new ConflictError(`${name} album already present`);
    const createdAt = new Date().toISOString();
    await this.make(journal, { op: 'album.create', album: name, createdAt }, () => {
      this.albums.set(name, { createdAt, names: new SortedNames(), images: new Map() });
      this.albumNames.add(name);
      this.touch(name);
    });
    return { name, createdAt };
  }

  async renameAlbum(from: string, to: string, journal?: ChangeJournal): Promise<AlbumInfo> {
    const album = this.requireAlbum(from);
    if (from === to) return { name: to, createdAt: album.createdAt };
    if (this.albums.has(to)) throw new ConflictError(`${to} album already present`);
    await this.make(journal, { op: 'album.rename', album: from, to }, () => {
      this.albums.delete(from);
      this.albumNames.delete(from);
      this.albums.set(to, album);
      this.albumNames.add(to);
      for (const image of album.images.values()) this.ids.set(image.meta.id, { album, name: image.meta.name });
      this.touch(from);
      this.touch(to);
    });
    return { name: to, createdAt: album.createdAt };
  }

  async deleteAlbum(name: string, journal?: ChangeJournal): Promise<{ unusedContent: string[] }> {
    const album = this.requireAlbum(name);
    await this.make(journal, { op: 'album.delete', album: name }, () => {
      this.albums.delete(name);
      this.albumNames.delete(name);
      for (const image of album.images.values()) this.ids.delete(image.meta.id);
      this.touch(name);
    });
    const contents = new Set([...album.images.values()].map((image) => image.meta.sha256));
    return { unusedContent: [...contents].filter((sha) => !this.contentUsed(sha)) };
  }

  async listImages(album: string, page?: PageRequest): Promise<Page<string>> {
    return this.requireAlbum(album).names.page(page);
  }

  async imageInfos(album: string, names: string[]): Promise<ImageInfo[]> {
    const found = this.albums.get(album);
    if (!found) return [];
    return names.flatMap((name) => {
      const image = found.images.get(name);
      return image ? [{ ...image.meta, album }] : [];
    });
  }

  async commitImage(album: string, name: string, staged: StagedFile, journal?: ChangeJournal): Promise<ImageInfo> {
    const state = this.requireAlbum(album);
    if (state.images.has(name)) throw new ConflictError(`${name} image already present`);
    const bytes = staged.bytes ?? (await fs.readFile(staged.path));
    if (state.images.has(name)) throw new ConflictError(`${name} image already present`); // taken while the file was read
    const now = new Date().toISOString();
    const meta: StoredImageMeta = {
      id: newImageId(), name, size: staged.size, type: staged.type, sha256: staged.sha256, ...staged.facts,
      ...(staged.duplicateOf?.length ? { duplicateOf: staged.duplicateOf } : {}), createdAt: now, modifiedAt: now,
    };
    await this.make(journal, { op: 'image.add', album, meta, staged: path.basename(staged.path) }, () => {
      state.images.set(name, { meta, bytes });
      state.names.add(name);
      this.ids.set(meta.id, { album: state, name });
      this.touch(album);
    });
    await fs.rm(staged.path, { force: true });
    return { ...meta, album };
  }

  async openImage(album: string, name: string): Promise<ImageHandle> {
    const { meta, bytes } = this.requireImage(album, name);
    const info = { ...meta, album };
    let copy: string | undefined;
    return {
      info,
      localPath: async () => {
        if (copy === undefined) {
          copy = path.join(this.stagingDir, `open-${randomUUID()}`);
          await fs.writeFile(copy, bytes);
        }
        return copy;
      },
      stream: (range) => Readable.from([range ? bytes.subarray(range.start, range.end + 1) : bytes]),
      read: async (range) => (range ? bytes.subarray(range.start, range.end + 1) : bytes),
      close: async () => {
        if (copy !== undefined) await fs.rm(copy, { force: true });
      },
    };
  }

  async renameImage(album: string, from: string, to: string, journal?: ChangeJournal): Promise<ImageInfo> {
    const state = this.requireAlbum(album);
    const image = this.requireImage(album, from);
    if (from === to) return { ...image.meta, album };
    if (state.images.has(to)) throw new ConflictError(`${to} image already present`);
    const meta: StoredImageMeta = { ...image.meta, name: to, modifiedAt: new Date().toISOString() };
    await this.make(journal, { op: 'image.rename', album, from, meta }, () => {
      state.images.delete(from);
      state.names.delete(from);
      state.images.set(to, { meta, bytes: image.bytes });
      state.names.add(to);
      this.ids.set(meta.id, { album: state, name: to });
      this.touch(album);
    });
    return { ...meta, album };
  }

  async deleteImage(album: string, name: string, journal?: ChangeJournal): Promise<ImageInfo> {
    const state = this.requireAlbum(album);
    const { meta } = this.requireImage(album, name);
    await this.make(journal, { op: 'image.delete', album, meta }, () => {
      state.images.delete(name);
      state.names.delete(name);
      this.ids.delete(meta.id);
      this.touch(album);
    });
    return { ...meta, album };
  }

  async findImage(id: string): Promise<{ album: string; name: string } | undefined> {
    const found = this.ids.get(id);
    if (!found) return undefined;
    const album = [...this.albums].find(([, state]) => state === found.album)?.[0];
    return album === undefined ? undefined : { album, name: found.name };
  }

  version(album?: string): number | undefined {
    if (album === undefined) return this.listVersion;
    return this.albums.has(album) ? this.versions.get(album) : undefined;
  }

  async counts(): Promise<{ albums: number; images: number }> {
    return { albums: this.albums.size, images: this.ids.size };
  }

  async isContentUsed(sha256: string): Promise<boolean> {
    return this.contentUsed(sha256);
  }

  async contentIds(sha256: string): Promise<string[]> {
    return this.withContent(sha256).map((image) => image.meta.id);
  }

  /** Counts; with `verify`, each image's bytes against its sha256 (nothing in memory can be repaired). */
  async check({ verify }: StoreCheckOptions): Promise<StoreCheck> {
    const problems: FsckProblem[] = [];
    let images = 0;
    for (const [name, album] of this.albums) {
      for (const [imageName, image] of album.images) {
        images += 1;
        if (verify && createHash('sha256').update(image.bytes).digest('hex') !== image.meta.sha256) {
          problems.push({ kind: 'content-mismatch', path: `${name}/${imageName}`, detail: 'the bytes do not match the metadata\'s sha256', repaired: false });
        }
      }
    }
    return { albums: this.albums.size, images, problems };
  }

  async checkWritable(): Promise<void> {}

  async flush(): Promise<void> {}

  async checkpointed(): Promise<void> {}

  async close(): Promise<void> {}

  /** The commit path of every change (make-change.ts without files): committed, applied, then announced. */
  private async make(journal: ChangeJournal | undefined, change: StoreChange, apply: () => void): Promise<void> {
    const committed = await journal?.commit(change);
    apply();
    await committed?.applied();
  }

  /** A new version of the album and of the album list: listings are cached under them. */
  private touch(album: string): void {
    this.changeCount += 1;
    this.versions.set(album, this.changeCount);
    this.listVersion = this.changeCount;
  }

  private contentUsed(sha256: string): boolean {
    return this.withContent(sha256).length > 0;
  }

  /** The stored images with these bytes (a scan: this store holds test-sized data). */
  private withContent(sha256: string): Array<{ meta: StoredImageMeta }> {
    return [...this.albums.values()].flatMap((album) => [...album.images.values()].filter((image) => image.meta.sha256 === sha256));
  }

  private requireAlbum(name: string): MemoryAlbum {
    const album = this.albums.get(name);
    if (!album) throw new NotFoundError(`${name} album is not present`);
    return album;
  }

  private requireImage(album: string, name: string): { meta: StoredImageMeta; bytes: Buffer } {
    const image = this.requireAlbum(album).images.get(name);
    if (!image) throw new NotFoundError(`${name} image is not present`);
    return image;
  }
}

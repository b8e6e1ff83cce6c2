import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { expect } from 'chai';
import { ConflictError, NotFoundError, ValidationError } from '../../src/errors.js';
import { describeFile } from '../../src/albums/image-meta.js';
import type { AlbumStore, StagedFile } from '../../src/albums/types.js';

/** A store under test and how to dispose of it (and its data). */
export interface StoreUnderTest {
  store: AlbumStore;
  close(): Promise<void>;
}

export interface ContractOptions {
  /**
   * The order the backend lists names in: UTF-16 code units (JavaScript's sort) for
   * the filesystem store, code points (UTF-8 bytes) for S3. Both agree on every
   * pair except astral characters against U+E000..U+FFFF, which one test checks.
   */
  compare: (a: string, b: string) => number;
}

/** Writes bytes into the store's staging dir, as an upload would, and describes them. */
export async function stage(store: AlbumStore, bytes: Buffer, facts?: StagedFile['facts']): Promise<StagedFile> {
  const file = path.join(store.stagingDir, `upload-${randomUUID()}`);
  await fs.writeFile(file, bytes);
  const described = await describeFile(file);
  return { path: file, ...described, facts };
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/**
 * The behaviour every AlbumStore must have, run once per backend (as
 * aedes-persistence's abstract.js is run for every persistence): albums,
 * images, errors (NotFoundError 404, ConflictError 409), paging, ids that
 * survive renames, ranged streams, local paths, content use and counts.
 * @param makeStore a fresh, empty store for each test
 */
export function albumStoreContract(name: string, makeStore: () => Promise<StoreUnderTest>, options: ContractOptions): void {
  describe(`AlbumStore contract: ${name}`, function () {
    let sut: StoreUnderTest;
    let store: AlbumStore;

    beforeEach(async function () {
      sut = await makeStore();
      store = sut.store;
    });
    afterEach(async function () {
      await sut?.close();
    });

    /** Creates an album with one image per name (random bytes unless given), committed concurrently; returns the bytes by name. */
    async function fill(album: string, names: string[], bytes?: (name: string) => Buffer): Promise<Map<string, Buffer>> {
      await store.createAlbum(album);
      const written = new Map(names.map((name) => [name, bytes?.(name) ?? randomBytes(200 + name.length)]));
      await Promise.all(names.map(async (name) => store.commitImage(album, name, await stage(store, written.get(name)!))));
      return written;
    }

    async function walk(list: (cursor?: string) => Promise<{ items: string[]; nextCursor?: string }>): Promise<string[][]> {
      const pages: string[][] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 100; i++) {
        const page = await list(cursor);
        pages.push(page.items);
        cursor = page.nextCursor;
        if (!cursor) return pages;
      }
      throw new Error('paging did not end within 100 pages');
    }

    describe('albums', function () {
      it('creates an album that is listed, with its creation time', async function () {
        const before = Date.now();
        const info = await store.createAlbum('holidays');
        expect(info.name).to.equal('holidays');
        expect(Date.parse(info.createdAt)).to.be.within(before - 1000, Date.now() + 1000);
        expect((await store.listAlbums()).items).to.deep.equal(['holidays']);
        expect(await store.albumInfos(['holidays', 'missing'])).to.deep.equal([info]);
      });

      it('tells whether an album exists (hasAlbum), across a create, rename and delete', async function () {
        expect(await store.hasAlbum('a')).to.equal(false);
        await store.createAlbum('a');
        expect(await store.hasAlbum('a')).to.equal(true);
        await store.renameAlbum('a', 'b');
        expect([await store.hasAlbum('a'), await store.hasAlbum('b')]).to.deep.equal([false, true]);
        await store.deleteAlbum('b');
        expect(await store.hasAlbum('b')).to.equal(false);
      });

      it('refuses a second album with the same name (ConflictError)', async function () {
        await store.createAlbum('a');
        const err = await rejection(store.createAlbum('a'));
        expect(err).to.be.instanceOf(ConflictError);
        expect(err.message).to.match(/a album already present/);
      });

      it('renames an album with its images, keeping their ids, bytes and the creation time', async function () {
        const bytes = await fill('old', ['x.png', 'y.png']);
        const [created] = await store.albumInfos(['old']);
        const infos = await store.imageInfos('old', ['x.png', 'y.png']);
        const renamed = await store.renameAlbum('old', 'new');
        expect(renamed).to.deep.equal({ name: 'new', createdAt: created.createdAt });
        expect((await store.listAlbums()).items).to.deep.equal(['new']);
        expect((await store.listImages('new')).items).to.deep.equal(['x.png', 'y.png']);
        for (const info of infos) expect(await store.findImage(info.id)).to.deep.equal({ album: 'new', name: info.name });
        const handle = await store.openImage('new', 'y.png');
        expect(await readAll(handle.stream())).to.deep.equal(bytes.get('y.png'));
        expect((await rejection(store.listImages('old')))).to.be.instanceOf(NotFoundError);
      });

      it('answers a rename onto a taken name with ConflictError and of a missing album with NotFoundError', async function () {
        await store.createAlbum('a');
        await store.createAlbum('b');
        expect(await rejection(store.renameAlbum('a', 'b'))).to.be.instanceOf(ConflictError);
        expect(await rejection(store.renameAlbum('nope', 'c'))).to.be.instanceOf(NotFoundError);
        expect(await store.renameAlbum('a', 'a')).to.include({ name: 'a' });
        expect((await store.listAlbums()).items).to.deep.equal(['a', 'b']);
      });

      it('deletes an album and its images, returning the contents no image has any more', async function () {
        const shared = randomBytes(300);
        await fill('keep', ['same.bin'], () => shared);
        const bytes = await fill('gone', ['same.bin', 'own.bin'], (name) => (name === 'same.bin' ? shared : randomBytes(400)));
        const ids = (await store.imageInfos('gone', ['same.bin', 'own.bin'])).map((i) => i.id);
        const { unusedContent } = await store.deleteAlbum('gone');
        expect(unusedContent).to.deep.equal([sha256(bytes.get('own.bin')!)]);
        expect((await store.listAlbums()).items).to.deep.equal(['keep']);
        for (const id of ids) expect(await store.findImage(id)).to.equal(undefined);
        expect(await store.isContentUsed(sha256(shared))).to.equal(true);
        expect(await store.isContentUsed(sha256(bytes.get('own.bin')!))).to.equal(false);
        expect(await rejection(store.deleteAlbum('gone'))).to.be.instanceOf(NotFoundError);
      });

      it('gives a new album of a deleted name no trace of the old images', async function () {
        await fill('again', ['a.bin']);
        await store.deleteAlbum('again');
        await store.createAlbum('again');
        expect((await store.listImages('again')).items).to.deep.equal([]);
        expect(await rejection(store.openImage('again', 'a.bin'))).to.be.instanceOf(NotFoundError);
      });

      it('pages through albums with cursors', async function () {
        for (const name of ['e', 'a', 'd', 'c', 'b']) await store.createAlbum(name);
        expect(await walk((cursor) => store.listAlbums({ limit: 2, cursor }))).to.deep.equal([['a', 'b'], ['c', 'd'], ['e']]);
      });
    });

    describe('images', function () {
      it('commits a staged file: listed, described, its staged file consumed', async function () {
        await store.createAlbum('a');
        const bytes = randomBytes(1000);
        const staged = await stage(store, bytes, { format: 'png', width: 10, height: 20, hasAlpha: true });
        const info = await store.commitImage('a', 'pic.png', staged);
        expect(info).to.include({ album: 'a', name: 'pic.png', size: 1000, sha256: sha256(bytes), format: 'png', width: 10, height: 20, hasAlpha: true });
        expect(info.id).to.match(/^[A-Za-z0-9_-]{16}$/);
        expect(info.createdAt).to.equal(info.modifiedAt);
        expect(existsSync(staged.path)).to.equal(false);
        expect((await store.listImages('a')).items).to.deep.equal(['pic.png']);
        expect(await store.imageInfos('a', ['pic.png'])).to.deep.equal([info]);
        expect(await store.findImage(info.id)).to.deep.equal({ album: 'a', name: 'pic.png' });
        expect(await store.isContentUsed(info.sha256)).to.equal(true);
      });

      it('never overwrites: a second commit of a name is a ConflictError and the first image stays', async function () {
        const bytes = await fill('a', ['pic.png']);
        const err = await rejection(store.commitImage('a', 'pic.png', await stage(store, randomBytes(50))));
        expect(err).to.be.instanceOf(ConflictError);
        expect(err.message).to.match(/pic\.png image already present/);
        const handle = await store.openImage('a', 'pic.png');
        expect(await readAll(handle.stream())).to.deep.equal(bytes.get('pic.png'));
      });

      it('refuses images for a missing album (NotFoundError)', async function () {
        expect(await rejection(store.commitImage('nope', 'x', await stage(store, randomBytes(10))))).to.be.instanceOf(NotFoundError);
        expect(await rejection(store.listImages('nope'))).to.be.instanceOf(NotFoundError);
        expect(await rejection(store.openImage('nope', 'x'))).to.be.instanceOf(NotFoundError);
      });

      it('answers unknown images with NotFoundError', async function () {
        await store.createAlbum('a');
        expect(await rejection(store.openImage('a', 'x'))).to.be.instanceOf(NotFoundError);
        expect(await rejection(store.renameImage('a', 'x', 'y'))).to.be.instanceOf(NotFoundError);
        expect(await rejection(store.deleteImage('a', 'x'))).to.be.instanceOf(NotFoundError);
        expect(await store.imageInfos('a', ['x'])).to.deep.equal([]);
        expect(await store.findImage('AAAAAAAAAAAAAAAA')).to.equal(undefined);
      });

      // A handle serves one stream (the routes stream once), or localPath() until close().
      it('streams the whole image and any byte range of it', async function () {
        const bytes = await fill('a', ['big.bin'], () => randomBytes(70_000));
        const original = bytes.get('big.bin')!;
        const ranges = [undefined, { start: 0, end: 0 }, { start: 65_000, end: 69_999 }, { start: 12_345, end: 23_456 }];
        for (const range of ranges) {
          const handle = await store.openImage('a', 'big.bin');
          expect(handle.info).to.include({ name: 'big.bin', album: 'a', size: original.length });
          const expected = range ? original.subarray(range.start, range.end + 1) : original;
          expect(await readAll(handle.stream(range))).to.deep.equal(expected);
        }
      });

      it('gives a local path with the same bytes, valid until close', async function () {
        const bytes = await fill('a', ['pic.bin'], () => randomBytes(30_000));
        const handle = await store.openImage('a', 'pic.bin');
        const local = await handle.localPath();
        expect(await fs.readFile(local)).to.deep.equal(bytes.get('pic.bin'));
        expect(await handle.localPath()).to.equal(local);
        await handle.close();
        // A temporary copy (object storage) is removed on close; the filesystem store's path is the open file itself.
        if (local.startsWith(store.stagingDir)) expect(existsSync(local)).to.equal(false);
      });

      it('opens and closes without streaming (HEAD, 304)', async function () {
        await fill('a', ['x.bin']);
        const handle = await store.openImage('a', 'x.bin');
        await handle.close();
        expect((await store.listImages('a')).items).to.deep.equal(['x.bin']);
      });

      it('renames an image: same id, bytes and creation time, new name and modification time', async function () {
        const bytes = await fill('a', ['from.bin', 'other.bin']);
        const [before] = await store.imageInfos('a', ['from.bin']);
        await new Promise((resolve) => setTimeout(resolve, 5));
        const after = await store.renameImage('a', 'from.bin', 'to.bin');
        expect(after).to.include({ id: before.id, name: 'to.bin', album: 'a', sha256: before.sha256, createdAt: before.createdAt });
        expect(Date.parse(after.modifiedAt)).to.be.greaterThan(Date.parse(before.modifiedAt));
        expect((await store.listImages('a')).items).to.deep.equal(['other.bin', 'to.bin']);
        expect(await store.findImage(before.id)).to.deep.equal({ album: 'a', name: 'to.bin' });
        const handle = await store.openImage('a', 'to.bin');
        expect(await readAll(handle.stream())).to.deep.equal(bytes.get('from.bin'));
        expect(await rejection(store.openImage('a', 'from.bin'))).to.be.instanceOf(NotFoundError);
        expect(await rejection(store.renameImage('a', 'to.bin', 'other.bin'))).to.be.instanceOf(ConflictError);
        expect(await store.renameImage('a', 'to.bin', 'to.bin')).to.include({ id: before.id, name: 'to.bin' });
      });

      it('keeps an id through an image rename and then an album rename', async function () {
        await fill('a', ['x']);
        const [{ id }] = await store.imageInfos('a', ['x']);
        await store.renameImage('a', 'x', 'y');
        await store.renameAlbum('a', 'b');
        expect(await store.findImage(id)).to.deep.equal({ album: 'b', name: 'y' });
        const handle = await store.openImage('b', 'y');
        await handle.close();
        expect(handle.info.id).to.equal(id);
      });

      it('deletes an image: gone from listings and ids; its content unused once no image has it', async function () {
        const same = randomBytes(100);
        await fill('a', ['one', 'two'], () => same);
        const [one] = await store.imageInfos('a', ['one']);
        const deleted = await store.deleteImage('a', 'one');
        expect(deleted).to.deep.equal(one);
        expect((await store.listImages('a')).items).to.deep.equal(['two']);
        expect(await store.findImage(one.id)).to.equal(undefined);
        expect(await store.isContentUsed(sha256(same))).to.equal(true);
        await store.deleteImage('a', 'two');
        expect(await store.isContentUsed(sha256(same))).to.equal(false);
      });

      it('gives details of several images in the order asked, skipping missing ones', async function () {
        await fill('a', ['c', 'a', 'b']);
        expect((await store.imageInfos('a', ['b', 'missing', 'c', 'a'])).map((i) => i.name)).to.deep.equal(['b', 'c', 'a']);
      });

      it('stores names with spaces, accents, emoji and URL-special characters as they are', async function () {
        const names = ['a b.png', 'é+%20#?&=.jpg', 'x\u{1F600}.gif', '中文.webp', "it's (1).png"];
        const bytes = await fill('Été 2024 & co', names);
        expect([...(await store.listImages('Été 2024 & co')).items].sort()).to.deep.equal([...names].sort());
        for (const name of names) {
          const handle = await store.openImage('Été 2024 & co', name);
          expect(await readAll(handle.stream())).to.deep.equal(bytes.get(name));
        }
      });
    });

    describe('listings', function () {
      it('walks every image exactly once, in order, 3 per page; the last page has no cursor', async function () {
        const names = Array.from({ length: 10 }, (_, i) => `img-${i}`);
        await fill('a', names);
        const pages = await walk((cursor) => store.listImages('a', { limit: 3, cursor }));
        expect(pages.map((p) => p.length)).to.deep.equal([3, 3, 3, 1]);
        expect(pages.flat()).to.deep.equal([...names].sort(options.compare));
      });

      it('ends the listing without a cursor when the last page is exactly full', async function () {
        await fill('a', ['1', '2', '3', '4']);
        expect(await walk((cursor) => store.listImages('a', { limit: 2, cursor }))).to.deep.equal([['1', '2'], ['3', '4']]);
      });

      it('continues after a cursor whose name was deleted meanwhile', async function () {
        await fill('a', ['a', 'b', 'c', 'd']);
        const first = await store.listImages('a', { limit: 2 });
        await store.deleteImage('a', 'b');
        expect(await store.listImages('a', { limit: 2, cursor: first.nextCursor })).to.deep.equal({ items: ['c', 'd'] });
      });

      it('refuses a cursor it did not make (ValidationError)', async function () {
        await store.createAlbum('a');
        expect(await rejection(store.listImages('a', { cursor: 'not a cursor!' }))).to.be.instanceOf(ValidationError);
        expect(await rejection(store.listAlbums({ cursor: '***' }))).to.be.instanceOf(ValidationError);
      });

      it("lists names in the backend's documented order (UTF-16 or code points)", async function () {
        const names = ['b', 'B', '10', '9', 'é', 'e\u0301x', '\u{1F600}', '\uFF01', '\uE000', '~'];
        await fill('a', names);
        const expected = [...names].sort(options.compare);
        expect((await store.listImages('a')).items).to.deep.equal(expected);
        expect((await walk((cursor) => store.listImages('a', { limit: 3, cursor }))).flat()).to.deep.equal(expected);
      });
    });

    describe('counts and writability', function () {
      it('counts albums and images as they change', async function () {
        expect(await store.counts()).to.deep.equal({ albums: 0, images: 0 });
        await fill('a', ['1', '2']);
        await fill('b', ['3']);
        expect(await store.counts()).to.deep.equal({ albums: 2, images: 3 });
        await store.deleteImage('a', '1');
        await store.deleteAlbum('b');
        expect(await store.counts()).to.deep.equal({ albums: 1, images: 1 });
      });

      it('passes its writability check', async function () {
        await store.checkWritable();
      });
    });
  });
}

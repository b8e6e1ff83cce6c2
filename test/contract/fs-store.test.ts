import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { expect } from 'chai';
import { FsAlbumStore } from '../../src/albums/fs/fs-store.js';
import { Layout } from '../../src/albums/layout.js';
import { NotFoundError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { albumStoreContract, stage } from './album-store.contract.js';

/** The filesystem store: a fresh data dir per test. Lists in UTF-16 code unit order (JavaScript's sort). */
albumStoreContract(
  'FsAlbumStore',
  async () => {
    const dir = await makeTmpDir();
    const { store } = await FsAlbumStore.open(dir, silentLogger());
    return {
      store,
      async close() {
        await store.close();
        await removeDir(dir);
      },
    };
  },
  { compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0) },
);

// Issue 13: the filesystem store answers reads from memory and opens an image's file only when its bytes are wanted.
describe('FsAlbumStore: reads from memory, files opened lazily (issue 13)', () => {
  let dir: string;
  let store: FsAlbumStore;
  beforeEach(async () => {
    dir = await makeTmpDir();
    ({ store } = await FsAlbumStore.open(dir, silentLogger()));
    await store.createAlbum('a');
  });
  afterEach(async () => {
    await store.close();
    await removeDir(dir);
  });

  const readAll = async (stream: NodeJS.ReadableStream) => {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  };

  it('opens lazily, and a handle whose name was deleted and uploaded again before its file was opened is a NotFoundError, never the new image\'s bytes', async () => {
    const first = randomBytes(5000);
    await store.commitImage('a', 'x', await stage(store, first));
    const handle = await store.openImage('a', 'x');
    await store.deleteImage('a', 'x');
    await store.commitImage('a', 'x', await stage(store, randomBytes(6000)));
    expect(await handle.read!().then(() => 'bytes', (err: Error) => err)).to.be.instanceOf(NotFoundError);
    await handle.close();
  });

  it('keeps the promise of "open first": once opened, a rename or delete cannot cut the bytes', async () => {
    const bytes = randomBytes(70_000);
    await store.commitImage('a', 'x', await stage(store, bytes));
    const handle = await store.openImage('a', 'x');
    await handle.open!();
    await store.deleteImage('a', 'x');
    expect(await readAll(handle.stream())).to.deep.equal(bytes);
  });

  it('reads metadata from memory: listings and details stay whole with the metadata files gone', async () => {
    await store.commitImage('a', 'x', await stage(store, randomBytes(100)));
    await fs.rm(new Layout(dir).imageMetaFile('a', 'x'));
    const [info] = await store.imageInfos('a', ['x']);
    expect(info).to.include({ name: 'x', album: 'a', size: 100 });
    expect(Object.isFrozen(info), 'shared with every reader: frozen').to.equal(true);
    expect((await store.openImage('a', 'x')).info).to.equal(info);
  });

  it('gives every change a version never used before (per album, and for the album list), also across an album rename onto a used name', async () => {
    // Listing pages are kept under (album name, version): a value seen before for albums would bring back an old page.
    const seen = { albums: new Set([store.version('a')]), list: new Set([store.version()]) };
    const changed = (album?: string) => {
      const v = store.version(album);
      const set = album === undefined ? seen.list : seen.albums;
      expect(set.has(v), `version ${v} of ${album ?? 'the album list'} was used before`).to.equal(false);
      set.add(v);
    };
    await store.commitImage('a', 'x', await stage(store, randomBytes(10)));
    changed('a');
    await store.renameImage('a', 'x', 'y');
    changed('a');
    await store.deleteImage('a', 'y');
    changed('a');
    await store.createAlbum('b');
    changed();
    changed('b');
    await store.deleteAlbum('a');
    changed();
    expect(store.version('a')).to.equal(undefined);
    await store.renameAlbum('b', 'a');
    changed();
    changed('a');
  });
});

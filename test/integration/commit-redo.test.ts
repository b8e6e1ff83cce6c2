import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { AlbumService } from '../../src/services/album-service.js';
import { FsAlbumStore } from '../../src/albums/fs/fs-store.js';
import { fsck } from '../../src/albums/fs/fsck.js';
import { Layout } from '../../src/albums/layout.js';
import { ConflictError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { Checkpointer } from '../../src/notifier/checkpointer.js';
import { Outbox } from '../../src/notifier/outbox.js';
import { OutboxNotifier } from '../../src/notifier/outbox-notifier.js';
import { sha256 } from '../helpers/api.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

// Recovery's redo against what a power cut can leave: the writes an apply made without fsync
// (links, renames, metadata files) may or may not be on disk, in any combination, until the
// checkpoint. Each test makes changes through the real commit path (journal, store, service),
// stops without a checkpoint (as a crash does), removes or restores on disk what a lost write
// would, starts again, and checks that recovery made every committed change as acknowledged.

const log = silentLogger();

/** The store, journal and service as the server wires them, with no checkpoint unless asked. */
async function open(root: string) {
  const layout = new Layout(root);
  await fs.mkdir(layout.internalDir, { recursive: true });
  const outbox = await Outbox.open(layout.outboxDir);
  const { store, recovery } = await FsAlbumStore.open(root, log, { journal: outbox });
  const checkpointer = new Checkpointer(outbox, store, { intervalMs: 3_600_000, maxChanges: 1_000_000, log });
  const albums = new AlbumService(store, new OutboxNotifier(outbox, '/imagestore/test', { checkpoints: checkpointer }));
  return {
    layout, outbox, store, albums, checkpointer, recovery,
    /** Uploads `bytes` as `album/name` (without an inspector, as a plain file). */
    async upload(album: string, name: string, bytes: Buffer) {
      const file = path.join(store.stagingDir, `upload-${randomUUID()}`);
      await fs.writeFile(file, bytes);
      return albums.addImage(album, name, file);
    },
    /** Stops as a crash does: no checkpoint; the journal and the page cache are all that is left. */
    async crash() {
      await outbox.close();
      await store.close();
    },
    async stop() {
      await checkpointer.close();
      await outbox.close();
      await store.close();
    },
  };
}

type Opened = Awaited<ReturnType<typeof open>>;

async function bytesOf(s: Opened, album: string, name: string): Promise<Buffer> {
  const handle = await s.store.openImage(album, name);
  return handle.read!();
}

/** The events recovery lets the dispatcher publish, in order. */
function publishable(s: Opened): string[] {
  return s.outbox.peek(1000).map((r) => `${r.event.type} ${r.event.data.image ?? r.event.data.album}`);
}

describe('commit path: recovery redoes committed changes whatever of their writes a power cut lost', () => {
  let root: string;
  let s: Opened | undefined;

  beforeEach(async () => {
    root = await makeTmpDir('imagestore-redo-');
  });
  afterEach(async () => {
    await s?.stop().catch(() => undefined);
    s = undefined;
    await removeDir(root);
  });

  /** Starts again after the simulated crash, and checks fsck finds nothing once recovered. */
  async function recover(): Promise<Opened> {
    s = await open(root);
    const check = await fsck(root, { repair: false, verifyContent: true });
    expect(check.problems, 'fsck after recovery').to.deep.equal([]);
    expect(await fs.readdir(s.layout.stagedDir), 'staged uploads are deleted once checkpointed').to.deep.equal([]);
    return s;
  }

  it('links an upload again from its staged bytes when neither its link nor its metadata reached the disk, with the acknowledged id', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const bytes = randomBytes(3000);
    const info = await s.upload('al', 'a.bin', bytes);
    await s.crash();
    await fs.rm(s.layout.imageFile('al', 'a.bin'));
    await fs.rm(s.layout.imageMetaFile('al', 'a.bin'));

    s = await recover();
    expect((await s.store.listImages('al')).items).to.deep.equal(['a.bin']);
    expect((await s.store.imageInfos('al', ['a.bin']))[0]).to.include({ id: info.id, sha256: sha256(bytes), createdAt: info.createdAt });
    expect(sha256(await bytesOf(s, 'al', 'a.bin'))).to.equal(sha256(bytes));
    expect(await s.store.findImage(info.id)).to.deep.equal({ album: 'al', name: 'a.bin' });
    expect(publishable(s)).to.deep.equal(['imagestore.album.created al', 'imagestore.image.created a.bin']);
  });

  it('rewrites metadata that reached the disk empty (its data not flushed)', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const info = await s.upload('al', 'a.bin', randomBytes(100));
    await s.crash();
    await fs.truncate(s.layout.imageMetaFile('al', 'a.bin'), 0);

    s = await recover();
    expect((await s.store.imageInfos('al', ['a.bin']))[0]).to.deep.equal(info);
  });

  it('moves an image again when its rename was lost but the new metadata was not', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const bytes = randomBytes(500);
    const before = await s.upload('al', 'a.bin', bytes);
    const after = await s.albums.renameImage('al', 'a.bin', 'b.bin');
    await s.crash();
    await fs.rename(s.layout.imageFile('al', 'b.bin'), s.layout.imageFile('al', 'a.bin'));
    await fs.writeFile(s.layout.imageMetaFile('al', 'a.bin'), JSON.stringify({ ...before, album: undefined }));

    s = await recover();
    expect((await s.store.listImages('al')).items).to.deep.equal(['b.bin']);
    expect((await s.store.imageInfos('al', ['b.bin']))[0]).to.deep.equal(after);
    expect(sha256(await bytesOf(s, 'al', 'b.bin'))).to.equal(sha256(bytes));
    expect(await s.store.findImage(before.id)).to.deep.equal({ album: 'al', name: 'b.bin' });
  });

  it('deletes an image again when its deletion never reached the disk', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const bytes = randomBytes(500);
    const info = await s.upload('al', 'a.bin', bytes);
    await s.checkpointer.run(); // the upload is durable; the delete below is not
    await s.albums.deleteImage('al', 'a.bin');
    await s.crash();
    await fs.writeFile(s.layout.imageFile('al', 'a.bin'), bytes);
    await fs.writeFile(s.layout.imageMetaFile('al', 'a.bin'), JSON.stringify({ ...info, album: undefined }));

    s = await recover();
    expect((await s.store.listImages('al')).items).to.deep.equal([]);
    expect(await s.store.findImage(info.id)).to.equal(undefined);
  });

  it('upload, delete and upload again of one name, all lost: the last acknowledged image is the one kept', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const first = await s.upload('al', 'a.bin', randomBytes(300));
    await s.albums.deleteImage('al', 'a.bin');
    const secondBytes = randomBytes(400);
    const second = await s.upload('al', 'a.bin', secondBytes);
    await s.crash();
    await fs.rm(s.layout.imageFile('al', 'a.bin'));
    await fs.rm(s.layout.imageMetaFile('al', 'a.bin'));

    s = await recover();
    expect((await s.store.imageInfos('al', ['a.bin']))[0]).to.deep.equal(second);
    expect(sha256(await bytesOf(s, 'al', 'a.bin'))).to.equal(sha256(secondBytes));
    expect(await s.store.findImage(first.id)).to.equal(undefined);
    expect(publishable(s)).to.deep.equal([
      'imagestore.album.created al', 'imagestore.image.created a.bin', 'imagestore.image.deleted a.bin', 'imagestore.image.created a.bin',
    ]);
  });

  it('makes a lost album again, with the uploads made into it', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const bytes = randomBytes(700);
    await s.upload('al', 'x.bin', bytes);
    await s.crash();
    await fs.rm(s.layout.albumDir('al'), { recursive: true });

    s = await recover();
    expect((await s.store.listAlbums()).items).to.deep.equal(['al']);
    expect((await s.store.listImages('al')).items).to.deep.equal(['x.bin']);
    expect(sha256(await bytesOf(s, 'al', 'x.bin'))).to.equal(sha256(bytes));
  });

  it('renames an album again when the rename was lost, and the upload made after it lands in the renamed album', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    await s.upload('al', 'x.bin', randomBytes(100));
    await s.albums.renameAlbum('al', 'bl'); // checkpoints everything before it first
    const y = await s.upload('bl', 'y.bin', randomBytes(100));
    await s.crash();
    await fs.rm(s.layout.imageFile('bl', 'y.bin'));
    await fs.rm(s.layout.imageMetaFile('bl', 'y.bin'));
    await fs.rename(s.layout.albumDir('bl'), s.layout.albumDir('al'));

    s = await recover();
    expect((await s.store.listAlbums()).items).to.deep.equal(['bl']);
    expect((await s.store.listImages('bl')).items).to.deep.equal(['x.bin', 'y.bin']);
    expect(await s.store.findImage(y.id)).to.deep.equal({ album: 'bl', name: 'y.bin' });
  });

  it('never redoes nor publishes a change whose apply failed: it is aborted in the journal', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const bytes = randomBytes(80);
    await s.upload('al', 'a.bin', bytes);
    // A directory another tool put into the album behind the store's back: the rename's move fails on it.
    await fs.mkdir(path.join(s.layout.imageFile('al', 'b.bin'), 'inside'), { recursive: true });
    const err = await s.albums.renameImage('al', 'a.bin', 'b.bin').catch((e: unknown) => e);
    expect((err as NodeJS.ErrnoException).code).to.match(/^E(ISDIR|NOTEMPTY|EXIST)$/);
    expect(publishable(s)).to.deep.equal(['imagestore.album.created al', 'imagestore.image.created a.bin']);
    await s.crash();

    s = await open(root);
    expect(publishable(s)).to.deep.equal(['imagestore.album.created al', 'imagestore.image.created a.bin']);
    expect((await s.store.listImages('al')).items).to.deep.equal(['a.bin']);
    expect(sha256(await bytesOf(s, 'al', 'a.bin'))).to.equal(sha256(bytes));
    await fs.rm(s.layout.imageFile('al', 'b.bin'), { recursive: true });
  });

  it('refuses an upload whose name another tool took on disk (409), and leaves nothing of it', async () => {
    s = await open(root);
    await s.albums.createAlbum('al');
    const foreign = randomBytes(50);
    await fs.writeFile(s.layout.imageFile('al', 'a.bin'), foreign);
    const err = await s.upload('al', 'a.bin', randomBytes(60)).catch((e: unknown) => e);
    expect(err).to.be.instanceOf(ConflictError);
    expect(publishable(s)).to.deep.equal(['imagestore.album.created al']);
    await s.crash();

    s = await open(root);
    expect(publishable(s)).to.deep.equal(['imagestore.album.created al']);
    // fsck adopts the foreign file (new id, its own bytes); the refused upload left nothing.
    const [adopted] = await s.store.imageInfos('al', ['a.bin']);
    expect(adopted.sha256).to.equal(sha256(foreign));
    expect(await fs.readdir(s.layout.stagedDir)).to.deep.equal([]);
  });
});

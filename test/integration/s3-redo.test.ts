import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { AlbumService } from '../../src/services/album-service.js';
import { Layout } from '../../src/albums/layout.js';
import { S3Layout } from '../../src/albums/s3/s3-layout.js';
import { S3AlbumStore } from '../../src/albums/s3/s3-store.js';
import { silentLogger } from '../../src/logger.js';
import { Checkpointer } from '../../src/notifier/checkpointer.js';
import { Outbox } from '../../src/notifier/outbox.js';
import { OutboxNotifier } from '../../src/notifier/outbox-notifier.js';
import { sha256 } from '../helpers/api.js';
import { requireS3, TestBucket } from '../helpers/s3.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const log = silentLogger();

/**
 * Thrown by the crash hook at `<change>:after-commit`: the change stops there, neither applied
 * nor aborted, as a crash leaves it (what a crash part way through apply leaves is then made by hand).
 */
class Crash extends Error {}

// The S3 store's redo: a change committed in the journal whose apply stopped part way (a crash)
// is finished at the next open, against the bucket, with the id and metadata of its record.
describe('S3AlbumStore: recovery finishes changes a crash stopped after their commit record', function () {
  this.timeout(30_000);
  let bucket: TestBucket | undefined;
  let dir: string;
  let prefix: string;

  before(async function () {
    bucket = await TestBucket.create(await requireS3(this));
  });
  after(async () => bucket?.destroy());
  beforeEach(async () => {
    dir = await makeTmpDir('imagestore-s3-redo-');
    prefix = TestBucket.prefix();
  });
  afterEach(async () => removeDir(dir));

  /** The store and journal as the server wires them; the crash hook stops a change at `crashAt`. */
  async function open(crashAt?: string) {
    const layout = new Layout(dir);
    await fs.mkdir(layout.internalDir, { recursive: true });
    const outbox = await Outbox.open(layout.outboxDir);
    const crash = (point: string) => {
      if (point === crashAt) throw new Crash(point);
    };
    const { store } = await S3AlbumStore.open(bucket!.settings(prefix), dir, log, { journal: outbox, crash });
    const checkpointer = new Checkpointer(outbox, store, { intervalMs: 3_600_000, maxChanges: 1_000_000, log });
    const albums = new AlbumService(store, new OutboxNotifier(outbox, '/imagestore/test', { checkpoints: checkpointer }));
    return {
      store, albums, outbox, layout,
      async upload(album: string, name: string, bytes: Buffer) {
        const file = path.join(store.stagingDir, `upload-${randomUUID()}`);
        await fs.writeFile(file, bytes);
        return albums.addImage(album, name, file);
      },
      /** Stops without a checkpoint. */
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

  const events = (s: Awaited<ReturnType<typeof open>>) => s.outbox.peek(100).map((r) => r.event.type);

  it('uploads the bytes and records the id of an upload stopped right after its commit record', async () => {
    let s = await open('upload:after-commit');
    await s.albums.createAlbum('al');
    const bytes = randomBytes(2000);
    expect(await s.upload('al', 'a.bin', bytes).catch((e: unknown) => e)).to.be.instanceOf(Crash);
    expect(events(s), 'not published before it is applied').to.deep.equal(['imagestore.album.created']);
    await s.crash();

    s = await open();
    try {
      expect(events(s)).to.deep.equal(['imagestore.album.created', 'imagestore.image.created']);
      const [info] = await s.store.imageInfos('al', ['a.bin']);
      expect(info.sha256).to.equal(sha256(bytes));
      expect(await s.store.findImage(info.id)).to.deep.equal({ album: 'al', name: 'a.bin' });
      const handle = await s.store.openImage('al', 'a.bin');
      const chunks: Buffer[] = [];
      for await (const chunk of handle.stream()) chunks.push(chunk as Buffer);
      expect(sha256(Buffer.concat(chunks))).to.equal(sha256(bytes));
      expect(await fs.readdir(s.layout.stagedDir)).to.deep.equal([]);
    } finally {
      await s.stop();
    }
  });

  it('finishes a rename stopped after the copy: one name, the id found under it', async () => {
    let s = await open('image-rename:after-commit');
    await s.albums.createAlbum('al');
    const info = await s.upload('al', 'a.bin', randomBytes(500));
    expect(await s.albums.renameImage('al', 'a.bin', 'b.bin').catch((e: unknown) => e)).to.be.instanceOf(Crash);
    await s.crash();
    // What the crash left: the copy made, nothing else.
    const layout = new S3Layout(prefix);
    await bucket!.raw().copy(layout.imageKey('al', 'a.bin'), layout.imageKey('al', 'b.bin'), info.size);

    s = await open();
    try {
      expect((await s.store.listImages('al')).items).to.deep.equal(['b.bin']);
      expect(await s.store.findImage(info.id)).to.deep.equal({ album: 'al', name: 'b.bin' });
      expect(await bucket!.raw().head(new S3Layout(prefix).metaKey('al', 'a.bin'))).to.equal(undefined);
      expect(events(s).at(-1)).to.equal('imagestore.image.renamed');
    } finally {
      await s.stop();
    }
  });

  it('finishes a delete stopped after the bytes were deleted: metadata and id go too', async () => {
    let s = await open('image-delete:after-commit');
    await s.albums.createAlbum('al');
    const info = await s.upload('al', 'a.bin', randomBytes(500));
    expect(await s.albums.deleteImage('al', 'a.bin').catch((e: unknown) => e)).to.be.instanceOf(Crash);
    await s.crash();
    // What the crash left: the bytes deleted (first step), the metadata and id still there.
    await bucket!.raw().delete(new S3Layout(prefix).imageKey('al', 'a.bin'));

    s = await open();
    try {
      expect((await s.store.listImages('al')).items).to.deep.equal([]);
      expect(await s.store.findImage(info.id)).to.equal(undefined);
      expect(await s.store.imageInfos('al', ['a.bin'])).to.deep.equal([]);
      expect(await s.store.isContentUsed(info.sha256)).to.equal(false);
    } finally {
      await s.stop();
    }
  });

  it('creates an album whose creation stopped right after its commit record', async () => {
    let s = await open('album-create:after-commit');
    expect(await s.albums.createAlbum('al').catch((e: unknown) => e)).to.be.instanceOf(Crash);
    await s.crash();

    s = await open();
    try {
      expect((await s.store.listAlbums()).items).to.deep.equal(['al']);
      expect(events(s)).to.deep.equal(['imagestore.album.created']);
    } finally {
      await s.stop();
    }
  });
});

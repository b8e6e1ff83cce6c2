import { randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { MemoryAlbumStore } from '../../src/albums/memory-store.js';
import { ConflictError, InsufficientStorageError, NotFoundError, UnsupportedMediaTypeError } from '../../src/errors.js';
import { AlbumService, MAX_DUPLICATE_IDS, type ImageInspector } from '../../src/services/album-service.js';
import { RecordingNotifier } from '../helpers/recording-notifier.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

// Issue 14: the album service's rules on an in-memory store and a recording notifier, in milliseconds.
describe('AlbumService rules (memory store, recording notifier; issue 14)', () => {
  let dir: string;
  let store: MemoryAlbumStore;
  let notifier: RecordingNotifier;
  let released: string[];
  let service: AlbumService;
  /** Accepts everything as a PNG, except files whose first byte is 0 (415). */
  const inspect: ImageInspector = async (file) => {
    const bytes = typeof file === 'string' ? await fs.readFile(file) : file;
    if (bytes[0] === 0) throw new UnsupportedMediaTypeError('not an image this service accepts');
    return { type: 'image/png', format: 'png', width: 1, height: 1 };
  };

  beforeEach(async () => {
    dir = await makeTmpDir();
    store = new MemoryAlbumStore(dir);
    notifier = new RecordingNotifier();
    released = [];
    service = new AlbumService(store, notifier, inspect, async (sha) => {
      released.push(sha);
    });
  });
  afterEach(async () => removeDir(dir));

  /** Stages bytes as an upload would and adds them as an image. */
  async function upload(album: string, name: string, bytes = Buffer.concat([Buffer.from([1]), randomBytes(100)]), reqId?: string) {
    const file = path.join(service.stagingDir, `upload-${randomUUID()}`);
    await fs.writeFile(file, bytes);
    return service.addImage(album, name, file, { reqId });
  }

  it('publishes one event per change, in order, each once the change is made, with the request id', async () => {
    await service.createAlbum('a', { reqId: 'r1' });
    const image = await upload('a', 'x.png', undefined, 'r2');
    await service.renameImage('a', 'x.png', 'y.png');
    await service.renameAlbum('a', 'b');
    await service.deleteImage('b', 'y.png');
    await service.deleteAlbum('b');
    expect(notifier.types).to.deep.equal([
      'imagestore.album.created', 'imagestore.image.created', 'imagestore.image.renamed',
      'imagestore.album.renamed', 'imagestore.image.deleted', 'imagestore.album.deleted',
    ]);
    expect(notifier.recorded.every((r) => r.durable)).to.equal(true);
    expect(notifier.recorded.slice(0, 2).map((r) => r.event.reqid)).to.deep.equal(['r1', 'r2']);
    expect(notifier.recorded[1].event.data).to.include({ album: 'a', image: 'x.png', id: image.id, size: 101, contentType: 'image/png' });
    expect(notifier.recorded[2].event.data).to.include({ image: 'y.png', previousName: 'x.png', id: image.id });
    expect(notifier.recorded[3].event.data).to.include({ album: 'b', previousName: 'a' });
  });

  it('names at most MAX_DUPLICATE_IDS earlier copies in duplicateOf, in the answer and the event (bytes uploaded many times)', async () => {
    await service.createAlbum('dup');
    const bytes = Buffer.concat([Buffer.from([1]), randomBytes(100)]);
    const first = await upload('dup', 'copy-00.png', bytes);
    expect(first.duplicateOf).to.equal(undefined);
    let last = first;
    for (let i = 1; i <= MAX_DUPLICATE_IDS + 3; i++) last = await upload('dup', `copy-${String(i).padStart(2, '0')}.png`, bytes);
    expect(last.duplicateOf).to.have.length(MAX_DUPLICATE_IDS);
    expect(last.duplicateOf).to.include(first.id);
    const created = notifier.recorded.filter((r) => r.event.type === 'imagestore.image.created').at(-1)!;
    expect(created.event.data.duplicateOf).to.deep.equal(last.duplicateOf);
  });

  it('answers conflicts and unknown names with 409 and 404, and publishes nothing for them', async () => {
    await service.createAlbum('a');
    await upload('a', 'x.png');
    const before = notifier.types.length;
    expect(await rejection(service.createAlbum('a'))).to.be.instanceOf(ConflictError);
    expect(await rejection(upload('a', 'x.png'))).to.be.instanceOf(ConflictError);
    await service.createAlbum('b');
    expect(await rejection(service.renameAlbum('a', 'b'))).to.be.instanceOf(ConflictError);
    expect(notifier.types.length).to.equal(before + 1); // b's creation only
    expect(await rejection(service.deleteAlbum('nope'))).to.be.instanceOf(NotFoundError);
    expect(await rejection(upload('nope', 'x.png'))).to.be.instanceOf(NotFoundError);
    expect((await rejection(service.imageInfo('nope', 'x.png'))).message).to.equal('nope album is not present');
    expect((await rejection(service.imageInfo('a', 'y.png'))).message).to.equal('y.png image is not present');
    expect(await rejection(service.requireAlbum('nope'))).to.be.instanceOf(NotFoundError);
    expect(notifier.types.length).to.equal(before + 1);
  });

  it('makes no change and publishes nothing when a rename keeps the name', async () => {
    await service.createAlbum('a');
    await upload('a', 'x.png');
    const before = notifier.types.length;
    expect(await service.renameAlbum('a', 'a')).to.include({ name: 'a' });
    expect(await service.renameImage('a', 'x.png', 'x.png')).to.include({ name: 'x.png' });
    expect(notifier.types.length).to.equal(before);
  });

  it('refuses an upload that is not an accepted image before any change (415, no event, staged file left to the caller)', async () => {
    await service.createAlbum('a');
    const before = notifier.types.length;
    expect(await rejection(upload('a', 'bad.png', Buffer.from([0, 1, 2])))).to.be.instanceOf(UnsupportedMediaTypeError);
    expect(notifier.types.length).to.equal(before);
    expect(notifier.committed.map((c) => c.op)).to.deep.equal(['album.create']);
    expect((await store.listImages('a')).items).to.deep.equal([]);
  });

  it('refuses every change when the journal is full (507) and leaves the store as it was; fetch events are dropped, downloads go on', async () => {
    await service.createAlbum('a');
    const image = await upload('a', 'x.png');
    notifier.full = true;
    const changes = [() => service.createAlbum('b'), () => upload('a', 'y.png'), () => service.renameImage('a', 'x.png', 'z.png'), () => service.deleteAlbum('a')];
    for (const change of changes) expect(await rejection(change())).to.be.instanceOf(InsufficientStorageError);
    expect((await store.listAlbums()).items).to.deep.equal(['a']);
    expect((await store.listImages('a')).items).to.deep.equal(['x.png']);
    const handle = await service.openImage('a', 'x.png');
    await service.announceFetch(handle.info);
    await handle.close();
    expect(notifier.types).to.deep.equal(['imagestore.album.created', 'imagestore.image.created']);
    expect(image.name).to.equal('x.png');
  });

  it('journals a fetch only when asked (announceFetch), best effort', async () => {
    await service.createAlbum('a');
    const image = await upload('a', 'x.png');
    const handle = await service.openImageById(image.id);
    expect(notifier.types.at(-1)).to.equal('imagestore.image.created');
    await service.announceFetch(handle.info, { reqId: 'get' });
    await handle.close();
    expect(notifier.recorded.at(-1)).to.deep.include({ durable: false });
    expect(notifier.recorded.at(-1)!.event).to.include({ type: 'imagestore.image.fetched', reqid: 'get' });
    expect(await rejection(service.openImageById('AAAAAAAAAAAAAAAA'))).to.be.instanceOf(NotFoundError);
  });

  it('releases a content (derivative cache) only once no image has it: after the last delete, or with its album', async () => {
    const same = Buffer.concat([Buffer.from([1]), randomBytes(50)]);
    await service.createAlbum('a');
    await service.createAlbum('b');
    const one = await upload('a', 'one.png', same);
    await upload('a', 'two.png', same);
    const own = await upload('b', 'own.png');
    await upload('b', 'shared.png', same);
    await service.deleteImage('a', 'one.png');
    expect(released).to.deep.equal([]);
    await service.deleteAlbum('a');
    expect(released).to.deep.equal([]); // b/shared.png still has it
    await service.deleteAlbum('b');
    expect([...released].sort()).to.deep.equal([one.sha256, own.sha256].sort());
  });

  it('lists with details when asked, in the listing order', async () => {
    await service.createAlbum('a');
    for (const name of ['c.png', 'a.png', 'b.png']) await upload('a', name);
    const listing = await service.listImages('a', { limit: 2 }, true);
    expect(listing.items).to.deep.equal(['a.png', 'b.png']);
    expect(listing.details!.map((d) => d.name)).to.deep.equal(['a.png', 'b.png']);
    expect((await service.listImages('a', { cursor: listing.nextCursor }, false)).details).to.equal(undefined);
  });
});

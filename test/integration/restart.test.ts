import { expect } from 'chai';
import { defaultConfig, type Config } from '../../src/config.js';
import { Layout } from '../../src/albums/layout.js';
import { Outbox } from '../../src/notifier/outbox.js';
import { startTestBroker, type TestBroker } from '../../subscriber/test/helpers.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { recordEvents, type EventRecorder } from '../helpers/mqtt.js';
import { makeJpeg, makePng } from '../helpers/images.js';
import { removeDir } from '../helpers/tmp-dir.js';
import { albumPath, createAlbum, downloadImage, sha256, uploadImage } from '../helpers/api.js';

type Http = TestService['http'];

/** Everything a client can see: album details, and per album the image details and a sha256 of each download. */
async function snapshot(http: Http) {
  const albums = (await http.get('/api/v1/albums?details=true').expect(200)).body;
  const images: Record<string, unknown> = {};
  const downloads: Record<string, string> = {};
  for (const album of albums.albumList as string[]) {
    const listing = (await http.get(`${albumPath(album)}/images?details=true`).expect(200)).body;
    images[album] = listing;
    for (const name of listing.imageList as string[]) downloads[`${album}/${name}`] = sha256((await downloadImage(http, album, name)).bytes);
  }
  return { albums, images, downloads };
}

/** A few albums with images, including renames and deletions; returns the sha256 each kept image must have. */
async function populate(http: Http): Promise<Record<string, string>> {
  const expected: Record<string, string> = {};
  await createAlbum(http, 'kept');
  await createAlbum(http, 'to-rename');
  await createAlbum(http, 'to-delete');
  for (let i = 0; i < 4; i += 1) {
    const bytes = await makePng(10 + i, 10, { r: 20 * i, g: 100, b: 50 });
    await uploadImage(http, 'kept', `p${i}.png`, bytes);
    expected[`kept/p${i}.png`] = sha256(bytes);
  }
  const jpeg = await makeJpeg(20, 20);
  await uploadImage(http, 'to-rename', 'ünïcode photo.jpg', jpeg);
  await uploadImage(http, 'to-delete', 'gone.png', await makePng());
  await http.patch(albumPath('to-rename')).send({ albumName: 'renamed' }).expect(200);
  await http.patch(albumPath('kept', 'p3.png')).send({ imageName: 'p3-renamed.png' }).expect(200);
  expected['kept/p3-renamed.png'] = expected['kept/p3.png'];
  delete expected['kept/p3.png'];
  await http.delete(albumPath('kept', 'p2.png')).expect(200);
  delete expected['kept/p2.png'];
  await http.delete(albumPath('to-delete')).expect(200);
  expected['renamed/ünïcode photo.jpg'] = sha256(jpeg);
  return expected;
}
/** Number of events `populate` causes. */
const POPULATE_EVENTS = 3 + 4 + 2 + 1 + 1 + 1 + 1;

describe('restart on the same data dir (embedded broker)', () => {
  let first: TestService | undefined;
  let second: TestService | undefined;
  let recorder: EventRecorder | undefined;
  afterEach(async () => {
    await recorder?.close();
    await first?.stop();
    await second?.close();
    if (first) await removeDir(first.dataDir);
    [first, second, recorder] = [undefined, undefined, undefined];
  });

  it('lists the same albums and images, with the same ids, and serves identical bytes', async () => {
    first = await startTestService();
    const expected = await populate(first.http);
    const before = await snapshot(first.http);
    expect(before.downloads).to.deep.equal(expected);
    expect(before.albums.albumList).to.deep.equal(['kept', 'renamed']);
    await first.stop();

    second = await startTestService({ dataDir: first.dataDir });
    expect(second.service.recovery.problems).to.deep.equal([]);
    expect(second.service.recovery).to.include({ albums: 2, images: 4 });
    const after = await snapshot(second.http);
    expect(after).to.deep.equal(before);

    // The restarted service keeps working on the old data.
    await uploadImage(second.http, 'renamed', 'more.png', await makePng(2, 2));
    await second.http.patch(albumPath('kept', 'p0.png')).send({ imageName: 'p0-again.png' }).expect(200);
    const ids = (await second.http.get(`${albumPath('kept')}/images?details=true`).expect(200)).body.images;
    const oldId = (before.images.kept as { images: Array<{ name: string; id: string }> }).images.find((i) => i.name === 'p0.png')!.id;
    expect(ids.find((i: { name: string }) => i.name === 'p0-again.png').id).to.equal(oldId);
  });

  it('delivers every event before stopping, and the new service has nothing left to re-publish', async () => {
    first = await startTestService();
    recorder = await recordEvents(first.service.mqttUrl);
    await populate(first.http);
    const delivered = await recorder.waitForCount(POPULATE_EVENTS);
    await first.stop();
    expect(first.service.pendingEvents()).to.equal(0);
    expect(recorder.events).to.have.length(POPULATE_EVENTS);
    expect(new Set(delivered.map((e) => e.id)).size).to.equal(POPULATE_EVENTS);
    await recorder.close();

    // What the next start would find in the journal: nothing undelivered. (Checked on the stopped
    // data dir: once started, the in-process broker takes any pending event at once, subscribers or not.)
    const journal = await Outbox.open(new Layout(first.dataDir).outboxDir);
    const pendingAtStart = journal.pendingCount;
    await journal.close();
    expect(pendingAtStart).to.equal(0);

    second = await startTestService({ dataDir: first.dataDir });
    expect(second.service.pendingEvents()).to.equal(0);
    recorder = await recordEvents(second.service.mqttUrl);
    await createAlbum(second.http, 'after-restart');
    const got = await recorder.waitForCount(1);
    expect(got.map((e) => `${e.type} ${e.data.album}`)).to.deep.equal(['imagestore.album.created after-restart']);
    expect(delivered.map((e) => e.id)).to.not.include(got[0].id);
  });
});

describe('restart with an external broker that stays up (a subscriber connected throughout)', () => {
  let broker: TestBroker | undefined;
  let first: TestService | undefined;
  let second: TestService | undefined;
  let recorder: EventRecorder | undefined;
  afterEach(async () => {
    await recorder?.close();
    await first?.stop();
    await second?.close();
    if (first) await removeDir(first.dataDir);
    await broker?.close();
    [first, second, recorder, broker] = [undefined, undefined, undefined, undefined];
  });

  // aedes speaks MQTT 3.1.1 only: the default protocolVersion 'auto' tries MQTT 5, is refused, and falls back.
  const withBroker = (url: string, extra: Partial<Config> = {}): Partial<Config> => ({
    mqtt: { ...defaultConfig().mqtt, url },
    ...extra,
  });

  it('sees each event exactly once across the restart: nothing is re-published', async () => {
    broker = await startTestBroker();
    recorder = await recordEvents(broker.url);
    first = await startTestService({ config: withBroker(broker.url) });
    await populate(first.http);
    await recorder.waitForCount(POPULATE_EVENTS);
    await first.stop();
    expect(first.service.pendingEvents()).to.equal(0);

    second = await startTestService({ dataDir: first.dataDir, config: withBroker(broker.url) });
    await createAlbum(second.http, 'after-restart');
    // The outbox is sent oldest first, so a re-published event would arrive before this one.
    const all = await recorder.waitForCount(POPULATE_EVENTS + 1);
    expect(all).to.have.length(POPULATE_EVENTS + 1);
    expect(all[POPULATE_EVENTS].data.album).to.equal('after-restart');
    expect(new Set(all.map((e) => e.id)).size).to.equal(POPULATE_EVENTS + 1);
  });

  it('delivers events still pending at stop (broker down) after the restart, once each and in order', async () => {
    broker = await startTestBroker();
    const port = broker.port;
    first = await startTestService({ config: withBroker(broker.url, { shutdownTimeoutMs: 300 }) });
    recorder = await recordEvents(broker.url);
    await createAlbum(first.http, 'before-outage');
    await recorder.waitForCount(1);
    await recorder.close();
    await broker.close();

    // Changes while the broker is down: their events wait in the outbox, even through the stop.
    await createAlbum(first.http, 'during-outage');
    await uploadImage(first.http, 'during-outage', 'x.png', await makePng());
    await first.http.delete(albumPath('during-outage', 'x.png')).expect(200);
    await first.stop();
    expect(first.service.pendingEvents()).to.equal(3);

    broker = await startTestBroker(port);
    recorder = await recordEvents(broker.url);
    second = await startTestService({ dataDir: first.dataDir, config: withBroker(broker.url) });
    await createAlbum(second.http, 'after-restart');
    const got = await recorder.waitForCount(4);
    expect(got.map((e) => (e.data.image ? `${e.type} ${e.data.image}` : `${e.type} ${e.data.album}`))).to.deep.equal([
      'imagestore.album.created during-outage',
      'imagestore.image.created x.png',
      'imagestore.image.deleted x.png',
      'imagestore.album.created after-restart',
    ]);
    await second.stop();
    expect(second.service.pendingEvents()).to.equal(0);
    expect(recorder.events).to.have.length(4);
  });
});

import { expect } from 'chai';
import type { Response } from 'supertest';
import { startTestService, type TestService } from '../helpers/service.js';
import { recordEvents, type EventRecorder } from '../helpers/mqtt.js';
import { makeJpeg, makePng } from '../helpers/images.js';
import { albumPath, createAlbum, uploadImage } from '../helpers/api.js';
import type { StoreEvent } from '../../src/notifier/events.js';

type Received = StoreEvent & { topic: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

describe('events: one CloudEvent on imagestore/notifier per successful change (real aedes, real mqtt client)', () => {
  let svc: TestService;
  let recorder: EventRecorder;
  let seen = 0;
  let sentinels = 0;

  before(async () => {
    svc = await startTestService();
    recorder = await recordEvents(svc.service.mqttUrl);
  });
  after(async () => {
    await recorder?.close();
    await svc?.close();
  });

  /**
   * The next `count` events after those already taken. Any event beyond them
   * stays for the next call, where it breaks the expected sequence.
   */
  async function nextEvents(count: number): Promise<Received[]> {
    await recorder.waitForCount(seen + count);
    const got = recorder.events.slice(seen, seen + count);
    seen += count;
    return got;
  }

  /**
   * Proves nothing else was published: a new album's event is journaled after
   * everything before it, so if it is the only new event, there was no other.
   */
  async function expectNoOtherEvents(): Promise<void> {
    const name = `sentinel-${(sentinels += 1)}`;
    await createAlbum(svc.http, name);
    const got = await nextEvents(1);
    expect(got.map((e) => `${e.type} ${e.data.album}`)).to.deep.equal([`imagestore.album.created ${name}`]);
    await svc.http.delete(albumPath(name)).expect(200);
    expect((await nextEvents(1))[0].type).to.equal('imagestore.album.deleted');
  }

  /** Checks the CloudEvents envelope and returns the event for more checks. */
  function expectEnvelope(event: Received, res: Response, type: string, subject: string, startedAt: number): Received {
    expect(event.topic).to.equal('imagestore/notifier');
    expect(Object.keys(event).sort()).to.deep.equal(
      ['data', 'datacontenttype', 'id', 'reqid', 'sequence', 'source', 'specversion', 'subject', 'time', 'topic', 'type'],
    );
    expect(event.specversion).to.equal('1.0');
    expect(event.id).to.match(UUID);
    expect(event.source).to.equal(svc.config.eventSource);
    expect(event.type).to.equal(type);
    expect(event.time).to.match(ISO_TIME);
    expect(Date.parse(event.time)).to.be.within(startedAt - 5, Date.now() + 5);
    expect(event.subject).to.equal(subject);
    expect(event.datacontenttype).to.equal('application/json');
    expect(event.reqid).to.equal(res.headers['x-request-id']);
    return event;
  }

  it('album created, renamed, deleted: one event each, with the Go-style message', async () => {
    const t0 = Date.now();
    const created = await svc.http.post('/api/v1/albums').set('X-Request-Id', 'req-create-1').send({ albumName: 'trip' }).expect(201);
    const [c] = await nextEvents(1);
    expectEnvelope(c, created, 'imagestore.album.created', 'albums/trip', t0);
    expect(c.reqid).to.equal('req-create-1');
    expect(c.data).to.deep.equal({ album: 'trip', message: 'trip album created' });

    const t1 = Date.now();
    const renamed = await svc.http.patch(albumPath('trip')).send({ albumName: 'voyage à Paris' }).expect(200);
    const [r] = await nextEvents(1);
    expectEnvelope(r, renamed, 'imagestore.album.renamed', `albums/${encodeURIComponent('voyage à Paris')}`, t1);
    expect(r.data).to.deep.equal({ album: 'voyage à Paris', previousName: 'trip', message: 'trip album modified to voyage à Paris' });

    const t2 = Date.now();
    const deleted = await svc.http.delete(albumPath('voyage à Paris')).expect(200);
    const [d] = await nextEvents(1);
    expectEnvelope(d, deleted, 'imagestore.album.deleted', `albums/${encodeURIComponent('voyage à Paris')}`, t2);
    expect(d.data).to.deep.equal({ album: 'voyage à Paris', message: 'voyage à Paris album deleted' });

    expect(new Set([c.id, r.id, d.id]).size).to.equal(3);
    expect(created.headers['x-request-id']).to.not.equal(renamed.headers['x-request-id']);
    await expectNoOtherEvents();
  });

  it('image created, fetched, renamed, deleted: one event each, with id, size and type', async () => {
    await createAlbum(svc.http, 'pics');
    await nextEvents(1);
    const png = await makePng(10, 10);

    const t0 = Date.now();
    const added = await svc.http.post(`${albumPath('pics')}/images`).attach('file', png, 'a b.png').expect(201);
    const image = added.body.image;
    const [c] = await nextEvents(1);
    expectEnvelope(c, added, 'imagestore.image.created', 'albums/pics/images/a%20b.png', t0);
    expect(c.data).to.deep.equal({
      album: 'pics', image: 'a b.png', id: image.id, size: png.length, contentType: 'image/png', message: 'a b.png image added to album pics',
      // Issue 18: the placeholders, so a page can paint one before the image arrives.
      thumbhash: image.thumbhash, dominantColor: image.dominantColor,
    });

    const t1 = Date.now();
    const fetched = await svc.http.get(albumPath('pics', 'a b.png')).buffer(true).expect(200);
    const [f] = await nextEvents(1);
    expectEnvelope(f, fetched, 'imagestore.image.fetched', 'albums/pics/images/a%20b.png', t1);
    expect(f.data).to.deep.equal({
      album: 'pics', image: 'a b.png', id: image.id, size: png.length, contentType: 'image/png', message: 'a b.png image fetched from album pics',
    });

    const t2 = Date.now();
    const renamed = await svc.http.patch(albumPath('pics', 'a b.png')).send({ imageName: 'c.png' }).expect(200);
    const [r] = await nextEvents(1);
    expectEnvelope(r, renamed, 'imagestore.image.renamed', 'albums/pics/images/c.png', t2);
    expect(r.data).to.deep.equal({
      album: 'pics', image: 'c.png', previousName: 'a b.png', id: image.id, size: png.length, contentType: 'image/png', message: 'a b.png image modified to c.png',
    });

    const t3 = Date.now();
    const deleted = await svc.http.delete(albumPath('pics', 'c.png')).expect(200);
    const [d] = await nextEvents(1);
    expectEnvelope(d, deleted, 'imagestore.image.deleted', 'albums/pics/images/c.png', t3);
    expect(d.data).to.deep.equal({
      album: 'pics', image: 'c.png', id: image.id, size: png.length, contentType: 'image/png', message: 'c.png image deleted from album pics',
    });
    await expectNoOtherEvents();
  });

  it('publishes nothing for failed operations (400, 404, 405, 409, 413, 415)', async () => {
    await createAlbum(svc.http, 'fail');
    await uploadImage(svc.http, 'fail', 'x.png', await makePng());
    await createAlbum(svc.http, 'other');
    await nextEvents(3);

    await svc.http.post('/api/v1/albums').send({ albumName: 'fail' }).expect(409);
    await svc.http.post('/api/v1/albums').send({ albumName: '..' }).expect(400);
    await svc.http.post('/api/v1/albums').set('Content-Type', 'text/plain').send('x').expect(415);
    await svc.http.post('/api/v1/albums').send({ albumName: 'huge', padding: 'x'.repeat(svc.config.limits.maxJsonBytes) }).expect(413);
    await svc.http.patch(albumPath('fail')).send({ albumName: 'other' }).expect(409);
    await svc.http.patch(albumPath('ghost')).send({ albumName: 'spirit' }).expect(404);
    await svc.http.delete(albumPath('ghost')).expect(404);
    await svc.http.post(`${albumPath('fail')}/images`).attach('file', await makePng(4, 4), 'x.png').expect(409);
    await svc.http.post(`${albumPath('ghost')}/images`).attach('file', await makePng(), 'x.png').expect(404);
    await svc.http.post(`${albumPath('fail')}/images`).attach('file', Buffer.alloc(0), 'e.png').expect(400);
    await svc.http.get(albumPath('fail', 'missing.png')).expect(404);
    await svc.http.patch(albumPath('fail', 'missing.png')).send({ imageName: 'y.png' }).expect(404);
    await svc.http.delete(albumPath('fail', 'missing.png')).expect(404);
    await svc.http.put(albumPath('fail')).expect(405);
    await svc.http.post(albumPath('fail', 'x.png')).expect(405);
    await expectNoOtherEvents();
  });

  it('publishes nothing for renames to the same name (nothing changed)', async () => {
    await createAlbum(svc.http, 'still');
    await uploadImage(svc.http, 'still', 'i.png', await makePng());
    await nextEvents(2);
    await svc.http.patch(albumPath('still')).send({ albumName: 'still' }).expect(200);
    await svc.http.patch(albumPath('still', 'i.png')).send({ imageName: 'i.png' }).expect(200);
    await expectNoOtherEvents();
  });

  it('publishes one album.deleted for an album deleted with its images, not one per image', async () => {
    await createAlbum(svc.http, 'full');
    await uploadImage(svc.http, 'full', 'one.png', await makePng());
    await uploadImage(svc.http, 'full', 'two.jpg', await makeJpeg());
    await nextEvents(3);
    await svc.http.delete(albumPath('full')).expect(200);
    const [d] = await nextEvents(1);
    expect(d.type).to.equal('imagestore.album.deleted');
    expect(d.data.album).to.equal('full');
    await expectNoOtherEvents();
  });

  it('keeps per-album order for a burst of concurrent operations on several albums', async () => {
    const albums = ['burst-a', 'burst-b', 'burst-c', 'burst-d'];
    const png = await makePng(6, 6);
    const IMAGES = 5;
    /** One album's changes, in order; the albums run concurrently. */
    const chain = async (album: string): Promise<string[]> => {
      const expected: string[] = [];
      const step = (label: string) => expected.push(label);
      await createAlbum(svc.http, album);
      step('imagestore.album.created');
      for (let i = 0; i < IMAGES; i += 1) {
        await uploadImage(svc.http, album, `img-${i}.png`, png);
        step(`imagestore.image.created img-${i}.png`);
      }
      await svc.http.patch(albumPath(album, 'img-0.png')).send({ imageName: 'first.png' }).expect(200);
      step('imagestore.image.renamed first.png');
      await svc.http.delete(albumPath(album, 'img-1.png')).expect(200);
      step('imagestore.image.deleted img-1.png');
      await svc.http.patch(albumPath(album)).send({ albumName: `${album}-done` }).expect(200);
      step('imagestore.album.renamed');
      return expected;
    };
    const expected = await Promise.all(albums.map(chain));
    const total = expected.reduce((n, e) => n + e.length, 0);
    const got = await nextEvents(total);
    expect(got).to.have.length(total);
    expect(new Set(got.map((e) => e.id)).size).to.equal(total);
    const label = (e: Received) => (e.data.image ? `${e.type} ${e.data.image}` : e.type);
    albums.forEach((album, i) => {
      const mine = got.filter((e) => e.data.album === album || e.data.album === `${album}-done`);
      expect(mine.map(label), album).to.deep.equal(expected[i]);
    });
    // Events are journaled in commit order, so their times never go backwards.
    const times = got.map((e) => Date.parse(e.time));
    expect(times).to.deep.equal([...times].sort((a, b) => a - b));
    await expectNoOtherEvents();
  });
});

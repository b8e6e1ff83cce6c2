import net from 'node:net';
import { expect } from 'chai';
import { EventSource } from 'eventsource';
import { chromium } from 'playwright-core';
import { defaultConfig, type Config } from '../../src/config.js';
import { EVENT_TYPES, type StoreEvent } from '../../src/notifier/events.js';
import { albumPath, createAlbum, downloadImage, uploadImage } from '../helpers/api.js';
import { freePort } from '../helpers/free-port.js';
import { makePng } from '../helpers/images.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const SEQUENCE = /^\d{16}$/;

/** Every event after `after` that GET /events gives, following `next` page by page. */
async function replayAll(svc: TestService, query: string, limit: number): Promise<{ events: StoreEvent[]; pages: number }> {
  const events: StoreEvent[] = [];
  let after = '';
  for (let pages = 1; pages < 1000; pages += 1) {
    const res = await svc.http.get(`/api/v1/events?limit=${limit}${after ? `&after=${after}` : ''}${query}`).expect(200);
    const page = res.body as { events: StoreEvent[]; next: string };
    expect(page.next).to.match(SEQUENCE);
    events.push(...page.events);
    if (page.events.length < limit && page.next === after) return { events, pages };
    after = page.next;
  }
  throw new Error('replay did not end');
}

/** A real EventSource client that records every event type the service sends. */
function openStream(url: string): { source: EventSource; events: Array<{ id: string; type: string; event: StoreEvent }> } {
  const source = new EventSource(url);
  const events: Array<{ id: string; type: string; event: StoreEvent }> = [];
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => events.push({ id: message.lastEventId, type: message.type, event: JSON.parse(message.data) as StoreEvent }));
  }
  return { source, events };
}

describe('events over HTTP: sequence, replay and the live stream (issue 16)', function () {
  this.timeout(60_000);

  describe('one journal', () => {
    let svc: TestService;
    before(async () => {
      svc = await startTestService();
    });
    after(async () => svc?.close());

    it('gives every event a zero-padded sequence, the same on MQTT as in a replay', async () => {
      const recorder = await recordEvents(svc.service.mqttUrl);
      try {
        await createAlbum(svc.http, 'seq');
        await uploadImage(svc.http, 'seq', 'a.png', await makePng());
        await svc.http.delete(albumPath('seq', 'a.png')).expect(200);
        const mqttEvents = await recorder.waitForCount(3);
        const { events } = await replayAll(svc, '&album=seq', 100);
        expect(events.map((e) => [e.id, e.sequence])).to.deep.equal(mqttEvents.map((e) => [e.id, e.sequence]));
        for (const event of events) expect(event.sequence).to.match(SEQUENCE);
        const numbers = events.map((e) => Number(e.sequence));
        expect(numbers).to.deep.equal([...numbers].sort((a, b) => a - b));
        expect(new Set(numbers).size).to.equal(numbers.length);
      } finally {
        await recorder.close();
      }
    });

    it('pages through the journal in order with the next cursor, and filters by album and type', async () => {
      await createAlbum(svc.http, 'pa');
      await createAlbum(svc.http, 'pb');
      const png = await makePng();
      for (let i = 0; i < 5; i += 1) await uploadImage(svc.http, 'pa', `${i}.png`, png);
      for (let i = 0; i < 3; i += 1) await uploadImage(svc.http, 'pb', `${i}.png`, png);
      await downloadImage(svc.http, 'pb', '0.png');
      // A fetch event is shown once the journal is fsynced (at most some 20 ms after a reader asks).
      await waitFor('the fetch event readable', async () => (await replayAll(svc, '&type=imagestore.image.fetched', 10)).events.length === 1);
      const whole = await replayAll(svc, '', 1000);
      const paged = await replayAll(svc, '', 3);
      expect(paged.pages).to.be.greaterThan(3);
      expect(paged.events.map((e) => e.id)).to.deep.equal(whole.events.map((e) => e.id));

      const b = await replayAll(svc, '&album=pb', 2);
      expect(b.events.map((e) => `${e.type} ${e.data.image ?? ''}`)).to.deep.equal([
        'imagestore.album.created ', 'imagestore.image.created 0.png', 'imagestore.image.created 1.png', 'imagestore.image.created 2.png',
        'imagestore.image.fetched 0.png',
      ]);
      const created = await replayAll(svc, '&type=imagestore.image.created&album=pa,pb', 4);
      expect(created.events).to.have.length(8);
      const images = await replayAll(svc, '&type=imagestore.image.*&album=pb', 10);
      expect(images.events).to.have.length(4);

      // A cursor in the middle: exactly what follows it.
      const middle = whole.events[4].sequence!;
      const rest = (await svc.http.get(`/api/v1/events?after=${Number(middle)}&limit=1000`).expect(200)).body as { events: StoreEvent[] };
      expect(rest.events.map((e) => e.id)).to.deep.equal(whole.events.slice(5).map((e) => e.id));
    });

    it('answers 400 for a bad cursor, limit or type', async () => {
      expect((await svc.http.get('/api/v1/events?after=abc').expect(400)).body.error).to.match(/sequence number for after/);
      expect((await svc.http.get('/api/v1/events?limit=0').expect(400)).body.error).to.match(/limit/);
      expect((await svc.http.get('/api/v1/events?limit=5000').expect(400)).body.error).to.match(/limit/);
      expect((await svc.http.get('/api/v1/events?type=imagestore.nothing').expect(400)).body.error).to.match(/event type/);
      await svc.http.get('/api/v1/events/stream?type=nope').expect(400);
    });
  });

  it('answers 410 with the oldest sequence held for a cursor past the retention (and never for the default cursor)', async () => {
    const first = await startTestService({ config: { events: { ...defaultConfig().events, retention: { maxAgeMs: 0, maxBytes: 0 } } } });
    let second: TestService | undefined;
    try {
      await createAlbum(first.http, 'r1');
      await createAlbum(first.http, 'r2');
      await waitFor('events delivered', () => first.service.pendingEvents() === 0);
      await first.stop();
      // The restart closes the segment; delivered and kept for no time, it is pruned.
      second = await startTestService({ dataDir: first.dataDir, config: first.config });
      const res = await second.http.get('/api/v1/events?after=1').expect(410);
      expect(res.body.error).to.match(/no longer held/);
      expect(res.body.oldestSequence).to.match(SEQUENCE);
      expect(Number(res.body.oldestSequence)).to.be.greaterThan(2);
      await second.http.get('/api/v1/events/stream?after=1').expect(410);
      await second.http.get('/api/v1/events/stream').set('Last-Event-ID', '1').expect(410);
      const fromOldest = await second.http.get(`/api/v1/events?after=${Number(res.body.oldestSequence) - 1}`).expect(200);
      expect(fromOldest.body.events).to.deep.equal([]);
      await second.http.get('/api/v1/events').expect(200);
    } finally {
      await second?.stop();
      await first.stop();
      await removeDir(first.dataDir);
    }
  });

  it('streams Server-Sent Events to a real EventSource, resumed with Last-Event-ID across a restart without gaps or reordering', async () => {
    const port = await freePort();
    const base = defaultConfig();
    const config: Partial<Config> = { http: { ...base.http, port }, events: { ...base.events, heartbeatMs: 200 } };
    let svc = await startTestService({ config });
    const dataDir = svc.dataDir;
    const stream = openStream(`${svc.service.httpUrl}/api/v1/events/stream`);
    try {
      await waitFor('stream open', () => stream.source.readyState === EventSource.OPEN);
      await createAlbum(svc.http, 'live');
      const png = await makePng();
      await uploadImage(svc.http, 'live', 'a.png', png);
      await uploadImage(svc.http, 'live', 'b.png', png);
      await waitFor('3 events', () => stream.events.length >= 3);
      await svc.stop();
      await waitFor('stream lost', () => stream.source.readyState !== EventSource.OPEN);
      svc = await startTestService({ dataDir, config });
      await uploadImage(svc.http, 'live', 'c.png', png);
      await svc.http.delete(albumPath('live', 'a.png')).expect(200);
      await waitFor('5 events', () => stream.events.length >= 5, 15_000);
      const { events } = await replayAll(svc, '', 1000);
      expect(stream.events.map((e) => e.id)).to.deep.equal(events.map((e) => e.sequence));
      expect(stream.events.map((e) => e.type)).to.deep.equal(events.map((e) => e.type));
      expect(stream.events.map((e) => e.event.id)).to.deep.equal(events.map((e) => e.id));
    } finally {
      stream.source.close();
      await svc.close();
      await removeDir(dataDir);
    }
  });

  it('resumes a browser\'s EventSource (headless Chromium) across a restart with Last-Event-ID, without gaps or reordering', async () => {
    const port = await freePort();
    const base = defaultConfig();
    const config: Partial<Config> = { http: { ...base.http, port }, events: { ...base.events, heartbeatMs: 200 } };
    let svc = await startTestService({ config });
    const dataDir = svc.dataDir;
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium', headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`${svc.service.httpUrl}/livez`);
      // A script string: the browser's own EventSource (a function here would be compiled against the npm one).
      await page.evaluate(`(() => {
        const got = (globalThis.got = []);
        const source = new EventSource('/api/v1/events/stream');
        for (const type of ${JSON.stringify(EVENT_TYPES)}) source.addEventListener(type, (e) => got.push({ id: e.lastEventId, type }));
      })()`);
      const received = () => page.evaluate('globalThis.got') as Promise<Array<{ id: string; type: string }>>;
      await createAlbum(svc.http, 'browser');
      await uploadImage(svc.http, 'browser', 'a.png', await makePng());
      await waitFor('2 events in the browser', async () => (await received()).length >= 2);
      await svc.stop();
      svc = await startTestService({ dataDir, config });
      await uploadImage(svc.http, 'browser', 'b.png', await makePng());
      await svc.http.delete(albumPath('browser', 'a.png')).expect(200);
      await waitFor('4 events in the browser', async () => (await received()).length >= 4, 15_000);
      const { events } = await replayAll(svc, '', 1000);
      expect((await received()).map((e) => `${e.id} ${e.type}`)).to.deep.equal(events.map((e) => `${e.sequence} ${e.type}`));
    } finally {
      await browser.close();
      await svc.close();
      await removeDir(dataDir);
    }
  });

  it('keeps a slow client to its socket buffer, and drops it once it lags too far behind', async () => {
    const base = defaultConfig();
    const svc = await startTestService({ config: { events: { ...base.events, streamMaxLag: 300 } } });
    try {
      // Long names make large events: the kernel's socket buffers (megabytes on loopback) fill sooner.
      const album = 's'.repeat(200);
      const image = `${'i'.repeat(200)}.png`;
      await createAlbum(svc.http, album);
      await uploadImage(svc.http, album, image, await makePng());
      const { port } = new URL(svc.service.httpUrl);
      const socket = net.connect(Number(port), '127.0.0.1');
      let closed = false;
      socket.on('close', () => (closed = true));
      socket.on('error', () => undefined);
      socket.write('GET /api/v1/events/stream?after=0 HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor('stream open', () => svc.service.eventStreams.size === 1);
      socket.pause(); // never reads again: its kernel buffers fill, then the service's
      let peak = 0;
      // Each download journals a fetch event of about 1 KiB; bounded loop, ended as soon as the client is dropped.
      for (let i = 0; i < 800 && !closed && svc.service.eventStreams.size > 0; i += 1) {
        await Promise.all(Array.from({ length: 16 }, () => downloadImage(svc.http, album, image)));
        peak = Math.max(peak, svc.service.eventStreams.bufferedBytes());
      }
      expect(peak, 'bytes the service holds for the slow client').to.be.below(128 * 1024);
      await waitFor('slow client dropped', () => closed || svc.service.eventStreams.size === 0, 15_000);
      socket.destroy();
    } finally {
      await svc.close();
    }
  });
});

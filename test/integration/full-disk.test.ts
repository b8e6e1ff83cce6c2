import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { InsufficientStorageError } from '../../src/errors.js';
import { buildEvent, type StoreEvent } from '../../src/notifier/events.js';
import { Outbox } from '../../src/notifier/outbox.js';
import { mountExt4, mountTmpfs, skipUnlessMounted, type Ext4, type Tmpfs } from '../helpers/disks.js';
import { makePng } from '../helpers/images.js';
import { startMosquitto } from '../helpers/mosquitto.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService } from '../helpers/service.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { waitFor } from '../helpers/wait-for.js';

const API = '/api/v1';

/** A distinct image.created event; `n` shows in the image name. */
const event = (n: number, type: StoreEvent['type'] = 'imagestore.image.created'): StoreEvent =>
  buildEvent({ type, album: 'holidays', image: `img-${n}.png`, size: n } as never, '/imagestore/test', `req-${n}`);

/** One HTTP change as the client saw it. */
interface Change {
  reqId: string;
  type: StoreEvent['type'];
  status: number;
  error?: string;
}

// Issue 12, items 3 and 13: a full disk must neither lose an acknowledged event nor answer 500,
// and a read-only one must answer 503 without naming a path. Real file systems, mounted for the
// test (root: CI runs as root), and the real service.
describe('a full or read-only disk (issue 12: items 3 and 13)', function () {
  this.timeout(120_000);

  describe('the service on a full tmpfs', () => {
    let disk: Tmpfs | undefined;
    let svc: SpawnedService | undefined;
    before(async function () {
      disk = await mountTmpfs(48 << 20);
      if (!disk) skipUnlessMounted(this, 'a tmpfs');
    });
    after(async () => {
      await svc?.stop();
      await disk?.unmount();
    });

    it('answers every change 2xx or 507 (never 500), refused changes leave nothing, downloads keep working, and every acknowledged change\'s event arrives after space returns and a crash', async () => {
      const dataDir = path.join(disk!.dir, 'data');
      // The broker is down until the end: every event waits in the journal, through the crash.
      const broker = await startMosquitto({ start: false });
      svc = await spawnService({ dataDir, env: { MQTT_URL: broker.url } });
      const changes: Change[] = [];
      const png = await makePng(32, 32);
      const send = async (type: Change['type'], method: string, url: string, body?: unknown): Promise<number> => {
        const reqId = `full-disk-${changes.length}`;
        const form = body instanceof FormData;
        const res = await fetch(`${svc!.http}${API}${url}`, {
          method, body: form ? body : body === undefined ? undefined : JSON.stringify(body),
          headers: { 'x-request-id': reqId, ...(form || body === undefined ? {} : { 'content-type': 'application/json' }) },
        });
        const text = await res.text();
        changes.push({ reqId, type, status: res.status, error: res.ok ? undefined : text });
        return res.status;
      };
      const upload = (album: string, name: string) => {
        const form = new FormData();
        form.append('file', new Blob([png], { type: 'image/png' }), name);
        return send('imagestore.image.created', 'POST', `/albums/${album}/images`, form);
      };
      const download = async (album: string, name: string) => {
        const res = await fetch(`${svc!.http}${API}/albums/${album}/images/${name}`);
        return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
      };

      expect(await send('imagestore.album.created', 'POST', '/albums', { albumName: 'photos' })).to.equal(201);
      expect(await send('imagestore.album.created', 'POST', '/albums', { albumName: 'spare' })).to.equal(201);
      for (const name of ['a.png', 'b.png', 'c.png', 'd.png']) expect(await upload('photos', name)).to.equal(201);

      await disk!.fill();
      // Changes that need space fail in the store: 507, not 500 (create), nor 415/422 (upload).
      expect(await send('imagestore.album.created', 'POST', '/albums', { albumName: 'new-1' })).to.equal(507);
      expect(await upload('photos', 'e.png')).to.equal(507);
      expect(await send('imagestore.image.renamed', 'PATCH', '/albums/photos/images/a.png', { imageName: 'a2.png' })).to.equal(507);
      // Album renames need no space, but their events do: the journal's last page fills, an
      // append finds the disk full and moves to the reserve; from then on changes are refused.
      let renames = 0;
      for (let from = 'spare'; renames < 40; renames += 1) {
        const to = from === 'spare' ? 'spare-2' : 'spare';
        const status = await send('imagestore.album.renamed', 'PATCH', `/albums/${from}`, { albumName: to });
        if (status === 507) break;
        expect(status).to.equal(200);
        from = to;
      }
      expect(renames, 'renames acknowledged before the journal ran on its reserve').to.be.within(1, 39);
      expect(svc.logs('disk full: the event journal writes into its reserve; changes are refused (507) and fetch events dropped until space is freed')).to.have.length(1);
      expect(await send('imagestore.image.deleted', 'DELETE', '/albums/photos/images/b.png')).to.equal(507);
      expect(await send('imagestore.album.created', 'POST', '/albums', { albumName: 'new-2' })).to.equal(507);
      expect(await upload('photos', 'e.png')).to.equal(507);
      for (let i = 0; i < 20; i += 1) {
        const got = await download('photos', 'c.png');
        expect(got.status, 'a download while the disk is full').to.equal(200);
        expect(got.bytes.equals(png)).to.equal(true);
      }
      const metrics = await (await fetch(`${svc.http}/metrics`)).text();
      expect(metrics).to.match(/^imagestore_outbox_degraded 1$/m);
      expect(Number(/^imagestore_events_dropped_total (\d+)$/m.exec(metrics)?.[1])).to.be.at.least(20);
      for (const refused of changes.filter((c) => c.status === 507)) {
        expect(refused.error, 'a 507 names no path').to.not.match(/\/|imagestore-tmpfs/);
      }

      // Refused changes left nothing: no album, no image, no rename, no deletion, no staged file.
      const albums = (await (await fetch(`${svc.http}${API}/albums`)).json()) as { albumList: string[] };
      expect(albums.albumList).to.include('photos').and.not.include.members(['new-1', 'new-2']);
      const images = (await (await fetch(`${svc.http}${API}/albums/photos/images`)).json()) as { imageList: string[] };
      expect(images.imageList).to.deep.equal(['a.png', 'b.png', 'c.png', 'd.png']);
      expect(await fs.readdir(path.join(dataDir, '.imagestore', 'tmp'))).to.deep.equal([]);

      // Space comes back: changes are accepted again once the journal's reserve is written again.
      await disk!.free();
      await waitFor('a change accepted after space returned', async () => (await send('imagestore.album.created', 'POST', '/albums', { albumName: 'after' })) === 201, 15_000, 200);
      expect(changes.at(-1)!.status).to.equal(201);
      expect(await upload('photos', 'f.png')).to.equal(201);
      expect(await send('imagestore.image.renamed', 'PATCH', '/albums/photos/images/c.png', { imageName: 'c2.png' })).to.equal(200);
      expect(await send('imagestore.image.deleted', 'DELETE', '/albums/photos/images/d.png')).to.equal(200);
      expect(changes.map((c) => c.status).filter((s) => s !== 507 && (s < 200 || s >= 300)), 'no answer but 2xx and 507').to.deep.equal([]);

      // A crash, then the broker comes up: every acknowledged change's event arrives, no refused one's.
      await svc.kill();
      await broker.restart();
      const recorder = await recordEvents(broker.url);
      try {
        svc = await spawnService({ dataDir, env: { MQTT_URL: broker.url } });
        const acked = changes.filter((c) => c.status >= 200 && c.status < 300);
        const byReqId = () => new Map(recorder.events.filter((e) => e.reqid).map((e) => [e.reqid!, e.type]));
        await waitFor(`events of ${acked.length} acknowledged changes`, () => acked.every((c) => byReqId().has(c.reqId)), 15_000);
        for (const c of acked) expect(byReqId().get(c.reqId), c.reqId).to.equal(c.type);
        const refused = changes.filter((c) => c.status === 507).map((c) => c.reqId);
        expect([...byReqId().keys()].filter((id) => refused.includes(id)), 'events of refused changes').to.deep.equal([]);
        expect(svc.logs('event journal: damaged, events may be lost')).to.deep.equal([]);
      } finally {
        await recorder.close();
        await svc.stop();
        svc = undefined;
        await broker.close();
      }
      expect((await fs.readdir(path.join(dataDir, '.imagestore', 'outbox'))).filter((f) => f.startsWith('meta-'))).to.deep.equal([]);
    });
  });

  describe('the event journal on a full tmpfs', () => {
    let disk: Tmpfs | undefined;
    let outbox: Outbox | undefined;
    before(async function () {
      disk = await mountTmpfs(8 << 20);
      if (!disk) skipUnlessMounted(this, 'a tmpfs');
    });
    afterEach(async () => {
      await outbox?.close();
      outbox = undefined;
      await disk?.free();
      if (disk) for (const entry of await fs.readdir(disk.dir)) await fs.rm(path.join(disk.dir, entry), { recursive: true, force: true });
    });
    after(async () => {
      await disk?.unmount();
    });

    it('writes records whole: the append that finds the disk full goes to the reserve, changes are then refused and fetches dropped until space is back, and a restart finds every event', async () => {
      const dir = path.join(disk!.dir, 'outbox');
      outbox = await Outbox.open(dir, { reserveBytes: 256 * 1024, reserveRetryMs: 0 });
      const seqs: Array<number | undefined> = [];
      for (let i = 1; i <= 3; i += 1) seqs.push(await outbox.append(event(i), true));
      await disk!.fill();
      // The first appends fill the slack of the segment's last page; one then finds the disk full.
      for (let i = 4; !outbox.degraded && i < 200; i += 1) seqs.push(await outbox.append(event(i), true));
      expect(outbox.degraded, 'degraded once the disk is full').to.equal(true);
      // Events of changes admitted before keep landing, in the reserve.
      seqs.push(await outbox.append(event(500), true));
      let refused: unknown;
      await outbox.admit().catch((err: unknown) => (refused = err));
      expect(refused).to.be.instanceOf(InsufficientStorageError);
      expect(await outbox.append(event(600, 'imagestore.image.fetched'), false)).to.equal(undefined);
      expect(outbox.dropped).to.equal(1);

      await disk!.free();
      const release = await outbox.admit(); // writes the reserve again
      expect(outbox.degraded).to.equal(false);
      seqs.push(await outbox.append(event(700), true));
      release();
      expect(seqs).to.deep.equal(Array.from({ length: seqs.length }, (_, i) => i + 1));

      await outbox.close();
      outbox = await Outbox.open(dir, { reserveBytes: 256 * 1024 });
      expect(outbox.problems).to.deep.equal([]);
      expect(outbox.peek(1000).map((r) => r.seq)).to.deep.equal(seqs);
      expect(outbox.peek(1000).at(-1)!.event.data.image).to.equal('img-700.png');
    });

    it('leaves no temporary file behind when a watermark write fails on a full disk (issue 12, low)', async () => {
      const dir = path.join(disk!.dir, 'outbox');
      outbox = await Outbox.open(dir, { reserveBytes: 64 * 1024 });
      for (let i = 1; i <= 3; i += 1) await outbox.append(event(i), true);
      await disk!.fill();
      outbox.acknowledge(2);
      await outbox.close(); // waits for the watermark write, which fails
      outbox = undefined;
      expect((await fs.readdir(dir)).filter((f) => !f.startsWith('seg-') && f !== 'reserve')).to.deep.equal([]);
    });
  });

  describe('the service on a disk the kernel remounts read-only', () => {
    let disk: Ext4 | undefined;
    before(async function () {
      disk = await mountExt4(48 << 20);
      if (!disk) skipUnlessMounted(this, 'a loop-mounted ext4');
    });
    after(async () => {
      await disk?.unmount();
    });

    it('answers changes 503 without a path, and still serves downloads', async () => {
      const service = await startTestService({ dataDir: path.join(disk!.dir, 'data') });
      const png = await makePng(24, 24);
      const { http } = service;
      try {
        await http.post(`${API}/albums`).send({ albumName: 'photos' }).expect(201);
        await http.post(`${API}/albums/photos/images`).attach('file', png, 'a.png').expect(201);
        await disk!.failReadOnly();

        const answers = {
          'create album': await http.post(`${API}/albums`).send({ albumName: 'more' }),
          upload: await http.post(`${API}/albums/photos/images`).attach('file', png, 'b.png'),
          'rename album': await http.patch(`${API}/albums/photos`).send({ albumName: 'renamed' }),
          'rename image': await http.patch(`${API}/albums/photos/images/a.png`).send({ imageName: 'a2.png' }),
          'delete image': await http.delete(`${API}/albums/photos/images/a.png`),
          'delete album': await http.delete(`${API}/albums/photos`),
        };
        for (const [what, res] of Object.entries(answers)) {
          expect(res.status, `${what}: ${res.text}`).to.equal(503);
          expect(res.body.error).to.match(/read-only/);
          expect(res.body.error, 'no internal path').to.not.match(/\/|\.imagestore|imagestore-ext4/);
          expect(res.headers['retry-after']).to.match(/^\d+$/);
        }
        const got = await http.get(`${API}/albums/photos/images/a.png`).buffer(true).parse((res, cb) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => cb(null, Buffer.concat(chunks)));
        });
        expect(got.status, 'a download from a read-only disk').to.equal(200);
        expect((got.body as Buffer).equals(png)).to.equal(true);
        const ready = await http.get('/readyz');
        expect(ready.status).to.equal(503);
        expect(JSON.stringify(ready.body)).to.not.match(/\.imagestore|imagestore-ext4/);
      } finally {
        await service.stop().catch(() => undefined);
      }
    });
  });
});

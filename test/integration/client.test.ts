import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { expect } from 'chai';
import sharp from 'sharp';
import { defaultConfig } from '../../src/config.js';
import { ApiKeys } from '../../src/security/api-keys.js';
import { ImageStoreClient, ImageStoreError, type ImportJobSummary, type StoreEvent } from '../../src/client/index.js';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { makeJpeg, makePng } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { sha256 } from '../helpers/api.js';

/** Awaits `promise` and returns what it threw (fails when it resolves). */
async function thrown(promise: Promise<unknown>): Promise<ImageStoreError> {
  try {
    await promise;
  } catch (err) {
    expect(err).to.be.instanceOf(ImageStoreError);
    return err as ImageStoreError;
  }
  throw new Error('expected a rejection');
}

/** A proxy in front of the service whose first `failures` requests fail (status + Retry-After, or a reset socket). */
interface FlakyProxy {
  url: string;
  /** Requests received, failed or forwarded. */
  seen: string[];
  close(): Promise<void>;
}

async function startFlakyProxy(target: string, failures: number, fail: { status: number; retryAfter?: string } | 'reset'): Promise<FlakyProxy> {
  const seen: string[] = [];
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (seen.length <= failures) {
      if (fail === 'reset') return req.socket.destroy();
      res.writeHead(fail.status, { 'Content-Type': 'application/json', ...(fail.retryAfter ? { 'Retry-After': fail.retryAfter } : {}) });
      return res.end(JSON.stringify({ error: `proxy says ${fail.status}` }));
    }
    const forward = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    req.pipe(forward);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A proxy in front of the service that sends the first `cuts` answers' headers and half their body, then resets the connection. */
async function startCuttingProxy(target: string, cuts: number): Promise<FlakyProxy> {
  const seen: string[] = [];
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const cut = seen.length <= cuts;
    http.get({ host: upstream.hostname, port: upstream.port, path: req.url, headers: req.headers }, async (answer) => {
      const chunks: Buffer[] = [];
      for await (const chunk of answer) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!cut) return res.end(body);
      res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A server that answers every request with `body` as JSON (a service gone wrong). */
async function startJsonServer(body: unknown): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

describe('client library against a running service', () => {
  let svc: TestService;
  let client: ImageStoreClient;
  let png: Buffer;
  let jpeg: Buffer;

  before(async () => {
    const base = defaultConfig();
    svc = await startTestService({
      config: {
        imports: { ...base.imports, allowHosts: ['127.0.0.1'], retryBaseDelayMs: 10, maxUrls: 10_001 },
        limits: { ...base.limits, maxJsonBytes: 1024 * 1024 },
        security: { ...base.security, signingSecret: 'client-test-signing-secret-0123456789' },
      },
    });
    client = new ImageStoreClient({ baseUrl: svc.service.httpUrl, mqttUrl: svc.service.mqttUrl, validateResponses: true });
    png = await makePng(32, 24);
    jpeg = await makeJpeg(20, 10);
  });
  after(async () => svc.close());

  describe('albums', () => {
    it('creates, lists (paged, with details), renames and deletes albums', async () => {
      const created = await client.createAlbum('c-one');
      expect(created.album.name).to.equal('c-one');
      await client.createAlbum('c-two');
      const page = await client.listAlbums({ limit: 1, details: true });
      expect(page.albumList).to.have.length(1);
      expect(page.albums?.[0].name).to.equal(page.albumList[0]);
      const rest = await client.listAlbums({ cursor: page.nextCursor });
      expect([...page.albumList, ...rest.albumList]).to.include.members(['c-one', 'c-two']);
      expect((await client.renameAlbum('c-two', 'c-three')).album.name).to.equal('c-three');
      expect((await client.deleteAlbum('c-three')).message).to.equal('c-three album deleted');
      expect((await client.listAlbums()).albumList).to.not.include('c-three');
    });

    it('lists every album and every image across pages; a listing that pages in a circle is an invalid_response (issue 14, item 6)', async () => {
      for (const name of ['c-all-1', 'c-all-2', 'c-all-3']) await client.createAlbum(name);
      const all = await client.listAllAlbums(2);
      expect(all).to.include.members(['c-all-1', 'c-all-2', 'c-all-3']);
      expect(all).to.deep.equal((await client.listAlbums()).albumList);
      for (const name of ['a.png', 'b.png', 'c.png']) await client.uploadImage('c-all-1', png, { name });
      expect((await client.listAllImages('c-all-1', 2)).map((i) => i.name)).to.deep.equal(['a.png', 'b.png', 'c.png']);

      const circle = await startJsonServer({ albumList: ['x'], imageList: ['y'], nextCursor: 'again' });
      try {
        const broken = new ImageStoreClient(circle.url);
        const albums = await thrown(broken.listAllAlbums());
        expect(albums).to.include({ code: 'invalid_response', status: 0 });
        expect(albums.message).to.match(/repeats cursor again/);
        // Answered without `images`, an album would look empty: refused instead.
        const images = await thrown(broken.listAllImages('x'));
        expect(images).to.include({ code: 'invalid_response' });
        expect(images.message).to.match(/no "images"/);
      } finally {
        await circle.close();
      }
    });

    it('throws ImageStoreError with status, code, the service\'s message and its request id', async () => {
      const conflict = await thrown(client.createAlbum('c-one'));
      expect(conflict).to.include({ status: 409, code: 'conflict', method: 'POST', message: 'c-one album already present' });
      expect(conflict.requestId).to.match(/^[0-9a-f-]{36}$/);
      const missing = await thrown(client.renameAlbum('c-none', 'c-x'));
      expect(missing).to.include({ status: 404, code: 'not_found' });
      const invalid = await thrown(client.createAlbum('..'));
      expect(invalid).to.include({ status: 400, code: 'validation_failed' });
    });
  });

  describe('images', () => {
    const album = 'c-images';
    let dir: string;
    before(async () => {
      await client.createAlbum(album);
      dir = await makeTmpDir('imagestore-client-');
    });
    after(async () => removeDir(dir));

    it('uploads from a Buffer, a path, a Blob, a web ReadableStream and a Node Readable', async () => {
      const file = path.join(dir, 'from-path.png');
      await fs.writeFile(file, png);
      const results = [
        await client.uploadImage(album, png, { name: 'from-buffer.png' }),
        await client.uploadImage(album, file),
        await client.uploadImage(album, new Blob([jpeg]), { name: 'from-blob.jpg' }),
        await client.uploadImage(album, new Blob([png]).stream(), { name: 'from-web-stream.png' }),
        await client.uploadImage(album, Readable.from([png.subarray(0, 7), png.subarray(7)]), { name: 'from-node-stream.png' }),
      ];
      expect(results.map((r) => r.image.name)).to.deep.equal(['from-buffer.png', 'from-path.png', 'from-blob.jpg', 'from-web-stream.png', 'from-node-stream.png']);
      expect(results.map((r) => r.image.sha256)).to.deep.equal([sha256(png), sha256(png), sha256(jpeg), sha256(png), sha256(png)]);
      const listing = await client.listImages(album, { details: true });
      expect(listing.imageList).to.have.length(5);
      expect((await client.listAllImages(album, 2)).map((i) => i.name)).to.deep.equal(listing.imageList);
    });

    it('refuses an upload without a name for nameless sources, before any request', async () => {
      let error: unknown;
      await client.uploadImage(album, png).catch((err) => (error = err));
      expect(error).to.be.instanceOf(TypeError);
      expect((error as Error).message).to.match(/options\.name/);
    });

    it('downloads byte-identical bytes, transforms, ranges, conditional GETs and by id', async () => {
      const bytes = await client.downloadImage(album, 'from-buffer.png');
      expect(Buffer.isBuffer(bytes) && bytes.equals(png)).to.equal(true);

      const webp = await client.getImage(album, 'from-buffer.png', { w: 16, format: 'webp' });
      expect(webp.contentType).to.equal('image/webp');
      expect((await sharp(await webp.bytes()).metadata()).width).to.equal(16);

      const part = await client.getImage(album, 'from-buffer.png', { range: { start: 0, end: 7 } });
      expect(part.status).to.equal(206);
      expect(Buffer.from(await part.bytes()).equals(png.subarray(0, 8))).to.equal(true);

      const full = await client.getImage(album, 'from-buffer.png');
      const chunks: Buffer[] = [];
      for await (const chunk of Readable.fromWeb(full.stream() as import('node:stream/web').ReadableStream)) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).equals(png)).to.equal(true);
      const again = await client.getImage(album, 'from-buffer.png', { ifNoneMatch: full.etag });
      expect(again).to.include({ status: 304, notModified: true });

      const meta = await client.getImageMetadata(album, 'from-blob.jpg');
      expect(meta).to.include({ width: 20, height: 10, type: 'image/jpeg', sha256: sha256(jpeg) });
      const byId = await client.getImageById(`${meta.id}.png`);
      expect(byId.contentType).to.equal('image/png');
      expect((await sharp(await byId.bytes()).metadata()).format).to.equal('png');
    });

    it('renames and deletes images', async () => {
      expect((await client.renameImage(album, 'from-path.png', 'renamed.png')).image.name).to.equal('renamed.png');
      expect((await client.deleteImage(album, 'renamed.png')).image.name).to.equal('renamed.png');
      expect(await thrown(client.getImageMetadata(album, 'renamed.png'))).to.include({ status: 404, code: 'not_found' });
    });

    it('reports upload and transform errors with their statuses', async () => {
      const notImage = await thrown(client.uploadImage(album, Buffer.from('just text'), { name: 'notes.png' }));
      expect(notImage).to.include({ status: 415, code: 'unsupported_media_type' });
      const badTransform = await thrown(client.getImage(album, 'from-buffer.png', { w: 0 }));
      expect(badTransform).to.include({ status: 400, code: 'validation_failed' });
      expect(badTransform.message).to.match(/\bw\b/);
    });

    it('compares stored and uploaded images', async () => {
      const same = await client.diffStored(`${album}/from-buffer.png`, { album, image: 'from-web-stream.png' });
      expect(same).to.include({ differentPixels: 0, width: 32, height: 24 });
      const other = await makePng(32, 24, { r: 10, g: 200, b: 10 });
      const changed = await client.diffUploaded(png, other);
      expect(changed.differentPixels).to.equal(32 * 24);
      const picture = await client.diffUploadedPicture(png, other, 'png');
      expect((await sharp(picture).metadata()).format).to.equal('png');
      const stored = await client.diffStoredPicture(`${album}/from-buffer.png`, `${album}/from-node-stream.png`, 'side-by-side');
      expect((await sharp(stored).metadata()).format).to.equal('png');
    });
  });

  describe('import jobs', () => {
    let images: ImageServer;
    before(async () => {
      images = await startImageServer();
      await client.createAlbum('c-imports');
    });
    after(async () => images.close());

    it('creates a job and waits for it, reporting progress', async () => {
      const job = await client.createImport('c-imports', [`${images.url}/red/r.png`, `${images.url}/blue/b.jpg`, `${images.url}/missing/m.png`]);
      expect(job.items.map((i) => i.url)).to.have.length(3);
      const seen: ImportJobSummary[] = [];
      const done = await client.waitForJob(job.id, { intervalMs: 50, timeoutMs: 15_000, onProgress: (j) => seen.push(j) });
      expect(done.state).to.equal('done');
      expect(done.counts).to.include({ stored: 2, failed: 1 });
      expect(done.items.find((i) => i.url.endsWith('/r.png'))?.image?.name).to.equal('r.png');
      expect(done.items.find((i) => i.url.endsWith('/m.png'))?.error).to.be.a('string');
      expect(seen.length).to.be.greaterThan(0);
      expect(seen.at(-1)?.state).to.equal('done');
      expect((await client.getImport(job.id)).counts.stored).to.equal(2);
      expect((await client.listImports()).map((j) => j.id)).to.include(job.id);
      expect(Buffer.from(await client.downloadImage('c-imports', 'r.png')).equals(images.red)).to.equal(true);
    });

    it('reads every page of a big job\'s items; the list has no items (gh-12 item 14)', async () => {
      const urls = Array.from({ length: 10_001 }, (_, i) => `${images.url}/hang/client-big/${i}.png`);
      const created = await client.createImport('c-imports', urls);
      expect([created.total, created.items.length]).to.deep.equal([10_001, 1000]);
      await client.cancelImport(created.id);
      images.release('client-big');
      const job = await client.getImport(created.id);
      expect(job.items.map((i) => i.url)).to.deep.equal(urls);
      expect(job).to.not.have.property('nextOffset');
      const listed = (await client.listImports()).find((j) => j.id === created.id);
      expect(listed).to.include({ total: 10_001, state: 'cancelled' }).and.not.have.property('items');
    });

    it('cancels a running job, and gives up waiting after timeoutMs', async () => {
      const job = await client.createImport('c-imports', [`${images.url}/hang/client-cancel/h.png`]);
      const timeout = await thrown(client.waitForJob(job.id, { intervalMs: 50, timeoutMs: 300 }));
      expect(timeout).to.include({ code: 'timeout', status: 0 });
      const cancelled = await client.cancelImport(job.id);
      expect(cancelled.state).to.equal('cancelled');
      images.release('client-cancel');
      expect((await client.waitForJob(job.id, { intervalMs: 50, timeoutMs: 5000 })).state).to.equal('cancelled');
      expect(await thrown(client.getImport('no-such-job'))).to.include({ status: 404 });
    });
  });

  describe('service operations', () => {
    it('answers health, readiness, metrics, fsck, signed URLs and the API documents', async () => {
      expect(await client.livez()).to.deep.equal({ status: 'ok', version: 'test' });
      expect(await client.readyz()).to.include({ ready: true, status: 'ok' });
      expect(await client.metrics()).to.match(/^# HELP /m);
      const report = await client.fsck({ verify: true });
      expect(report.problems).to.deep.equal([]);
      expect(report.albums).to.be.a('number');
      const signed = await client.signUrl({ path: '/api/v1/albums/c-images/images/from-buffer.png?w=8', expiresInSeconds: 60 });
      expect(signed.url).to.match(/^\/api\/v1\/albums\/c-images\/images\/from-buffer\.png\?.*sig=/);
      expect((await client.getOpenApi()).openapi).to.equal('3.1.0');
      expect(String((await client.getAsyncApi()).asyncapi)).to.match(/^3\./);
    });
  });

  describe('events()', () => {
    it('yields typed events, filtered by album and type, and closes when the loop ends', async () => {
      const stream = client.events({ filter: { album: 'c-events', types: ['imagestore.image.*'] } });
      await stream.ready;
      await client.createAlbum('c-events');
      await client.createAlbum('c-events-other');
      await client.uploadImage('c-events-other', png, { name: 'other.png' });
      await client.uploadImage('c-events', png, { name: 'e.png' });
      await client.deleteImage('c-events', 'e.png');
      const got: StoreEvent[] = [];
      for await (const event of stream) {
        got.push(event);
        if (got.length === 2) break;
      }
      expect(got.map((e) => [e.type, e.data.album, e.data.image])).to.deep.equal([
        ['imagestore.image.created', 'c-events', 'e.png'],
        ['imagestore.image.deleted', 'c-events', 'e.png'],
      ]);
      expect(got[0].data.message).to.equal('e.png image added to album c-events');
      expect(got[0].specversion).to.equal('1.0');
    });

    it('rejects `ready` when the broker cannot be reached', async () => {
      const nowhere = new ImageStoreClient({ baseUrl: svc.service.httpUrl, mqttUrl: 'mqtt://127.0.0.1:1' });
      const stream = nowhere.events({ connectTimeoutMs: 2000 });
      expect(await thrown(stream.ready)).to.include({ code: 'network_error', status: 0 });
      await stream.close();
    });
  });

  describe('retries', () => {
    const fast = { retries: 3, retryBaseDelayMs: 5 };

    it('retries GET after 503s and succeeds, but never retries POST', async () => {
      const proxy = await startFlakyProxy(svc.service.httpUrl, 2, { status: 503, retryAfter: '0' });
      try {
        const viaProxy = new ImageStoreClient({ baseUrl: proxy.url, ...fast });
        expect(await viaProxy.listAlbums()).to.deep.equal(await client.listAlbums());
        expect(proxy.seen).to.deep.equal(['GET /api/v1/albums', 'GET /api/v1/albums', 'GET /api/v1/albums']);

        proxy.seen.length = 0;
        const fresh = await startFlakyProxy(svc.service.httpUrl, 1, { status: 503 });
        try {
          const post = await thrown(new ImageStoreClient({ baseUrl: fresh.url, ...fast }).createAlbum('c-never'));
          expect(post).to.include({ status: 503, code: 'unavailable', attempts: 1, message: 'proxy says 503' });
          expect(fresh.seen).to.deep.equal(['POST /api/v1/albums']);
        } finally {
          await fresh.close();
        }
      } finally {
        await proxy.close();
      }
    });

    it('retries idempotent calls after a reset connection, and gives up after `retries`', async () => {
      const proxy = await startFlakyProxy(svc.service.httpUrl, 1, 'reset');
      try {
        expect((await new ImageStoreClient({ baseUrl: proxy.url, ...fast }).livez()).status).to.equal('ok');
        expect(proxy.seen).to.have.length(2);
      } finally {
        await proxy.close();
      }
      const always = await startFlakyProxy(svc.service.httpUrl, 100, { status: 502 });
      try {
        const error = await thrown(new ImageStoreClient({ baseUrl: always.url, ...fast, retries: 2 }).deleteImage('a', 'b'));
        expect(error).to.include({ status: 502, code: 'bad_gateway', attempts: 3 });
        expect(always.seen).to.have.length(3);
      } finally {
        await always.close();
      }
    });

    it('honours Retry-After, and does not wait when it asks for more than maxRetryDelayMs', async () => {
      const proxy = await startFlakyProxy(svc.service.httpUrl, 1, { status: 429, retryAfter: '1' });
      try {
        const started = Date.now();
        await new ImageStoreClient({ baseUrl: proxy.url, ...fast }).livez();
        expect(Date.now() - started).to.be.at.least(950);
        expect(proxy.seen).to.have.length(2);
      } finally {
        await proxy.close();
      }
      const patient = await startFlakyProxy(svc.service.httpUrl, 1, { status: 503, retryAfter: '30' });
      try {
        const started = Date.now();
        const error = await thrown(new ImageStoreClient({ baseUrl: patient.url, ...fast, maxRetryDelayMs: 2000 }).livez());
        expect(error).to.include({ status: 503, retryAfterSeconds: 30, attempts: 1 });
        expect(Date.now() - started).to.be.below(1000);
      } finally {
        await patient.close();
      }
    });

    it('retries the statuses retryStatus names, and only those', async () => {
      const proxy = await startFlakyProxy(svc.service.httpUrl, 2, { status: 500 });
      try {
        expect(await thrown(new ImageStoreClient({ baseUrl: proxy.url, ...fast }).livez())).to.include({ status: 500, attempts: 1 });
        const patient = new ImageStoreClient({ baseUrl: proxy.url, ...fast, retryStatus: (status) => status >= 500 });
        expect((await patient.livez()).status).to.equal('ok');
        expect(proxy.seen).to.have.length(3);
      } finally {
        await proxy.close();
      }
    });

    it('readImage downloads again when the body breaks off, or when the reader\'s error is one retryRead accepts (issue 14, item 6)', async () => {
      const album = 'c-read';
      await client.createAlbum(album);
      await client.uploadImage(album, png, { name: 'a.png' });
      const bytes = async (d: { bytes(): Promise<Uint8Array> }) => Buffer.from(await d.bytes());

      const cutting = await startCuttingProxy(svc.service.httpUrl, 1);
      try {
        const viaProxy = new ImageStoreClient({ baseUrl: cutting.url, ...fast });
        expect(Buffer.compare(await viaProxy.readImage(album, 'a.png', bytes), png)).to.equal(0);
        expect(cutting.seen).to.have.length(2);
      } finally {
        await cutting.close();
      }
      const always = await startCuttingProxy(svc.service.httpUrl, 100);
      try {
        const error = await thrown(new ImageStoreClient({ baseUrl: always.url, ...fast, retries: 1 }).readImage(album, 'a.png', bytes));
        expect(error).to.include({ code: 'network_error', status: 0 });
        expect(always.seen).to.have.length(2);
      } finally {
        await always.close();
      }

      class Mismatch extends Error {}
      let reads = 0;
      const picky = async (d: { bytes(): Promise<Uint8Array> }) => {
        const body = await bytes(d);
        reads += 1;
        if (reads === 1) throw new Mismatch('not what the ETag said');
        return body;
      };
      const direct = new ImageStoreClient({ baseUrl: svc.service.httpUrl, ...fast });
      expect(Buffer.compare(await direct.readImage(album, 'a.png', picky, { retryRead: (err) => err instanceof Mismatch }), png)).to.equal(0);
      expect(reads).to.equal(2);
      reads = 0;
      const refused = await direct.readImage(album, 'a.png', picky).then(() => undefined, (err: unknown) => err);
      expect(refused).to.be.instanceOf(Mismatch);
      expect(reads).to.equal(1);
      expect(await thrown(direct.readImage(album, 'none.png', bytes))).to.include({ status: 404, attempts: 1 });
    });

    it('does not retry answers that will not change (404)', async () => {
      const proxy = await startFlakyProxy(svc.service.httpUrl, 0, { status: 503 });
      try {
        await thrown(new ImageStoreClient({ baseUrl: proxy.url, ...fast }).getImageMetadata('c-none', 'x.png'));
        expect(proxy.seen).to.have.length(1);
      } finally {
        await proxy.close();
      }
    });

    it('times out waiting for an answer after timeoutMs (code timeout), and is aborted by a signal', async () => {
      const silent = http.createServer(() => undefined).listen(0, '127.0.0.1');
      await once(silent, 'listening');
      const baseUrl = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      try {
        const started = Date.now();
        const error = await thrown(new ImageStoreClient({ baseUrl, timeoutMs: 200, retries: 0 }).livez());
        expect(error).to.include({ status: 0, code: 'timeout' });
        expect(Date.now() - started).to.be.within(150, 3000);
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 100);
        expect(await thrown(new ImageStoreClient({ baseUrl, retries: 0 }).livez(controller.signal))).to.include({ code: 'aborted' });
      } finally {
        silent.closeAllConnections();
        await new Promise((resolve) => silent.close(resolve));
      }
    });

    it('reports a refused connection as network_error with status 0', async () => {
      const closed = http.createServer().listen(0, '127.0.0.1');
      await once(closed, 'listening');
      const { port } = closed.address() as AddressInfo;
      await new Promise((resolve) => closed.close(resolve));
      const error = await thrown(new ImageStoreClient({ baseUrl: `http://127.0.0.1:${port}`, ...fast, retries: 1 }).livez());
      expect(error).to.include({ status: 0, code: 'network_error', attempts: 2 });
      expect(error.message).to.match(/ECONNREFUSED/);
    });
  });
});

describe('client library with API keys', () => {
  const ADMIN = 'admin-key-for-client-tests-0001';
  const READ = 'read-key-for-client-tests-00001';
  let svc: TestService;

  before(async () => {
    const base = defaultConfig();
    svc = await startTestService({ config: { security: { ...base.security, apiKeys: ApiKeys.parse(`admin:${ADMIN},read:${READ}`, undefined).keys } } });
  });
  after(async () => svc.close());

  const as = (apiKey?: string) => new ImageStoreClient({ baseUrl: svc.service.httpUrl, mqttUrl: svc.service.mqttUrl, apiKey, retries: 0 });

  it('sends the key as a Bearer token: 401 without, 403 for a role too low, success with the right role', async () => {
    expect(await thrown(as().listAlbums())).to.include({ status: 401, code: 'unauthorized' });
    expect(await thrown(as('wrong-key-0123456789abcdef').listAlbums())).to.include({ status: 401, message: 'the API key is not valid' });
    expect((await as(READ).listAlbums()).albumList).to.deep.equal([]);
    const forbidden = await thrown(as(READ).createAlbum('k-album'));
    expect(forbidden).to.include({ status: 403, code: 'forbidden' });
    expect(forbidden.message).to.match(/needs the write role/);
    await as(ADMIN).createAlbum('k-album');
    expect((await as(ADMIN).fsck()).albums).to.equal(1);
    expect((await as(READ).livez()).status).to.equal('ok');
  });

  it('subscribes to events with the key as the MQTT password, and is refused without one', async () => {
    const stream = as(READ).events({ filter: { album: 'k-events' } });
    await stream.ready;
    await as(ADMIN).createAlbum('k-events');
    const first = await stream[Symbol.asyncIterator]().next();
    expect(first.value?.type).to.equal('imagestore.album.created');
    await stream.close();

    const refused = as().events({ connectTimeoutMs: 3000 });
    expect(await thrown(refused.ready)).to.include({ code: 'unauthorized' });
    await refused.close();
  });
});

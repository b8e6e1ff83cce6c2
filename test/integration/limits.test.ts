import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig, type Config } from '../../src/config.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makePng, pngOfSize } from '../helpers/images.js';
import { waitFor } from '../helpers/wait-for.js';

// Limits against abuse: slow clients are disconnected, uploads are capped,
// bodies are bounded. Slow clients are simulated with raw sockets (node:net)
// so that bytes go out exactly when the test says.

const API = '/api/v1';
const BOUNDARY = 'limits-boundary-x81Qz';
const HEADERS_TIMEOUT_MS = 500;
const REQUEST_TIMEOUT_MS = 1500;
/**
 * Node enforces both timeouts in a periodic sweep of its connections (the
 * service sweeps at least every second), so a connection is closed between
 * the timeout and the timeout plus one sweep; allow some scheduling slack on top.
 */
const SWEEP_MARGIN_MS = 1000 + 500;

/** A raw client connection that records what it receives and when it was closed. */
interface RawClient {
  socket: net.Socket;
  received(): string;
  /** Resolves with the ms from connection to close. */
  closed: Promise<number>;
}

async function connect(baseUrl: string): Promise<RawClient> {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  const started = Date.now();
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  socket.on('error', () => undefined); // a reset by the server is one of the outcomes under test
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  return { socket, received: () => data, closed };
}

/** Waits for `closed`, failing after `ms`, and destroys the socket in any case. */
async function closedWithin(client: RawClient, ms: number, what: string): Promise<number> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms)));
  try {
    return await Promise.race([client.closed, timeout]);
  } finally {
    clearTimeout(timer);
    client.socket.destroy();
  }
}

function multipartBody(filename: string, data: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

function uploadHead(album: string, length: number): string {
  return `POST ${API}/albums/${album}/images HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
}

const statusOf = (raw: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(raw)?.[1] ?? 0);
const bodyOf = (raw: string) => raw.slice(raw.indexOf('\r\n\r\n') + 4);

describe('limits: timeouts, upload cap and body sizes', function () {
  this.timeout(30_000);
  let svc: TestService;
  const base = defaultConfig();
  const config: Partial<Config> = {
    http: { ...base.http, headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS },
    limits: { maxUploadBytes: 64 * 1024, maxJsonBytes: 256, maxConcurrentUploads: 2 },
  };

  before(async () => {
    svc = await startTestService({ config });
    await svc.http.post(`${API}/albums`).send({ albumName: 'a' }).expect(201);
    await svc.http.post(`${API}/albums/a/images`).attach('file', await makePng(), 'x.png').expect(201);
  });
  after(async () => svc.close());

  const stagingDir = () => path.join(svc.dataDir, '.imagestore', 'tmp');
  const staged = async () => (await fs.readdir(stagingDir())).length;
  const healthy = async () => svc.http.get('/livez').expect(200);

  describe('slow clients', () => {
    it(`disconnects a client that sends only part of its headers after HEADERS_TIMEOUT_MS (${HEADERS_TIMEOUT_MS} ms)`, async () => {
      const client = await connect(svc.service.httpUrl);
      client.socket.write(`GET ${API}/albums HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
      await healthy(); // others are served meanwhile
      const ms = await closedWithin(client, HEADERS_TIMEOUT_MS + SWEEP_MARGIN_MS + 1000, 'partial headers');
      expect(ms).to.be.within(HEADERS_TIMEOUT_MS - 50, HEADERS_TIMEOUT_MS + SWEEP_MARGIN_MS);
      const answer = client.received();
      // Closed silently, or answered by the server's clientError handler with a JSON 408.
      if (answer !== '') {
        expect(answer).to.match(/^HTTP\/1\.1 408 Request Timeout\r\n/);
        expect(JSON.parse(answer.split('\r\n\r\n')[1])).to.have.property('error').that.matches(/^Request Timeout/);
      }
    });

    it('disconnects a slowloris client that keeps sending header bytes', async () => {
      const client = await connect(svc.service.httpUrl);
      client.socket.write(`GET ${API}/albums HTTP/1.1\r\nHost: 127.0.0.1\r\n`);
      const drip = setInterval(() => client.socket.writable && client.socket.write('X-a: b\r\n'), 100);
      try {
        const ms = await closedWithin(client, HEADERS_TIMEOUT_MS + SWEEP_MARGIN_MS + 1000, 'dripped headers');
        expect(ms).to.be.within(HEADERS_TIMEOUT_MS - 50, HEADERS_TIMEOUT_MS + SWEEP_MARGIN_MS);
      } finally {
        clearInterval(drip);
      }
      await healthy();
    });

    it(`answers 408 or closes when an upload body trickles past REQUEST_TIMEOUT_MS (${REQUEST_TIMEOUT_MS} ms), and drops the staged part`, async () => {
      const body = multipartBody('slow.png', await pngOfSize(10_000));
      const client = await connect(svc.service.httpUrl);
      client.socket.write(uploadHead('a', body.length));
      client.socket.write(body.subarray(0, 300));
      let sent = 300;
      const drip = setInterval(() => {
        if (client.socket.writable && sent < body.length) client.socket.write(body.subarray(sent, (sent += 20)));
      }, 100);
      try {
        await waitFor('the upload to be staged', async () => (await staged()) > 0, 1000);
        const ms = await closedWithin(client, REQUEST_TIMEOUT_MS + SWEEP_MARGIN_MS + 1000, 'trickled body');
        expect(ms).to.be.within(REQUEST_TIMEOUT_MS - 50, REQUEST_TIMEOUT_MS + SWEEP_MARGIN_MS);
      } finally {
        clearInterval(drip);
      }
      expect([0, 408], client.received()).to.include(statusOf(client.received()));
      await waitFor('an empty staging dir', async () => (await staged()) === 0, 3000);
      await healthy();
      expect((await svc.http.get(`${API}/albums/a/images`).expect(200)).body.imageList).to.deep.equal(['x.png']);
    });

    it('answers 408 or closes when a JSON body trickles past REQUEST_TIMEOUT_MS', async () => {
      const json = JSON.stringify({ albumName: 'never-created' });
      const client = await connect(svc.service.httpUrl);
      client.socket.write(`POST ${API}/albums HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n`);
      let sent = 0;
      const drip = setInterval(() => client.socket.writable && sent < json.length && client.socket.write(json[sent++]), 150);
      try {
        const ms = await closedWithin(client, REQUEST_TIMEOUT_MS + SWEEP_MARGIN_MS + 1000, 'trickled JSON');
        expect(ms).to.be.within(REQUEST_TIMEOUT_MS - 50, REQUEST_TIMEOUT_MS + SWEEP_MARGIN_MS);
      } finally {
        clearInterval(drip);
      }
      expect([0, 408], client.received()).to.include(statusOf(client.received()));
      expect((await svc.http.get(`${API}/albums`).expect(200)).body.albumList).to.not.include('never-created');
    });
  });

  describe('concurrent upload cap (maxConcurrentUploads: 2)', () => {
    it('answers a third upload 503 with Retry-After while two are in progress; both finish with 201', async () => {
      const bodies = [multipartBody('slow-1.png', await pngOfSize(20_000)), multipartBody('slow-2.png', await pngOfSize(20_001))];
      const clients = await Promise.all(bodies.map(() => connect(svc.service.httpUrl)));
      bodies.forEach((body, i) => {
        clients[i].socket.write(uploadHead('a', body.length));
        clients[i].socket.write(body.subarray(0, 5000));
      });
      await waitFor('two staged uploads', async () => (await staged()) === 2, 1000);

      const third = await svc.http.post(`${API}/albums/a/images`).attach('file', await makePng(), 'third.png');
      expect(third.status).to.equal(503);
      expect(third.headers['retry-after']).to.match(/^\d+$/);
      expect(third.body.error).to.match(/too many uploads in progress \(limit 2\)/);
      await healthy(); // other routes are not capped
      await svc.http.get(`${API}/albums/a/images/x.png`).expect(200);

      bodies.forEach((body, i) => clients[i].socket.write(body.subarray(5000)));
      for (const client of clients) await closedWithin(client, 3000, 'finished upload');
      expect(clients.map((c) => statusOf(c.received()))).to.deep.equal([201, 201]);
      expect(JSON.parse(bodyOf(clients[0].received())).image.name).to.equal('slow-1.png');

      // The slots are free again.
      const png = await makePng();
      const again = await Promise.all(['free-1.png', 'free-2.png'].map((n) => svc.http.post(`${API}/albums/a/images`).attach('file', png, n)));
      expect(again.map((r) => r.status)).to.deep.equal([201, 201]);
    });

    it('frees the slots of uploads whose clients went away', async () => {
      const clients = await Promise.all([0, 1].map(() => connect(svc.service.httpUrl)));
      for (const client of clients) {
        client.socket.write(uploadHead('a', 30_000));
        client.socket.write(multipartBody('gone.png', await pngOfSize(10_000)).subarray(0, 5000));
      }
      await waitFor('two staged uploads', async () => (await staged()) === 2, 1000);
      for (const client of clients) client.socket.destroy();
      await waitFor('an empty staging dir', async () => (await staged()) === 0, 3000);
      const png = await makePng();
      const after = await Promise.all(['back-1.png', 'back-2.png'].map((n) => svc.http.post(`${API}/albums/a/images`).attach('file', png, n)));
      expect(after.map((r) => r.status)).to.deep.equal([201, 201]);
    });
  });

  describe('body size limits', () => {
    const jsonRoutes: Array<[string, string, string]> = [
      ['POST', `${API}/albums`, 'albumName'],
      ['PATCH', `${API}/albums/a`, 'albumName'],
      ['PATCH', `${API}/albums/a/images/x.png`, 'imageName'],
    ];

    for (const [method, route, field] of jsonRoutes) {
      it(`${method} ${route}: a JSON body over maxJsonBytes (256) is a 413, with or without Content-Length`, async () => {
        const big = JSON.stringify({ [field]: 'x'.repeat(300) });
        const req = method === 'POST' ? svc.http.post(route) : svc.http.patch(route);
        const res = await req.set('Content-Type', 'application/json').send(big);
        expect(res.status).to.equal(413);
        expect(res.body).to.deep.equal({ error: 'body larger than the limit of 256 bytes' });

        // Chunked: no length announced up front, the limit is enforced while reading.
        const client = await connect(svc.service.httpUrl);
        const chunk = Buffer.from(big);
        client.socket.write(`${method} ${route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`);
        client.socket.write(`${chunk.length.toString(16)}\r\n`);
        client.socket.write(chunk);
        client.socket.write('\r\n0\r\n\r\n');
        await closedWithin(client, 3000, 'chunked JSON');
        expect(statusOf(client.received()), client.received()).to.equal(413);
        expect(JSON.parse(bodyOf(client.received()))).to.have.property('error');
      });
    }

    it('accepts a JSON body of exactly maxJsonBytes', async () => {
      const skeleton = JSON.stringify({ albumName: '' });
      const name = 'n'.repeat(256 - skeleton.length);
      await svc.http.post(`${API}/albums`).set('Content-Type', 'application/json').send(JSON.stringify({ albumName: name })).expect(201);
    });

    it('stops an upload over maxUploadBytes with 413 and keeps nothing of it', async () => {
      const res = await svc.http.post(`${API}/albums/a/images`).attach('file', await pngOfSize(200 * 1024), 'huge.png');
      expect(res.status).to.equal(413);
      expect(res.body.error).to.match(/larger than the limit of 65536 bytes/);
      await waitFor('an empty staging dir', async () => (await staged()) === 0, 3000);
      await svc.http.get(`${API}/albums/a/images/huge.png`).expect(404);
      const ok = await svc.http.post(`${API}/albums/a/images`).attach('file', await pngOfSize(60 * 1024), 'fits.png');
      expect(ok.status).to.equal(201);
    });
  });
});

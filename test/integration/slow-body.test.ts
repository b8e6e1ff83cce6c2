import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig, type Config } from '../../src/config.js';
import { makePng, pngOfSize } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait-for.js';

// Issue 12, item 10: 32 connections trickling a byte every 15 s held every upload slot for up
// to REQUEST_TIMEOUT_MS (300 s). A body must arrive at MIN_BODY_BYTES_PER_SECOND over every
// MIN_BODY_RATE_WINDOW_MS. Here: 1024 B/s over 2 s, with a request timeout of 60 s, so a
// connection cut off within seconds was cut off by the rate, not the timeout.

const API = '/api/v1';
const BOUNDARY = 'slow-body-boundary-4Hc9';
const MIN_RATE = 1024;
const WINDOW_MS = 2000;
/** The window, the check's own tick, and slack for a loaded machine. */
const CUT_OFF_WITHIN_MS = WINDOW_MS + 6000;

interface RawClient {
  socket: net.Socket;
  received(): string;
  closed: Promise<void>;
  isClosed(): boolean;
}

async function connect(baseUrl: string): Promise<RawClient> {
  const { hostname, port } = new URL(baseUrl);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let data = '';
  let closed = false;
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  socket.on('error', () => undefined); // a reset is one of the accepted outcomes
  return { socket, received: () => data, closed: new Promise((resolve) => socket.once('close', () => resolve((closed = true) && undefined))), isClosed: () => closed };
}

/** Sends `head` and the first `first` bytes of `body`, then one byte every `everyMs` (well below the minimum rate). */
function trickle(client: RawClient, head: string, body: Buffer, first: number, everyMs: number): () => void {
  client.socket.write(head);
  client.socket.write(body.subarray(0, first));
  let sent = first;
  const timer = setInterval(() => {
    if (client.socket.writable && sent < body.length) client.socket.write(body.subarray(sent, (sent += 1)));
  }, everyMs);
  return () => clearInterval(timer);
}

async function closedWithin(client: RawClient, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still open after ${ms} ms`)), ms)));
  try {
    await Promise.race([client.closed, timeout]);
  } finally {
    clearTimeout(timer);
    client.socket.destroy();
  }
}

function multipartBody(filename: string, data: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: image/png\r\n\r\n`),
    data,
    Buffer.from(`\r\n--${BOUNDARY}--\r\n`),
  ]);
}

function uploadHead(length: number): string {
  return `POST ${API}/albums/a/images HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;
}

/** The answer of a cut-off client: nothing (closed), or a JSON 408 saying why. */
function expectCutOff(client: RawClient): void {
  const raw = client.received();
  if (raw === '') return;
  expect(raw, raw).to.match(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4))).to.deep.equal({
    error: `the request body arrived slower than ${MIN_RATE} bytes per second over ${WINDOW_MS / 1000} s`,
  });
}

describe('slow request bodies are cut off below MIN_BODY_BYTES_PER_SECOND (issue 12, item 10)', function () {
  this.timeout(40_000);
  let svc: TestService;
  let png: Buffer;
  const base = defaultConfig();
  const config: Partial<Config> = {
    http: { ...base.http, requestTimeoutMs: 60_000, minBodyBytesPerSecond: MIN_RATE, minBodyRateWindowMs: WINDOW_MS },
    limits: { maxUploadBytes: 256 * 1024, maxJsonBytes: 16 * 1024, maxConcurrentUploads: 2 },
  };
  const staged = async () => (await fs.readdir(path.join(svc.dataDir, '.imagestore', 'tmp'))).length;
  const upload = (name: string) => svc.http.post(`${API}/albums/a/images`).attach('file', png, name);

  before(async () => {
    svc = await startTestService({ config });
    png = await makePng();
    await svc.http.post(`${API}/albums`).send({ albumName: 'a' }).expect(201);
  });
  after(async () => svc.close());

  it('cuts off an upload trickling a byte every 200 ms with 408 (or a close), frees its slot and staged file; a normal upload works meanwhile', async () => {
    const body = multipartBody('trickled.png', await pngOfSize(20_000));
    const client = await connect(svc.service.httpUrl);
    const started = Date.now();
    const stop = trickle(client, uploadHead(body.length), body, 300, 200);
    try {
      await waitFor('the trickled upload to be staged', async () => (await staged()) === 1, 3000);
      expect((await upload('meanwhile.png')).status).to.equal(201);
      expect(client.isClosed(), 'the trickler is still being served').to.equal(false);
      await closedWithin(client, CUT_OFF_WITHIN_MS, 'trickled upload');
    } finally {
      stop();
    }
    expect(Date.now() - started, 'cut off by the rate, long before REQUEST_TIMEOUT_MS').to.be.below(CUT_OFF_WITHIN_MS + 3000);
    expectCutOff(client);
    await waitFor('an empty staging dir', async () => (await staged()) === 0, 3000);
    const list = await svc.http.get(`${API}/albums/a/images`).expect(200);
    expect(list.body.imageList).to.deep.equal(['meanwhile.png']);
  });

  it('gives the slots back: two tricklers holding both slots (503 for others) are cut off, then uploads succeed', async () => {
    const clients = await Promise.all([0, 1].map(() => connect(svc.service.httpUrl)));
    const stops = clients.map((client, i) => {
      const body = multipartBody(`hog-${i}.png`, Buffer.alloc(20_000, 7));
      return trickle(client, uploadHead(body.length), body, 300, 200);
    });
    try {
      await waitFor('two staged uploads', async () => (await staged()) === 2, 3000);
      const refused = await upload('refused.png');
      expect(refused.status, JSON.stringify(refused.body)).to.equal(503);
      for (const client of clients) await closedWithin(client, CUT_OFF_WITHIN_MS, 'slot hog');
    } finally {
      stops.forEach((stop) => stop());
    }
    clients.forEach(expectCutOff);
    await waitFor('an empty staging dir', async () => (await staged()) === 0, 3000);
    const again = await Promise.all(['after-1.png', 'after-2.png'].map(upload));
    expect(again.map((r) => r.status)).to.deep.equal([201, 201]);
  });

  it('cuts off a trickled JSON body too, and creates nothing', async () => {
    const json = Buffer.from(JSON.stringify({ albumName: 'trickled-album', padding: 'p'.repeat(2000) }));
    const client = await connect(svc.service.httpUrl);
    const head = `POST ${API}/albums HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\n\r\n`;
    const stop = trickle(client, head, json, 10, 200);
    try {
      await closedWithin(client, CUT_OFF_WITHIN_MS, 'trickled JSON');
    } finally {
      stop();
    }
    expectCutOff(client);
    expect((await svc.http.get(`${API}/albums`).expect(200)).body.albumList).to.deep.equal(['a']);
  });

  it('lets a body that is slow but above the minimum finish, however long it takes', async () => {
    const body = multipartBody('steady.png', await pngOfSize(24_000));
    const client = await connect(svc.service.httpUrl);
    client.socket.write(uploadHead(body.length));
    // 4 KiB/s, four times the minimum, for about 6 s: three windows.
    let sent = 0;
    const timer = setInterval(() => {
      if (client.socket.writable && sent < body.length) client.socket.write(body.subarray(sent, (sent += 512)));
    }, 125);
    try {
      await closedWithin(client, 20_000, 'steady upload');
    } finally {
      clearInterval(timer);
    }
    expect(client.received()).to.match(/^HTTP\/1\.1 201 /);
  });
});

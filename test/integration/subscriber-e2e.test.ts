import { promises as fs } from 'node:fs';
import http from 'node:http';
import { expect } from 'chai';
import supertest from 'supertest';
import { Layout } from '../../src/albums/layout.js';
import { spawnSubscriber, type SpawnedSubscriber } from '../../subscriber/test/helpers.js';
import { makePng } from '../helpers/images.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/** Waits until the subscriber has printed `count` lines on stdout; returns them. */
const lines = (sub: SpawnedSubscriber, count: number) =>
  waitFor(`${count} stdout line(s) (got ${sub.stdout.length}: ${sub.stdout.join(' | ')})`, () => sub.stdout.length >= count && [...sub.stdout], 10_000);

const TIME = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';

/**
 * Sends a multipart upload whose body is written in two parts: the first half now, the rest
 * when `finish()` is called. Resolves `response` with the status and parsed body.
 */
function slowUpload(baseUrl: string, album: string, name: string, file: Buffer) {
  const boundary = 'imagestore-test-boundary';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/png\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const body = Buffer.concat([head, file, tail]);
  const half = head.length + Math.floor(file.length / 2);
  const req = http.request(`${baseUrl}/api/v1/albums/${album}/images`, {
    method: 'POST',
    // A connection of its own, closed after the answer: a kept-alive idle socket would hold
    // server.close() until the client's keep-alive timer (about 4 s) drops it.
    agent: false,
    headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': body.length },
  });
  const response = new Promise<{ status: number; body: Record<string, unknown> }>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }));
      res.on('error', reject);
    });
  });
  req.write(body.subarray(0, half));
  return { response, finish: () => req.end(body.subarray(half)) };
}

describe('service and subscriber as real processes', function () {
  this.timeout(30_000);
  let dataDir: string;
  let svc: SpawnedService;
  const subscribers: SpawnedSubscriber[] = [];

  /** Spawns a subscriber on the service's broker and waits until it has subscribed. */
  async function subscribe(...args: string[]): Promise<SpawnedSubscriber> {
    const sub = spawnSubscriber(['--url', svc.mqtt, ...args]);
    subscribers.push(sub);
    await sub.waitForLog('subscribed');
    return sub;
  }

  before(async () => {
    dataDir = await makeTmpDir();
    svc = await spawnService({ dataDir, env: { SHUTDOWN_TIMEOUT_MS: '5000' } });
  });
  after(async () => {
    await Promise.all(subscribers.map((sub) => sub.stop()));
    await svc?.stop();
    await removeDir(dataDir);
  });

  it('announces itself ready with its HTTP and embedded-broker URLs', async () => {
    expect(svc.http).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(svc.mqtt).to.match(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
    expect(svc.ready).to.include({ embeddedBroker: true, dataDir });
    await supertest(svc.http).get('/readyz').expect(200);
  });

  it('the subscriber prints one readable line per operation', async () => {
    const sub = await subscribe('--album', 'text', '--album', 'prose');
    const api = supertest(svc.http);
    await api.post('/api/v1/albums').send({ albumName: 'text' }).expect(201);
    await api.post('/api/v1/albums/text/images').attach('file', await makePng(), 'table.png').expect(201);
    await api.get('/api/v1/albums/text/images/table.png').expect(200);
    await api.patch('/api/v1/albums/text/images/table.png').send({ imageName: 'my desk.png' }).expect(200);
    await api.delete('/api/v1/albums/text/images/my%20desk.png').expect(200);
    await api.patch('/api/v1/albums/text').send({ albumName: 'prose' }).expect(200);
    await api.delete('/api/v1/albums/prose').expect(200);

    const got = await lines(sub, 7);
    const expected = [
      'album.created album=text — text album created',
      'image.created album=text image=table.png — table.png image added to album text',
      'image.fetched album=text image=table.png — table.png image fetched from album text',
      'image.renamed album=text image="my desk.png" from=table.png — table.png image modified to my desk.png',
      'image.deleted album=text image="my desk.png" — my desk.png image deleted from album text',
      'album.renamed album=prose from=text — text album modified to prose',
      'album.deleted album=prose — prose album deleted',
    ];
    expect(got).to.have.length(7);
    got.forEach((line, i) => expect(line).to.match(new RegExp(`^${TIME} ${escapeRegExp(expected[i])}$`)));
  });

  it('the subscriber prints each event as one line of JSON with --json', async () => {
    const sub = await subscribe('--json', '--album', 'json');
    const api = supertest(svc.http);
    await api.post('/api/v1/albums').send({ albumName: 'json' }).set('X-Request-Id', 'req-json-1').expect(201);
    const upload = await api.post('/api/v1/albums/json/images').attach('file', await makePng(), 'a.png').expect(201);

    const [created, added] = (await lines(sub, 2)).map((l) => JSON.parse(l) as Record<string, any>);
    expect(created).to.include({ specversion: '1.0', type: 'imagestore.album.created', subject: 'albums/json', reqid: 'req-json-1' });
    expect(created.data).to.deep.equal({ album: 'json', message: 'json album created' });
    expect(added).to.include({ type: 'imagestore.image.created', subject: 'albums/json/images/a.png' });
    expect(added.data).to.include({ album: 'json', image: 'a.png', id: upload.body.image.id, size: upload.body.image.size, contentType: 'image/png' });
    expect(created.id).to.be.a('string').and.not.equal(added.id);
  });

  // Runs last: it stops the service.
  it('on SIGTERM finishes the upload in flight, delivers its event, and exits 0', async () => {
    const sub = await subscribe('--album', 'late');
    await supertest(svc.http).post('/api/v1/albums').send({ albumName: 'late' }).expect(201);
    await lines(sub, 1);
    const staging = new Layout(dataDir).tmpDir;
    const before = new Set(await fs.readdir(staging));

    const upload = slowUpload(svc.http, 'late', 'slow.png', await makePng(64, 64));
    // The service is receiving the request once formidable has opened its staging file.
    await waitFor('upload staging file', async () => (await fs.readdir(staging)).some((f) => !before.has(f)), 5000);
    svc.child.kill('SIGTERM');
    await waitFor('shutdown log line', () => svc.logs('shutting down: finishing requests and delivering pending events').length > 0, 5000);
    upload.finish();

    const res = await upload.response;
    expect(res.status, JSON.stringify(res.body)).to.equal(201);
    expect(res.body.message).to.equal('slow.png image added to album late');
    expect(await svc.exited).to.deep.equal({ code: 0, signal: null });
    expect(svc.logs('stopped')).to.have.length(1);
    const [, added] = await lines(sub, 2);
    expect(added).to.match(new RegExp(`^${TIME} image\\.created album=late image=slow\\.png — `));
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

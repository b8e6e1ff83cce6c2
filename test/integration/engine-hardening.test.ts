import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { defaultConfig } from '../../src/config.js';
import { albumPath, createAlbum, rawBody, uploadImage } from '../helpers/api.js';
import { animatedGif } from '../helpers/image-fixtures.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/**
 * Issue 12, the image engine's items: a diff must not freeze the service
 * (item 2), heavy transforms must neither take unbounded memory nor starve
 * uploads (item 8), diffs have slots of their own (item 10), and a deleted
 * image is not kept open by libvips (item 12). The real service runs as a
 * child process, so /livez is timed over a real socket against its real
 * event loop.
 */

/** A `side`×`side` PNG of 100×100 px blocks of noise (compresses well, yet every block differs from another seed's). */
async function blockyNoise(side: number, mean = 128): Promise<Buffer> {
  const tile = await sharp({ create: { width: Math.ceil(side / 100), height: Math.ceil(side / 100), channels: 3, background: '#808080', noise: { type: 'gaussian', mean, sigma: 40 } } }).png().toBuffer();
  return sharp(tile).resize(side, side, { kernel: 'nearest' }).png().toBuffer();
}

/** `image` with its top half replaced by other noise: half the pixels differ, the costly case for pixelmatch. */
async function halfChanged(image: Buffer, side: number): Promise<Buffer> {
  const top = await sharp(await blockyNoise(side, 133)).extract({ left: 0, top: 0, width: side, height: side / 2 }).png().toBuffer();
  return sharp(image).composite([{ input: top, left: 0, top: 0 }]).png().toBuffer();
}

/** A solid PNG of any size (tiny file, large pixel count). */
function solidPng(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: '#336699' } }).png().toBuffer();
}

async function upload(api: string, album: string, name: string, bytes: Buffer): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  return fetch(`${api}/albums/${album}/images`, { method: 'POST', body: form });
}

function postDiff(api: string, query: string, a: Buffer, b: Buffer): Promise<Response> {
  const form = new FormData();
  form.append('a', new Blob([a]), 'a.png');
  form.append('b', new Blob([b]), 'b.png');
  return fetch(`${api}/diff?${query}`, { method: 'POST', body: form });
}

/** Times GET /livez one request after another (10 ms apart) until `done` settles; bounded by `maxMs`. */
async function sampleLivez(http: string, done: Promise<unknown>, maxMs = 90_000): Promise<number[]> {
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => undefined);
  const latencies: number[] = [];
  const deadline = Date.now() + maxMs;
  while (!finished && Date.now() < deadline) {
    const started = performance.now();
    const res = await fetch(`${http}/livez`);
    await res.arrayBuffer();
    latencies.push(performance.now() - started);
    expect(res.status).to.equal(200);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return latencies;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

async function expectError(res: Response, status: number, pattern: RegExp): Promise<void> {
  const body = (await res.json()) as Record<string, unknown>;
  expect(res.status, JSON.stringify(body)).to.equal(status);
  expect(Object.keys(body)).to.deep.equal(['error']);
  expect(body.error).to.match(pattern);
}

describe('image engine hardening (issue 12: items 2, 8, 10, 12)', function () {
  this.timeout(180_000);

  describe('diffs off the event loop, with their own pixel cap and slots; uploads beside heavy transforms', () => {
    /** At the default DIFF_MAX_PIXELS (25 MP). */
    const SIDE = 5000;
    let dataDir: string;
    let svc: SpawnedService;
    let api: string;
    let a: Buffer;
    let b: Buffer;
    let tiny: Buffer;

    before(async () => {
      dataDir = await makeTmpDir();
      svc = await spawnService({ dataDir, env: { DIFF_CONCURRENCY: '2', TRANSFORM_CONCURRENCY: '2' }, readyTimeoutMs: 30_000 });
      api = `${svc.http}/api/v1`;
      a = await blockyNoise(SIDE);
      b = await halfChanged(a, SIDE);
      tiny = await sharp({ create: { width: 120, height: 90, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 50 } } }).png().toBuffer();
      await fetch(`${api}/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ albumName: 'd' }) });
      const images: Array<[string, Buffer]> = [
        ['a.png', a], ['b.png', b], ['tiny.png', tiny],
        ['huge.png', await solidPng(10_000, 10_000)], // 100 MP: within MAX_INPUT_PIXELS, 4× the diff cap
        ['over.png', await solidPng(SIDE + 1, SIDE)], // one column over the cap
        ['large.png', await blockyNoise(4096)], // the largest AVIF output within AVIF_MAX_PIXELS
      ];
      for (const [name, bytes] of images) expect((await upload(api, 'd', name, bytes)).status, name).to.equal(201);
    });
    after(async () => {
      await svc?.stop();
      await removeDir(dataDir);
    });

    it('two 25 MP comparisons (GET json, POST side-by-side) keep /livez answering in milliseconds; a third gets 503; uploads and transforms go on', async () => {
      const started = performance.now();
      const get = fetch(`${api}/diff?a=d/a.png&b=d/b.png`).then(async (res) => ({ res, body: await res.json() as Record<string, unknown>, ms: performance.now() - started }));
      const post = postDiff(api, 'output=side-by-side', a, b).then(async (res) => ({ res, bytes: Buffer.from(await res.arrayBuffer()), ms: performance.now() - started }));
      const both = Promise.all([get, post]);
      // Meanwhile: a third comparison is refused (DIFF_CONCURRENCY=2), an upload and a transform are answered.
      const during = (async () => {
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const third = await fetch(`${api}/diff?a=d/a.png&b=d/a.png`);
        const uploaded = await upload(api, 'd', 'during.png', tiny);
        const transformed = await fetch(`${api}/albums/d/images/tiny.png?w=60&format=webp`);
        return { third, uploaded, transformed, ms: performance.now() - started };
      })();
      const latencies = await sampleLivez(svc.http, both);
      const [{ res: getRes, body, ms: getMs }, { res: postRes, bytes, ms: postMs }] = await both;
      const { third, uploaded, transformed, ms: duringMs } = await during;

      expect(getRes.status, JSON.stringify(body)).to.equal(200);
      expect(body).to.include({ width: SIDE, height: SIDE });
      expect(body.differentPixels as number).to.be.greaterThan((SIDE * SIDE) / 4);
      expect(postRes.status, bytes.toString().slice(0, 200)).to.equal(200);
      expect(await sharp(bytes).metadata()).to.include({ format: 'png', width: SIDE * 3 + 16, height: SIDE });
      expect(third.status).to.equal(503);
      expect(third.headers.get('retry-after')).to.match(/^\d+$/);
      expect(uploaded.status).to.equal(201);
      expect(transformed.status).to.equal(200);
      expect(duringMs, 'the upload and the transform finished while a comparison was still running').to.be.below(Math.max(getMs, postMs));

      // The unfixed code ran pixelmatch on the event loop: one /livez waited for the whole comparison (seconds).
      const worst = Math.max(...latencies);
      const p95 = percentile(latencies, 95);
      expect(latencies.length, 'samples taken while the comparisons ran').to.be.greaterThan(20);
      expect(p95, `95th percentile of ${latencies.length} /livez latencies (worst ${Math.round(worst)} ms)`).to.be.below(100);
      expect(worst, `worst of ${latencies.length} /livez latencies`).to.be.below(500);
    });

    it('refuses an image over DIFF_MAX_PIXELS with 422 before decoding it: 100 MP and one column over the cap, GET and POST', async () => {
      await expectError(await fetch(`${api}/diff?a=d/huge.png&b=d/huge.png`), 422, /image a of 10000x10000 pixels exceeds the limit of 25000000 pixels/);
      await expectError(await fetch(`${api}/diff?a=d/a.png&b=d/over.png&resize=fit`), 422, /image b of 5001x5000 pixels exceeds the limit of 25000000 pixels/);
      await expectError(await fetch(`${api}/diff?a=d/over.png&b=d/a.png&output=side-by-side`), 422, /5001x5000 pixels exceeds the limit of 25000000 pixels/);
      await expectError(await postDiff(api, 'output=png', await solidPng(10_000, 10_000), a), 422, /10000x10000 pixels exceeds the limit of 25000000 pixels/);
      await expectError(await postDiff(api, '', a, await solidPng(SIDE, SIDE + 1)), 422, /5000x5001 pixels exceeds the limit of 25000000 pixels/);
    });

    it('a small upload is answered quickly while two AVIF transforms of a large PNG run (separate lanes)', async () => {
      const started = performance.now();
      const transforms = [60, 61].map(async (q) => {
        const res = await fetch(`${api}/albums/d/images/large.png?format=avif&q=${q}`);
        await res.arrayBuffer();
        return { status: res.status, type: res.headers.get('content-type'), ms: performance.now() - started };
      });
      await new Promise((resolve) => setTimeout(resolve, 500)); // both transforms hold their slots by now
      const before = performance.now();
      const uploaded = await upload(api, 'd', 'small.png', tiny);
      const uploadMs = performance.now() - before;
      const uploadDoneAt = performance.now() - started;
      const done = await Promise.all(transforms);
      expect(uploaded.status).to.equal(201);
      expect(done.map((t) => [t.status, t.type])).to.deep.equal([[200, 'image/avif'], [200, 'image/avif']]);
      // The unfixed code shared the engine slots: the upload's check waited for a transform to end.
      expect(uploadDoneAt, 'the upload finished before either transform').to.be.below(Math.min(...done.map((t) => t.ms)));
      expect(uploadMs, 'upload time while the transforms ran').to.be.below(3000);
    });
  });

  describe('bounded transform queue, DIFF_CONCURRENCY, deleted files released', () => {
    let dataDir: string;
    let svc: SpawnedService;
    let api: string;

    before(async () => {
      dataDir = await makeTmpDir();
      svc = await spawnService({
        dataDir,
        env: { TRANSFORM_CONCURRENCY: '1', TRANSFORM_MAX_QUEUE: '1', TRANSFORM_QUEUE_TIMEOUT_MS: '300', DIFF_CONCURRENCY: '1' },
        readyTimeoutMs: 30_000,
      });
      api = `${svc.http}/api/v1`;
      await fetch(`${api}/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ albumName: 'q' }) });
      const big = await blockyNoise(6000);
      const pair = await blockyNoise(4000);
      const images: Array<[string, Buffer]> = [
        ['big.png', big], ['c.png', pair], ['c2.png', await halfChanged(pair, 4000)], ['anim.gif', await animatedGif()],
      ];
      for (const [name, bytes] of images) expect((await upload(api, 'q', name, bytes)).status, name).to.equal(201);
    });
    after(async () => {
      await svc?.stop();
      await removeDir(dataDir);
    });

    it('answers 503 + Retry-After to a transform that finds the queue full, and to one that waits past TRANSFORM_QUEUE_TIMEOUT_MS', async () => {
      const get = async (query: string) => {
        const started = performance.now();
        const res = await fetch(`${api}/albums/q/images/big.png?${query}`);
        const body = Buffer.from(await res.arrayBuffer());
        return { res, body, ms: performance.now() - started };
      };
      const running = get('format=webp&q=50'); // takes the only slot for seconds
      await new Promise((resolve) => setTimeout(resolve, 300));
      const [second, third] = await Promise.all([get('format=webp&q=51'), get('format=webp&q=52')]);
      const first = await running;
      expect(first.res.status).to.equal(200);
      expect([second.res.status, third.res.status], 'the second and third transforms').to.deep.equal([503, 503]);
      const refusals = [second, third].map(({ res, body }) => ({ status: res.status, retryAfter: res.headers.get('retry-after'), error: JSON.parse(body.toString()).error as string }));
      for (const refusal of refusals) {
        expect(refusal.status, refusal.error).to.equal(503);
        expect(refusal.retryAfter).to.match(/^[1-9]\d*$/);
      }
      const messages = refusals.map((r) => r.error).sort();
      expect(messages[0]).to.match(/no slot freed within 300 ms/);
      expect(messages[1]).to.match(/too many image transforms waiting \(limit 1\)/);
      expect(Math.max(second.ms, third.ms), 'refused long before the running transform ended').to.be.below(first.ms);
    });

    it('DIFF_CONCURRENCY=1: a second comparison while one runs gets 503 + Retry-After', async () => {
      const [x, y] = await Promise.all([fetch(`${api}/diff?a=q/c.png&b=q/c2.png`), fetch(`${api}/diff?a=q/c2.png&b=q/c.png`)]);
      const statuses = [x.status, y.status].sort();
      expect(statuses).to.deep.equal([200, 503]);
      const refused = x.status === 503 ? x : y;
      expect(refused.headers.get('retry-after')).to.match(/^\d+$/);
      expect(((await refused.json()) as { error: string }).error).to.match(/too many comparisons in progress \(limit 1\)/);
    });

    it('holds no deleted image open after transforms and a diff read it (libvips cache off)', async () => {
      for (const query of ['w=12&format=webp', 'format=png', 'rotate=90&format=jpeg']) {
        expect((await fetch(`${api}/albums/q/images/anim.gif?${query}`)).status, query).to.equal(200);
      }
      expect((await fetch(`${api}/diff?a=q/anim.gif&b=q/anim.gif`)).status).to.equal(200);
      expect((await fetch(`${api}/albums/q/images/anim.gif`, { method: 'DELETE' })).status).to.equal(200);
      const held: string[] = [];
      for (const fd of await fs.readdir(`/proc/${svc.pid}/fd`)) {
        const target = await fs.readlink(`/proc/${svc.pid}/fd/${fd}`).catch(() => '');
        if (target.startsWith(path.join(dataDir, 'image-store')) && target.endsWith(' (deleted)')) held.push(target);
      }
      expect(held, 'deleted files the service still holds open (their space is not freed)').to.deep.equal([]);
    });
  });

  describe('output pixel budgets for the costly encoders (AVIF_MAX_PIXELS, GIF_MAX_PIXELS)', () => {
    let svc: TestService;
    before(async () => {
      svc = await startTestService({ config: { images: { ...defaultConfig().images, avifMaxPixels: 10_000, gifMaxPixels: 10_000 } } });
      await createAlbum(svc.http, 'p');
      await uploadImage(svc.http, 'p', 'photo.png', await blockyNoise(200)); // 40,000 px
      await uploadImage(svc.http, 'p', 'anim.gif', await animatedGif()); // 3 frames of 24×20
    });
    after(async () => svc?.close());

    const get = (image: string, query: Record<string, string>, accept = '*/*') =>
      svc.http.get(albumPath('p', image)).query(query).set('Accept', accept).buffer(true).parse(rawBody);

    it('refuses an AVIF or GIF output over its budget with 422 naming the size and the limit', async () => {
      const avif = await get('photo.png', { format: 'avif' });
      expect(avif.status).to.equal(422);
      expect(JSON.parse(String(avif.body)).error).to.match(/AVIF output of 200x200 exceeds the limit of 10000 pixels for AVIF; ask for a smaller size/);
      const gif = await get('photo.png', { format: 'gif', w: '150' });
      expect(gif.status).to.equal(422);
      expect(JSON.parse(String(gif.body)).error).to.match(/GIF output of 150x150 exceeds the limit of 10000 pixels/);
      const frames = await get('anim.gif', { w: '72', enlarge: '1' });
      expect(frames.status).to.equal(422);
      expect(JSON.parse(String(frames.body)).error).to.match(/GIF output of 72x60 × 3 frames exceeds the limit of 10000 pixels/);
    });

    it('makes the same outputs within the budget, and format=auto passes over AVIF when it is over', async () => {
      const small = await get('photo.png', { format: 'avif', w: '100' });
      expect([small.status, small.headers['content-type']]).to.deep.equal([200, 'image/avif']);
      expect(await sharp(small.body as Buffer).metadata()).to.include({ width: 100, height: 100 });
      expect((await get('anim.gif', { w: '24' })).status).to.equal(200);
      const auto = await get('photo.png', { format: 'auto' }, 'image/avif,image/webp,*/*');
      expect([auto.status, auto.headers['content-type']]).to.deep.equal([200, 'image/webp']);
      const autoSmall = await get('photo.png', { format: 'auto', w: '50' }, 'image/avif,image/webp,*/*');
      expect([autoSmall.status, autoSmall.headers['content-type']]).to.deep.equal([200, 'image/avif']);
    });
  });
});

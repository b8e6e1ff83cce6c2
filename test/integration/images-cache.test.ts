import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig } from '../../src/config.js';
import type { CacheStats } from '../../src/images/derivative-cache.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { recordEvents } from '../helpers/mqtt.js';
import { waitFor } from '../helpers/wait-for.js';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import { noisyJpeg, quadrantsPng } from '../helpers/image-fixtures.js';

/** Every derivative file under the service's cache dir (`<dataDir>/.imagestore/cache`), by base name. */
async function cacheFiles(svc: TestService): Promise<string[]> {
  const dir = path.join(svc.dataDir, '.imagestore', 'cache');
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => e.name).sort();
}

/** How each counter moved between two snapshots. */
function delta(before: CacheStats, after: CacheStats): Partial<CacheStats> {
  return { hits: after.hits - before.hits, misses: after.misses - before.misses, transforms: after.transforms - before.transforms, evictions: after.evictions - before.evictions };
}

describe('images: derivative cache (issue 5)', function () {
  let svc: TestService;
  let png: Buffer;
  const QUAD = albumPath('c', 'quad.png');
  before(async () => {
    [svc, png] = await Promise.all([startTestService(), quadrantsPng(200, 100)]);
    await createAlbum(svc.http, 'c');
    await uploadImage(svc.http, 'c', 'quad.png', png);
  });
  after(async () => svc?.close());

  const stats = () => svc.service.derivatives.stats();
  const get = (url: string) => svc.http.get(url).buffer(true).parse(rawBody);

  it('transforms on the first request, then serves the same bytes from disk (a hit, no transform)', async () => {
    const s0 = stats();
    const first = await get(`${QUAD}?w=50`).expect(200);
    const s1 = stats();
    expect(delta(s0, s1)).to.deep.equal({ hits: 0, misses: 1, transforms: 1, evictions: 0 });
    expect(s1.entries).to.equal(s0.entries + 1);
    expect(s1.bytes).to.equal(s0.bytes + (first.body as Buffer).length);
    const files = await cacheFiles(svc);
    expect(files.filter((f) => f.startsWith(`${sha256(png)}-`) && f.endsWith('.png'))).to.have.length(1);

    const second = await get(`${QUAD}?w=50`).expect(200);
    expect(delta(s1, stats())).to.deep.equal({ hits: 1, misses: 0, transforms: 0, evictions: 0 });
    expect(Buffer.compare(second.body as Buffer, first.body as Buffer)).to.equal(0);
    expect(second.headers.etag).to.equal(first.headers.etag);
  });

  it('shares one derivative between the name URL and the id URL, and between equivalent spellings', async () => {
    const { id } = (await svc.http.get(`${QUAD}/metadata`).expect(200)).body;
    await get(`${QUAD}?w=60&format=webp`).expect(200);
    const s0 = stats();
    await get(`/api/v1/images/${id}.webp?w=60`).expect(200);
    await get(`${QUAD}?format=webp&w=60&rotate=0`).expect(200);
    await get(`${QUAD}?w=60&format=webp&flip=0&download=1`).expect(200);
    expect(delta(s0, stats())).to.deep.equal({ hits: 3, misses: 0, transforms: 0, evictions: 0 });
  });

  it('runs the transform once for 8 concurrent identical requests, and all get the same bytes', async () => {
    const s0 = stats();
    const responses = await Promise.all(Array.from({ length: 8 }, () => get(`${QUAD}?w=77&format=avif`).expect(200)));
    expect(stats().transforms - s0.transforms).to.equal(1);
    expect(stats().misses - s0.misses).to.equal(1);
    const bodies = responses.map((r) => r.body as Buffer);
    expect(bodies.every((b) => b.length > 0 && Buffer.compare(b, bodies[0]) === 0)).to.equal(true);
  });

  it('publishes the image.fetched event for a transform request, cached or not', async () => {
    // Earlier tests' fetch events must be delivered (to nobody) before subscribing, or they would arrive here.
    await waitFor('outbox drained', () => svc.service.pendingEvents() === 0, 5000);
    const events = await recordEvents(svc.service.mqttUrl);
    try {
      await get(`${QUAD}?w=33&grayscale=1`).expect(200);
      await get(`${QUAD}?w=33&grayscale=1`).expect(200);
      const got = await events.waitForCount(2);
      expect(got.map((e) => [e.type, e.data.album, e.data.image])).to.deep.equal([
        ['imagestore.image.fetched', 'c', 'quad.png'],
        ['imagestore.image.fetched', 'c', 'quad.png'],
      ]);
    } finally {
      await events.close();
    }
  });

  it('removes the derivatives when the last image with those bytes is deleted, not before', async () => {
    const bytes = await noisyJpeg(40, 40);
    const hash = sha256(bytes);
    const ofHash = async () => (await cacheFiles(svc)).filter((f) => f.startsWith(`${hash}-`));
    await createAlbum(svc.http, 'd1');
    await createAlbum(svc.http, 'd2');
    await uploadImage(svc.http, 'd1', 'one.jpg', bytes);
    await uploadImage(svc.http, 'd1', 'two.jpg', bytes);
    await uploadImage(svc.http, 'd2', 'three.jpg', bytes);
    await get(`${albumPath('d1', 'one.jpg')}?w=10`).expect(200);
    await get(`${albumPath('d1', 'two.jpg')}?w=12&format=png`).expect(200);
    expect(await ofHash()).to.have.length(2);

    await svc.http.delete(albumPath('d1', 'one.jpg')).expect(200);
    expect(await ofHash(), 'two.jpg and three.jpg still have these bytes').to.have.length(2);
    const s0 = stats();
    await get(`${albumPath('d1', 'two.jpg')}?w=10`).expect(200);
    expect(delta(s0, stats()).hits).to.equal(1);

    await svc.http.delete(albumPath('d1', 'two.jpg')).expect(200);
    expect(await ofHash(), 'three.jpg still has these bytes').to.have.length(2);

    const entries = stats().entries;
    await svc.http.delete(albumPath('d2')).expect(200); // the album delete releases three.jpg's bytes
    expect(await ofHash()).to.deep.equal([]);
    expect(stats().entries).to.equal(entries - 2);
    expect((await cacheFiles(svc)).length).to.equal(stats().entries);
  });

  it('removes derivatives on an image delete too', async () => {
    const bytes = await noisyJpeg(24, 24);
    await uploadImage(svc.http, 'c', 'gone.jpg', bytes);
    await get(`${albumPath('c', 'gone.jpg')}?w=8`).expect(200);
    expect((await cacheFiles(svc)).filter((f) => f.startsWith(sha256(bytes)))).to.have.length(1);
    await svc.http.delete(albumPath('c', 'gone.jpg')).expect(200);
    expect((await cacheFiles(svc)).filter((f) => f.startsWith(sha256(bytes)))).to.deep.equal([]);
  });

  describe('byte budget (a second service with a tiny DERIVATIVE_CACHE_BYTES)', () => {
    /** Four derivatives of the same image, of about the same size. */
    const VARIANTS = ['flip=1', 'flop=1', 'rotate=180', 'flip=1&flop=1&w=199'];
    let small: TestService | undefined;
    afterEach(async () => {
      await small?.close();
      small = undefined;
    });

    /** Starts a service with the given budget and the quadrant image uploaded. */
    async function startSmall(budget: number): Promise<TestService> {
      small = await startTestService({ config: { images: { ...defaultConfig().images, derivativeCacheBytes: budget } } });
      await createAlbum(small.http, 'c');
      await uploadImage(small.http, 'c', 'quad.png', png);
      return small;
    }

    it('evicts the least recently used derivative once the budget is exceeded', async () => {
      // Sizes from the main service (the same transform gives the same bytes).
      const sizes = await Promise.all(VARIANTS.map(async (q) => Number((await get(`${QUAD}?${q}`).expect(200)).headers['content-length'])));
      const [a, b, c, d] = sizes;
      const budget = a + c + Math.max(b, d); // fits A, B, C; fits A, C, D; not all four
      const s = await startSmall(budget);
      const fetch = (i: number) => s.http.get(`${QUAD}?${VARIANTS[i]}`).buffer(true).parse(rawBody).expect(200);
      await fetch(0);
      await fetch(1);
      await fetch(2);
      await fetch(0); // A is now more recent than B
      const before = s.service.derivatives.stats();
      expect(before).to.include({ entries: 3, evictions: 0, bytes: a + b + c, transforms: 3, hits: 1 });

      await fetch(3);
      const after = s.service.derivatives.stats();
      expect(after).to.include({ entries: 3, evictions: 1, bytes: a + c + d, transforms: 4 });
      expect(after.bytes).to.be.at.most(budget);
      expect(await cacheFiles(s)).to.have.length(3);

      await fetch(0);
      expect(s.service.derivatives.stats().transforms, 'A was kept').to.equal(4);
      await fetch(1);
      expect(s.service.derivatives.stats().transforms, 'B was evicted').to.equal(5);
    });

    it('serves a derivative larger than the whole budget, and many different ones at once, all with 200', async () => {
      const s = await startSmall(1);
      const responses = await Promise.all(
        Array.from({ length: 8 }, (_, i) => s.http.get(`${QUAD}?w=${40 + i}`).buffer(true).parse(rawBody)),
      );
      expect(responses.map((r) => r.status)).to.deep.equal(Array(8).fill(200));
      expect(responses.every((r) => (r.body as Buffer).length === Number(r.headers['content-length']))).to.equal(true);
      // Entries being opened by a concurrent request are spared; the next transform evicts what is left.
      await s.http.get(`${QUAD}?w=60`).expect(200);
      expect(s.service.derivatives.stats()).to.include({ entries: 1, evictions: 8, transforms: 9 });
      expect(await cacheFiles(s)).to.have.length(1);
    });

    it('keeps derivatives across a restart (indexed from disk, served as hits)', async () => {
      const s = await startSmall(1024 * 1024);
      const first = await s.http.get(`${QUAD}?w=44`).buffer(true).parse(rawBody).expect(200);
      await s.stop();
      small = await startTestService({ dataDir: s.dataDir, config: { images: { ...defaultConfig().images, derivativeCacheBytes: 1024 * 1024 } } });
      const again = await small.http.get(`${QUAD}?w=44`).buffer(true).parse(rawBody).expect(200);
      expect(Buffer.compare(again.body as Buffer, first.body as Buffer)).to.equal(0);
      expect(small.service.derivatives.stats()).to.include({ transforms: 0, hits: 1, entries: 1 });
    });
  });
});

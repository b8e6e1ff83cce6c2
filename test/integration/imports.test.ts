import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { defaultConfig } from '../../src/config.js';
import { ImportJobObject, ImportJobSummaryObject, ImportListResponse } from '../../src/contract/schemas.js';
import { albumPath, createAlbum, rawBody } from '../helpers/api.js';
import { createImportJob, getImportJob, startImageServer, waitForImportJob, type ImageServer } from '../helpers/image-server.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait-for.js';

const MAX_UPLOAD_BYTES = 256 * 1024;
const NOT_AN_IMAGE = 'not an image this service accepts (JPEG, PNG, WebP, GIF, AVIF, TIFF, HEIC, JPEG XL)';

let images: ImageServer;
let svc: TestService;
let albumCount = 0;

/** A new album for each test, so tests do not see each other's images. */
async function newAlbum(): Promise<string> {
  const album = `import-${++albumCount}`;
  await createAlbum(svc.http, album);
  return album;
}

async function imageNames(album: string): Promise<string[]> {
  return ((await svc.http.get(`${albumPath(album)}/images`).expect(200)).body as { imageList: string[] }).imageList;
}

async function download(album: string, name: string): Promise<Buffer> {
  return (await svc.http.get(albumPath(album, name)).buffer(true).parse(rawBody).expect(200)).body as Buffer;
}

/** What is left in the staging dir (`<dataDir>/.imagestore/tmp`). */
async function stagedFiles(): Promise<string[]> {
  return fs.readdir(path.join(svc.dataDir, '.imagestore', 'tmp'));
}

describe('import jobs from URLs', () => {
  before(async () => {
    images = await startImageServer();
    const defaults = defaultConfig();
    svc = await startTestService({
      config: {
        imports: { ...defaults.imports, concurrency: 2, timeoutMs: 3000, retries: 2, retryBaseDelayMs: 10, maxUrls: 20, allowHosts: ['127.0.0.1'] },
        limits: { ...defaults.limits, maxUploadBytes: MAX_UPLOAD_BYTES },
      },
    });
  });
  after(async () => {
    await svc?.close();
    await images?.close();
  });

  it('answers 202 with a Location, then shows each URL queued, downloading and stored with bytes, name and id', async () => {
    const album = await newAlbum();
    const urls = [`${images.url}/hang/life/first.png`, `${images.url}/hang/life/second.png`, `${images.url}/red/third.png`];
    const { job, location } = await createImportJob(svc.http, album, urls);
    expect(job.id).to.match(/^imp_/);
    expect(location).to.equal(`/api/v1/imports/${job.id}`);
    expect(job.items.map((i) => i.url)).to.deep.equal(urls);
    expect(job.album).to.equal(album);

    // IMPORT_CONCURRENCY=2: the two held downloads take both slots, the third waits.
    await images.waitForHits('/hang/life/', 2);
    const running = await getImportJob(svc.http, job.id);
    expect(running.state).to.equal('running');
    expect(running.items.map((i) => i.state)).to.deep.equal(['downloading', 'downloading', 'queued']);
    expect(running.counts).to.deep.equal({ queued: 1, downloading: 2, stored: 0, failed: 0, cancelled: 0 });

    images.release('life');
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.state).to.equal('done');
    expect(done.counts).to.deep.equal({ queued: 0, downloading: 0, stored: 3, failed: 0, cancelled: 0 });
    for (const [i, name] of ['first.png', 'second.png', 'third.png'].entries()) {
      const item = done.items[i];
      expect(item).to.include({ state: 'stored', bytes: images.red.length, attempts: 1 });
      expect(item.error).to.equal(undefined);
      const meta = (await svc.http.get(`${albumPath(album, name)}/metadata`).expect(200)).body as { id: string; name: string };
      expect(item.image).to.deep.equal({ name, id: meta.id });
    }
    const viaLocation = await svc.http.get(location).expect(200);
    expect(viaLocation.body.id).to.equal(job.id);
  });

  it('stores the downloaded bytes unchanged (PNG and JPEG)', async () => {
    const album = await newAlbum();
    const { job } = await createImportJob(svc.http, album, [`${images.url}/red/photo.png`, `${images.url}/blue/photo.jpg`]);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.items.map((i) => i.state)).to.deep.equal(['stored', 'stored']);
    expect(Buffer.compare(await download(album, 'photo.png'), images.red)).to.equal(0);
    expect(Buffer.compare(await download(album, 'photo.jpg'), images.blue)).to.equal(0);
    expect((await svc.http.get(`${albumPath(album, 'photo.jpg')}/metadata`).expect(200)).body.size).to.equal(images.blue.length);
  });

  it('fails a non-image with the upload 415 message, without retrying it', async () => {
    const album = await newAlbum();
    const { job } = await createImportJob(svc.http, album, [`${images.url}/text/notes.png`]);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.state).to.equal('failed');
    expect(done.items[0]).to.include({ state: 'failed', error: NOT_AN_IMAGE, attempts: 1 });
    expect(done.items[0].image).to.equal(undefined);
    expect(await imageNames(album)).to.deep.equal([]);
    expect(images.hits('/text/notes.png')).to.equal(1);
  });

  it('follows redirects (relative and absolute) and names the image after the final URL', async () => {
    const album = await newAlbum();
    const relative = `${images.url}/redirect?to=${encodeURIComponent('/green/moved.png')}`;
    const absolute = `${images.url}/redirect?to=${encodeURIComponent(`${images.url}/blue/elsewhere.jpg`)}`;
    const { job } = await createImportJob(svc.http, album, [relative, absolute]);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.items.map((i) => [i.state, i.image?.name])).to.deep.equal([['stored', 'moved.png'], ['stored', 'elsewhere.jpg']]);
    expect(Buffer.compare(await download(album, 'moved.png'), images.green)).to.equal(0);
    expect(Buffer.compare(await download(album, 'elsewhere.jpg'), images.blue)).to.equal(0);
  });

  it('retries 5xx answers with backoff: stored after two 500s, failed after the last retry', async () => {
    const album = await newAlbum();
    const { job } = await createImportJob(svc.http, album, [`${images.url}/flaky/twice/2/recovered.png`, `${images.url}/flaky/always/99/broken.png`]);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.items[0]).to.include({ state: 'stored', attempts: 3 });
    expect(done.items[0].image?.name).to.equal('recovered.png');
    expect(images.hits('/flaky/twice/')).to.equal(3);
    // IMPORT_RETRIES=2: three attempts in all, then the last error.
    expect(done.items[1]).to.include({ state: 'failed', attempts: 3, error: 'the server answered 500' });
    expect(images.hits('/flaky/always/')).to.equal(3);
    expect(await imageNames(album)).to.deep.equal(['recovered.png']);
  });

  it('fails bodies over the upload limit (declared or streamed) without storing or staging anything', async () => {
    const album = await newAlbum();
    const { job } = await createImportJob(svc.http, album, [`${images.url}/huge/declared/big.png`, `${images.url}/huge/chunked/endless.png`]);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.items[0]).to.include({ state: 'failed', attempts: 1, error: `the image is ${64 * 1024 * 1024} bytes, over the limit of ${MAX_UPLOAD_BYTES}` });
    expect(done.items[1]).to.include({ state: 'failed', attempts: 1, error: `the image is over the limit of ${MAX_UPLOAD_BYTES} bytes` });
    expect(done.items[1].bytes).to.be.at.most(MAX_UPLOAD_BYTES);
    expect(await imageNames(album)).to.deep.equal([]);
    expect(await stagedFiles()).to.deep.equal([]);
    // The importer hung up instead of reading on: the server never finished either body.
    await waitFor('the huge responses to end', () => images.requests.filter((r) => r.path.startsWith('/huge/')).every((r) => r.aborted));
  });

  it('imports a URL given twice once, and gives a second file of the same name a suffix', async () => {
    const album = await newAlbum();
    const same = `${images.url}/red/once.png`;
    const { job } = await createImportJob(svc.http, album, [same, same, `${images.url}/red/a/shared.png`, `${images.url}/green/b/shared.png`]);
    expect(job.duplicatesIgnored).to.equal(1);
    expect(job.items.map((i) => i.url)).to.deep.equal([same, `${images.url}/red/a/shared.png`, `${images.url}/green/b/shared.png`]);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.state).to.equal('done');
    expect(images.hits('/red/once.png')).to.equal(1);
    expect((await imageNames(album)).sort()).to.deep.equal(['once.png', 'shared-1.png', 'shared.png']);
    // Which of the two got the suffix depends on which finished first; each name has its own URL's bytes.
    for (const item of done.items.slice(1)) {
      const expected = item.url.includes('/red/') ? images.red : images.green;
      expect(Buffer.compare(await download(album, item.image!.name), expected), item.url).to.equal(0);
    }
  });

  it('never has more than IMPORT_CONCURRENCY (2) downloads in flight', async () => {
    const album = await newAlbum();
    await waitFor('no request in flight', () => images.inFlight === 0);
    images.maxInFlight = 0;
    const urls = Array.from({ length: 6 }, (_, i) => `${images.url}/delayed/80/c${i}.png`);
    const { job } = await createImportJob(svc.http, album, urls);
    const done = await waitForImportJob(svc.http, job.id);
    expect(done.counts.stored).to.equal(6);
    expect(images.maxInFlight).to.equal(2);
  });

  it('lists recent jobs, most recent first, and answers 404 for an unknown job', async () => {
    const album = await newAlbum();
    const first = (await createImportJob(svc.http, album, [`${images.url}/red/l1.png`])).job;
    await new Promise((resolve) => setTimeout(resolve, 5)); // distinct createdAt
    const second = (await createImportJob(svc.http, album, [`${images.url}/red/l2.png`])).job;
    await waitForImportJob(svc.http, first.id);
    const { jobs } = (await svc.http.get('/api/v1/imports').expect(200)).body as { jobs: Array<{ id: string; createdAt: string; counts: object }> };
    const ids = jobs.map((j) => j.id);
    expect(ids.indexOf(second.id)).to.be.within(0, ids.indexOf(first.id) - 1);
    expect(jobs.length).to.be.at.least(2);
    expect(jobs[0].counts).to.have.keys('queued', 'downloading', 'stored', 'failed', 'cancelled');
    // Without items (gh-12 item 14): a job may hold 100,000 URLs, and the list shows up to 100 jobs.
    for (const listed of jobs) expect(listed).to.have.keys(Object.keys(ImportJobSummaryObject.shape));
    expect(ImportListResponse.parse({ jobs }).jobs.find((j) => j.id === first.id)).to.include({ total: 1, bytes: images.red.length, state: 'done' });
    const createdAts = jobs.map((j) => j.createdAt);
    expect(createdAts).to.deep.equal([...createdAts].sort().reverse());

    const missing = await svc.http.get('/api/v1/imports/imp_nosuchjob').expect(404);
    expect(missing.body).to.deep.equal({ error: 'no import job imp_nosuchjob' });
    expect((await svc.http.delete('/api/v1/imports/imp_nosuchjob').expect(404)).body).to.deep.equal({ error: 'no import job imp_nosuchjob' });
    await waitForImportJob(svc.http, second.id);
  });

  it('shows a job\'s items in pages: offset and limit, nextOffset while more follow, limit=0 for none (gh-12 item 14)', async () => {
    const album = await newAlbum();
    const urls = Array.from({ length: 5 }, (_, i) => `${images.url}/red/page/p${i}.png`);
    const { job } = await createImportJob(svc.http, album, urls);
    expect(job).to.include({ total: 5 });
    expect(job.nextOffset).to.equal(undefined);
    await waitForImportJob(svc.http, job.id);
    const page = async (query: string) => ImportJobObject.parse((await svc.http.get(`/api/v1/imports/${job.id}?${query}`).expect(200)).body);
    const first = await page('limit=2');
    expect([first.items.map((i) => i.url), first.nextOffset]).to.deep.equal([urls.slice(0, 2), 2]);
    const middle = await page('offset=2&limit=2');
    expect([middle.items.map((i) => i.url), middle.nextOffset]).to.deep.equal([urls.slice(2, 4), 4]);
    const last = await page('offset=4&limit=2');
    expect([last.items.map((i) => [i.url, i.state]), last.nextOffset]).to.deep.equal([[[urls[4], 'stored']], undefined]);
    expect(await page('offset=9')).to.deep.include({ items: [], total: 5 });
    expect(await page('limit=0')).to.deep.include({ items: [], total: 5, nextOffset: 0, counts: { queued: 0, downloading: 0, stored: 5, failed: 0, cancelled: 0 } });
    expect((await page('')).items).to.have.length(5);
    for (const bad of ['limit=-1', 'limit=10001', 'offset=x']) {
      expect((await svc.http.get(`/api/v1/imports/${job.id}?${bad}`).expect(400)).body.error, bad).to.match(/^(limit|offset): /);
    }
  });

  it('refuses bad job requests with 400/404 and an error body', async () => {
    const album = await newAlbum();
    const post = (target: string, body: unknown) => svc.http.post(`/api/v1/albums/${target}/imports`).send(body as object);
    expect((await post('no-such-album', { urls: [`${images.url}/red/x.png`] }).expect(404)).body).to.have.keys('error');
    expect((await post(album, { urls: [] }).expect(400)).body.error).to.be.a('string');
    expect((await post(album, {}).expect(400)).body.error).to.be.a('string');
    expect((await post(album, { urls: ['not a url'] }).expect(400)).body).to.deep.equal({ error: 'urls.0: not an absolute URL: "not a url"' });
    expect((await post(album, { urls: ['ftp://127.0.0.1/x.png'] }).expect(400)).body).to.deep.equal({ error: 'urls.0: only http and https URLs can be imported' });
    const tooMany = Array.from({ length: 21 }, (_, i) => `${images.url}/red/${i}.png`);
    expect((await post(album, { urls: tooMany }).expect(400)).body).to.deep.equal({ error: 'urls: expected 1 to 20 URLs, got 21' });
    expect(await imageNames(album)).to.deep.equal([]);
  });

  it('cancels a job: unfinished items are cancelled and the download in flight is aborted', async () => {
    const album = await newAlbum();
    const urls = ['c1.png', 'c2.png', 'c3.png'].map((n) => `${images.url}/hang/cancel/${n}`);
    const { job } = await createImportJob(svc.http, album, urls);
    await images.waitForHits('/hang/cancel/', 2);
    const res = await svc.http.delete(`/api/v1/imports/${job.id}`).expect(200);
    expect(res.body.job.state).to.equal('cancelled');
    expect(res.body.job.items.map((i: { state: string }) => i.state)).to.deep.equal(['cancelled', 'cancelled', 'cancelled']);
    await waitFor('the held requests to be aborted', () => images.requests.filter((r) => r.path.startsWith('/hang/cancel/')).every((r) => r.aborted));

    // Releasing the route now stores nothing, and the queued third URL is never fetched.
    images.release('cancel');
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(images.hits('/hang/cancel/')).to.equal(2);
    expect(await imageNames(album)).to.deep.equal([]);
    const after = await getImportJob(svc.http, job.id);
    expect(after.state).to.equal('cancelled');
    expect(after.counts).to.deep.equal({ queued: 0, downloading: 0, stored: 0, failed: 0, cancelled: 3 });
    expect(await stagedFiles()).to.deep.equal([]);
    // A second DELETE changes nothing.
    expect((await svc.http.delete(`/api/v1/imports/${job.id}`).expect(200)).body.job.state).to.equal('cancelled');
  });

  it('publishes imagestore.import.created, a progress event per item, then completed (or cancelled) on MQTT', async () => {
    const album = await newAlbum();
    const recorder = await recordEvents(svc.service.mqttUrl);
    try {
      const good = `${images.url}/red/evented.png`;
      const bad = `${images.url}/text/evented.txt`;
      const { job } = await createImportJob(svc.http, album, [good, bad]);
      const ofJob = () => recorder.events.filter((e) => e.data.jobId === job.id);
      const events = await waitFor('the completion event', () => ofJob().some((e) => e.type !== 'imagestore.import.created' && e.type !== 'imagestore.import.progress') && ofJob());
      expect(events.map((e) => e.type)).to.deep.equal([
        'imagestore.import.created', 'imagestore.import.progress', 'imagestore.import.progress', 'imagestore.import.completed',
      ]);
      expect(events.every((e) => e.subject === `imports/${job.id}` && e.data.album === album)).to.equal(true);
      expect(events[0].data.counts).to.deep.equal({ queued: 2, downloading: 0, stored: 0, failed: 0, cancelled: 0 });
      const progress = Object.fromEntries(events.slice(1, 3).map((e) => [e.data.url, e.data]));
      expect(progress[good]).to.include({ state: 'stored', image: 'evented.png', message: `${good} imported into album ${album} as evented.png` });
      expect(progress[bad]).to.include({ state: 'failed', error: NOT_AN_IMAGE });
      expect(events[3].data.counts).to.deep.equal({ queued: 0, downloading: 0, stored: 1, failed: 1, cancelled: 0 });
      expect(events[3].data.message).to.equal(`import ${job.id} into album ${album} completed: 1 stored, 1 failed`);
      // The stored image is announced as any upload is.
      expect(recorder.events.some((e) => e.type === 'imagestore.image.created' && e.data.album === album && e.data.image === 'evented.png')).to.equal(true);

      const cancelled = (await createImportJob(svc.http, album, [`${images.url}/hang/evented/x.png`])).job;
      await images.waitForHits('/hang/evented/', 1);
      await svc.http.delete(`/api/v1/imports/${cancelled.id}`).expect(200);
      const cancelEvents = await waitFor('the cancelled event', () => {
        const got = recorder.events.filter((e) => e.data.jobId === cancelled.id);
        return got.some((e) => e.type === 'imagestore.import.cancelled') && got;
      });
      expect(cancelEvents.map((e) => e.type)).to.deep.equal(['imagestore.import.created', 'imagestore.import.cancelled']);
      images.release('evented');
    } finally {
      await recorder.close();
    }
  });
});

describe('import jobs: request size', () => {
  let service: TestService;
  before(async () => {
    service = await startTestService();
  });
  after(async () => {
    await service?.close();
  });

  it('takes a job of IMPORT_MAX_URLS URLs (1,000 by default) although MAX_JSON_BYTES is 16 KiB', async () => {
    await service.http.post('/api/v1/albums').send({ albumName: 'many' }).expect(201);
    // Unroutable documentation addresses: every download fails, which does not matter here.
    const urls = Array.from({ length: 1000 }, (_, i) => `https://images.example.invalid/a/fairly/long/path/to/picture-number-${i}.jpg`);
    expect(JSON.stringify({ urls }).length).to.be.greaterThan(16 * 1024);
    const res = await service.http.post('/api/v1/albums/many/imports').send({ urls }).expect(202);
    await service.http.delete(`/api/v1/imports/${res.body.job.id}`).expect(200);
    const tooMany = [...urls, 'https://images.example.invalid/one-more.jpg'];
    expect((await service.http.post('/api/v1/albums/many/imports').send({ urls: tooMany }).expect(400)).body.error).to.equal('urls: expected 1 to 1000 URLs, got 1001');
  });
});

describe('import jobs: fairness between jobs (gh-12 item 14)', () => {
  let fairSvc: TestService;
  let fairImages: ImageServer;
  before(async () => {
    fairImages = await startImageServer();
    const defaults = defaultConfig();
    fairSvc = await startTestService({
      config: { imports: { ...defaults.imports, concurrency: 2, timeoutMs: 10_000, retries: 1, retryBaseDelayMs: 4000, allowHosts: ['127.0.0.1'] } },
    });
  });
  after(async () => {
    await fairSvc?.close();
    await fairImages?.close();
  });

  it('finishes a small job created behind a big slow one while the big one is still running', async () => {
    await createAlbum(fairSvc.http, 'fair');
    // 12 URLs that take a second each, two at a time: six seconds of work queued ahead.
    const slow = Array.from({ length: 12 }, (_, i) => `${fairImages.url}/delayed/1000/big-${i}.png`);
    const big = (await createImportJob(fairSvc.http, 'fair', slow)).job;
    await waitForImportJob(fairSvc.http, big.id, (j) => j.counts.downloading === 2);
    const small = (await createImportJob(fairSvc.http, 'fair', [`${fairImages.url}/red/small-1.png`, `${fairImages.url}/green/small-2.png`])).job;

    const done = await waitForImportJob(fairSvc.http, small.id, undefined, 15_000);
    const bigNow = await getImportJob(fairSvc.http, big.id);
    expect(done.counts.stored).to.equal(2);
    // In one queue over all jobs, the small job would wait for all 12 big URLs to start.
    expect(bigNow.state).to.equal('running');
    expect(bigNow.counts.queued, JSON.stringify(bigNow.counts)).to.be.above(0);
    await fairSvc.http.delete(`/api/v1/imports/${big.id}`).expect(200);
  });

  it('does not hold a download slot while an item waits for its retry', async () => {
    await createAlbum(fairSvc.http, 'fair-retry');
    // Both slots get a 500, then each item waits 4 s before its retry.
    const flaky = (await createImportJob(fairSvc.http, 'fair-retry', [`${fairImages.url}/flaky/fr-a/1/a.png`, `${fairImages.url}/flaky/fr-b/1/b.png`])).job;
    await waitFor('both first attempts answered', () => fairImages.requests.filter((r) => r.path.startsWith('/flaky/fr-') && r.finished).length === 2);
    const other = (await createImportJob(fairSvc.http, 'fair-retry', [`${fairImages.url}/red/other.png`])).job;

    expect((await waitForImportJob(fairSvc.http, other.id, undefined, 15_000)).counts.stored).to.equal(1);
    const waiting = await getImportJob(fairSvc.http, flaky.id);
    expect(waiting.items.map((i) => [i.state, i.attempts]), 'still waiting for the retries').to.deep.equal([['queued', 1], ['queued', 1]]);
    expect(waiting.state).to.equal('running');
    const done = await waitForImportJob(fairSvc.http, flaky.id, undefined, 15_000);
    expect(done.items.map((i) => [i.state, i.attempts])).to.deep.equal([['stored', 2], ['stored', 2]]);
  });
});

describe('import jobs: timeouts', () => {
  let slowSvc: TestService;
  let slowImages: ImageServer;
  before(async () => {
    slowImages = await startImageServer({ slowByteIntervalMs: 50 });
    const defaults = defaultConfig();
    slowSvc = await startTestService({
      config: { imports: { ...defaults.imports, timeoutMs: 250, retries: 1, retryBaseDelayMs: 10, allowHosts: ['127.0.0.1'] } },
    });
  });
  after(async () => {
    await slowSvc?.close();
    await slowImages?.close();
  });

  it('fails a response slower than IMPORT_TIMEOUT_MS with "timed out" after the retries, leaving no staged file', async () => {
    await createAlbum(slowSvc.http, 'slow');
    const started = Date.now();
    const { job } = await createImportJob(slowSvc.http, 'slow', [`${slowImages.url}/slow/trickle.png`]);
    const done = await waitForImportJob(slowSvc.http, job.id);
    const elapsedMs = Date.now() - started;
    expect(done.items[0]).to.include({ state: 'failed', error: 'timed out', attempts: 2 });
    expect(done.items[0].bytes).to.be.above(0).and.below(slowImages.red.length);
    expect(slowImages.hits('/slow/')).to.equal(2);
    // Two attempts of 250 ms each: the whole attempt is bounded, not just the wait for headers.
    expect(elapsedMs).to.be.within(500, 2500);
    expect(await fs.readdir(path.join(slowSvc.dataDir, '.imagestore', 'tmp'))).to.deep.equal([]);
    expect(((await slowSvc.http.get(`${albumPath('slow')}/images`).expect(200)).body as { imageList: string[] }).imageList).to.deep.equal([]);
  });
});

import { execFileSync } from 'node:child_process';
import { promises as fs, readdirSync } from 'node:fs';
import http from 'node:http';
import { expect } from 'chai';
import { newImageId } from '../../src/albums/image-meta.js';
import { Layout } from '../../src/albums/layout.js';
import { sha256 } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

// Issue 12, item 6: a listing with details read every metadata file at once. Under a file
// descriptor limit most reads failed with EMFILE and were dropped, so the answer was a 200 with
// part of the list. The real service runs here under a low `ulimit -n` (prlimit on its PID).

const IMAGES = 3000;
const ALBUM = 'many';
const NOFILE = 256;
const LIST = `/api/v1/albums/${ALBUM}/images?limit=10000&details=true`;

/** Writes an album of `count` images straight into a data dir, in the store's layout (much faster than uploading them). */
async function writeAlbum(dataDir: string, count: number): Promise<void> {
  const layout = new Layout(dataDir);
  const png = await makePng(2, 2);
  const meta = { size: png.length, type: 'image/png', sha256: sha256(png), format: 'png', width: 2, height: 2, createdAt: new Date().toISOString() };
  await fs.mkdir(layout.imageMetaDir(ALBUM), { recursive: true });
  await fs.writeFile(layout.albumInfoFile(ALBUM), JSON.stringify({ createdAt: meta.createdAt }));
  const names = Array.from({ length: count }, (_, i) => `img-${String(i).padStart(5, '0')}.png`);
  for (let i = 0; i < names.length; i += 200) {
    await Promise.all(names.slice(i, i + 200).flatMap((name) => [
      fs.writeFile(layout.imageFile(ALBUM, name), png),
      fs.writeFile(layout.imageMetaFile(ALBUM, name), JSON.stringify({ ...meta, id: newImageId(), name, modifiedAt: meta.createdAt })),
    ]));
  }
}

/** Sets the service's open-file limit (soft; the hard limit stays at NOFILE, so the soft one can be raised again). */
function setNofile(pid: number, soft: number): void {
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${NOFILE}`]);
}

/** The descriptor number the process's next open() would get: with the soft limit set to it, that open fails (EMFILE). */
function lowestFreeFd(pid: number): number {
  const open = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let fd = 0;
  while (open.has(fd)) fd += 1;
  return fd;
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: { imageList?: string[]; images?: Array<{ name: string }>; error?: string; image?: { name: string } };
}

function request(base: string, path: string, options: { method?: string; agent?: http.Agent; headers?: Record<string, string>; body?: Buffer } = {}): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path, method: options.method ?? 'GET', agent: options.agent, headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      const json = /json/.test(res.headers['content-type'] ?? '');
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: json ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {} }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error(`${path}: no answer within 20 s`)));
    req.end(options.body);
  });
}

async function upload(base: string, name: string, png: Buffer): Promise<Answer> {
  const boundary = 'fd-limit-boundary-9f2c';
  const body = Buffer.concat([
    Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/png\r\n\r\n`),
    png,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
  return request(base, `/api/v1/albums/${ALBUM}/images`, { method: 'POST', headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}` }, body });
}

/** A detail listing is complete (every image, with its details) or a 503 with Retry-After; never a short 200. */
function expectCompleteOr503(res: Answer, expected: number): void {
  if (res.status === 503) {
    expect(res.headers['retry-after'], JSON.stringify(res.body)).to.match(/^\d+$/);
    expect(res.body.error).to.be.a('string');
    return;
  }
  expect(res.status, JSON.stringify(res.body).slice(0, 200)).to.equal(200);
  expect(res.body.imageList, 'imageList').to.have.length(expected);
  expect(res.body.images, 'images (details)').to.have.length(expected);
  expect(res.body.images!.map((i) => i.name)).to.deep.equal(res.body.imageList);
}

describe(`detail listings under a low open-file limit (ulimit -n ${NOFILE}) (issue 12)`, function () {
  this.timeout(120_000);
  let dataDir: string;
  let svc: SpawnedService;
  let png: Buffer;

  before(async () => {
    dataDir = await makeTmpDir('imagestore-fd-limit-');
    await writeAlbum(dataDir, IMAGES);
    png = await makePng(3, 3);
    svc = await spawnService({ dataDir, readyTimeoutMs: 60_000 });
    const open = readdirSync(`/proc/${svc.pid}/fd`).length;
    expect(open, 'descriptors the idle service holds').to.be.below(NOFILE / 2);
    setNofile(svc.pid, NOFILE);
  });
  after(async () => {
    await svc?.stop();
    await removeDir(dataDir);
  });

  it(`answers ?limit=10000&details=true with all ${IMAGES} images, or 503, never a short 200; an upload works meanwhile`, async () => {
    const listings = Array.from({ length: 4 }, () => request(svc.http, LIST));
    const uploaded = upload(svc.http, 'during-listings.png', png);
    const answers = await Promise.all(listings);
    for (const res of answers) expectCompleteOr503(res, IMAGES);
    expect(answers.filter((a) => a.status === 200), 'at least one complete listing').to.not.have.length(0);
    const up = await uploaded;
    expect(up.status, JSON.stringify(up.body)).to.equal(201);
    expectCompleteOr503(await request(svc.http, LIST), IMAGES + 1);
  });

  // Issue 13: metadata is held in memory, so the detail listing needs no descriptor any more; a download
  // whose bytes are not in memory yet still opens its file, and that is what gets the 503 now.
  it('answers a download 503 with Retry-After (and logs it) when no descriptor is left, while the detail listing (from memory) stays complete', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const image = `/api/v1/albums/${ALBUM}/images/img-00042.png`;
    try {
      // The connection is accepted while descriptors are free; then the limit drops to what is open.
      const count = (await request(svc.http, `/api/v1/albums/${ALBUM}/images?limit=10000`, { agent })).body.imageList!.length;
      setNofile(svc.pid, lowestFreeFd(svc.pid));
      const listed = await request(svc.http, LIST, { agent });
      const starved = await request(svc.http, image, { agent });
      setNofile(svc.pid, NOFILE);
      expectCompleteOr503(listed, count);
      expect(listed.status, 'the detail listing reads no file').to.equal(200);
      expect(starved.status, JSON.stringify(starved.body).slice(0, 200)).to.equal(503);
      expect(starved.headers['retry-after']).to.match(/^\d+$/);
      expect(starved.body.error).to.match(/too many open files/i);
      expect(starved.body.error, 'no internal path in the message').to.not.include(dataDir);
      const logged = () => svc.logs('request failed').some((l) => /too many open files/i.test(String((l.err as { message?: string })?.message)));
      await waitFor('a log line for the 503', logged, 5000);
      expect((await request(svc.http, image, { agent })).status, 'the download once descriptors are free').to.equal(200);
      expectCompleteOr503(await request(svc.http, LIST, { agent }), count);
    } finally {
      setNofile(svc.pid, NOFILE);
      agent.destroy();
    }
  });
});

/**
 * Issue 9 benchmark: upload, download, list and first transform through the S3
 * backend against the filesystem backend, side by side in one run.
 *
 *   bash scripts/swift-s3.sh start            # S3 (OpenStack Swift) on 127.0.0.1:8080
 *   S3_TEST_ENDPOINT=http://127.0.0.1:8080 npx tsx bench/s3-vs-fs.ts
 *
 * Each backend runs the same service in this process (on 127.0.0.1), driven by
 * fetch with 8 requests in flight; the figures are requests per second and the
 * ratio S3 / fs. Run by hand, never in CI.
 */
import { loadConfig, type Config } from '../src/config.js';
import { silentLogger } from '../src/logger.js';
import { startService, type RunningService } from '../src/server.js';
import { TestBucket } from '../test/helpers/s3.js';
import { makeTmpDir, removeDir } from '../test/helpers/tmp-dir.js';
import sharp from 'sharp';
import { S3Client } from '@aws-sdk/client-s3';

/** Every S3 request the service makes (it runs in this process): counted per operation by patching the client. */
const s3Requests = { count: 0 };
const send = S3Client.prototype.send as (...args: unknown[]) => Promise<unknown>;
(S3Client.prototype as unknown as { send: typeof send }).send = function (this: S3Client, ...args: unknown[]) {
  s3Requests.count += 1;
  return send.apply(this, args);
};

const UPLOADS = 200;
const DOWNLOADS = 1000;
const LISTS = 200;
const TRANSFORMS = 40;
const IN_FLIGHT = 8;

async function pool(count: number, work: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < count) await work(next++);
  }));
  return count / ((performance.now() - started) / 1000);
}

async function check(res: Response, expected: number): Promise<void> {
  if (res.status !== expected) throw new Error(`${res.url}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

/** Runs `count` operations; returns their rate and the S3 requests made per operation. */
async function measure(count: number, work: (i: number) => Promise<void>, requests: Record<string, number>, op: string): Promise<number> {
  const before = s3Requests.count;
  const rate = await pool(count, work);
  requests[op] = (s3Requests.count - before) / count;
  return rate;
}

async function run(service: RunningService, image: Buffer, requests: Record<string, number>): Promise<Record<string, number>> {
  const api = `${service.httpUrl}/api/v1`;
  await check(await fetch(`${api}/albums`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"albumName":"bench"}' }), 201);
  const upload = await measure(UPLOADS, async (i) => {
    const form = new FormData();
    form.append('file', new Blob([image]), `img-${String(i).padStart(4, '0')}.jpg`);
    await check(await fetch(`${api}/albums/bench/images`, { method: 'POST', body: form }), 201);
  }, requests, 'upload');
  const download = await measure(DOWNLOADS, async (i) => check(await fetch(`${api}/albums/bench/images/img-${String(i % UPLOADS).padStart(4, '0')}.jpg`), 200), requests, 'download');
  const list = await measure(LISTS, async () => check(await fetch(`${api}/albums/bench/images?limit=50&details=true`), 200), requests, 'list');
  // A different q each time: every request is a cache miss.
  const transform = await measure(TRANSFORMS, async (i) => check(await fetch(`${api}/albums/bench/images/img-${String(i).padStart(4, '0')}.jpg?w=320&format=webp&q=${50 + i}`), 200), requests, 'transform');
  return { upload, download, list, transform };
}

async function main(): Promise<void> {
  const endpoint = process.env.S3_TEST_ENDPOINT;
  if (!endpoint) throw new Error('set S3_TEST_ENDPOINT (see the header of this file)');
  // A 1600×1200 photo-like JPEG of about 300 KB: noise over a gradient.
  const noise = Buffer.alloc(1600 * 1200 * 3);
  for (let i = 0; i < noise.length; i++) noise[i] = (i % 4800) / 19 + Math.random() * 40;
  const image = await sharp(noise, { raw: { width: 1600, height: 1200, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
  const bucket = await TestBucket.create(endpoint);
  const base = loadConfig({ HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', LOG_LEVEL: 'silent' });
  const results: Record<string, Record<string, number>> = {};
  const requests: Record<string, number> = {};
  try {
    for (const storage of ['fs', 's3'] as const) {
      const dataDir = await makeTmpDir();
      const settings = bucket.settings(TestBucket.prefix());
      const config: Config = { ...base, imageDbDir: dataDir, storage, s3: storage === 's3' ? settings : undefined };
      const service = await startService(config, silentLogger(), 'bench');
      try {
        results[storage] = await run(service, image, requests);
      } finally {
        await service.close();
        await removeDir(dataDir);
      }
    }
  } finally {
    await bucket.destroy();
  }
  const rows = Object.keys(results.fs).map((op) => {
    const fs = results.fs[op];
    const s3 = results.s3[op];
    return `| ${op} | ${fs.toFixed(1)} | ${s3.toFixed(1)} | ${(s3 / fs).toFixed(2)} | ${requests[op].toFixed(2)} |`;
  });
  console.log(`image ${image.length} bytes; ${UPLOADS} uploads, ${DOWNLOADS} downloads, ${LISTS} list pages of 50 with details, ${TRANSFORMS} first transforms (w=320 webp); ${IN_FLIGHT} in flight`);
  console.log('| operation | fs req/s | s3 req/s | s3 / fs | S3 requests per operation |\n|---|---|---|---|---|');
  console.log(rows.join('\n'));
}

await main();

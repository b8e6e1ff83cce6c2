/**
 * Issue 9 benchmark: upload, download, list and first transform through the S3
 * backend against the filesystem backend, side by side in one run.
 *
 *   bash scripts/swift-s3.sh start            # S3 (OpenStack Swift) on 127.0.0.1:8080
 *   S3_TEST_ENDPOINT=http://127.0.0.1:8080 npx tsx bench/s3-vs-fs.ts
 *
 * Both backends run the same service in this process (on 127.0.0.1), driven by
 * fetch with 8 requests in flight, each operation in rounds that alternate the
 * backends; the figures are requests per second, the ratio S3 / fs, and the S3
 * requests per operation (counted at the SDK client). Run by hand, never in CI.
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
/** Each operation runs in this many rounds, the backends alternated (fs first in even rounds), so load drift hits both alike. */
const ROUNDS = 4;

/** Runs work(from..to-1) with IN_FLIGHT in flight; returns the seconds taken. */
async function pool(from: number, to: number, work: (i: number) => Promise<void>): Promise<number> {
  let next = from;
  const started = performance.now();
  await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
    while (next < to) await work(next++);
  }));
  return (performance.now() - started) / 1000;
}

async function check(res: Response, expected: number): Promise<void> {
  if (res.status !== expected) throw new Error(`${res.url}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
}

type Op = (api: string, i: number) => Promise<void>;

function operations(image: Buffer): Record<string, { count: number; op: Op }> {
  const name = (i: number) => `img-${String(i).padStart(4, '0')}.jpg`;
  return {
    upload: {
      count: UPLOADS,
      op: async (api, i) => {
        const form = new FormData();
        form.append('file', new Blob([image]), name(i));
        await check(await fetch(`${api}/albums/bench/images`, { method: 'POST', body: form }), 201);
      },
    },
    download: { count: DOWNLOADS, op: async (api, i) => check(await fetch(`${api}/albums/bench/images/${name(i % UPLOADS)}`), 200) },
    list: { count: LISTS, op: async (api) => check(await fetch(`${api}/albums/bench/images?limit=50&details=true`), 200) },
    // A different q each time: every request is a cache miss.
    transform: { count: TRANSFORMS, op: async (api, i) => check(await fetch(`${api}/albums/bench/images/${name(i)}?w=320&format=webp&q=${50 + i}`), 200) },
  };
}

/** Every operation on both services, in alternated rounds: requests per second per backend, and S3 requests per operation. */
async function run(services: Record<'fs' | 's3', RunningService>, image: Buffer): Promise<Array<{ op: string; fs: number; s3: number; requests: number }>> {
  for (const service of Object.values(services)) {
    await check(await fetch(`${service.httpUrl}/api/v1/albums`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{"albumName":"bench"}' }), 201);
  }
  const rows = [];
  for (const [op, { count, op: work }] of Object.entries(operations(image))) {
    const seconds = { fs: 0, s3: 0 };
    let requests = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const [from, to] = [Math.floor((count * round) / ROUNDS), Math.floor((count * (round + 1)) / ROUNDS)];
      for (const backend of round % 2 === 0 ? (['fs', 's3'] as const) : (['s3', 'fs'] as const)) {
        const api = `${services[backend].httpUrl}/api/v1`;
        const before = s3Requests.count;
        seconds[backend] += await pool(from, to, (i) => work(api, i));
        if (backend === 's3') requests += s3Requests.count - before;
      }
    }
    rows.push({ op, fs: count / seconds.fs, s3: count / seconds.s3, requests: requests / count });
  }
  return rows;
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
  const started: Array<{ service: RunningService; dataDir: string }> = [];
  try {
    const services = {} as Record<'fs' | 's3', RunningService>;
    for (const storage of ['fs', 's3'] as const) {
      const dataDir = await makeTmpDir();
      const config: Config = { ...base, imageDbDir: dataDir, storage, s3: storage === 's3' ? bucket.settings(TestBucket.prefix()) : undefined };
      const service = await startService(config, silentLogger(), 'bench');
      started.push({ service, dataDir });
      services[storage] = service;
    }
    const rows = await run(services, image);
    console.log(`image ${image.length} bytes; ${UPLOADS} uploads, ${DOWNLOADS} downloads, ${LISTS} list pages of 50 with details, ${TRANSFORMS} first transforms (w=320 webp); ${IN_FLIGHT} in flight; ${ROUNDS} rounds, backends alternated`);
    console.log('| operation | fs req/s | s3 req/s | s3 / fs | S3 requests per operation |\n|---|---|---|---|---|');
    for (const { op, fs, s3, requests } of rows) console.log(`| ${op} | ${fs.toFixed(1)} | ${s3.toFixed(1)} | ${(s3 / fs).toFixed(2)} | ${requests.toFixed(2)} |`);
  } finally {
    for (const { service, dataDir } of started) {
      await service.close();
      await removeDir(dataDir);
    }
    await bucket.destroy();
  }
}

await main();

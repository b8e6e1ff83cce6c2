/**
 * Issue 5, benchmark 4 (run by hand, never in CI): the service's resident memory
 *   a. peak while 16 concurrent transforms of a 12 MP JPEG run (target < 400 MB):
 *      once as 320 px WebP thumbnails (JPEG shrink-on-load applies) and once as
 *      large outputs (1200-3600 px: the whole image is decoded);
 *   b. peak while 8 concurrent ~50 MiB uploads run (target < 200 MB);
 *   c. RSS after 5,000 varied transforms of small sources vs after 500 (target ≤ 1.5×).
 * Each scenario runs in a fresh service process (`node dist/src/main.js`), once with
 * glibc's malloc and once with LD_PRELOAD=libjemalloc.so.2 (sharp's advice on glibc).
 * Peak = VmHWM from /proc/<pid>/status, reset (clear_refs 5) after setup, and the
 * highest VmRSS sampled every 50 ms. 1 MB here = 1 MiB.
 *
 *   npm run build && npx tsx bench/memory.ts [--allocators glibc,jemalloc] [--transforms 5000] [--scenarios a,b,c]
 */
import { once } from 'node:events';
import http from 'node:http';
import { parseArgs } from 'node:util';
import { noisyPng, rng, smallJpegs, twelveMegapixelJpeg } from './fixtures.js';
import { createAlbum, loadAverage, machineInfo, memoryOf, resetPeakRss, round, runPool, sampleRss, sleep, startService, uploadImage, type Service } from './lib.js';

const { values: args } = parseArgs({
  options: {
    allocators: { type: 'string', default: 'glibc,jemalloc' },
    transforms: { type: 'string', default: '5000' },
    scenarios: { type: 'string', default: 'a,b,c' },
    /** Another build's entry point (from the repo root), e.g. a patched copy of dist. */
    main: { type: 'string', default: 'dist/src/main.js' },
    /** Extra service environment, e.g. UV_THREADPOOL_SIZE=8 (comma-separated KEY=VALUE). */
    env: { type: 'string', default: '' },
  },
});
const allocators = args.allocators.split(',');
const scenarios = new Set(args.scenarios.split(','));
const totalTransforms = Number(args.transforms);
const extraEnv = Object.fromEntries(args.env.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));

async function get(url: string): Promise<void> {
  const res = await fetch(url);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
}

/** Uploads one buffer as multipart/form-data over node:http, streaming it (the client holds one copy for all uploads). */
async function uploadStreaming(service: Service, album: string, name: string, bytes: Buffer): Promise<void> {
  const boundary = `bench${Math.random().toString(16).slice(2)}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/png\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const req = http.request(`${service.api}/albums/${album}/images`, {
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + bytes.length + tail.length },
  });
  req.write(head);
  for (let i = 0; i < bytes.length; i += 1 << 20) {
    if (!req.write(bytes.subarray(i, i + (1 << 20)))) await once(req, 'drain');
  }
  req.end(tail);
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  let text = '';
  for await (const chunk of res) text += chunk;
  if (res.statusCode !== 201) throw new Error(`upload ${name}: ${res.statusCode} ${text}`);
}

interface Peak {
  beforeMiB: number;
  hwmMiB: number;
  sampledMiB: number;
  seconds: number;
}

/** Runs `work` with the peak counter reset and RSS sampled every 50 ms. */
async function peakDuring(service: Service, work: () => Promise<void>): Promise<Peak> {
  await sleep(500);
  const beforeMiB = memoryOf(service.pid).rssMiB;
  await resetPeakRss(service.pid);
  const sampler = sampleRss(service.pid, 50);
  const t = performance.now();
  await work();
  const seconds = (performance.now() - t) / 1000;
  const { peakSampleMiB, hwmMiB } = sampler.stop();
  return { beforeMiB, hwmMiB, sampledMiB: peakSampleMiB, seconds };
}

/** Size of the small sources of the long run. */
const SMALL = { width: 400, height: 300 };

/** The query strings of `n` distinct random transforms of a SMALL source. */
function variedQueries(n: number): string[] {
  const random = rng(42);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(random() * xs.length)];
  const seen = new Set<string>();
  while (seen.size < n) {
    const p = new URLSearchParams();
    p.set('w', String(16 + Math.floor(random() * (SMALL.width - 15))));
    if (random() < 0.5) p.set('h', String(16 + Math.floor(random() * (SMALL.height - 15))));
    if (p.has('h')) p.set('fit', pick(['cover', 'contain', 'fill', 'inside', 'outside']));
    p.set('format', pick(['jpeg', 'jpeg', 'webp', 'webp', 'png', 'avif', 'gif', 'tiff']));
    if (!['gif', 'png'].includes(p.get('format')!)) p.set('q', String(30 + Math.floor(random() * 66)));
    if (random() < 0.3) p.set('rotate', pick(['90', '180', '270']));
    if (random() < 0.2) p.set('flip', '1');
    if (random() < 0.2) p.set('flop', '1');
    if (random() < 0.2) p.set('grayscale', '1');
    if (random() < 0.15) p.set('blur', (0.3 + random() * 4).toFixed(1));
    if (random() < 0.15) {
      const w = 32 + Math.floor(random() * (SMALL.width - 64));
      const h = 32 + Math.floor(random() * (SMALL.height - 64));
      p.set('crop', `${Math.floor(random() * (SMALL.width - w))},${Math.floor(random() * (SMALL.height - h))},${w},${h}`);
    }
    seen.add(p.toString());
  }
  return [...seen];
}

async function main(): Promise<void> {
  const header = machineInfo();
  const jpeg12 = scenarios.has('a') ? await twelveMegapixelJpeg() : Buffer.alloc(0);
  const png50 = scenarios.has('b') ? await noisyPng() : Buffer.alloc(0);
  const smalls = scenarios.has('c') ? await smallJpegs(8, SMALL) : [];
  const queries = scenarios.has('c') ? variedQueries(totalTransforms) : [];
  const lines: string[] = [
    '### Memory: peak and long-run RSS of the service (issue 5, item 4)',
    '',
    header,
    `- Command: \`npm run build && npx tsx bench/memory.ts --allocators ${args.allocators} --transforms ${totalTransforms} --scenarios ${args.scenarios}${args.env ? ` --env ${args.env}` : ''}${args.main !== 'dist/src/main.js' ? ` --main ${args.main}` : ''}\``,
    `- Each scenario in a fresh \`node ${args.main}\` (LOG_LEVEL=warn, embedded broker); peak = VmHWM after \`echo 5 > /proc/<pid>/clear_refs\` at the start of the measured phase, and the highest VmRSS sampled every 50 ms. MB = MiB.`,
    `- Inputs: a. generated 4000×3000 JPEG (${jpeg12.length} bytes), 16 requests at once with distinct parameters (each a cache miss); b. a ${png50.length}-byte noisy RGB PNG (${Math.round(png50.length / 2 ** 20)} MiB, 4181×4181), 8 uploads at once; c. 8 generated ${SMALL.width}×${SMALL.height} JPEGs, ${totalTransforms} distinct random transforms (w, h, fit, format jpeg/webp/png/avif/gif/tiff, q, rotate, flip, flop, grayscale, blur, crop), 4 in flight.`,
    '',
  ];
  const table: string[] = ['| allocator | scenario | RSS before | peak RSS (VmHWM) | peak sampled | time | target |', '|---|---|---|---|---|---|---|'];
  const longRun: string[] = [];

  for (const allocator of allocators) {
    const jemalloc = allocator === 'jemalloc';
    const fmt = (p: Peak, scenario: string, target: string) =>
      `| ${allocator} | ${scenario} | ${Math.round(p.beforeMiB)} MB | **${Math.round(p.hwmMiB)} MB** | ${Math.round(p.sampledMiB)} MB | ${round(p.seconds, 1)} s | ${target} |`;

    if (scenarios.has('a')) {
      for (const kind of ['320 px WebP', 'large 1200-3600 px'] as const) {
        const service = await startService({ jemalloc, env: extraEnv, main: args.main });
        try {
          await createAlbum(service.api, 'bench');
          await uploadImage(service.api, 'bench', 'photo.jpg', jpeg12);
          const urls = Array.from({ length: 16 }, (_, i) =>
            kind === '320 px WebP'
              ? `${service.api}/albums/bench/images/photo.jpg?w=320&format=webp&q=${90 - i}`
              : `${service.api}/albums/bench/images/photo.jpg?w=${1200 + 160 * i}&format=${['jpeg', 'webp'][i % 2]}&q=${80 - i}`,
          );
          const peak = await peakDuring(service, async () => {
            await Promise.all(urls.map((u) => get(u)));
          });
          table.push(fmt(peak, `a. 16 concurrent 12 MP transforms, ${kind}`, '< 400 MB'));
          process.stderr.write(`${table.at(-1)}\n`);
        } finally {
          await service.close();
        }
      }
    }

    if (scenarios.has('b')) {
      const service = await startService({ jemalloc, env: extraEnv, main: args.main });
      try {
        await createAlbum(service.api, 'bench');
        const peak = await peakDuring(service, async () => {
          await Promise.all(Array.from({ length: 8 }, (_, i) => uploadStreaming(service, 'bench', `big-${i}.png`, png50)));
        });
        table.push(fmt(peak, 'b. 8 concurrent 50 MiB uploads', '< 200 MB'));
        process.stderr.write(`${table.at(-1)}\n`);
      } finally {
        await service.close();
      }
    }

    if (scenarios.has('c')) {
      const service = await startService({ jemalloc, env: extraEnv, main: args.main });
      try {
        await createAlbum(service.api, 'bench');
        for (const [i, bytes] of smalls.entries()) await uploadImage(service.api, 'bench', `small-${i}.jpg`, bytes);
        const rssAt: Record<number, number> = {};
        const checkpoints = [500, 1000, 2000, 3000, 4000, 5000].filter((c) => c <= totalTransforms);
        let done = 0;
        const t = performance.now();
        const sampler = sampleRss(service.pid, 50);
        for (const checkpoint of checkpoints) {
          const batch = queries.slice(done, checkpoint);
          await runPool(batch, 4, async (q, i) => get(`${service.api}/albums/bench/images/small-${(done + i) % smalls.length}.jpg?${q}`));
          done = checkpoint;
          await sleep(1000); // let in-flight frees and GC settle
          rssAt[checkpoint] = memoryOf(service.pid).rssMiB;
          process.stderr.write(`${allocator}: RSS after ${checkpoint} transforms: ${Math.round(rssAt[checkpoint])} MB (${Math.round((performance.now() - t) / 1000)} s)\n`);
        }
        const { peakSampleMiB } = sampler.stop();
        const last = checkpoints.at(-1)!;
        longRun.push(
          `| ${allocator} | ${checkpoints.map((c) => Math.round(rssAt[c])).join(' → ')} | ${Math.round(peakSampleMiB)} MB | **${round(rssAt[last] / rssAt[500])}×** | ${round((performance.now() - t) / 1000, 0)} s |`,
        );
      } finally {
        await service.close();
      }
    }
  }
  lines.push(...table, '');
  if (longRun.length) {
    lines.push(
      `c. RSS (MB) 1 s after ${[500, 1000, 2000, 3000, 4000, 5000].filter((c) => c <= totalTransforms).join(', ')} varied transforms (target: after ${totalTransforms} ≤ 1.5× after 500):`,
      '',
      '| allocator | RSS after 500 → … → last checkpoint | peak sampled | last / 500 | time |',
      '|---|---|---|---|---|',
      ...longRun,
      '',
    );
  }
  lines.push(`- Load average at the end: ${loadAverage()}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

await main();

/**
 * Issue 5, benchmark 2 (run by hand, never in CI): first-time transform of a
 * 12-megapixel JPEG (4000×3000, photo-like) to a 320 px wide WebP, 2 at a time:
 *   - through the API (every request a cache miss: a different q= each time),
 *   - sharp in a tight loop in this process with the service's own pipeline
 *     (buildTransform from src/images/transform.ts: autoOrient, resize, sRGB, keep ICC, webp),
 *   - plain sharp `sharp(input).resize(320).webp({ quality }).toFile()` (for reference),
 *   - ImageMagick `/usr/bin/convert input.jpg -thumbnail 320x output.webp`, 2 processes at a time.
 * Rounds alternate the contenders; the report gives median throughputs and ratios.
 *
 *   npm run build && npx tsx bench/transform.ts [--rounds 3] [--count 16] [--im-count 6] [--jemalloc]
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import sharp from 'sharp';
import { buildTransform } from '../src/images/transform.js';
import { twelveMegapixelJpeg, writeFixture } from './fixtures.js';
import { createAlbum, cpuTimeMs, IM_CONVERT, loadAverage, machineInfo, makeTmpDir, median, round, run, runPool, startService, uploadImage } from './lib.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    count: { type: 'string', default: '16' },
    'im-count': { type: 'string', default: '6' },
    jemalloc: { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const count = Number(args.count);
const imCount = Number(args['im-count']);
const CONCURRENCY = 2;
if (2 + rounds * count > 140) throw new Error('more API requests than distinct parameter sets (140): lower --rounds or --count');

interface Measure {
  opsPerSec: number;
  medianMs: number;
  /** CPU time per operation of the process doing the work (service, or this process for sharp). */
  cpuMsPerOp?: number;
}

/** Runs `n` operations, 2 at a time; returns throughput and median latency. */
async function measure(n: number, op: (i: number) => Promise<void>, cpu?: () => number): Promise<Measure> {
  const latencies: number[] = [];
  const cpu0 = cpu?.();
  const wall = await runPool(Array.from({ length: n }, (_, i) => i), CONCURRENCY, async (i) => {
    const t = performance.now();
    await op(i);
    latencies.push(performance.now() - t);
  });
  const cpuMsPerOp = cpu ? (cpu() - cpu0!) / n : undefined;
  return { opsPerSec: (n * 1000) / wall, medianMs: median(latencies), cpuMsPerOp };
}

async function main(): Promise<void> {
  const header = machineInfo();
  const dir = await makeTmpDir('bench-transform-');
  const jpeg = await twelveMegapixelJpeg();
  const input = await writeFixture(dir, 'photo.jpg', jpeg);
  const meta = await sharp(input).metadata();
  const service = await startService({ jemalloc: args.jemalloc });
  try {
    await createAlbum(service.api, 'bench');
    await uploadImage(service.api, 'bench', 'photo.jpg', jpeg);

    // Every API request gets its own parameters, so each is a cache miss: q from 100 down to 31, then the same
    // with enlarge=1 (no effect on a downscale, but another cache key). sharp runs get the same qualities.
    let taken = 0;
    const takeQualities = (n: number) => Array.from({ length: n }, () => taken++);
    const qualityOf = (k: number) => 100 - (k % 70);
    const viaApi = async (k: number) => {
      const res = await fetch(`${service.api}/albums/bench/images/photo.jpg?w=320&format=webp&q=${qualityOf(k)}${k >= 70 ? '&enlarge=1' : ''}`);
      const body = await res.arrayBuffer();
      if (res.status !== 200 || res.headers.get('content-type') !== 'image/webp') throw new Error(`API transform: ${res.status}`);
      if (body.byteLength < 1000) throw new Error('API transform: tiny body');
    };
    const source = { width: meta.width!, height: meta.height!, orientation: meta.orientation ?? 1, pages: 1 };
    const viaPipeline = async (quality: number, i: number) => {
      await buildTransform(input, { width: 320, format: 'webp', quality }, source, 100_000_000).toFile(path.join(dir, `pipeline-${i % 4}.webp`));
    };
    const viaPlainSharp = async (quality: number, i: number) => {
      await sharp(input).resize(320).webp({ quality }).toFile(path.join(dir, `plain-${i % 4}.webp`));
    };
    const viaImageMagick = async (i: number) => run(IM_CONVERT, [input, '-thumbnail', '320x', path.join(dir, `im-${i % 4}.webp`)]);
    const selfCpu = () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
    const serviceCpu = () => cpuTimeMs(service.pid);

    // Warm-up (code paths, page cache), not measured.
    for (const q of takeQualities(2)) await viaApi(q);
    await viaPipeline(50, 0);
    await viaPlainSharp(50, 0);
    await viaImageMagick(0);

    const results: Record<string, Measure[]> = { api: [], pipeline: [], plain: [], im: [] };
    const loads: string[] = [];
    for (let r = 0; r < rounds; r++) {
      loads.push(loadAverage());
      const qs = takeQualities(count);
      results.api.push(await measure(count, (i) => viaApi(qs[i]), serviceCpu));
      results.pipeline.push(await measure(count, (i) => viaPipeline(qualityOf(qs[i]), i), selfCpu));
      results.plain.push(await measure(count, (i) => viaPlainSharp(qualityOf(qs[i]), i), selfCpu));
      results.im.push(await measure(imCount, (i) => viaImageMagick(i)));
      process.stderr.write(`round ${r + 1}: ${Object.entries(results).map(([k, v]) => `${k} ${round(v.at(-1)!.opsPerSec)}/s`).join(', ')}\n`);
    }
    const med = (k: string) => median(results[k].map((m) => m.opsPerSec));
    const medLat = (k: string) => median(results[k].map((m) => m.medianMs));
    const medCpu = (k: string) => (results[k][0].cpuMsPerOp === undefined ? '–' : String(Math.round(median(results[k].map((m) => m.cpuMsPerOp!)))));
    const row = (label: string, k: string) =>
      `| ${label} | ${results[k].map((m) => round(m.opsPerSec)).join(', ')} | ${round(med(k))} | ${Math.round(medLat(k))} | ${medCpu(k)} |`;
    const out = await sharp(await (await fetch(`${service.api}/albums/bench/images/photo.jpg?w=320&format=webp&q=${qualityOf(taken - 1)}`)).arrayBuffer()).metadata();
    const lines = [
      `### First-time transform: 12 MP JPEG → 320 px WebP, 2 concurrent (issue 5, item 2)`,
      '',
      header,
      `- Load average during the rounds: ${loads.join(' | ')}`,
      `- Command: \`npm run build && npx tsx bench/transform.ts --rounds ${rounds} --count ${count} --im-count ${imCount}${args.jemalloc ? ' --jemalloc' : ''}\``,
      `- Input: generated photo-like 4000×3000 JPEG (q85, 4:2:0), ${jpeg.length} bytes. Output ${out.width}×${out.height} WebP.`,
      `- API: \`GET /api/v1/albums/bench/images/photo.jpg?w=320&format=webp&q=<q>[&enlarge=1]\` (distinct parameters: every request a derivative-cache miss: transform, write to the cache, send), ${count} per round, 2 in flight. Service: \`node dist/src/main.js\`${args.jemalloc ? ' with LD_PRELOAD=libjemalloc.so.2' : ''}, sharp defaults (concurrency ${args.jemalloc ? '= CPUs with jemalloc' : '1 per pipeline on glibc without jemalloc'}, cache on).`,
      `- sharp, same pipeline: \`buildTransform(input, { width: 320, format: 'webp', quality }, …).toFile()\` from src/images/transform.ts in one process, ${count} per round, 2 in flight (sharp concurrency ${sharp.concurrency()} in that process).`,
      `- sharp, plain: \`sharp(input).resize(320).webp({ quality }).toFile()\`, same loop.`,
      `- ImageMagick ${'6.9.11'} (Debian): \`/usr/bin/convert input.jpg -thumbnail 320x out.webp\`, ${imCount} per round, 2 processes at a time.`,
      `- ${rounds} rounds, contenders alternated within each round; medians.`,
      '',
      '| contender | transforms/s per round | median transforms/s | median latency ms | CPU ms per transform |',
      '|---|---|---|---|---|',
      row('imagestore API (cache miss)', 'api'),
      row('sharp tight loop, service pipeline', 'pipeline'),
      row('sharp tight loop, plain resize+webp', 'plain'),
      row('ImageMagick convert -thumbnail', 'im'),
      '',
      `- **API vs sharp (same pipeline): ${round(med('api') / med('pipeline'))}×** (target ≥ 0.85×); vs plain sharp: ${round(med('api') / med('plain'))}×.`,
      `- **API vs ImageMagick: ${round(med('api') / med('im'))}× faster** (target ≥ 5×).`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await service.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();

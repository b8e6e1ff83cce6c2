/**
 * Hand-run benchmark of the image diff on a 12-megapixel pair (issue 8):
 *
 *   npx tsx bench/diff-12mp.ts            # measures, prints and appends a section to bench/RESULTS.md
 *   npx tsx bench/diff-12mp.ts --dry-run  # measures and prints only
 *
 * Two photo-like 4000×3000 JPEGs (quality 90, 4:2:0) are generated: `a`, and
 * `b` = the same pixels with three painted changes. Both are uploaded to the
 * real service, started as a child process (test/helpers/spawn-service.ts,
 * `node --import tsx src/main.ts`), and compared through the real API:
 * GET /api/v1/diff with output=json and output=png, 3 runs each, then one
 * output=side-by-side and one json diff of two unrelated pictures (differences
 * everywhere: the worst case for the region search). Peak memory is the
 * child's VmHWM from /proc/<pid>/status, reset before each phase through
 * /proc/<pid>/clear_refs, so each figure is that phase's own peak.
 */
import { execFileSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp, { type Sharp } from 'sharp';
import { spawnService, REPO_ROOT, type SpawnedService } from '../test/helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../test/helpers/tmp-dir.js';
import { photoPixels } from './fixtures.js';
import { memoryOf, resetPeakRss } from './lib.js';

const WIDTH = 4000;
const HEIGHT = 3000;
const RUNS = 3;
const RESULTS_FILE = path.join(REPO_ROOT, 'bench', 'RESULTS.md');
/** The painted changes: [x, y, width, height, colour]. */
const CHANGES: Array<[number, number, number, number, string]> = [
  [400, 300, 300, 200, '#ff00ff'],
  [2500, 1200, 120, 480, '#00ffcc'],
  [3600, 2700, 40, 40, '#101010'],
];

interface Phase {
  label: string;
  timesMs: number[];
  /** The child's CPU time (user + system, all threads) per run, from /proc/<pid>/stat. */
  cpuMs: number[];
  peakMiB: number;
  detail: string;
}

async function main(): Promise<void> {
  const dryRun = process.argv.includes('--dry-run');
  const loadBefore = os.loadavg().map((l) => l.toFixed(2)).join(', ');
  const started = performance.now();
  const { a, b, other } = await makePair();
  console.error(`pictures generated in ${Math.round(performance.now() - started)} ms: a ${kb(a)} KB, b ${kb(b)} KB, other ${kb(other)} KB`);

  const dataDir = await makeTmpDir('imagestore-diff-bench-');
  let svc: SpawnedService | undefined;
  const phases: Phase[] = [];
  try {
    svc = await spawnService({ dataDir });
    const api = `${svc.http}/api/v1`;
    await createAlbum(api, 'bench');
    for (const [name, bytes] of [['a.jpg', a], ['b.jpg', b], ['other.jpg', other]] as const) await upload(api, 'bench', name, bytes);
    const idle = memoryOf(svc.pid);
    console.error(`service pid ${svc.pid}, RSS after the uploads ${idle.rssMiB.toFixed(0)} MiB`);

    const query = (b2: string, output: string) => `${api}/diff?a=bench/a.jpg&b=bench/${b2}&output=${output}`;
    phases.push(await phase(svc, 'output=json (a vs b, 3 painted changes)', RUNS, query('b.jpg', 'json'), describeJson));
    phases.push(await phase(svc, 'output=png (a vs b)', RUNS, query('b.jpg', 'png'), describePng(WIDTH, HEIGHT)));
    phases.push(await phase(svc, 'output=side-by-side (a vs b)', 1, query('b.jpg', 'side-by-side'), describePng(WIDTH * 3 + 16, HEIGHT)));
    phases.push(await phase(svc, 'output=json (a vs an unrelated picture: differences everywhere)', 1, query('other.jpg', 'json'), describeJson));
  } finally {
    await svc?.stop();
    await removeDir(dataDir);
  }

  const section = render(phases, loadBefore);
  process.stdout.write(`${section}\n`);
  if (!dryRun) await appendSection(section);
}

/** `a`, `b` (a + the painted changes) and an unrelated picture, as JPEG q90. */
async function makePair(): Promise<{ a: Buffer; b: Buffer; other: Buffer }> {
  const jpeg = (s: Sharp) => s.jpeg({ quality: 90 }).toBuffer();
  const { data } = await photoPixels(WIDTH, HEIGHT, 11);
  const raw = { raw: { width: WIDTH, height: HEIGHT, channels: 3 as const } };
  const patches = CHANGES.map(([left, top, width, height, colour]) => ({ input: { create: { width, height, channels: 3 as const, background: colour } }, left, top }));
  const other = await photoPixels(WIDTH, HEIGHT, 12);
  return {
    a: await jpeg(sharp(data, raw)),
    b: await jpeg(sharp(data, raw).composite(patches)),
    other: await jpeg(sharp(other.data, raw)),
  };
}

/** Runs GET `url` `runs` times (sequentially, body read to the end) and reads the child's peak RSS of the phase. */
async function phase(svc: SpawnedService, label: string, runs: number, url: string, describe: (body: Buffer, res: Response) => Promise<string>): Promise<Phase> {
  await resetPeakRss(svc.pid);
  const timesMs: number[] = [];
  const cpuMs: number[] = [];
  let detail = '';
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const cpu0 = cpuTimeMs(svc.pid);
    const res = await fetch(url);
    const body = Buffer.from(await res.arrayBuffer());
    timesMs.push(performance.now() - t0);
    cpuMs.push(cpuTimeMs(svc.pid) - cpu0);
    if (res.status !== 200) throw new Error(`${label}: ${res.status} ${body.toString()}`);
    detail = await describe(body, res);
  }
  const peakMiB = memoryOf(svc.pid).hwmMiB;
  console.error(`${label}: ${timesMs.map((t) => t.toFixed(0)).join(', ')} ms (CPU ${cpuMs.map((t) => t.toFixed(0)).join(', ')} ms); peak ${peakMiB.toFixed(0)} MiB; ${detail}`);
  return { label, timesMs, cpuMs, peakMiB, detail };
}

/** utime + stime of a process (all its threads), in ms: fields 14 and 15 of /proc/<pid>/stat, in clock ticks (USER_HZ = 100 on Linux). */
function cpuTimeMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // after "pid (comm) ": field 3 onwards
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function describeJson(body: Buffer): Promise<string> {
  const r = JSON.parse(body.toString()) as { differentPixels: number; differentFraction: number; ssim: number; boxes: Array<{ x: number; y: number; width: number; height: number }>; truncated: boolean };
  const boxes = r.boxes.slice(0, 4).map((x) => `${x.width}×${x.height}@${x.x},${x.y}`).join(' ');
  return `${r.differentPixels} px differ (${(r.differentFraction * 100).toFixed(3)} %), ssim ${r.ssim}, ${r.boxes.length} boxes${r.truncated ? ' (truncated)' : ''}: ${boxes}${r.boxes.length > 4 ? ' …' : ''}`;
}

function describePng(width: number, height: number): (body: Buffer) => Promise<string> {
  return async (body) => {
    const meta = await sharp(body).metadata();
    if (meta.format !== 'png' || meta.width !== width || meta.height !== height) throw new Error(`expected a ${width}×${height} PNG, got ${meta.format} ${meta.width}×${meta.height}`);
    return `${meta.width}×${meta.height} PNG, ${kb(body)} KB`;
  };
}

async function createAlbum(api: string, name: string): Promise<void> {
  const res = await fetch(`${api}/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ albumName: name }) });
  if (res.status !== 201) throw new Error(`create album: ${res.status} ${await res.text()}`);
}

async function upload(api: string, album: string, name: string, bytes: Buffer): Promise<void> {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: 'image/jpeg' }), name);
  const res = await fetch(`${api}/albums/${album}/images`, { method: 'POST', body: form });
  if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
}

function render(phases: Phase[], loadBefore: string): string {
  const ms = (t: number) => `${(t / 1000).toFixed(2)} s`;
  const rows = phases.map((p) => `| ${p.label} | ${p.timesMs.map(ms).join(', ')} | ${ms(Math.min(...p.timesMs))} | ${p.cpuMs.map(ms).join(', ')} | ${p.peakMiB.toFixed(0)} MiB | ${p.detail} |`);
  return [
    '## Image diff, 12 megapixels (bench/diff-12mp.ts)',
    '',
    `- Command: \`npx tsx bench/diff-12mp.ts\` (${new Date().toISOString()})`,
    `- Machine: ${machine()}`,
    `- Inputs: two generated photo-like ${WIDTH}×${HEIGHT} JPEGs (q90, 4:2:0; bench/fixtures.ts photoPixels), b = a with ${CHANGES.length} painted rectangles (${CHANGES.map(([x, y, w, h]) => `${w}×${h}@${x},${y}`).join(', ')}); default threshold 0.1, mergeDistance 4, maxBoxes 50.`,
    '- The service runs as a child process (`node --import tsx src/main.ts`, test/helpers/spawn-service.ts); the diffs are GET /api/v1/diff requests on 127.0.0.1, one at a time, timed from request to the last byte of the answer.',
    `- Load average before the run: ${loadBefore} (2-CPU machine shared with other jobs: wall times vary with it; the service's CPU time, user + system over all its threads, varies less).`,
    '- Peak memory: the child\'s VmHWM (/proc/<pid>/status), reset (clear_refs 5) before each phase: the whole process (Node heap + libvips + buffers), not just the diff.',
    '',
    '| Phase | Wall time per run | Best | Service CPU per run | Peak RSS | Result |',
    '|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

function machine(): string {
  const lscpu = execFileSync('lscpu', { encoding: 'utf8' });
  const model = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1] ?? 'unknown';
  const memory = /^Mem:\s+(\S+)/m.exec(execFileSync('free', ['-h'], { encoding: 'utf8' }))?.[1] ?? '?';
  return `${execFileSync('nproc', { encoding: 'utf8' }).trim()} CPUs (nproc), ${model}, ${memory} RAM (free -h), Node ${process.version}`;
}

/** Appends the section to bench/RESULTS.md (created with a machine header if missing), re-read right before writing. */
async function appendSection(section: string): Promise<void> {
  const existing = await fs.readFile(RESULTS_FILE, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  if (existing === undefined) {
    const header = ['# Benchmark results', '', `Machine: ${machine()}.`, '', '```', execFileSync('lscpu', { encoding: 'utf8' }).split('\n').slice(0, 10).join('\n'), '```', '', `Created ${new Date().toISOString()}; each section below says how it was run.`, ''].join('\n');
    await fs.writeFile(RESULTS_FILE, `${header}\n${section}\n`, { flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
      await fs.appendFile(RESULTS_FILE, `\n${section}\n`); // someone created it meanwhile
    });
  } else {
    await fs.appendFile(RESULTS_FILE, `${existing.endsWith('\n') ? '' : '\n'}\n${section}\n`);
  }
  console.error(`appended to ${RESULTS_FILE}`);
}

function kb(bytes: Buffer): number {
  return Math.round(bytes.length / 1024);
}

await main();

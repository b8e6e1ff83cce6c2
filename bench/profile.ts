/**
 * Issue 13, item 1: where the time of each path goes (by hand, never in CI).
 * For download, cached derivative, list and upload, each under wrk load (same
 * settings as bench/compare.sh), three runs of the compiled service:
 *   A. `node --cpu-prof`: the main thread's time by module and component per request
 *      (bench/cpuprofile.ts), and /proc CPU per request by thread;
 *   B. `node --import bench/stage-timer.mjs`: wall time per stage of each request and
 *      every file operation (count, wall time), from a preload, src/ untouched;
 *   C. `perf record -g` on every thread (CPU by thread group and activity: libvips, fsync,
 *      file operations, futex, GC, ...; bench/perf-profile.ts), then `strace -f -c -w`
 *      attached for a few seconds: system calls per request and their wall time.
 * Each run: one service (LOG_LEVEL=info to a file, embedded broker), the albums made
 * once, then per path a warm-up and the measured wrk run. Prints a Markdown section.
 *
 *   npm run build && npx tsx bench/profile.ts [--paths download,derivative,list,upload] [--seconds 10]
 *     [--interval 250] [--strace-seconds 5] [--runs A,B,C] [--no-strace] [--no-perf] [--keep DIR]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { summariseProfile, type ProfileSummary } from './cpuprofile.js';
import { startPerf, summarisePerf, THREAD_GROUPS, type PerfSummary } from './perf-profile.js';
import { jpegOfAbout, writeFixture } from './fixtures.js';
import {
  REPO_ROOT, createAlbum, loadAverage, machineInfo, makeTmpDir, median, percentile, runWrk, sleep, startService, threadCpuMs, uploadImage,
  type Service, type ServiceOptions, type WrkResult,
} from './lib.js';
import { uploadBurst } from './uploads.js';

const { values: args } = parseArgs({
  options: {
    paths: { type: 'string', default: 'download,derivative,list,upload' },
    seconds: { type: 'string', default: '10' },
    'warmup-seconds': { type: 'string', default: '3' },
    /** --cpu-prof-interval, µs. */
    interval: { type: 'string', default: '250' },
    'list-size': { type: 'string', default: '1000' },
    'strace-seconds': { type: 'string', default: '5' },
    strace: { type: 'boolean', default: true },
    perf: { type: 'boolean', default: true },
    /** Which runs: A (cpu profile), B (stage timer), C (perf and strace). */
    runs: { type: 'string', default: 'A,B,C' },
    /** Keep the .cpuprofile, stage and strace files here (default: a temp dir, removed). */
    keep: { type: 'string' },
  },
  allowNegative: true,
});
const PATHS = ['download', 'derivative', 'list', 'upload'] as const;
type PathName = (typeof PATHS)[number];
const paths = args.paths.split(',').map((p) => p.trim()) as PathName[];
for (const p of paths) if (!PATHS.includes(p)) throw new Error(`unknown path ${p}`);
const seconds = Number(args.seconds);
const warmupSeconds = Number(args['warmup-seconds']);
const listSize = Number(args['list-size']);
const straceSeconds = Number(args['strace-seconds']);
const CONNECTIONS: Record<PathName, number> = { download: 64, derivative: 64, list: 16, upload: 16 };
const PHASE_HEADER = 'X-Bench-Phase';

const say = (line: string) => process.stderr.write(`${line}\n`);
const us = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : '–');
const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(n < 10 ? 2 : 1) : '–');

interface Fixture {
  photoFile: string;
  photo: Buffer;
  small: Buffer;
}

/** The same albums in every run: `bench/photo.jpg`, `list` of listSize images, `uploads` (empty) and `warm`. */
async function prepare(service: Service, fx: Fixture): Promise<void> {
  await createAlbum(service.api, 'bench');
  await uploadImage(service.api, 'bench', 'photo.jpg', fx.photo, 'image/jpeg');
  if (paths.includes('list')) {
    await createAlbum(service.api, 'list');
    await uploadBurst({ url: `${service.api}/albums/list/images`, file: fx.small, prefix: 'img', count: listSize, concurrency: 16, failFast: true });
  }
  await createAlbum(service.api, 'uploads');
  await createAlbum(service.api, 'warm');
  const derivative = await fetch(`${service.api}/albums/bench/images/photo.jpg?w=320&format=webp`);
  await derivative.arrayBuffer();
  if (derivative.status !== 200) throw new Error(`derivative: ${derivative.status}`);
}

function urlOf(service: Service, p: PathName, album = 'uploads'): string {
  return {
    download: `${service.api}/albums/bench/images/photo.jpg`,
    derivative: `${service.api}/albums/bench/images/photo.jpg?w=320&format=webp`,
    list: `${service.api}/albums/list/images`,
    upload: `${service.api}/albums/${album}/images`,
  }[p];
}

/** One wrk run of a path; uploads go through bench/upload.lua and count 201s only. */
async function load(service: Service, fx: Fixture, p: PathName, secs: number, phase: string, album = 'uploads'): Promise<WrkResult & { ok: number }> {
  const upload = p === 'upload';
  const res = await runWrk(urlOf(service, p, album), {
    connections: CONNECTIONS[p], threads: 2, seconds: secs, latency: true, headers: [`${PHASE_HEADER}: ${phase}`],
    ...(upload ? { script: path.join(REPO_ROOT, 'bench/upload.lua'), env: { UPLOAD_FILE: fx.photoFile, UPLOAD_PREFIX: `${phase}-${Date.now()}` } } : {}),
  });
  const statuses = upload ? (JSON.parse(/^upload-statuses (\{.*\})$/m.exec(res.output)?.[1] ?? '{}') as Record<string, number>) : undefined;
  const ok = statuses ? statuses['201'] ?? 0 : res.requests - res.errors;
  if (ok !== res.requests) say(`  warning: ${p} ${phase}: ${res.requests - ok} of ${res.requests} answers were errors ${statuses ? JSON.stringify(statuses) : ''}`);
  return { ...res, ok };
}

const warmUp = (service: Service, fx: Fixture, p: PathName) => load(service, fx, p, warmupSeconds, 'warmup', 'warm');

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

interface Window {
  path: PathName;
  fromUs: number;
  toUs: number;
  wrk: WrkResult & { ok: number };
  threads: Record<string, number>;
}

/** A: --cpu-prof, /proc per thread. */
async function runProfile(fx: Fixture, dir: string): Promise<Array<Window & { profile: ProfileSummary }>> {
  const profDir = path.join(dir, 'cpuprofile');
  const service = await startService({
    env: { LOG_LEVEL: 'info' }, logFile: path.join(dir, 'profile-run.log'),
    nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-interval=${args.interval}`],
  });
  const windows: Window[] = [];
  try {
    await prepare(service, fx);
    for (const p of paths) {
      say(`A (cpu profile): ${p}`);
      await warmUp(service, fx, p);
      const cpu0 = threadCpuMs(service.pid);
      const fromUs = monotonicUs();
      const wrk = await load(service, fx, p, seconds, 'measure');
      const toUs = monotonicUs();
      const cpu1 = threadCpuMs(service.pid);
      const threads = Object.fromEntries(Object.keys(cpu1).map((k) => [k, cpu1[k] - (cpu0[k] ?? 0)]));
      windows.push({ path: p, fromUs, toUs, wrk, threads });
      say(`  ${Math.round(wrk.ok / wrk.durationS)} req/s, ${us(sum(Object.values(threads)) * 1000 / wrk.requests)} µs CPU/req`);
    }
  } finally {
    await service.close(); // SIGTERM: the service exits and node writes the profile
  }
  const [file] = (await fs.readdir(profDir)).filter((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error('no .cpuprofile written');
  // With --keep: the windows (CLOCK_MONOTONIC µs, as the profile's timestamps), to summarise the profile again.
  await fs.writeFile(path.join(dir, 'cpuprofile-windows.json'), JSON.stringify(windows));
  return windows.map((w) => ({ ...w, profile: summariseProfile(path.join(profDir, file), w.fromUs, w.toUs) }));
}

interface Totals {
  [label: string]: { n: number; ms: number };
}
interface RequestRecord {
  phase: string;
  method: string;
  url: string;
  t0: number;
  total: number;
  status: number;
  marks: Record<string, number>;
  spans: Record<string, number>;
}
interface StageRun {
  path: PathName;
  wrk: WrkResult & { ok: number };
  records: RequestRecord[];
  window: { spans: Totals; ops: Totals };
}

/** B: the stage-timer preload. */
async function runStages(fx: Fixture, dir: string): Promise<{ runs: StageRun[]; missing: string[] }> {
  const out = path.join(dir, 'stages.json');
  const options: ServiceOptions = {
    env: { LOG_LEVEL: 'info', STAGE_TIMER_OUT: out, STAGE_TIMER_DIST: path.join(REPO_ROOT, 'dist') },
    logFile: path.join(dir, 'stages-run.log'),
    nodeArgs: ['--import', path.join(REPO_ROOT, 'bench/stage-timer.mjs')],
  };
  const service = await startService(options);
  const measured: Array<{ path: PathName; wrk: WrkResult & { ok: number }; window: number }> = [];
  let window = 0;
  const nextWindow = async () => {
    process.kill(service.pid, 'SIGUSR2');
    window += 1;
    await sleep(50);
  };
  try {
    await prepare(service, fx);
    for (const p of paths) {
      say(`B (stage timer): ${p}`);
      await warmUp(service, fx, p);
      await nextWindow();
      const wrk = await load(service, fx, p, seconds, `measure-${p}`);
      measured.push({ path: p, wrk, window });
      await nextWindow();
      say(`  ${Math.round(wrk.ok / wrk.durationS)} req/s`);
    }
  } finally {
    await service.close();
  }
  const data = JSON.parse(readFileSync(out, 'utf8')) as { missing: string[]; requests: RequestRecord[]; windows: Array<StageRun['window']> };
  return {
    missing: data.missing,
    runs: measured.map((m) => ({ ...m, records: data.requests.filter((r) => r.phase === `measure-${m.path}` && r.status < 400), window: data.windows[m.window] })),
  };
}

interface StraceRun {
  path: PathName;
  requests: number;
  calls: Array<{ syscall: string; calls: number; usecsPerCall: number; errors: number }>;
  perf?: { requests: number; summary: PerfSummary };
}

/** C: perf record (all threads) while wrk runs, then strace -f -c -w on the service while wrk runs again. */
async function runStrace(fx: Fixture, dir: string): Promise<StraceRun[]> {
  const service = await startService({ env: { LOG_LEVEL: 'info' }, logFile: path.join(dir, 'strace-run.log') });
  const runs: StraceRun[] = [];
  try {
    await prepare(service, fx);
    for (const p of paths) {
      await warmUp(service, fx, p);
      let perf: StraceRun['perf'];
      if (args.perf) {
        say(`C (perf): ${p}`);
        const data = path.join(dir, `perf-${p}.data`);
        const recording = startPerf(service.pid, data);
        await sleep(500);
        const wrk = await load(service, fx, p, seconds, 'perf');
        await recording.stop();
        perf = { requests: wrk.requests, summary: await summarisePerf(data, service.pid) };
        if (!args.keep) await fs.rm(data, { force: true });
      }
      if (!args.strace) {
        runs.push({ path: p, requests: 0, calls: [], perf });
        continue;
      }
      say(`C (strace): ${p}`);
      const file = path.join(dir, `strace-${p}.txt`);
      const strace = spawn('strace', ['-f', '-c', '-w', '-o', file, '-p', String(service.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
      const exited = once(strace, 'exit');
      await sleep(1000); // attached to every thread
      const wrk = await load(service, fx, p, straceSeconds, 'strace');
      strace.kill('SIGINT'); // detaches and writes the summary
      await exited;
      runs.push({ path: p, requests: wrk.requests, calls: parseStrace(readFileSync(file, 'utf8')), perf });
    }
  } finally {
    await service.close();
  }
  return runs;
}

function parseStrace(text: string): StraceRun['calls'] {
  const calls: StraceRun['calls'] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+(\d+)\s+(\d+)\s+(?:(\d+)\s+)?([a-z_0-9]+)\s*$/.exec(line);
    if (m) calls.push({ usecsPerCall: Number(m[1]), calls: Number(m[2]), errors: Number(m[3] ?? 0), syscall: m[4] });
  }
  return calls;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const mean = (xs: number[]) => (xs.length ? sum(xs) / xs.length : NaN);

/** Node names its other threads "node" (libuv's pool: fs, crypto; V8's platform workers: GC, compiler); libvips names its own. */
function threadGroup(name: string): string {
  if (name === 'main thread') return 'main thread';
  if (name === 'node') return 'other node threads (libuv fs pool, V8 GC and compiler)';
  return `"${name}" threads`;
}

function reportProfile(windows: Array<Window & { profile: ProfileSummary }>): string[] {
  const lines: string[] = [];
  for (const w of windows) {
    const n = w.wrk.requests;
    const perReq = (x: number) => x / n; // µs per request
    const totalCpuUs = sum(Object.values(w.threads)) * 1000;
    const groups = new Map<string, number>();
    for (const [name, cpu] of Object.entries(w.threads)) groups.set(threadGroup(name), (groups.get(threadGroup(name)) ?? 0) + cpu * 1000);
    const busy = w.profile.totalUs - w.profile.idleUs;
    // The profiler samples wall time: a main thread waiting for a CPU still counts as busy. Its shares are
    // turned into CPU µs with the main thread's CPU time from /proc.
    const mainCpu = groups.get('main thread') ?? NaN;
    const cpuOf = (profileUs: number) => perReq((profileUs / busy) * mainCpu);
    lines.push(
      `#### ${w.path}: ${us(w.wrk.ok / w.wrk.durationS)} req/s under the profiler (wrk -c${CONNECTIONS[w.path]}, ${seconds} s, ${n.toLocaleString('en-US')} requests), ${us(perReq(totalCpuUs))} µs CPU per request`,
      '',
      `CPU per request by thread (/proc): ${[...groups].sort((a, b) => b[1] - a[1]).map(([g, v]) => `${g} ${us(perReq(v))} µs`).join(', ')}. The profile saw the main thread busy (running or waiting for a CPU) ${us(perReq(busy))} µs per request, idle ${Math.round((100 * w.profile.idleUs) / w.profile.totalUs)} % of the window; the µs below are its shares × the main thread's CPU time.`,
      '',
      '| part (self time; the parts add up to the main thread\'s time) | main-thread CPU µs per request | share |',
      '|---|---|---|',
      ...[...w.profile.parts].sort((a, b) => b[1] - a[1]).map(([c, v]) => `| ${c} | ${us(cpuOf(v))} | ${Math.round((100 * v) / busy)} % |`),
      '',
      '| component (inclusive: on the stack; overlapping, since a middleware\'s `await next()` runs the rest of the chain on its stack) | main-thread CPU µs per request | share |',
      '|---|---|---|',
      ...[...w.profile.components].sort((a, b) => b[1] - a[1]).filter(([, v]) => v / busy >= 0.005).map(([c, v]) => `| ${c} | ${us(cpuOf(v))} | ${Math.round((100 * v) / busy)} % |`),
      '',
      '| module (self time, builtins folded into their caller) | main-thread CPU µs per request | share |',
      '|---|---|---|',
      ...[...w.profile.modules].sort((a, b) => b[1] - a[1]).slice(0, 16).map(([m, v]) => `| ${m} | ${us(cpuOf(v))} | ${Math.round((100 * v) / busy)} % |`),
      '',
      `Top functions by self time (main-thread CPU µs per request): ${[...w.profile.functions].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([f, v]) => `${f.replace(/\|/g, '\\|')} ${us(cpuOf(v))}`).join('; ')}.`,
      '',
    );
  }
  return lines;
}

const UPLOAD_STAGES: Array<[string, (r: RequestRecord) => number]> = [
  ['receive (request start to handler: multipart parse, write to staging, sha256)', (r) => (r.marks['addImage.start'] ?? NaN) - r.t0],
  ['inspect (sharp metadata + 8×8 decode; slot queue included)', (r) => r.spans.inspect ?? NaN],
  ['fsync the staged file (open, fsync, close)', (r) => (r.marks['change.start'] ?? NaN) - (r.marks['inspect.end'] ?? NaN)],
  ['wait for the album lock', (r) => r.spans['lock wait'] ?? NaN],
  ['commit under the lock (metadata write + fsync + rename, link, 2 dir fsyncs, rm staged)', (r) => r.spans['lock held'] ?? NaN],
  ['journal append (durable: write + group fdatasync)', (r) => r.spans['journal append (durable)'] ?? NaN],
  ['respond (JSON, access log, staged-file clean-up)', (r) => r.t0 + r.total - (r.marks['addImage.end'] ?? NaN)],
  ['total, as the server sees it', (r) => r.total],
];

function reportStages({ runs, missing }: { runs: StageRun[]; missing: string[] }): string[] {
  const lines: string[] = [];
  if (missing.length > 0) lines.push(`(stage timer: not found in this build: ${missing.join(', ')})`, '');
  for (const run of runs) {
    const rs = run.records;
    const n = run.wrk.requests;
    if (n === 0 || !run.window) continue;
    lines.push(`#### ${run.path}: wall time per request (stage timer; ${us(run.wrk.ok / run.wrk.durationS)} req/s with the timer loaded)`, '');
    if (run.path === 'upload') {
      lines.push('| stage | mean ms | p50 ms | p90 ms |', '|---|---|---|---|');
      for (const [label, pick] of UPLOAD_STAGES) {
        const xs = rs.map(pick).filter(Number.isFinite);
        lines.push(`| ${label} | ${ms(mean(xs))} | ${ms(median(xs))} | ${ms(percentile(xs, 90))} |`);
      }
      lines.push('');
    } else {
      lines.push(
        `Total (request start to the answer's last byte written, as the server sees it): mean ${ms(mean(rs.map((r) => r.total)))} ms, p50 ${ms(median(rs.map((r) => r.total)))} ms. Spans, mean wall µs per call and calls per request (queueing for the event loop and the thread pool included): ${Object.entries(run.window.spans).map(([s, v]) => `${s} ${us((1000 * v.ms) / v.n)} (${(v.n / n).toFixed(2)})`).join('; ')}.`,
        '',
      );
    }
    lines.push(
      `File operations per request (calls × mean wall µs per call, everything in the window, the dispatcher's included): ${Object.entries(run.window.ops).sort((a, b) => b[1].ms - a[1].ms).map(([op, v]) => `${op} ${(v.n / n).toFixed(2)} × ${us((1000 * v.ms) / v.n)}`).join('; ')}.`,
      '',
    );
  }
  return lines;
}

function reportStrace(runs: StraceRun[]): string[] {
  const lines: string[] = [];
  for (const run of runs.filter((r) => r.calls.length > 0)) {
    const top = run.calls.filter((c) => c.syscall !== 'total').sort((a, b) => b.calls * b.usecsPerCall - a.calls * a.usecsPerCall).slice(0, 14);
    lines.push(
      `- ${run.path} (${run.requests.toLocaleString('en-US')} requests under strace): ${top.map((c) => `${c.syscall} ${(c.calls / run.requests).toFixed(2)} × ${us(c.usecsPerCall)} µs${c.errors ? ` (${c.errors} errors)` : ''}`).join(', ')}.`,
    );
  }
  return lines;
}

function reportPerf(runs: StraceRun[]): string[] {
  const lines: string[] = [];
  for (const run of runs) {
    if (!run.perf) continue;
    const { requests, summary } = run.perf;
    const perReq = (msTotal: number) => (msTotal * 1000) / requests;
    const groups = THREAD_GROUPS.filter((g) => [...summary.cells.values()].some((row) => (row.get(g) ?? 0) > 0));
    const rows = [...summary.cells].map(([activity, row]) => ({ activity, row, total: [...row.values()].reduce((a, b) => a + b, 0) })).sort((a, b) => b.total - a.total);
    lines.push(
      `#### ${run.path}: CPU by thread and activity (perf, ${us(perReq(summary.totalMs))} µs per request sampled over ${requests.toLocaleString('en-US')} requests)`,
      '',
      `| activity | µs per request | ${groups.join(' | ')} |`,
      `|---|---|${groups.map(() => '---').join('|')}|`,
      ...rows.filter((r) => perReq(r.total) >= 1).map((r) => `| ${r.activity} | ${us(perReq(r.total))} | ${groups.map((g) => us(perReq(r.row.get(g) ?? 0))).join(' | ')} |`),
      `| all | ${us(perReq(summary.totalMs))} | ${groups.map((g) => us(perReq(rows.reduce((sum, r) => sum + (r.row.get(g) ?? 0), 0)))).join(' | ')} |`,
      '',
    );
  }
  return lines;
}

async function main(): Promise<void> {
  const header = machineInfo();
  const dir = args.keep ? path.resolve(args.keep) : await makeTmpDir('bench-profile-');
  await fs.mkdir(dir, { recursive: true });
  const { bytes, quality, width, height } = await jpegOfAbout(100 * 1024);
  const fx: Fixture = { photo: bytes, photoFile: await writeFixture(dir, 'photo.jpg', bytes), small: (await jpegOfAbout(2 * 1024, 5)).bytes };
  const loads = [loadAverage()];
  try {
    const runs = new Set(args.runs.split(',').map((r) => r.trim().toUpperCase()));
    const profile = runs.has('A') ? await runProfile(fx, dir) : [];
    loads.push(loadAverage());
    const stages = runs.has('B') ? await runStages(fx, dir) : { runs: [], missing: [] };
    loads.push(loadAverage());
    const strace = runs.has('C') && (args.strace || args.perf) ? await runStrace(fx, dir) : [];
    loads.push(loadAverage());
    const argv = process.argv.slice(2).join(' ');
    process.stdout.write([
      `### Profile: download, cached derivative, list, upload (bench/profile.ts)`,
      '',
      header,
      `- Load average at the start of runs A, B, C and at the end: ${loads.join(' | ')}`,
      `- Command: \`npm run build && npx tsx bench/profile.ts${argv ? ` ${argv}` : ''}\``,
      `- Service: \`node dist/src/main.js\`, LOG_LEVEL=info to a file, embedded broker, fetch events on; a ${width}×${height} JPEG (q${quality}, ${bytes.length} bytes), a ${listSize}-image album listed by name, uploads of the JPEG into one album. Each path: ${warmupSeconds} s warm-up, then wrk ${seconds} s (download and derivative -c64, list and upload -c16).`,
      `- A: \`node --cpu-prof --cpu-prof-interval ${args.interval}\`; samples inside each measured window, divided by its requests (the profiler's own cost is in these figures). B: \`node --import bench/stage-timer.mjs\` (wrappers on the store, journal and fs calls; its figures are wall times). C: \`perf record -e cpu-clock -F 999 -g -p PID\` for ${seconds} s (every thread's CPU by activity, bench/perf-profile.ts), then \`strace -f -c -w -p PID\` for ${straceSeconds} s (wall µs per call, much inflated by strace; the counts are what matter).`,
      '',
      ...reportProfile(profile),
      ...reportStages(stages),
      ...reportPerf(strace),
      ...(strace.some((r) => r.calls.length > 0) ? ['System calls per request (strace -c -w, all threads; count × wall µs per call):', '', ...reportStrace(strace), ''] : []),
    ].join('\n'));
  } finally {
    if (!args.keep) await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();

/**
 * Issue 13's table in one run (by hand, never in CI; `bash bench/compare.sh` runs it):
 * nginx serving a ~100 KiB JPEG (the reference for every ratio), and for each
 * imagestore build (this one and any `--variant`): download of that JPEG by name
 * URL, a cached `?w=320&format=webp` derivative, the name listing of a 1,000-image
 * album, uploads of the JPEG into one album from an empty store, and upload p50 at
 * 1,000 vs 20,000 images in one album. Contenders alternate within each round;
 * the report gives per-round figures, medians, ratios to nginx, the Go service's
 * figures as the issue gives them (ratios to nginx), and the targets met or missed.
 *
 * Every service runs as a user runs it: `node dist/src/main.js`, defaults except
 * 127.0.0.1, ports and data dir; LOG_LEVEL=info with stdout to a file; embedded
 * broker; every fetch journals and publishes its event.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fs, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { jpegOfAbout, writeFixture } from './fixtures.js';
import {
  REPO_ROOT, childPidsNamed, cpuTimeMs, createAlbum, processTreeCpuMs, loadAverage, machineInfo, makeTmpDir, median, runWrk, startNginx, startService, uploadImage,
  type Service, type WrkResult,
} from './lib.js';
import { uploadBurst } from './uploads.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    /** Label of the build in this worktree (dist/src/main.js). */
    label: { type: 'string', default: 'this build' },
    /** Another build in the same run, `LABEL=path/to/main.js` (absolute, or from the repository root); repeatable. */
    variant: { type: 'string', multiple: true, default: [] },
    /** The contender whose download p99 is "before" for the p99 target (a label); default: none. */
    before: { type: 'string' },
    /** Rows to run besides nginx: download, derivative, list, upload, flat. */
    rows: { type: 'string', default: 'download,derivative,list,upload,flat' },
    'list-size': { type: 'string', default: '1000' },
    'warmup-seconds': { type: 'string', default: '3' },
    /** Album sizes at which upload p50 is measured. */
    'flat-sizes': { type: 'string', default: '1000,20000' },
    /** Uploads per measured burst (one burst per size per round), and how many at once. */
    'flat-count': { type: 'string', default: '150' },
    'flat-connections': { type: 'string', default: '16' },
  },
});
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const rows = new Set(args.rows.split(',').map((r) => r.trim()));
const listSize = Number(args['list-size']);
const warmupSeconds = Number(args['warmup-seconds']);
const flatSizes = args['flat-sizes'].split(',').map(Number);
const flatCount = Number(args['flat-count']);
const flatConnections = Number(args['flat-connections']);
for (const [name, n] of Object.entries({ rounds, seconds, listSize, warmupSeconds, flatCount, flatConnections })) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer`);
}
if (flatSizes.some((n, i) => !Number.isInteger(n) || n < 0 || (i > 0 && n <= flatSizes[i - 1]))) throw new Error('--flat-sizes: increasing integers');
for (const row of rows) if (!['download', 'derivative', 'list', 'upload', 'flat'].includes(row)) throw new Error(`unknown row ${row}`);

/** The issue's Go service, as ratios to nginx's download req/s measured in the same run. */
const GO_RATIO = { upload: 0.0215, list: 0.36, download: 0.43 };
/** wrk connections per row (the issue's table). */
const CONNECTIONS = { nginx: 64, download: 64, derivative: 64, list: 16, upload: 16 };
const DERIVATIVE_QUERY = 'w=320&format=webp';

interface Contender {
  label: string;
  main: string;
  read?: Service;
}
type Row = 'nginx' | 'download' | 'derivative' | 'list' | 'upload';
/** One measured wrk run. */
interface Sample extends WrkResult {
  /** Server CPU µs per request (all threads of the service; nginx: its workers). */
  cpuUs: number;
  /** Only for uploads: the 201s (and their rate), answers by status, images listed afterwards. */
  created?: number;
  statuses?: Record<string, number>;
  stored?: number;
}

const contenders: Contender[] = [
  { label: args.label, main: 'dist/src/main.js' },
  ...(args.variant ?? []).map((spec) => {
    const at = spec.indexOf('=');
    if (at < 1) throw new Error(`--variant ${spec}: expected LABEL=path/to/main.js`);
    return { label: spec.slice(0, at), main: spec.slice(at + 1) };
  }),
];
if (new Set(contenders.map((c) => c.label)).size !== contenders.length) throw new Error('contender labels must differ');
if (args.before !== undefined && !contenders.some((c) => c.label === args.before)) throw new Error(`--before ${args.before}: no such contender`);

const say = (line: string) => process.stderr.write(`${line}\n`);
const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–');

/** A service as the user runs it, logging every request to a file. */
function serve(contender: Contender, logFile: string): Promise<Service> {
  return startService({ main: contender.main, env: { LOG_LEVEL: 'info' }, logFile });
}

async function main(): Promise<void> {
  const header = machineInfo();
  const commit = execFileSync('git', ['-C', REPO_ROOT, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim();
  const branch = execFileSync('git', ['-C', REPO_ROOT, 'rev-parse', '--abbrev-ref', 'HEAD'], { encoding: 'utf8' }).trim();
  const dir = await makeTmpDir('bench-compare-');
  await fs.chmod(dir, 0o755); // nginx workers run as "nobody"
  const { bytes, quality, width, height } = await jpegOfAbout(100 * 1024);
  const photo = await writeFixture(dir, 'photo.jpg', bytes);
  // Fills (the listed album, the growing album) use a small JPEG: the album's size is what matters, not the bytes.
  const small = (await jpegOfAbout(2 * 1024, 5)).bytes;
  const logs = path.join(dir, 'logs');
  await fs.mkdir(logs);

  const nginx = await startNginx(dir, 2);
  const extra: Service[] = [];
  try {
    const targets = new Map<string, { row: Row; contender?: Contender; url: string; pids: () => number[] }>();
    targets.set('nginx', { row: 'nginx', url: `${nginx.url}/photo.jpg`, pids: () => childPidsNamed(nginx.pid, 'nginx') });
    const needsRead = ['download', 'derivative', 'list'].some((r) => rows.has(r));
    for (const c of needsRead ? contenders : []) {
      say(`${c.label}: starting ${c.main}, preparing albums`);
      const read = (c.read = await serve(c, path.join(logs, `${slug(c.label)}-read.log`)));
      await createAlbum(read.api, 'bench');
      await uploadImage(read.api, 'bench', 'photo.jpg', bytes, 'image/jpeg');
      if (rows.has('list')) {
        await createAlbum(read.api, 'list');
        await uploadBurst({ url: `${read.api}/albums/list/images`, file: small, prefix: 'img', count: listSize, concurrency: 16, failFast: true });
      }
      const pids = () => [read.pid];
      if (rows.has('download')) targets.set(`${c.label}: download`, { row: 'download', contender: c, url: `${read.api}/albums/bench/images/photo.jpg`, pids });
      if (rows.has('derivative')) targets.set(`${c.label}: derivative`, { row: 'derivative', contender: c, url: `${read.api}/albums/bench/images/photo.jpg?${DERIVATIVE_QUERY}`, pids });
      if (rows.has('list')) targets.set(`${c.label}: list`, { row: 'list', contender: c, url: `${read.api}/albums/list/images`, pids });
    }
    // Each target answers what it should before anything is measured (this also makes the derivative once).
    const sizes: Record<string, number> = {};
    for (const [name, { row, url }] of targets) {
      const res = await fetch(url);
      const body = Buffer.from(await res.arrayBuffer());
      if (res.status !== 200) throw new Error(`${name}: ${res.status} ${body.toString().slice(0, 200)}`);
      const type = res.headers.get('content-type') ?? '';
      if (row === 'derivative' && type !== 'image/webp') throw new Error(`${name}: ${type}`);
      if (row === 'list' && (JSON.parse(body.toString()) as { imageList: string[] }).imageList.length !== listSize) throw new Error(`${name}: not ${listSize} names`);
      sizes[row] = body.length;
      say(`${name}: ${body.length} bytes, ${type}`);
    }
    say(`warm-up: ${warmupSeconds} s per read target`);
    for (const [name, { row, url }] of targets) await runWrk(url, { connections: CONNECTIONS[row], seconds: warmupSeconds }).catch((err) => { throw new Error(`${name}: ${err}`); });

    const samples = new Map<string, Sample[]>();
    const keep = (name: string, s: Sample) => {
      samples.set(name, [...(samples.get(name) ?? []), s]);
      const extraInfo = s.statuses ? `, ${s.created} × 201 (${JSON.stringify(s.statuses)}, ${s.stored} stored)` : '';
      say(`  ${name}: ${fmt(s.rps)} req/s, p50 ${fmt(s.p50Ms, 2)} ms, p99 ${fmt(s.p99Ms, 2)} ms, ${fmt(s.cpuUs)} µs CPU/req, ${s.errors} errors${extraInfo}`);
    };
    const loads: string[] = [];
    for (let r = 0; r < rounds; r++) {
      loads.push(loadAverage());
      say(`round ${r + 1}/${rounds} (load ${loads[r]})`);
      // Rotate the contenders' order each round so none is always measured first.
      const order = contenders.map((_, i) => contenders[(i + r) % contenders.length]);
      const measure = async (name: string) => {
        const { row, url, pids } = targets.get(name)!;
        const cpu = () => pids().reduce((sum, pid) => sum + (row === 'nginx' ? cpuTimeMs(pid) : processTreeCpuMs(pid)), 0);
        const cpu0 = cpu();
        const res = await runWrk(url, { connections: CONNECTIONS[row], threads: 2, seconds, latency: true });
        keep(name, { ...res, cpuUs: ((cpu() - cpu0) * 1000) / res.requests });
      };
      await measure('nginx');
      for (const row of ['download', 'derivative', 'list'] as const) {
        for (const c of order) if (targets.has(`${c.label}: ${row}`)) await measure(`${c.label}: ${row}`);
      }
      if (rows.has('upload')) {
        for (const c of order) keep(`${c.label}: upload`, await measureUploads(c, r, photo, path.join(logs, `${slug(c.label)}-upload-${r + 1}.log`), extra));
      }
    }
    const flat = rows.has('flat') ? await measureFlat(photo, small, logs, extra) : undefined;

    for (const c of contenders) {
      const stderr = c.read?.output.filter((l) => l.trim() !== '') ?? [];
      if (stderr.length > 0) say(`${c.label} wrote to stderr:\n${stderr.slice(-20).join('\n')}`);
    }
    const logLines = (await fs.readdir(logs)).reduce((n, f) => n + readFileSync(path.join(logs, f), 'utf8').split('\n').length - 1, 0);
    process.stdout.write(`${report({ header, commit, branch, loads, samples, flat, sizes, logLines, photoInfo: { bytes: bytes.length, quality, width, height } })}\n`);
  } finally {
    await nginx.stop();
    for (const c of contenders) await c.read?.close();
    for (const s of extra) await s.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** A fresh service and data dir, one album, `wrk -s upload.lua` for the round; the 201s are the uploads. */
async function measureUploads(c: Contender, r: number, photo: string, logFile: string, extra: Service[]): Promise<Sample> {
  const service = await serve(c, logFile);
  extra.push(service);
  try {
    await createAlbum(service.api, 'uploads');
    const url = `${service.api}/albums/uploads/images`;
    const cpu0 = processTreeCpuMs(service.pid);
    const res = await runWrk(url, {
      connections: CONNECTIONS.upload, threads: 2, seconds, latency: true,
      script: path.join(REPO_ROOT, 'bench/upload.lua'), env: { UPLOAD_FILE: photo, UPLOAD_PREFIX: `r${r + 1}` },
    });
    const cpuUs = ((processTreeCpuMs(service.pid) - cpu0) * 1000) / res.requests;
    const line = /^upload-statuses (\{.*\})$/m.exec(res.output);
    if (!line) throw new Error(`upload.lua printed no statuses: ${res.output}`);
    const statuses = JSON.parse(line[1]) as Record<string, number>;
    const created = statuses['201'] ?? 0;
    const listing = (await (await fetch(url)).json()) as { imageList: string[] };
    // wrk's own error count has socket errors and non-2xx; a 2xx other than 201 is an error here too.
    const errors = Object.entries(statuses).reduce((n, [s, k]) => (s === '201' ? n : n + k), 0) + Math.max(0, res.errors - nonSuccess(statuses));
    return { ...res, rps: created / res.durationS, cpuUs, created, statuses, stored: listing.imageList.length, errors };
  } finally {
    await service.close();
    extra.splice(extra.indexOf(service), 1);
  }
}

/** Answers wrk counts as "Non-2xx or 3xx". */
function nonSuccess(statuses: Record<string, number>): number {
  return Object.entries(statuses).reduce((n, [s, k]) => (Number(s) >= 200 && Number(s) < 400 ? n : n + k), 0);
}

interface FlatResult {
  label: string;
  size: number;
  fillSeconds: number;
  /** One per round: p50 and p99 of a burst, uploads/s, answers. */
  bursts: Array<{ p50Ms: number; p99Ms: number; rps: number; statuses: Record<string, number> }>;
}

/**
 * Upload p50 as the store grows: per contender, one service per size whose one
 * album is filled (small JPEGs, 16 at a time, through the API) to that size. Then,
 * each round, a burst of `flatCount` uploads of the 100 KiB JPEG (`flatConnections`
 * at a time) into each, alternating sizes and contenders, so that the machine's
 * load drifts over all of them alike. Bursts add images: an album ends
 * `rounds × flatCount` images above its size.
 */
async function measureFlat(photo: string, small: Buffer, logs: string, extra: Service[]): Promise<FlatResult[]> {
  const file = await fs.readFile(photo);
  const targets: Array<FlatResult & { service: Service }> = [];
  for (const c of contenders) {
    for (const size of flatSizes) {
      const service = await serve(c, path.join(logs, `${slug(c.label)}-flat-${size}.log`));
      extra.push(service);
      await createAlbum(service.api, 'grows');
      say(`flat: ${c.label}: filling an album to ${size} images`);
      const fill = size > 0 ? await uploadBurst({ url: `${service.api}/albums/grows/images`, file: small, prefix: 'fill', count: size, concurrency: 16, failFast: true }) : undefined;
      targets.push({ label: c.label, size, fillSeconds: (fill?.wallMs ?? 0) / 1000, bursts: [], service });
    }
  }
  for (let r = 0; r < rounds; r++) {
    const order = targets.map((_, i) => targets[(i + r) % targets.length]);
    for (const t of order) {
      const burst = await uploadBurst({ url: `${t.service.api}/albums/grows/images`, file, prefix: `burst${r + 1}`, count: flatCount, concurrency: flatConnections });
      const result = { p50Ms: burst.p50Ms, p99Ms: burst.p99Ms, rps: ((burst.statuses['201'] ?? 0) * 1000) / burst.wallMs, statuses: burst.statuses };
      t.bursts.push(result);
      say(`  flat round ${r + 1}: ${t.label} at ${t.size}: p50 ${fmt(result.p50Ms, 1)} ms, p99 ${fmt(result.p99Ms, 1)} ms, ${fmt(result.rps)} uploads/s, ${JSON.stringify(burst.statuses)}`);
    }
  }
  for (const t of targets) {
    await t.service.close();
    extra.splice(extra.indexOf(t.service), 1);
  }
  return targets.map(({ service: _service, ...result }) => result);
}

const slug = (label: string) => label.replace(/[^A-Za-z0-9_.-]+/g, '_');

interface ReportInput {
  header: string;
  commit: string;
  branch: string;
  loads: string[];
  samples: Map<string, Sample[]>;
  flat?: FlatResult[];
  sizes: Record<string, number>;
  logLines: number;
  photoInfo: { bytes: number; quality: number; width: number; height: number };
}

/** The Markdown section: how it was run, per-round figures, medians, ratios, targets. */
function report({ header, commit, branch, loads, samples, flat, sizes, logLines, photoInfo }: ReportInput): string {
  const med = (name: string, pick: (s: Sample) => number = (s) => s.rps) => (samples.has(name) ? median(samples.get(name)!.map(pick)) : NaN);
  const nginxRps = med('nginx');
  const argv = process.argv.slice(2).map((a) => (/[\s"'$]/.test(a) ? `'${a}'` : a)).join(' ');
  const rowName: Record<Row, string> = {
    nginx: `nginx download (2 workers), wrk -c${CONNECTIONS.nginx}`,
    download: `download, 100 KiB original by name URL, -c${CONNECTIONS.download}`,
    derivative: `cached derivative ?${DERIVATIVE_QUERY}, -c${CONNECTIONS.derivative}`,
    list: `list ${fmt(listSize)} names, -c${CONNECTIONS.list}`,
    upload: `upload 100 KiB JPEG, empty store, -c${CONNECTIONS.upload} (201s/s)`,
  };
  const goRatio: Partial<Record<Row, number>> = { download: GO_RATIO.download, list: GO_RATIO.list, upload: GO_RATIO.upload };
  const names = [...samples.keys()];
  const lines = [
    `### Issue 13 table: upload, list, download, cached derivative vs nginx (bench/compare.sh)`,
    '',
    header,
    `- Load average (1, 5, 15 min) at the start of each round: ${loads.join(' | ')}`,
    `- Command: \`bash bench/compare.sh${argv ? ` ${argv}` : ''}\` (worktree branch \`${branch}\`, commit ${commit})`,
    `- Contenders: ${contenders.map((c) => `${c.label} = \`node ${c.main}\``).join('; ')}. Each: defaults except HOST=127.0.0.1, free PORT/MQTT_PORT, a temp IMAGE_DB_DIR; LOG_LEVEL=info, stdout to a file (${fmt(logLines)} log lines written in all); embedded aedes broker; every fetch journals and publishes an \`imagestore.image.fetched\` event.`,
    `- nginx: Debian nginx-light ${nginxVersion()}, \`worker_processes 2; sendfile on; tcp_nopush on; access_log off;\`, serving the same file from disk.`,
    `- Inputs: ${photoInfo.width}×${photoInfo.height} JPEG, quality ${photoInfo.quality}, ${photoInfo.bytes} bytes (bench/fixtures.ts jpegOfAbout); derivative ${fmt(sizes.derivative ?? NaN)} bytes of WebP, made once before the rounds; the listed album holds ${fmt(listSize)} small JPEGs, listed without \`details\` (${fmt(sizes.list ?? NaN)} bytes of JSON).`,
    `- Each row: \`wrk -t2 -cN -d${seconds}s --latency\`, ${rounds} rounds, contenders alternated within each round (their order rotated per round), a ${warmupSeconds} s warm-up of each read target first; the figure is the median over the rounds; ratios are of medians. Uploads: \`-s bench/upload.lua\` (multipart, a new name per request: prefix + thread + counter) into one album, a fresh service and data dir per round (cold start, empty store); only 201s count; any other answer or socket error is listed and makes the figure invalid. CPU: the server's user + system time over the measured interval (/proc/<pid>/stat, all threads, and any child processes; nginx: its two workers) / requests.`,
    '',
    '| row | req/s per round | median req/s | × nginx | Go-equivalent req/s (issue ratio × nginx) | p50 ms | p99 ms | server CPU µs/req | errors |',
    '|---|---|---|---|---|---|---|---|---|',
    ...names.map((name) => {
      const xs = samples.get(name)!;
      const row = rowOf(name);
      const label = name === 'nginx' ? rowName.nginx : `${name.slice(0, name.lastIndexOf(':'))}: ${rowName[row]}`;
      const go = goRatio[row];
      const errors = xs.reduce((n, s) => n + s.errors, 0);
      const errorText = errors === 0 ? '0' : `**${errors}** ${xs.map((s) => (s.statuses ? JSON.stringify(s.statuses) : s.errors)).join(' ')} (invalid)`;
      return `| ${label} | ${xs.map((s) => fmt(s.rps)).join(', ')} | ${fmt(med(name))} | ${name === 'nginx' ? '1' : fmt(med(name) / nginxRps, 3)} | ${go ? fmt(go * nginxRps) : ''} | ${fmt(med(name, (s) => s.p50Ms), 2)} | ${fmt(med(name, (s) => s.p99Ms), 2)} | ${fmt(med(name, (s) => s.cpuUs))} | ${errorText} |`;
    }),
    '',
  ];
  const uploadSamples = names.filter((n) => rowOf(n) === 'upload').flatMap((n) => samples.get(n)!.map((s) => `${n.slice(0, n.lastIndexOf(':'))}: ${s.created} × 201, ${s.stored} listed afterwards`));
  if (uploadSamples.length > 0) lines.push(`- Uploads per round (201s, and images listed afterwards; more listed = requests in flight when wrk stopped, completed by the server): ${uploadSamples.join('; ')}.`, '');
  const flatMedian = (f: FlatResult) => median(f.bursts.map((b) => b.p50Ms));
  if (flat && flat.length > 0) {
    lines.push(
      `Upload p50 as the store grows: per contender and size, a service whose one album was filled through the API (small JPEGs, 16 at a time) to that size; then each round a burst of ${flatCount} uploads of the 100 KiB JPEG, ${flatConnections} at a time (node:http client, bench/uploads.ts), sizes and contenders alternated (order rotated per round). Figure: the median of the bursts' p50s.`,
      '',
      '| contender | album size | fill time s | p50 ms per burst | median p50 ms | p99 ms per burst | uploads/s per burst | non-201 answers |',
      '|---|---|---|---|---|---|---|---|',
      ...flat.map((f) => {
        const bad = f.bursts.flatMap((b) => Object.entries(b.statuses).filter(([s]) => s !== '201').map(([s, n]) => `${n} × ${s}`));
        return `| ${f.label} | ${fmt(f.size)} | ${fmt(f.fillSeconds, 1)} | ${f.bursts.map((b) => fmt(b.p50Ms, 1)).join(', ')} | ${fmt(flatMedian(f), 1)} | ${f.bursts.map((b) => fmt(b.p99Ms, 1)).join(', ')} | ${f.bursts.map((b) => fmt(b.rps)).join(', ')} | ${bad.length ? `**${bad.join(', ')}** (invalid)` : '0'} |`;
      }),
      '',
    );
  }
  lines.push('Targets (issue 13):', '', '| contender | target | measured | met? |', '|---|---|---|---|');
  const verdict = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'met' : '**missed**');
  const nginxCpu = med('nginx', (s) => s.cpuUs);
  const beforeP99 = args.before ? med(`${args.before}: download`, (s) => s.p99Ms) : NaN;
  for (const c of contenders) {
    const d = med(`${c.label}: download`);
    const add = (target: string, measured: string, ok: boolean | undefined) => lines.push(`| ${c.label} | ${target} | ${measured} | ${verdict(ok)} |`);
    const has = (row: Row) => samples.has(`${c.label}: ${row}`);
    if (has('download')) {
      add('download ≥ 0.45× nginx (Go 0.43×)', `${fmt(d / nginxRps, 3)}× (${fmt(d)} vs ${fmt(nginxRps)} req/s)`, d / nginxRps >= 0.45);
      const p99 = med(`${c.label}: download`, (s) => s.p99Ms);
      if (args.before && c.label !== args.before) add(`download p99 no worse than ${args.before}`, `${fmt(p99, 2)} vs ${fmt(beforeP99, 2)} ms`, p99 <= beforeP99);
      else add('download p99 no worse than before', `${fmt(p99, 2)} ms${c.label === args.before ? ' (the "before")' : ''}`, undefined);
    }
    if (has('derivative') && has('download')) {
      const v = med(`${c.label}: derivative`);
      add('cached derivative ≥ 0.95× the original download', `${fmt(v / d, 3)}× (${fmt(v)} vs ${fmt(d)} req/s)`, v / d >= 0.95);
    }
    if (has('list')) {
      const v = med(`${c.label}: list`);
      add(`list of ${fmt(listSize)} ≥ 0.40× nginx (Go 0.36×)`, `${fmt(v / nginxRps, 3)}× (${fmt(v)} req/s)`, v / nginxRps >= 0.4);
    }
    if (has('upload')) {
      const v = med(`${c.label}: upload`);
      const valid = samples.get(`${c.label}: upload`)!.every((s) => s.errors === 0);
      add('upload ≥ 0.025× nginx (Go 0.0215×)', `${fmt(v / nginxRps, 4)}× (${fmt(v, 1)} uploads/s)${valid ? '' : ', with errors: invalid'}`, valid && v / nginxRps >= 0.025);
    }
    const mine = flat?.filter((f) => f.label === c.label) ?? [];
    if (mine.length >= 2) {
      const [first, last] = [mine[0], mine[mine.length - 1]];
      const ratio = flatMedian(last) / flatMedian(first);
      const valid = mine.every((f) => f.bursts.every((b) => Object.keys(b.statuses).every((s) => s === '201')));
      add(`upload p50 at ${fmt(last.size)} within 1.2× of at ${fmt(first.size)}`, `${fmt(ratio, 2)}× (${fmt(flatMedian(last), 1)} vs ${fmt(flatMedian(first), 1)} ms)${valid ? '' : ', with errors: invalid'}`, valid && ratio <= 1.2);
    }
    const cpu = (row: Row) => (has(row) ? `${fmt(med(`${c.label}: ${row}`, (s) => s.cpuUs))} µs` : '–');
    add('CPU per request, reported next to nginx', `download ${cpu('download')}, derivative ${cpu('derivative')}, list ${cpu('list')}, upload ${cpu('upload')}; nginx download ${fmt(nginxCpu)} µs`, undefined);
  }
  return lines.join('\n');
}

function rowOf(name: string): Row {
  return name === 'nginx' ? 'nginx' : (name.slice(name.lastIndexOf(': ') + 2) as Row);
}

function nginxVersion(): string {
  const { stdout, stderr } = spawnSync('/usr/sbin/nginx', ['-v'], { encoding: 'utf8' });
  return /nginx\/([\d.]+)/.exec(`${stdout}${stderr}`)?.[1] ?? '';
}

await main();

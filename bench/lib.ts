/**
 * Shared helpers of the hand-run benchmarks (never run in CI): start the
 * compiled service and nginx as child processes owned by the benchmark (stopped
 * by PID), run wrk, sample RSS from /proc, describe the machine, summarise.
 * Every network target is 127.0.0.1.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs, openSync, closeSync, readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Repository root (the service runs from here). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** Debian's libjemalloc2, for the `LD_PRELOAD` runs (sharp's advice for glibc). */
export const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';
/** The real ImageMagick 6 binary (not a stand-in earlier on PATH). */
export const IM_CONVERT = '/usr/bin/convert';
export const NGINX_BIN = '/usr/sbin/nginx';
export const WRK_BIN = '/usr/bin/wrk';

/** A port that was free a moment ago (bound to 127.0.0.1:0, then closed). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function makeTmpDir(prefix: string): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Median of a list of numbers. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** The p-th percentile (0-100, nearest rank) of a list of numbers. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Load averages, as `uptime` prints them. */
export function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(2)).join(', ');
}

/** nproc, memory, CPU model (lscpu), kernel, node, date, load: the header of a results section. */
export function machineInfo(): string {
  const lscpu = execFileSync('lscpu', { encoding: 'utf8' });
  const model = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1] ?? 'unknown';
  const virt = /^Hypervisor vendor:\s*(.+)$/m.exec(lscpu)?.[1];
  const memGiB = (os.totalmem() / 1024 ** 3).toFixed(1);
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${os.availableParallelism()} CPUs (nproc), ${model}${virt ? ` (${virt} guest)` : ''}, ${memGiB} GiB RAM, Linux ${os.release()}`,
    `- Node ${process.version}; load average at start: ${loadAverage()} (shared machine: other jobs were running)`,
  ].join('\n');
}

/** VmRSS and VmHWM of a process, in MiB, from /proc/<pid>/status. */
export function memoryOf(pid: number): { rssMiB: number; hwmMiB: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
}

/** Samples VmRSS every `intervalMs`; `stop()` returns the highest sample and VmHWM. */
export function sampleRss(pid: number, intervalMs = 50): { stop(): { peakSampleMiB: number; hwmMiB: number; samples: number } } {
  let peak = 0;
  let samples = 0;
  const take = () => {
    try {
      peak = Math.max(peak, memoryOf(pid).rssMiB);
      samples += 1;
    } catch {
      // process gone
    }
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { peakSampleMiB: peak, hwmMiB: memoryOf(pid).hwmMiB, samples };
    },
  };
}

/** Resets the kernel's peak-RSS counter (VmHWM) of a process we own: `echo 5 > /proc/<pid>/clear_refs`. */
export async function resetPeakRss(pid: number): Promise<void> {
  await fs.writeFile(`/proc/${pid}/clear_refs`, '5');
}

/** A child process we started; `stop()` signals its PID only. */
export interface Child {
  pid: number;
  proc: ChildProcess;
  output: string[];
  stop(signal?: NodeJS.Signals): Promise<void>;
}

function own(proc: ChildProcess): Child {
  const output: string[] = [];
  if (proc.stdout) createInterface({ input: proc.stdout }).on('line', (l) => output.push(l));
  if (proc.stderr) createInterface({ input: proc.stderr }).on('line', (l) => output.push(l));
  const exited = once(proc, 'exit');
  return {
    pid: proc.pid!,
    proc,
    output,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill(signal);
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Opens TCP connections to 127.0.0.1:port every 25 ms until one succeeds (bounded by `timeoutMs`). */
export async function waitForPort(port: number, alive: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('the process exited');
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
}

/** The compiled service (`node dist/src/main.js`) running as our child process. */
export interface Service extends Child {
  url: string;
  api: string;
  port: number;
  mqttPort: number;
  mqttUrl: string;
  dataDir: string;
  /** Stops the process and removes its data dir. */
  close(): Promise<void>;
}

export interface ServiceOptions {
  /** Extra environment (e.g. MQTT_URL, DERIVATIVE_CACHE_BYTES). */
  env?: Record<string, string>;
  /** Run with `LD_PRELOAD=libjemalloc.so.2`. */
  jemalloc?: boolean;
  /** Extra node flags (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** The entry point, relative to the repository root (default `dist/src/main.js`); e.g. a copy of an older build. */
  main?: string;
  /**
   * Send the service's stdout (its JSON log lines) to this file instead of a pipe
   * read by the benchmark, so that logging at LOG_LEVEL=info costs what it costs a
   * user (a write per line) and not our own CPU too.
   */
  logFile?: string;
  /** Longest wait for the service to listen and answer /livez (default 15 s); a large data dir takes longer to open. */
  startTimeoutMs?: number;
}

/**
 * Starts `node dist/src/main.js` (run `npm run build` first) with a fresh temp
 * IMAGE_DB_DIR, HOST=127.0.0.1, free PORT and MQTT_PORT, LOG_LEVEL=warn; waits
 * until GET /livez answers.
 */
export async function startService(options: ServiceOptions = {}): Promise<Service> {
  const dataDir = await makeTmpDir('imagestore-bench-');
  const port = await freePort();
  const mqttPort = await freePort();
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^(MQTT_|IMAGE_DB_DIR$|PORT$|HOST$|LD_PRELOAD$)/.test(k)));
  const logFd = options.logFile ? openSync(options.logFile, 'a') : undefined;
  const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), options.main ?? 'dist/src/main.js'], {
    cwd: REPO_ROOT,
    env: {
      ...inherited,
      IMAGE_DB_DIR: dataDir, HOST: '127.0.0.1', PORT: String(port), MQTT_PORT: String(mqttPort), LOG_LEVEL: 'warn',
      ...(options.jemalloc ? { LD_PRELOAD: JEMALLOC } : {}),
      ...options.env,
    },
    stdio: ['ignore', logFd ?? 'pipe', 'pipe'],
  });
  if (logFd !== undefined) closeSync(logFd); // the child has its own copy
  const child = own(proc);
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  try {
    // A shared machine at a load of 20+ has taken more than 15 s to start a service.
    await waitForPort(port, alive, options.startTimeoutMs ?? 60_000);
    const deadline = Date.now() + (options.startTimeoutMs ?? 60_000);
    while (Date.now() < deadline && !(await fetch(`http://127.0.0.1:${port}/livez`).then((r) => r.ok, () => false))) await sleep(25);
  } catch (err) {
    await child.stop('SIGKILL');
    throw new Error(`the service did not start: ${(err as Error).message}\n${child.output.join('\n')}`);
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    ...child,
    url,
    api: `${url}/api/v1`,
    port,
    mqttPort,
    mqttUrl: options.env?.MQTT_URL ?? `mqtt://127.0.0.1:${mqttPort}`,
    dataDir,
    async close() {
      await child.stop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** POST /albums. */
export async function createAlbum(api: string, name: string): Promise<void> {
  const res = await fetch(`${api}/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ albumName: name }) });
  if (res.status !== 201) throw new Error(`create album ${name}: ${res.status} ${await res.text()}`);
}

/** Uploads `bytes` as `name` into `album`; returns the stored image's metadata. */
export async function uploadImage(api: string, album: string, name: string, bytes: Buffer, type = 'application/octet-stream'): Promise<{ id: string; size: number; sha256: string }> {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type }), name);
  const res = await fetch(`${api}/albums/${encodeURIComponent(album)}/images`, { method: 'POST', body: form });
  if (res.status !== 201) throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { image: { id: string; size: number; sha256: string } }).image;
}

/** nginx as our child (`-c conf -p prefix`, `daemon off`), serving `rootDir` on a free 127.0.0.1 port. */
export async function startNginx(rootDir: string, workers: 'auto' | number = 1): Promise<Child & { port: number; url: string; conf: string }> {
  const prefix = await makeTmpDir('bench-nginx-');
  const port = await freePort();
  const conf = [
    'daemon off;',
    `worker_processes ${workers};`,
    `pid ${prefix}/nginx.pid;`,
    `error_log ${prefix}/error.log warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  sendfile on;',
    '  tcp_nopush on;',
    '  keepalive_requests 100000;',
    '  types { image/jpeg jpg; image/webp webp; }',
    `  client_body_temp_path ${prefix}/body; proxy_temp_path ${prefix}/proxy; fastcgi_temp_path ${prefix}/fastcgi; uwsgi_temp_path ${prefix}/uwsgi; scgi_temp_path ${prefix}/scgi;`,
    `  server { listen 127.0.0.1:${port}; root ${rootDir}; }`,
    '}',
  ].join('\n');
  const confFile = path.join(prefix, 'nginx.conf');
  await fs.writeFile(confFile, `${conf}\n`);
  const proc = spawn(NGINX_BIN, ['-c', confFile, '-p', prefix], { stdio: ['ignore', 'pipe', 'pipe'] });
  const child = own(proc);
  try {
    await waitForPort(port, () => proc.exitCode === null);
  } catch (err) {
    await child.stop('SIGKILL');
    throw new Error(`nginx did not start: ${(err as Error).message}\n${child.output.join('\n')}`);
  }
  return {
    ...child,
    port,
    url: `http://127.0.0.1:${port}`,
    conf,
    async stop() {
      await child.stop('SIGQUIT'); // graceful: the master stops its workers
      await fs.rm(prefix, { recursive: true, force: true });
    },
  };
}

/** What a wrk run reported. */
export interface WrkResult {
  rps: number;
  requests: number;
  /** Non-2xx/3xx answers and socket errors. */
  errors: number;
  latencyAvgMs: number;
  /** Latency percentiles (only with `latency: true`, else NaN). */
  p50Ms: number;
  p99Ms: number;
  mbPerSec: number;
  /** Seconds wrk ran (from its "N requests in Xs" line). */
  durationS: number;
  /** wrk's whole output (stdout + stderr), e.g. for a Lua script's own lines. */
  output: string;
}

/** wrk options beyond the URL. */
export interface WrkOptions {
  connections?: number;
  threads?: number;
  seconds?: number;
  headers?: string[];
  /** `--latency`: also report p50 and p99. */
  latency?: boolean;
  /** A Lua script (`-s`). */
  script?: string;
  /** Environment for wrk (a Lua script reads it with os.getenv). */
  env?: Record<string, string>;
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };

/** `wrk -c<c> -t<t> -d<d>s [--latency] [-s script] [-H header] <url>`; parses requests/s, errors and latency. */
export async function runWrk(url: string, { connections = 64, threads = 2, seconds = 10, headers = [], latency = false, script, env }: WrkOptions = {}): Promise<WrkResult> {
  const args = [`-c${connections}`, `-t${threads}`, `-d${seconds}s`, ...(latency ? ['--latency'] : []), ...(script ? ['-s', script] : []), ...headers.flatMap((h) => ['-H', h]), url];
  const proc = spawn(WRK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = await once(proc, 'exit');
  if (code !== 0) throw new Error(`wrk failed (${code}): ${out}`);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m)/.exec(out);
  const requests = Number(done?.[1]);
  const durationS = done ? (Number(done[2]) * TIME_UNITS[done[3]]) / 1000 : NaN;
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = sock ? sock.slice(1).reduce((s, n) => s + Number(n), 0) : 0;
  const ms = (m: RegExpExecArray | null) => (m ? Number(m[1]) * TIME_UNITS[m[2]] : NaN);
  const transfer = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(out);
  const mbPerSec = transfer ? Number(transfer[1]) * ({ B: 1 / 1024 ** 2, KB: 1 / 1024, MB: 1, GB: 1024 } as Record<string, number>)[transfer[2]] : NaN;
  if (!Number.isFinite(rps)) throw new Error(`cannot read wrk output: ${out}`);
  return {
    rps,
    requests,
    errors: non2xx + socketErrors,
    latencyAvgMs: ms(/Latency\s+([\d.]+)(us|ms|s|m)\b/.exec(out)),
    p50Ms: ms(/^\s+50%\s+([\d.]+)(us|ms|s|m)\b/m.exec(out)),
    p99Ms: ms(/^\s+99%\s+([\d.]+)(us|ms|s|m)\b/m.exec(out)),
    mbPerSec,
    durationS,
    output: out,
  };
}

/** Runs `command` once per job with at most `concurrency` at a time; returns the wall time in ms. */
export async function runPool<T>(items: T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await work(items[i], i);
      }
    }),
  );
  return performance.now() - started;
}

/** Runs a process to completion; rejects on a non-zero exit. */
export async function run(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
  const proc = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: env ?? process.env });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const [code] = await once(proc, 'exit');
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}: ${err}`);
}

/** Prints a markdown section to stdout and, with `--write`, nothing else: the caller appends it to RESULTS.md. */
export function printSection(markdown: string): void {
  process.stdout.write(`${markdown.trimEnd()}\n`);
}

/** CPU time (user + system, all threads) a process has used so far, in ms, from /proc/<pid>/stat. */
export function cpuTimeMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
  return (ticks * 1000) / CLOCK_TICKS;
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/**
 * CPU time (ms) of a process and all its descendants (found through the parent
 * pid in /proc/<pid>/stat): a service that forks workers is measured whole.
 */
export function processTreeCpuMs(root: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone
    }
  }
  let total = 0;
  for (const queue = [root]; queue.length > 0;) {
    const pid = queue.pop()!;
    try {
      total += cpuTimeMs(pid);
    } catch {
      // exited meanwhile
    }
    queue.push(...(children.get(pid) ?? []));
  }
  return total;
}

/**
 * CPU time (user + system, ms) of each thread of a process, summed by thread name
 * (/proc/<pid>/task/<tid>/stat): the main thread, libuv's pool ("libuv-worker"),
 * V8's helpers ("V8 DefaultWorke"), libvips' workers, ...
 */
export function threadCpuMs(pid: number): Record<string, number> {
  const byName: Record<string, number> = {};
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = Number(tid) === pid ? 'main thread' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName[name] = (byName[name] ?? 0) + ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
    } catch {
      // the thread ended
    }
  }
  return byName;
}

/** PIDs of our own child processes with this command name (from /proc/<pid>/stat), e.g. the mosquitto a helper started. */
export function childPidsNamed(parent: number, name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && comm === name) pids.push(Number(entry));
    } catch {
      // gone
    }
  }
  return pids;
}

/**
 * A bare node:http server (no framework) sending one file, as the reference for
 * what Node itself does on this machine: `stream` pipes fs.createReadStream into the
 * response; `read` reads the file with one read into a buffer, then res.end(buffer).
 * Runs as our child process on a free 127.0.0.1 port.
 */
export async function startNodeFileServer(file: string, mode: 'stream' | 'read'): Promise<Child & { url: string }> {
  const port = await freePort();
  const code = `
    const http = require('node:http'); const fs = require('node:fs');
    const file = ${JSON.stringify(file)}; const size = fs.statSync(file).size; const mode = ${JSON.stringify(mode)};
    http.createServer((req, res) => {
      res.setHeader('Content-Type', 'image/jpeg'); res.setHeader('Content-Length', size);
      if (mode === 'stream') return void fs.createReadStream(file).pipe(res);
      fs.open(file, 'r', (err, fd) => {
        if (err) { res.statusCode = 500; return void res.end(); }
        const buf = Buffer.allocUnsafe(size);
        fs.read(fd, buf, 0, size, 0, () => fs.close(fd, () => res.end(buf)));
      });
    }).listen(${port}, '127.0.0.1');`;
  const proc = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  const child = own(proc);
  await waitForPort(port, () => proc.exitCode === null);
  return { ...child, url: `http://127.0.0.1:${port}/` };
}

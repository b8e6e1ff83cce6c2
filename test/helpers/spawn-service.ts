import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** Repository root: the working directory of the spawned service. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** How the child process ended: exit code, or the signal that killed it (as `exited` reports). */
export interface ServiceExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The real service running as a child process (`node --import tsx src/main.ts`). */
export interface SpawnedService {
  child: ChildProcess;
  pid: number;
  /** Base URL of the HTTP API, from the "imagestore ready" log line, e.g. `http://127.0.0.1:40123`. */
  http: string;
  /** The MQTT URL the service announces (embedded broker, or MQTT_URL). */
  mqtt: string;
  /** The parsed "imagestore ready" log line. */
  ready: Record<string, unknown>;
  /** Every stdout line so far (pino JSON lines), in order; still growing while the child runs. */
  stdout: string[];
  /** Every stderr line so far. */
  stderr: string[];
  /** Resolves once the child has exited and its output has been read to the end. */
  exited: Promise<ServiceExit>;
  /** The stdout lines that parse as JSON and have this pino `msg`. */
  logs(msg: string): Array<Record<string, unknown>>;
  /** SIGTERM to the child's PID (if still running), then waits for the exit (SIGKILL after `graceMs`, default 10 s). */
  stop(graceMs?: number): Promise<ServiceExit>;
  /** SIGKILL to the child's PID (a crash: no shutdown code runs), then waits for the exit. */
  kill(): Promise<ServiceExit>;
}

/** Options of `spawnService`. */
export interface SpawnServiceOptions {
  /** The data dir (IMAGE_DB_DIR); the caller creates and removes it. */
  dataDir: string;
  /** Extra variables, applied last (they may replace the defaults, e.g. `MQTT_URL`, `SHUTDOWN_TIMEOUT_MS`). */
  env?: Record<string, string>;
  /** Longest wait for the "imagestore ready" line; default 15 s. */
  readyTimeoutMs?: number;
}

/** The log line main.ts prints once the service listens. */
const READY_MSG = 'imagestore ready';

/**
 * Runs the real service as a child process: `node --import tsx src/main.ts` in the repo root,
 * with IMAGE_DB_DIR=dataDir, HOST=127.0.0.1, PORT=0, MQTT_PORT=0, LOG_LEVEL=info (plus `env`),
 * and no other IMAGE_DB_DIR / MQTT_* / PORT variable inherited from the test's environment.
 * Resolves once the "imagestore ready" line is printed, with the HTTP and MQTT URLs read from it.
 * @param options.dataDir the data dir
 * @param options.env extra environment variables
 * @param options.readyTimeoutMs default 15000
 * @throws when the child exits or stays silent before it is ready; the message has its exit
 *   status and stderr (the child is killed on timeout)
 * @example const svc = await spawnService({ dataDir }); await fetch(`${svc.http}/livez`); expect(await svc.stop()).to.deep.equal({ code: 0, signal: null });
 */
export async function spawnService(options: SpawnServiceOptions): Promise<SpawnedService> {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !isServiceVariable(k)));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: REPO_ROOT,
    env: {
      ...inherited,
      IMAGE_DB_DIR: options.dataDir,
      HOST: '127.0.0.1',
      PORT: '0',
      MQTT_PORT: '0',
      LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout = collectLines(child.stdout!);
  const stderr = collectLines(child.stderr!);
  // 'close' rather than 'exit': it comes after stdout and stderr have been read to the end.
  const exited = once(child, 'close').then(([code, signal]) => ({ code, signal }) as ServiceExit);
  const running = () => child.exitCode === null && child.signalCode === null;
  const logs = (msg: string) => stdout.map(parseJson).filter((l): l is Record<string, unknown> => l?.msg === msg);

  const ready = await waitForReady(logs, exited, options.readyTimeoutMs ?? 15_000).catch(async (err: Error) => {
    if (running()) child.kill('SIGKILL');
    await exited;
    throw new Error(`${err.message}\nstderr:\n${stderr.join('\n')}\nstdout:\n${stdout.slice(-20).join('\n')}`);
  });

  const stop = async (graceMs = 10_000): Promise<ServiceExit> => {
    if (running()) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    child,
    pid: child.pid!,
    http: String(ready.http),
    mqtt: String(ready.mqtt),
    ready,
    stdout,
    stderr,
    exited,
    logs,
    stop,
    async kill() {
      if (running()) child.kill('SIGKILL');
      return exited;
    },
  };
}

/** Variables the service reads: the child gets only the ones the test sets. */
function isServiceVariable(name: string): boolean {
  return /^(MQTT_|IMAGE_DB_DIR$|PORT$|HOST$|LOG_LEVEL$|PRODMODE$|NODE_ID$|EVENT_SOURCE$|MAX_|SHUTDOWN_TIMEOUT_MS$)/.test(name);
}

/** Polls the collected lines every 20 ms until the ready line appears, the child exits, or the time is up. */
async function waitForReady(
  logs: (msg: string) => Array<Record<string, unknown>>,
  exited: Promise<ServiceExit>,
  timeoutMs: number,
): Promise<Record<string, unknown>> {
  let exit: ServiceExit | undefined;
  void exited.then((e) => (exit = e));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const [line] = logs(READY_MSG);
    if (line) return line;
    if (exit) throw new Error(`the service exited before it was ready (code ${exit.code}, signal ${exit.signal})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`the service printed no "${READY_MSG}" line within ${timeoutMs} ms`);
}

function collectLines(input: NodeJS.ReadableStream): string[] {
  const lines: string[] = [];
  createInterface({ input }).on('line', (line) => lines.push(line));
  return lines;
}

function parseJson(line: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { makeTmpDir, removeDir } from './tmp-dir.js';

/** Debian's mosquitto binary; tests run it as their own child process, never as the system service. */
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/** How long `startMosquitto`/`restart` wait for the broker to accept TCP connections. */
const READY_TIMEOUT_MS = 5000;
/** How long `stop` waits after SIGTERM before it sends SIGKILL. */
const STOP_GRACE_MS = 5000;

/** A mosquitto broker running as a child process of the test, on 127.0.0.1 only. */
export interface Mosquitto {
  port: number;
  url: string;
  /** Temp dir with `mosquitto.conf` (and the persistence file when enabled). */
  dir: string;
  /** Output of the current and previous runs (mosquitto logs to stderr). */
  output: string[];
  /** True while the broker process runs. */
  readonly running: boolean;
  /** SIGTERM to this broker's PID, then waits for it to exit (SIGKILL after a grace period). Idempotent. */
  stop(): Promise<void>;
  /** Starts the broker again on the same port with the same config (and persistence file). */
  restart(): Promise<void>;
  /** Stops the broker and removes its temp dir. */
  close(): Promise<void>;
}

/** Options of `startMosquitto`. */
export interface MosquittoOptions {
  /** Port to listen on; a free ephemeral port when omitted. */
  port?: number;
  /**
   * Keep sessions and queued QoS 1 messages in a file in the temp dir, so they survive
   * `stop()`/`restart()` (mosquitto writes the file when it exits on SIGTERM). Default false.
   */
  persistence?: boolean;
  /** Start later with `restart()` instead of now (e.g. "broker down at service start"). Default true. */
  start?: boolean;
}

/**
 * A port that was free a moment ago: binds a server to port 0 on 127.0.0.1 and closes it.
 * (Another process could take it in between; on a test machine that is rare enough.)
 */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Starts `/usr/sbin/mosquitto -c <tmp>/mosquitto.conf` with one listener on 127.0.0.1,
 * anonymous access, and persistence off unless asked; waits until it accepts TCP connections.
 * @param options.port default: a free ephemeral port
 * @param options.persistence default false
 * @param options.start default true
 * @throws when mosquitto exits or does not accept connections within 5 s (the error quotes its output)
 * @example const broker = await startMosquitto(); ...; await broker.close();
 */
export async function startMosquitto(options: MosquittoOptions = {}): Promise<Mosquitto> {
  const port = options.port ?? (await freePort());
  const dir = await makeTmpDir('imagestore-mosquitto-');
  const conf = path.join(dir, 'mosquitto.conf');
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    // Started as root, mosquitto would switch to the "mosquitto" user, which cannot write our temp dir.
    `user ${os.userInfo().username}`,
    options.persistence ? 'persistence true' : 'persistence false',
    ...(options.persistence ? [`persistence_location ${dir}/`, 'persistence_file mosquitto.db', 'autosave_interval 0'] : []),
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'log_type notice',
  ];
  await fs.writeFile(conf, `${lines.join('\n')}\n`);

  const output: string[] = [];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;

  const launch = async () => {
    const proc = spawn(MOSQUITTO_BIN, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    createInterface({ input: proc.stdout! }).on('line', (l) => output.push(l));
    createInterface({ input: proc.stderr! }).on('line', (l) => output.push(l));
    const spawnFailed = once(proc, 'error').then(([err]) => {
      throw new Error(`could not run ${MOSQUITTO_BIN}: ${(err as Error).message}`);
    });
    exited = once(proc, 'exit').then(() => undefined);
    try {
      await Promise.race([waitForListener(port, () => proc.exitCode === null && proc.signalCode === null), spawnFailed]);
    } catch (err) {
      if (isRunning()) proc.kill('SIGKILL');
      throw new Error(`mosquitto did not start on port ${port}: ${(err as Error).message}\n${output.join('\n')}`);
    }
    spawnFailed.catch(() => undefined);
  };

  const stop = async () => {
    if (!child || !isRunning()) return;
    const proc = child;
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_GRACE_MS);
    try {
      await exited;
    } finally {
      clearTimeout(timer);
    }
  };

  if (options.start !== false) await launch();

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    output,
    get running() {
      return isRunning();
    },
    stop,
    async restart() {
      await stop();
      await launch();
    },
    async close() {
      await stop();
      await removeDir(dir);
    },
  };
}

/** Tries to open a TCP connection to 127.0.0.1:port every 25 ms until one succeeds; bounded. */
async function waitForListener(port: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error('the process exited');
    if (await canConnect(port)) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`no TCP listener after ${READY_TIMEOUT_MS} ms`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

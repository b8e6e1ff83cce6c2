import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';

/** Repository root, the working directory of spawned subscribers. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A real aedes broker listening on 127.0.0.1. */
export interface TestBroker {
  port: number;
  url: string;
  /** Stops listening and drops every connected client. */
  close(): Promise<void>;
}

/**
 * Starts an aedes 1.x broker on 127.0.0.1.
 * @param port 0 (default) for an ephemeral port, or a port to reuse (e.g. after a "restart")
 */
export async function startTestBroker(port = 0): Promise<TestBroker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  const actual = (server.address() as net.AddressInfo).port;
  return {
    port: actual,
    url: `mqtt://127.0.0.1:${actual}`,
    async close() {
      if (broker.closed) return; // idempotent, so that `finally` blocks may call it again
      // Stop accepting first, then close the broker: it ends the client sockets, so 'close' can fire.
      const serverClosed = once(server, 'close');
      server.close();
      const brokerClosed = once(broker, 'closed');
      broker.close();
      await Promise.all([serverClosed, brokerClosed]);
    },
  };
}

/**
 * Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`.
 * @param what describes the awaited condition, for the timeout error
 */
export async function waitFor<T>(what: string, check: () => T | undefined | false, timeoutMs = 8000, intervalMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = check();
    if (value !== undefined && value !== false) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** A subscriber running as a child process, with its output split into lines. */
export interface SpawnedSubscriber {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  /** Resolves with the exit code (or signal name) once the child has exited. */
  exited: Promise<number | string>;
  /** Waits until `count` stderr log lines have the pino `msg` given; returns them parsed. */
  waitForLog(msg: string, count?: number, timeoutMs?: number): Promise<Record<string, unknown>[]>;
  /** Sends SIGTERM to this child's PID (if still running) and waits for it to exit; SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<number | string>;
}

/**
 * Spawns `node --import tsx subscriber/src/main.ts ARGS` with a clean MQTT_* / LOG_FORMAT environment.
 * @param args command-line arguments
 * @param env extra environment variables
 */
export function spawnSubscriber(args: string[], env: Record<string, string> = {}): SpawnedSubscriber {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('MQTT_') && k !== 'LOG_FORMAT'));
  const child = spawn(process.execPath, ['--import', 'tsx', 'subscriber/src/main.ts', ...args], {
    cwd: REPO_ROOT,
    env: { ...base, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout = collectLines(child.stdout!);
  const stderr = collectLines(child.stderr!);
  // 'close' rather than 'exit': it comes after stdout and stderr have been read to the end.
  const exited = once(child, 'close').then(([code, signal]) => (code ?? signal) as number | string);
  const logs = (msg: string) => stderr.map(parseJson).filter((l) => l?.msg === msg) as Record<string, unknown>[];
  return {
    child,
    stdout,
    stderr,
    exited,
    waitForLog: (msg, count = 1, timeoutMs) =>
      waitFor(`${count} "${msg}" log line(s); stderr so far:\n${stderr.join('\n')}`, () => logs(msg).length >= count && logs(msg), timeoutMs),
    async stop(graceMs = 5000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      try {
        return await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/**
 * Publishes each payload at QoS 1 on `topic` with a real mqtt.js client, then disconnects.
 * @param payloads objects are sent as JSON, strings as they are
 */
export async function publish(url: string, topic: string, ...payloads: (object | string)[]): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  try {
    for (const p of payloads) await client.publishAsync(topic, typeof p === 'string' ? p : JSON.stringify(p), { qos: 1 });
  } finally {
    await client.endAsync();
  }
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

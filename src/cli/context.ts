import { InvalidArgumentError, type Command } from 'commander';
import { ImageStoreClient, brokerUrlFromEnv, defaultMqttUrl } from '../client/index.js';

/** Exit codes of the CLI. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** Where the CLI writes; tests and main.ts pass the process streams. */
export interface CliIo {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Where confirmations are read (only when it is a terminal); none: never ask. */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  /** The environment, for the broker defaults (MQTT_URL, MQTT_HOST, MQTT_PORT); none: not read. */
  env?: Record<string, string | undefined>;
}

/** The global options, from flags or environment variables. */
export interface GlobalOptions {
  url: string;
  key?: string;
  mqttUrl?: string;
  json: boolean;
  progress: 'auto' | 'tty' | 'plain' | 'none';
}

/** A wrong invocation the parser could not see (exit 2). */
export class UsageError extends Error {}

/** A failure already reported to the user; carries the exit code. */
export class ExitError extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

/** What every command's action gets: the client, the options and the output helpers. */
export class CliContext {
  readonly client: ImageStoreClient;

  constructor(readonly io: CliIo, readonly options: GlobalOptions) {
    let fromEnv: string | undefined;
    try {
      fromEnv = brokerUrlFromEnv(io.env ?? {}, new URL(options.url).hostname);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    this.client = new ImageStoreClient({
      baseUrl: options.url, apiKey: options.key, mqttUrl: options.mqttUrl ?? fromEnv ?? defaultMqttUrl(options.url),
    });
  }

  /** The context of a command's action, from its options merged with the global ones. */
  static of(command: Command, io: CliIo): CliContext {
    const opts = command.optsWithGlobals<GlobalOptions>();
    try {
      new URL(opts.url);
    } catch {
      throw new UsageError(`expected a URL for --url / IMAGESTORE_URL, got ${JSON.stringify(opts.url)}`);
    }
    return new CliContext(io, opts);
  }

  /** Prints a result: `value` as one JSON line with --json, else the text (one line per entry). */
  result(value: unknown, text: string | string[] | (() => string | string[])): void {
    if (this.options.json) {
      this.io.stdout.write(`${JSON.stringify(value)}\n`);
      return;
    }
    const lines = typeof text === 'function' ? text() : text;
    const body = Array.isArray(lines) ? lines.join('\n') : lines;
    if (body !== '') this.io.stdout.write(`${body}\n`);
  }

  /** A note for humans on stderr (never mixed into --json output). */
  note(line: string): void {
    this.io.stderr.write(`${line}\n`);
  }

  /**
   * Asks a yes/no question on the terminal; true without asking when stdin is not a terminal (scripts),
   * as before there was a question.
   */
  async confirm(question: string): Promise<boolean> {
    const { stdin } = this.io;
    if (!stdin?.isTTY) return true;
    const { createInterface } = await import('node:readline/promises');
    const rl = createInterface({ input: stdin, output: this.io.stderr, terminal: false });
    try {
      return /^y(es)?$/i.test((await rl.question(`${question} [y/N] `)).trim());
    } finally {
      rl.close();
    }
  }

  /** How progress is shown: an updating line on a TTY, plain lines otherwise, or not at all. */
  progressMode(): 'tty' | 'plain' | 'none' {
    const mode = this.options.progress;
    if (mode !== 'auto') return mode;
    return this.io.stderr.isTTY ? 'tty' : 'plain';
  }
}

/** An option parser for integers in min..max (commander reports a bad value as a usage error). */
export function intIn(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected an integer ${min}-${max}`);
    return n;
  };
}

/** Bytes as a short human string: 1.2 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

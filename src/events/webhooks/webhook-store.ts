import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { fsyncDir, TEMP_PREFIX, writeFileAtomic } from '../../lib/durable.js';
import { NotFoundError } from '../../errors.js';
import type { EventType } from '../../notifier/events.js';
import { SeqFile } from '../../notifier/seq-file.js';

/** A signing secret; a rotated one signs until `expiresAt` (ms since the epoch). */
export interface WebhookSecret {
  secret: string;
  createdAt: string;
  expiresAt?: number;
}

/** An endpoint's opt-in to batched delivery (`application/cloudevents-batch+json`). */
export interface BatchOptions {
  /** Events per request at most (1-1000). */
  maxEvents: number;
  /** How long a batch may wait to fill after its first event is there (0-5000 ms; 0: send what is there, never wait). */
  maxDelayMs: number;
}

/** One webhook endpoint as stored (secrets included: never sent back by the API but at creation or rotation). */
export interface WebhookEndpoint {
  id: string;
  url: string;
  /** Event types sent; none: all. */
  types?: EventType[];
  /** Albums whose events are sent; none: all. */
  albums?: string[];
  enabled: boolean;
  /** Set when the receiver opted in to batches; absent: one event per request. */
  batch?: BatchOptions;
  /** Why it was disabled by the service (receiver answered 410, failing for too long). */
  disabledReason?: string;
  createdAt: string;
  /** When the current run of failures started (ms since the epoch); none while deliveries succeed. */
  failingSince?: number;
  /** Newest first. */
  secrets: WebhookSecret[];
}

/** What the API shows of an endpoint: no secret. */
export type PublicEndpoint = Omit<WebhookEndpoint, 'secrets' | 'failingSince'> & { failingSince?: string; cursor: string };

/**
 * The webhook endpoints, one JSON file each in `dir`, written atomically and durably (a 2xx
 * for a registration survives a crash), and each endpoint's cursor in the journal in a
 * SeqFile of its own (written in place without fsync: losing a move only redelivers).
 */
/** Cursor moves are written at most this often (in place, no fsync): a write per delivery would queue behind the file I/O of uploads. */
const CURSOR_WRITE_MS = 100;

export class WebhookStore {
  /** Cursors moved in memory and not written yet. */
  private readonly moved = new Map<string, number>();
  private cursorTimer: NodeJS.Timeout | undefined;
  private cursorWrite: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly endpoints: Map<string, WebhookEndpoint>,
    private readonly cursors: Map<string, SeqFile>,
  ) {}

  /** Loads every endpoint and its cursor from `dir` (made if missing). */
  static async open(dir: string): Promise<WebhookStore> {
    await fs.mkdir(dir, { recursive: true });
    const endpoints = new Map<string, WebhookEndpoint>();
    const cursors = new Map<string, SeqFile>();
    for (const name of await fs.readdir(dir)) {
      if (name.startsWith(TEMP_PREFIX)) {
        await fs.rm(path.join(dir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const endpoint = JSON.parse(await fs.readFile(path.join(dir, name), 'utf8')) as WebhookEndpoint;
      endpoints.set(endpoint.id, endpoint);
      cursors.set(endpoint.id, await SeqFile.open(path.join(dir, `${endpoint.id}.cursor`)));
    }
    return new WebhookStore(dir, endpoints, cursors);
  }

  /** Every endpoint, oldest first. */
  list(): WebhookEndpoint[] {
    return [...this.endpoints.values()].sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** @throws {NotFoundError} */
  get(id: string): WebhookEndpoint {
    const endpoint = this.endpoints.get(id);
    if (!endpoint) throw new NotFoundError(`webhook ${id} not found`);
    return endpoint;
  }

  /** The last sequence number handled for the endpoint (delivered or not selected). */
  cursor(id: string): number {
    return this.moved.get(id) ?? this.cursors.get(id)?.current ?? 0;
  }

  /** The endpoint's cursor as written: what a restart resumes from (events after it must be kept). */
  writtenCursor(id: string): number {
    return this.cursors.get(id)?.current ?? 0;
  }

  /**
   * Moves the endpoint's cursor. Written within CURSOR_WRITE_MS, without fsync (after a crash it may
   * be behind, which only redelivers); with `sync`, written and fsynced before resolving.
   */
  async setCursor(id: string, seq: number, sync = false): Promise<void> {
    if (!this.cursors.has(id)) return;
    this.moved.set(id, seq);
    if (sync) {
      await this.writeCursors(true);
      return;
    }
    this.cursorTimer ??= setTimeout(() => {
      this.cursorTimer = undefined;
      void this.writeCursors(false);
    }, CURSOR_WRITE_MS);
  }

  /** Writes the cursors moved since the last write (one write at a time). */
  private writeCursors(sync: boolean): Promise<void> {
    this.cursorWrite = this.cursorWrite.then(async () => {
      for (const [id, seq] of [...this.moved]) {
        const file = this.cursors.get(id);
        if (file && (file.current !== seq || sync)) await file.write(seq, sync);
        // Forgotten only once written (and not moved again meanwhile): until then cursor() must not fall back
        // to the file's older value, or the worker would read and send those events again.
        if (this.moved.get(id) === seq) this.moved.delete(id);
      }
    }).catch(() => undefined);
    return this.cursorWrite;
  }

  /** Registers an endpoint whose deliveries start after `cursor`; durable when it resolves. */
  async create(fields: Omit<WebhookEndpoint, 'id' | 'createdAt'>, cursor: number): Promise<WebhookEndpoint> {
    const endpoint: WebhookEndpoint = { id: randomUUID(), createdAt: new Date().toISOString(), ...fields };
    const cursorFile = await SeqFile.open(path.join(this.dir, `${endpoint.id}.cursor`));
    await cursorFile.write(cursor, true);
    this.cursors.set(endpoint.id, cursorFile);
    await this.save(endpoint);
    this.endpoints.set(endpoint.id, endpoint);
    return endpoint;
  }

  /** Stores the endpoint's new state durably. */
  async update(endpoint: WebhookEndpoint): Promise<void> {
    await this.save(endpoint);
    this.endpoints.set(endpoint.id, endpoint);
  }

  /** @throws {NotFoundError} */
  async delete(id: string): Promise<void> {
    this.get(id);
    this.endpoints.delete(id);
    this.moved.delete(id);
    await this.cursorWrite;
    await this.cursors.get(id)?.close();
    this.cursors.delete(id);
    await fs.rm(path.join(this.dir, `${id}.json`), { force: true });
    await fs.rm(path.join(this.dir, `${id}.cursor`), { force: true });
    await fsyncDir(this.dir);
  }

  async close(): Promise<void> {
    clearTimeout(this.cursorTimer);
    this.cursorTimer = undefined;
    await this.writeCursors(true);
    for (const file of this.cursors.values()) await file.close();
  }

  private async save(endpoint: WebhookEndpoint): Promise<void> {
    await writeFileAtomic(path.join(this.dir, `${endpoint.id}.json`), JSON.stringify(endpoint), this.dir);
    await fsyncDir(this.dir);
  }
}

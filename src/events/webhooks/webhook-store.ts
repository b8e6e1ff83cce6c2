import { promises as fs } from 'node:fs';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import { fsyncDir, TEMP_PREFIX, writeFileAtomic } from '../../albums/durable.js';
import { NotFoundError } from '../../errors.js';
import type { EventType } from '../../notifier/events.js';
import { SeqFile } from '../../notifier/seq-file.js';

/** A signing secret; a rotated one signs until `expiresAt` (ms since the epoch). */
export interface WebhookSecret {
  secret: string;
  createdAt: string;
  expiresAt?: number;
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
export class WebhookStore {
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
    return this.cursors.get(id)?.current ?? 0;
  }

  /** Moves the endpoint's cursor (no fsync: after a crash it may be behind, which redelivers). */
  async setCursor(id: string, seq: number, sync = false): Promise<void> {
    const file = this.cursors.get(id);
    if (file && file.current !== seq) await file.write(seq, sync);
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
    await this.cursors.get(id)?.close();
    this.cursors.delete(id);
    await fs.rm(path.join(this.dir, `${id}.json`), { force: true });
    await fs.rm(path.join(this.dir, `${id}.cursor`), { force: true });
    await fsyncDir(this.dir);
  }

  async close(): Promise<void> {
    for (const file of this.cursors.values()) await file.close();
  }

  private async save(endpoint: WebhookEndpoint): Promise<void> {
    await writeFileAtomic(path.join(this.dir, `${endpoint.id}.json`), JSON.stringify(endpoint), this.dir);
    await fsyncDir(this.dir);
  }
}

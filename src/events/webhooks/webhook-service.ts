import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { NotFoundError, ValidationError } from '../../errors.js';
import { checkTargetUrl } from '../../imports/ssrf-guard.js';
import type { Logger } from '../../logger.js';
import { formatSequence, type EventType, type StoreEvent } from '../../notifier/events.js';
import type { JournalPage, JournalRecord } from '../../notifier/outbox.js';
import type { EventFeed } from '../event-feed.js';
import { eventFilter } from '../event-filter.js';
import { newSecret } from './signing.js';
import { CLOUDEVENT_BATCH_CONTENT_TYPE, CLOUDEVENT_CONTENT_TYPE, type SendResult, type WebhookSender } from './webhook-sender.js';
import type { BatchOptions, PublicEndpoint, WebhookEndpoint, WebhookStore } from './webhook-store.js';

/** Options of the webhook service (config.events.webhooks). */
export interface WebhookServiceOptions {
  allowHosts: ReadonlySet<string>;
  concurrency: number;
  retryBaseDelayMs: number;
  retryMaxDelayMs: number;
  disableAfterMs: number;
  secretGraceMs: number;
  /** CloudEvents `source` of test pings. */
  source: string;
  log: Logger;
}

/** One line of an endpoint's delivery log. */
export interface DeliveryAttempt {
  at: string;
  /** The request's `webhook-id`: the event's id, or for a batch `<first event's id>_<last event's id>`. */
  eventId: string;
  /** The event's sequence; for a batch, its first event's. */
  sequence?: string;
  /** A batch: its last event's sequence. */
  lastSequence?: string;
  /** The event's type; `batch` for a batch. */
  type: string;
  /** Events in the request: 1 unless batched. */
  events: number;
  /** `delivered`; `retrying` (a failed attempt, another follows); `disabled` (the endpoint was disabled by it); `test`/`redelivery` (manual). */
  outcome: 'delivered' | 'retrying' | 'disabled' | 'test' | 'redelivery';
  status?: number;
  /** Attempts for this event (or batch) so far. */
  attempts: number;
  latencyMs: number;
  error?: string;
}

/** Fields of a registration or an update. */
export interface EndpointInput {
  url?: string;
  types?: EventType[];
  albums?: string[];
  enabled?: boolean;
  /** Opt in to batches; null opts out. */
  batch?: BatchOptions | null;
}

/** One request to a receiver: its `webhook-id` (the same on every retry), body, and what the delivery log says of it. */
interface Delivery {
  webhookId: string;
  body: string;
  contentType: string;
  log: Pick<DeliveryAttempt, 'eventId' | 'sequence' | 'lastSequence' | 'type' | 'events'>;
}

/** Delivery log lines kept per endpoint (in memory). */
const LOG_LINES = 100;
/** Events read from the journal at a time for one endpoint. */
const PAGE = 64;
/** An idle endpoint looks at the journal at least this often. */
const IDLE_MS = 30_000;

/**
 * Webhooks: endpoints registered by admins, each with its own cursor in the journal. A worker
 * per enabled endpoint sends its events in order, one request at a time, at least once: the
 * cursor moves only past a 2xx (or an event the endpoint does not select), so a restart resumes
 * where it was. A request carries one event, or, for an endpoint that opted in (`batch`), the
 * events available after the cursor, up to `maxEvents`; a failed batch is sent again as it was.
 * A failure is retried with exponential backoff and jitter (or after the receiver's Retry-After)
 * until it succeeds; a 410 from the receiver disables the endpoint,
 * and so does failing for `disableAfterMs`. At most `concurrency` requests are in flight in
 * all. The cursors of enabled endpoints hold their events back from the retention.
 */
export class WebhookService {
  private readonly workers = new Map<string, { stop: AbortController; done: Promise<void> }>();
  private readonly logs = new Map<string, DeliveryAttempt[]>();
  private inFlight = 0;
  private readonly slotWaiters: Array<() => void> = [];
  private closed = false;

  constructor(
    private readonly feed: EventFeed,
    private readonly store: WebhookStore,
    private readonly sender: WebhookSender,
    private readonly options: WebhookServiceOptions,
  ) {
    feed.journal.addFloor(() => {
      let floor = Infinity;
      // The written cursor: a restart resumes there, so what follows it must still be held.
      for (const endpoint of store.list()) if (endpoint.enabled) floor = Math.min(floor, store.writtenCursor(endpoint.id));
      return floor;
    });
  }

  /** Starts the workers of the enabled endpoints (after a restart: from their cursors). */
  start(): void {
    for (const endpoint of this.store.list()) if (endpoint.enabled) this.startWorker(endpoint.id);
  }

  /** Every endpoint, without secrets. */
  list(): PublicEndpoint[] {
    return this.store.list().map((e) => this.view(e));
  }

  /** @throws {NotFoundError} */
  get(id: string): PublicEndpoint {
    return this.view(this.store.get(id));
  }

  /**
   * Registers an endpoint; it gets the events journaled from now on.
   * @returns the endpoint and its secret (the only time the secret is shown)
   * @throws {ValidationError} a URL the SSRF guard refuses
   */
  async create(input: EndpointInput & { url: string }): Promise<{ endpoint: PublicEndpoint; secret: string }> {
    this.checkUrl(input.url);
    const secret = newSecret();
    const endpoint = await this.store.create({
      url: input.url, types: input.types, albums: input.albums, enabled: input.enabled ?? true, batch: input.batch ?? undefined,
      secrets: [{ secret, createdAt: new Date().toISOString() }],
    }, this.feed.journal.readableThrough());
    if (endpoint.enabled) this.startWorker(endpoint.id);
    return { endpoint: this.view(endpoint), secret };
  }

  /** Changes an endpoint; enabling one clears why it was disabled. @throws {NotFoundError} @throws {ValidationError} */
  async update(id: string, input: EndpointInput): Promise<PublicEndpoint> {
    const endpoint = { ...this.store.get(id) };
    if (input.url !== undefined) {
      this.checkUrl(input.url);
      endpoint.url = input.url;
    }
    if (input.types !== undefined) endpoint.types = input.types.length > 0 ? input.types : undefined;
    if (input.albums !== undefined) endpoint.albums = input.albums.length > 0 ? input.albums : undefined;
    if (input.batch !== undefined) endpoint.batch = input.batch ?? undefined;
    if (input.enabled !== undefined) {
      if (input.enabled && !endpoint.enabled) {
        endpoint.disabledReason = undefined;
        endpoint.failingSince = undefined;
      }
      endpoint.enabled = input.enabled;
    }
    await this.stopWorker(id);
    if (endpoint.enabled && this.store.cursor(id) < this.feed.journal.oldestSeq - 1) {
      // Disabled for longer than the retention: what it missed is gone; it resumes with what is held.
      this.options.log.warn({ webhook: id, from: this.store.cursor(id), oldest: this.feed.journal.oldestSeq }, 'webhook re-enabled past the retention: the events in between are no longer held');
      await this.store.setCursor(id, this.feed.journal.oldestSeq - 1, true);
    }
    await this.store.update(endpoint);
    if (endpoint.enabled) this.startWorker(id);
    return this.view(endpoint);
  }

  /** @throws {NotFoundError} */
  async delete(id: string): Promise<void> {
    this.store.get(id);
    await this.stopWorker(id);
    await this.store.delete(id);
    this.logs.delete(id);
  }

  /**
   * A new secret for the endpoint (shown once); the previous ones keep signing for the grace
   * period, so the receiver can switch without losing a delivery.
   */
  async rotateSecret(id: string): Promise<{ secret: string; previousValidUntil: string }> {
    const endpoint = { ...this.store.get(id) };
    const now = Date.now();
    const expiresAt = now + this.options.secretGraceMs;
    const secret = newSecret();
    endpoint.secrets = [
      { secret, createdAt: new Date(now).toISOString() },
      ...endpoint.secrets.filter((s) => (s.expiresAt ?? Infinity) > now).map((s) => ({ ...s, expiresAt: Math.min(s.expiresAt ?? Infinity, expiresAt) })),
    ];
    await this.store.update(endpoint);
    return { secret, previousValidUntil: new Date(expiresAt).toISOString() };
  }

  /** The endpoint's latest delivery attempts, newest first. @throws {NotFoundError} */
  deliveries(id: string): DeliveryAttempt[] {
    this.store.get(id);
    return [...(this.logs.get(id) ?? [])].reverse();
  }

  /** Sends a signed test event (`imagestore.webhook.test`, not journaled) now, and says how it went. */
  async ping(id: string): Promise<SendResult> {
    const endpoint = this.store.get(id);
    const event = {
      specversion: '1.0', id: randomUUID(), source: this.options.source, type: 'imagestore.webhook.test', time: new Date().toISOString(),
      datacontenttype: 'application/json', data: { message: `test delivery to webhook ${id}` },
    };
    const result = await this.withSlot(() => this.sender.send(endpoint.url, event.id, JSON.stringify(event), this.signingSecrets(endpoint)));
    this.record(id, { eventId: event.id, type: event.type, events: 1, outcome: 'test', attempts: 1, ...result });
    return result;
  }

  /**
   * Sends one journaled event again now (once, outside the endpoint's order), whether or not
   * it was delivered.
   * @throws {NotFoundError} no such endpoint or event (pruned, or not an event)
   */
  async redeliver(id: string, seq: number): Promise<SendResult> {
    const endpoint = this.store.get(id);
    const page = await this.feed.journal.read(seq - 1, 1);
    const record = page?.records[0];
    if (!record || record.seq !== seq) throw new NotFoundError(`no event with sequence ${formatSequence(seq)} is held`);
    const delivery = single(record);
    const result = await this.withSlot(() => this.sender.send(endpoint.url, delivery.webhookId, delivery.body, this.signingSecrets(endpoint)));
    this.record(id, { ...delivery.log, outcome: 'redelivery', attempts: 1, ...result });
    return result;
  }

  /** Stops every worker (deliveries in flight finish; their events are sent again after the restart). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.workers.keys()].map((id) => this.stopWorker(id)));
    for (const wake of this.slotWaiters.splice(0)) wake();
    this.sender.close();
    await this.store.close();
  }

  private checkUrl(url: string): void {
    try {
      checkTargetUrl(new URL(url), this.options.allowHosts);
    } catch (err) {
      throw new ValidationError(`url: ${(err as Error).message}${err instanceof TypeError ? '' : ' (WEBHOOK_ALLOW_HOSTS allows a host)'}`);
    }
  }

  private view(endpoint: WebhookEndpoint): PublicEndpoint {
    const { secrets: _secrets, failingSince, ...rest } = endpoint;
    return { ...rest, failingSince: failingSince === undefined ? undefined : new Date(failingSince).toISOString(), cursor: formatSequence(this.store.cursor(endpoint.id)) };
  }

  private signingSecrets(endpoint: WebhookEndpoint): string[] {
    const now = Date.now();
    return endpoint.secrets.filter((s) => (s.expiresAt ?? Infinity) > now).map((s) => s.secret);
  }

  private record(id: string, attempt: Omit<DeliveryAttempt, 'at'> & { retryAfterMs?: number }): void {
    const { retryAfterMs: _retryAfter, ...line } = attempt;
    let log = this.logs.get(id);
    if (!log) this.logs.set(id, (log = []));
    log.push({ at: new Date().toISOString(), ...line });
    if (log.length > LOG_LINES) log.splice(0, log.length - LOG_LINES);
  }

  private startWorker(id: string): void {
    if (this.closed || this.workers.has(id)) return;
    const stop = new AbortController();
    const done = this.run(id, stop.signal)
      .catch((err: unknown) => this.options.log.error({ err, webhook: id }, 'webhook worker failed; restarted at the next start or update'))
      .finally(() => {
        if (this.workers.get(id)?.stop === stop) this.workers.delete(id);
      });
    this.workers.set(id, { stop, done });
  }

  private async stopWorker(id: string): Promise<void> {
    const worker = this.workers.get(id);
    if (!worker) return;
    worker.stop.abort();
    this.workers.delete(id);
    await worker.done;
  }

  private endpointOrUndefined(id: string): WebhookEndpoint | undefined {
    try {
      return this.store.get(id);
    } catch {
      return undefined;
    }
  }

  /** One endpoint's deliveries, in journal order, from its cursor. */
  private async run(id: string, signal: AbortSignal): Promise<void> {
    const { journal } = this.feed;
    while (!signal.aborted) {
      const endpoint = this.endpointOrUndefined(id);
      if (!endpoint?.enabled) return;
      const filter = eventFilter({ types: endpoint.types, albums: endpoint.albums });
      const page = await journal.read(this.store.cursor(id), endpoint.batch?.maxEvents ?? PAGE, filter);
      if (page === undefined) {
        // Only when it was disabled past the retention and enabled behind update()'s back: take what is held.
        await this.store.setCursor(id, journal.oldestSeq - 1, true);
        continue;
      }
      if (endpoint.batch && page.records.length > 0) {
        await this.fill(page, endpoint.batch, filter, signal);
        if (signal.aborted || !(await this.deliver(id, batchOf(page.records), signal))) return;
      } else {
        for (const record of page.records) {
          if (!(await this.deliver(id, single(record), signal))) return;
          await this.store.setCursor(id, record.seq);
        }
      }
      await this.store.setCursor(id, page.next);
      if (page.records.length === 0 && page.next >= journal.readableThrough()) await this.feed.next(IDLE_MS, signal);
    }
  }

  /**
   * Adds the events that come within `maxDelayMs` (from now) to a batch that is not full: a
   * receiver that prefers fewer, larger requests trades that much latency for them.
   */
  private async fill(page: JournalPage, batch: BatchOptions, filter: (event: StoreEvent) => boolean, signal: AbortSignal): Promise<void> {
    const { journal } = this.feed;
    const deadline = performance.now() + batch.maxDelayMs;
    while (page.records.length < batch.maxEvents && !signal.aborted) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      if (page.next >= journal.readableThrough()) await this.feed.next(left, signal);
      const more = await journal.read(page.next, batch.maxEvents - page.records.length, filter);
      if (more === undefined) return;
      page.records.push(...more.records);
      page.next = more.next;
    }
  }

  /** Sends one request until a 2xx. @returns false when stopped or the endpoint was disabled first */
  private async deliver(id: string, delivery: Delivery, signal: AbortSignal): Promise<boolean> {
    const { webhookId, body, contentType, log: base } = delivery;
    for (let attempts = 1; !signal.aborted; attempts += 1) {
      const endpoint = this.endpointOrUndefined(id);
      if (!endpoint?.enabled) return false;
      const result = await this.withSlot(() => this.sender.send(endpoint.url, webhookId, body, this.signingSecrets(endpoint), contentType));
      if (signal.aborted) return false;
      const status = result.status ?? 0;
      if (status >= 200 && status < 300) {
        this.record(id, { ...base, outcome: 'delivered', attempts, ...result });
        if (endpoint.failingSince !== undefined) await this.store.update({ ...endpoint, failingSince: undefined });
        return true;
      }
      const now = Date.now();
      const failingSince = endpoint.failingSince ?? now;
      const reason = status === 410
        ? 'the receiver answered 410 Gone'
        : now - failingSince >= this.options.disableAfterMs
          ? `every delivery failed since ${new Date(failingSince).toISOString()} (WEBHOOK_DISABLE_AFTER); last error: ${result.error}`
          : undefined;
      if (reason !== undefined) {
        this.record(id, { ...base, outcome: 'disabled', attempts, ...result });
        this.options.log.warn({ webhook: id, reason }, 'webhook endpoint disabled');
        await this.store.update({ ...endpoint, enabled: false, disabledReason: reason, failingSince });
        return false;
      }
      this.record(id, { ...base, outcome: 'retrying', attempts, ...result });
      if (endpoint.failingSince === undefined) await this.store.update({ ...endpoint, failingSince });
      const backoff = Math.min(this.options.retryMaxDelayMs, this.options.retryBaseDelayMs * 2 ** Math.min(attempts - 1, 30));
      // Equal jitter: at least half the backoff, so endpoints that failed together do not retry together.
      const delay = result.retryAfterMs !== undefined ? Math.min(result.retryAfterMs, this.options.disableAfterMs) : backoff / 2 + Math.random() * (backoff / 2);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
    }
    return false;
  }

  /** Runs `send` within the bound on requests in flight over all endpoints. */
  private async withSlot<T>(send: () => Promise<T>): Promise<T> {
    while (this.inFlight >= this.options.concurrency) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
    this.inFlight += 1;
    try {
      return await send();
    } finally {
      this.inFlight -= 1;
      this.slotWaiters.shift()?.();
    }
  }
}

function payloadOf(record: JournalRecord): string {
  return record.payload ?? JSON.stringify(record.event);
}

/** One event as a structured CloudEvent; `webhook-id` is its id. */
function single(record: JournalRecord): Delivery {
  return {
    webhookId: record.event.id, body: payloadOf(record), contentType: CLOUDEVENT_CONTENT_TYPE,
    log: { eventId: record.event.id, sequence: formatSequence(record.seq), type: record.event.type, events: 1 },
  };
}

/**
 * Events in a JSON array (CloudEvents batched mode). `webhook-id` names the first and last event:
 * a retry of the batch sends the same events, so it has the same id.
 */
function batchOf(records: JournalRecord[]): Delivery {
  const first = records[0];
  const last = records[records.length - 1];
  const webhookId = `${first.event.id}_${last.event.id}`;
  return {
    webhookId, body: `[${records.map(payloadOf).join(',')}]`, contentType: CLOUDEVENT_BATCH_CONTENT_TYPE,
    log: { eventId: webhookId, sequence: formatSequence(first.seq), lastSequence: formatSequence(last.seq), type: 'batch', events: records.length },
  };
}

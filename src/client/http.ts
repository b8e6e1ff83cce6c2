import type { z } from 'zod';
import type * as schemaModule from '../contract/schemas.js';
import { codeForStatus, ImageStoreError } from './errors.js';

/** Settings of the HTTP layer; every one but `baseUrl` has a default. */
export interface HttpOptions {
  /** The service's root, e.g. `http://127.0.0.1:3333` (a path prefix is kept). */
  baseUrl: string;
  /** An API key, sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Retries of idempotent requests (GET, HEAD, PUT, DELETE); default 3. POST and PATCH are never retried. */
  retries?: number;
  /** First backoff delay, doubled per retry with full jitter; default 200 ms. */
  retryBaseDelayMs?: number;
  /** Longest wait before a retry; a Retry-After asking for more is not waited for (the error is thrown). Default 10 s. */
  maxRetryDelayMs?: number;
  /** Whether an error answer with this status is retried (idempotent requests only); default: 429, 502, 503 and 504. */
  retryStatus?: (status: number) => boolean;
  /** Time to wait for the answer's headers, per attempt; default 30 s. Reading a body is not limited, nor are uploads (use a signal). */
  timeoutMs?: number;
  /** Check JSON answers against the service's zod schemas (off by default: it costs time on big listings). */
  validateResponses?: boolean;
  /** Another fetch implementation (tests, instrumentation). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

type Schemas = typeof schemaModule;
/** The response schemas of src/contract/schemas.ts, by export name. */
export type SchemaName = { [K in keyof Schemas]: Schemas[K] extends z.ZodType ? K : never }[keyof Schemas];

/** Query values; undefined ones are left out, booleans become `true`/`false`. */
export type QueryValues = Record<string, string | number | boolean | undefined>;

/** One request. */
export interface RequestSpec {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path below the base URL, starting with `/`; callers encode the segments. */
  path: string;
  query?: QueryValues;
  /** Sent as JSON with Content-Type application/json. */
  json?: unknown;
  /** Any other body (FormData, a stream). Streams cannot be retried; POST never is. */
  body?: RequestInit['body'];
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Non-2xx statuses that are answers rather than errors (304, 503 for /readyz). */
  accept?: number[];
  /** Set false to turn retries off for this request. */
  retry?: boolean;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE']);
const RETRY_STATUSES = new Set([429, 502, 503, 504]);

/**
 * The fetch wrapper under every client call: base URL, API key, error
 * answers turned into ImageStoreError, and retries with exponential backoff
 * (honouring Retry-After) of idempotent requests on network errors and on
 * 429, 502, 503 and 504 (or the statuses `retryStatus` names). Uses only fetch, URL and AbortController, so it
 * runs in Node 20+ and in browsers.
 */
export class HttpClient {
  readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(readonly options: HttpOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchImpl = options.fetch ?? ((...args) => globalThis.fetch(...args));
  }

  /** The absolute URL of `path` with `query`. */
  url(path: string, query?: QueryValues): string {
    const url = new URL(this.baseUrl + path);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  /**
   * Sends the request (retrying when allowed) and returns the answer.
   * @throws {ImageStoreError} for an error status not in `accept`, a network error or a timeout
   */
  request(spec: RequestSpec): Promise<Response> {
    return this.exchange(spec, async (res) => res);
  }

  /**
   * Sends the request and hands the answer to `read`. The whole exchange, reading included, is retried
   * as `request` retries, and also when the connection breaks while `read` reads the body, or when
   * `retryRead` says that `read`'s error deserves another try (a checksum that did not match, say).
   * @throws {ImageStoreError} as `request`, and `network_error` when the body broke off on the last attempt
   * @throws whatever `read` throws otherwise
   */
  async exchange<T>(spec: RequestSpec, read: (res: Response) => Promise<T>, retryRead: (err: unknown) => boolean = () => false): Promise<T> {
    const url = this.url(spec.path, spec.query);
    const retries = spec.retry === false || !IDEMPOTENT.has(spec.method) ? 0 : (this.options.retries ?? 3);
    const retryStatus = this.options.retryStatus ?? ((status: number) => RETRY_STATUSES.has(status));
    for (let attempt = 1; ; attempt += 1) {
      let res: Response;
      try {
        res = await this.send(spec, url);
      } catch (err) {
        const failure = this.transportError(err, spec, url, attempt);
        if (attempt > retries || failure.code === 'aborted') throw failure;
        await sleep(this.backoff(attempt), spec.signal);
        continue;
      }
      if (!res.ok && !spec.accept?.includes(res.status)) {
        const error = await errorFromResponse(res, spec.method, url, attempt);
        if (attempt > retries || !retryStatus(res.status)) throw error;
        const delay = error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1000 : this.backoff(attempt);
        if (delay > (this.options.maxRetryDelayMs ?? 10_000)) throw error;
        await sleep(delay, spec.signal);
        continue;
      }
      try {
        return await read(res);
      } catch (err) {
        const broken = brokenBody(err);
        if ((!broken && !retryRead(err)) || spec.signal?.aborted) throw err;
        const failure = broken ? this.transportError(err, spec, url, attempt) : err;
        if (attempt > retries) throw failure;
        await sleep(this.backoff(attempt), spec.signal);
      }
    }
  }

  /**
   * Sends the request and parses its JSON answer. With `validateResponses`,
   * checks it against the named schema of src/contract/schemas.ts first (loaded
   * on first use, so zod is not loaded by clients that do not validate).
   * @throws {ImageStoreError} `invalid_response` when the body is not JSON or does not match
   */
  async json<K extends SchemaName>(spec: RequestSpec, schema: K): Promise<z.infer<Schemas[K]>>;
  async json<T = unknown>(spec: RequestSpec): Promise<T>;
  async json(spec: RequestSpec, schema?: SchemaName): Promise<unknown> {
    const res = await this.request(spec);
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw invalidResponse(spec, res.url, `expected JSON but received ${JSON.stringify(text.slice(0, 80))}`);
    }
    if (schema === undefined || !this.options.validateResponses) return body;
    const schemas = await import('../contract/schemas.js');
    const checked = (schemas[schema] as z.ZodType).safeParse(body);
    if (!checked.success) {
      const issue = checked.error.issues[0];
      throw invalidResponse(spec, res.url, `answer does not match ${schema} at ${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
    return checked.data;
  }

  private async send(spec: RequestSpec, url: string): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json, */*;q=0.8', ...this.options.headers, ...spec.headers };
    if (this.options.apiKey) headers.Authorization = `Bearer ${this.options.apiKey}`;
    let body = spec.body;
    if (spec.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(spec.json);
    }
    // The timeout covers the wait for the headers only, so long downloads are not cut; uploads
    // (a FormData or stream body) have none: their answer comes after the whole body is sent.
    const controller = new AbortController();
    const timer = spec.body === undefined ? setTimeout(() => controller.abort(new TimeoutSignal()), this.options.timeoutMs ?? 30_000) : undefined;
    const onAbort = () => controller.abort(spec.signal?.reason);
    if (spec.signal?.aborted) onAbort();
    spec.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const init: RequestInit & { duplex?: 'half' } = { method: spec.method, headers, body, signal: controller.signal };
      // A stream body needs half-duplex mode (fetch standard); Node requires saying so.
      if (body instanceof ReadableStream) init.duplex = 'half';
      return await this.fetchImpl(url, init);
    } catch (err) {
      throw controller.signal.reason instanceof TimeoutSignal ? controller.signal.reason : err;
    } finally {
      clearTimeout(timer);
      spec.signal?.removeEventListener('abort', onAbort);
    }
  }

  private transportError(err: unknown, spec: RequestSpec, url: string, attempts: number): ImageStoreError {
    if (err instanceof ImageStoreError) return err;
    const base = { status: 0, method: spec.method, url, attempts, cause: err };
    if (err instanceof TimeoutSignal) {
      return new ImageStoreError({ ...base, code: 'timeout', message: `no answer from ${url} within ${this.options.timeoutMs ?? 30_000} ms` });
    }
    if (spec.signal?.aborted) return new ImageStoreError({ ...base, code: 'aborted', message: `${spec.method} ${url} aborted` });
    // undici reports "fetch failed" and puts the reason (ECONNREFUSED, ECONNRESET) in `cause`.
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err as Error).message;
    return new ImageStoreError({ ...base, code: 'network_error', message: `cannot reach ${url}: ${reason}` });
  }

  private backoff(attempt: number): number {
    const cap = Math.min(this.options.maxRetryDelayMs ?? 10_000, (this.options.retryBaseDelayMs ?? 200) * 2 ** (attempt - 1));
    return Math.random() * cap;
  }
}

/**
 * A body cut off by the network: undici's `TypeError: terminated` (its cause names the socket
 * error), or a socket error itself.
 */
function brokenBody(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code ?? (err as { cause?: { code?: unknown } })?.cause?.code;
  return (err instanceof TypeError && err.message === 'terminated') || (typeof code === 'string' && /^(ECONNRESET|EPIPE|ETIMEDOUT|UND_ERR_SOCKET)$/.test(code));
}

/** Marks an abort caused by our own timeout (not the caller's signal). */
class TimeoutSignal extends Error {}

/** Builds the ImageStoreError of an error answer from its `{ error }` body (or its text). */
export async function errorFromResponse(res: Response, method: string, url: string, attempts = 1): Promise<ImageStoreError> {
  const text = method === 'HEAD' ? '' : await res.text().catch(() => '');
  let message = `${res.status} ${res.statusText}`.trim();
  try {
    const body = JSON.parse(text) as { error?: unknown };
    if (typeof body.error === 'string') message = body.error;
  } catch {
    if (text.trim()) message = `${message}: ${text.trim().slice(0, 200)}`;
  }
  return new ImageStoreError({
    status: res.status, code: codeForStatus(res.status), message, method, url, attempts,
    requestId: res.headers.get('x-request-id') ?? undefined,
    retryAfterSeconds: parseRetryAfter(res.headers.get('retry-after')),
  });
}

/** Retry-After as seconds: a number of seconds, or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, Math.ceil((date - now) / 1000));
}

function invalidResponse(spec: RequestSpec, url: string, message: string): ImageStoreError {
  return new ImageStoreError({ status: 0, code: 'invalid_response', message, method: spec.method, url });
}

/** Waits `ms`, or less if `signal` aborts (the next attempt then fails as `aborted`). */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

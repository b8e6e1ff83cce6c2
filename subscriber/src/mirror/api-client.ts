import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';

/** Page size of the listings the mirror reads. */
export const LIST_PAGE_LIMIT = 1000;

/** How network errors and 5xx answers are retried: `attempts` tries in all, waits doubling up to `maxDelayMs`. */
export interface RetryPolicy {
  attempts: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

/** About 1.5 s of retries (0.1 + 0.2 + 0.4 + 0.8 s): enough for a blip, short enough not to stall the queue. */
export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, firstDelayMs: 100, maxDelayMs: 2000 };

/** An answer of the service other than 2xx; `status` 404 means the album or image is gone. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly url: string,
    message: string,
  ) {
    super(`${url} answered ${status}: ${message}`);
    this.name = 'ApiError';
  }
}

/** The service could not be reached (or answered 5xx) after every retry. */
export class UnreachableError extends Error {
  constructor(url: string, cause: unknown) {
    super(`${url} unreachable: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'UnreachableError';
  }
}

/** An image as the service lists it (GET .../images?details=true). */
export interface RemoteImage {
  name: string;
  sha256: string;
  size: number;
  id?: string;
}

/** Options of ApiClient; `signal` aborts every request and retry wait (the mirror is closing). */
export interface ApiClientOptions {
  signal?: AbortSignal;
  retry?: RetryPolicy;
  /** Sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
}

/**
 * The few REST calls of the mirror, over Node's fetch. Names are URL-encoded. Network errors
 * and 5xx answers are retried with bounded backoff, then reported as UnreachableError; other
 * answers become ApiError at once.
 */
export class ApiClient {
  private readonly retry: RetryPolicy;
  private readonly signal?: AbortSignal;
  private readonly headers: Record<string, string>;

  /** @param baseUrl the service, e.g. `http://127.0.0.1:3333` (no trailing slash, no /api/v1) */
  constructor(
    readonly baseUrl: string,
    options: ApiClientOptions = {},
  ) {
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.signal = options.signal;
    this.headers = { 'user-agent': 'imagestore-mirror', ...(options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {}) };
  }

  /** Every album name, read page by page. */
  async listAlbums(): Promise<string[]> {
    const names: string[] = [];
    await this.pages('/api/v1/albums', (page) => names.push(...stringArray(page.albumList, 'albumList')));
    return names;
  }

  /** Every image of `album` with its SHA-256, read page by page. @throws {ApiError} 404 when the album is gone */
  async listImages(album: string): Promise<RemoteImage[]> {
    const images: RemoteImage[] = [];
    await this.pages(`/api/v1/albums/${encodeURIComponent(album)}/images?details=true`, (page) => {
      if (!Array.isArray(page.images)) throw new Error('expected "images" in the listing');
      for (const item of page.images as Array<Record<string, unknown>>) {
        if (typeof item?.name !== 'string' || typeof item.sha256 !== 'string' || typeof item.size !== 'number') {
          throw new Error(`expected name, sha256 and size in each image, got ${JSON.stringify(item)?.slice(0, 100)}`);
        }
        images.push({ name: item.name, sha256: item.sha256, size: item.size, ...(typeof item.id === 'string' ? { id: item.id } : {}) });
      }
    });
    return images;
  }

  /**
   * Downloads an image and hands its body to `consume`; the whole exchange, `consume` included,
   * is retried on network errors.
   * @param consume receives the body and the SHA-256 from the ETag, when the service sent one
   * @throws {ApiError} 404 when the image is gone
   */
  async download<T>(album: string, image: string, consume: (body: Readable, sha256: string | undefined) => Promise<T>): Promise<T> {
    const url = `${this.baseUrl}/api/v1/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(image)}`;
    return this.withRetry(url, async () => {
      const res = await this.request(url);
      const etag = /^"([0-9a-f]{64})"$/.exec(res.headers.get('etag') ?? '')?.[1];
      const body = res.body ? Readable.fromWeb(res.body as WebReadableStream<Uint8Array>) : Readable.from([]);
      return consume(body, etag);
    });
  }

  private async pages(path: string, onPage: (page: Record<string, unknown>) => void): Promise<void> {
    let cursor: string | undefined;
    const seen = new Set<string>();
    do {
      const sep = path.includes('?') ? '&' : '?';
      const url = `${this.baseUrl}${path}${sep}limit=${LIST_PAGE_LIMIT}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page = await this.withRetry(url, async () => (await (await this.request(url)).json()) as Record<string, unknown>);
      onPage(page);
      cursor = typeof page.nextCursor === 'string' && page.nextCursor !== '' ? page.nextCursor : undefined;
      // A cursor seen before would page forever.
      if (cursor !== undefined && seen.has(cursor)) throw new Error(`listing ${path} repeats cursor ${cursor}`);
      if (cursor !== undefined) seen.add(cursor);
    } while (cursor !== undefined);
  }

  /** GET `url`; a non-2xx answer throws ApiError (5xx are retried by withRetry). */
  private async request(url: string): Promise<Response> {
    const res = await fetch(url, { signal: this.signal, headers: this.headers });
    if (res.ok) return res;
    let message = res.statusText;
    try {
      const body = (await res.json()) as { error?: unknown };
      if (typeof body?.error === 'string') message = body.error;
    } catch {
      // not JSON: keep the status text
    }
    throw new ApiError(res.status, url, message);
  }

  private async withRetry<T>(url: string, attempt: () => Promise<T>): Promise<T> {
    let delay = this.retry.firstDelayMs;
    for (let i = 1; ; i++) {
      try {
        return await attempt();
      } catch (err) {
        if (this.signal?.aborted) throw this.signal.reason ?? err;
        if (!isTransient(err)) throw err;
        if (i >= this.retry.attempts) throw new UnreachableError(url, err);
      }
      await sleep(delay, this.signal);
      delay = Math.min(delay * 2, this.retry.maxDelayMs);
    }
  }
}

/**
 * Network trouble worth another try: fetch's TypeError ("fetch failed", "terminated" when the
 * socket closes mid-body), socket error codes, 5xx and 429 answers, and a checksum mismatch (the
 * image may have been replaced while we read it).
 */
function isTransient(err: unknown): boolean {
  if (err instanceof ApiError) return err.status >= 500 || err.status === 429;
  if (err instanceof TypeError || (err as Error)?.name === 'ChecksumError') return true;
  const code = (err as NodeJS.ErrnoException)?.code ?? ((err as Error)?.cause as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' && /^(ECONN|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|UND_ERR)/.test(code);
}

function stringArray(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw new Error(`expected "${what}" to be an array of names`);
  return value as string[];
}

/** Waits `ms`, or rejects at once when `signal` aborts. */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw signal.reason;
  await new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ImageStoreClient } from '../../../src/client/client.js';
import { ImageStoreError } from '../../../src/client/errors.js';
import type { HttpOptions } from '../../../src/client/http.js';
import { ChecksumError } from './fs-ops.js';

// The mirror's REST calls are the published client's (src/client); this is only how the mirror sets it
// up and reads its errors.

/** Page size of the listings the mirror reads. */
export const LIST_PAGE_LIMIT = 1000;

/** How one request is retried: `retries` after the first attempt, waits doubling (with jitter) from the base up to the max. */
export type RetryPolicy = Required<Pick<HttpOptions, 'retries' | 'retryBaseDelayMs' | 'maxRetryDelayMs'>>;

/** At most about 1.5 s of retries (0.1 + 0.2 + 0.4 + 0.8 s): enough for a blip, short enough not to stall the queue. */
export const DEFAULT_RETRY: RetryPolicy = { retries: 4, retryBaseDelayMs: 100, maxRetryDelayMs: 2000 };

/**
 * The client of the mirror: its key, and its retry policy, under which every 5xx and 429 answer is
 * retried like a network error (a service restarting or overloaded is away for a moment, not broken).
 */
export function mirrorClient(apiUrl: string, options: { apiKey?: string; retry?: RetryPolicy } = {}): ImageStoreClient {
  return new ImageStoreClient({
    baseUrl: apiUrl,
    apiKey: options.apiKey,
    ...(options.retry ?? DEFAULT_RETRY),
    retryStatus: (status) => status >= 500 || status === 429,
    headers: { 'user-agent': 'imagestore-mirror' },
  });
}

/** The service could not be reached (network error, timeout), or kept answering 5xx or 429, through every retry. */
export function isUnreachable(err: unknown): boolean {
  return err instanceof ImageStoreError && (err.code === 'network_error' || err.code === 'timeout' || err.status >= 500 || err.status === 429);
}

/** The album or image is not on the service (any more). */
export function isGone(err: unknown): boolean {
  return err instanceof ImageStoreError && err.status === 404;
}

/** An error as the mirror logs it: an answer of the service with its URL and status (`… answered 401: …`). */
export function errorText(err: unknown): string {
  if (err instanceof ImageStoreError && err.status > 0) return `${err.url} answered ${err.status}: ${err.message}`;
  return (err as Error)?.message ?? String(err);
}

/**
 * Downloads an image and hands its body to `consume` with the SHA-256 from the ETag, when the service
 * sent one. The whole exchange, `consume` included, is tried again when the body breaks off or does not
 * match its checksum (the image may have been replaced while we read it).
 * @throws {ImageStoreError} status 404 when the image is gone
 */
export function download<T>(
  api: ImageStoreClient,
  album: string,
  image: string,
  consume: (body: Readable, sha256: string | undefined) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  return api.readImage(
    album,
    image,
    (answer) => {
      const sha256 = /^"([0-9a-f]{64})"$/.exec(answer.etag ?? '')?.[1];
      return consume(Readable.fromWeb(answer.stream() as WebReadableStream<Uint8Array>), sha256);
    },
    { signal, retryRead: (err) => err instanceof ChecksumError },
  );
}

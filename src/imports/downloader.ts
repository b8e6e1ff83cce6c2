import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { checkTargetUrl, ForbiddenTargetError, guardedLookup } from './ssrf-guard.js';

/** A download failure; `retryable` for network errors, timeouts and 5xx answers. */
export class DownloadError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

export interface DownloadOptions {
  stagingDir: string;
  maxBytes: number;
  timeoutMs: number;
  allowHosts: ReadonlySet<string>;
  maxRedirects?: number;
  signal?: AbortSignal;
  /** Called as bytes arrive. */
  onBytes?: (total: number) => void;
}

/** A downloaded file in the staging dir, and the URL it finally came from. */
export interface Downloaded {
  file: string;
  bytes: number;
  finalUrl: URL;
}

/**
 * Downloads a URL to a file in the staging dir: http(s) only, every hop
 * (redirects included, at most 5) checked against the SSRF guard, the size
 * limit enforced while streaming, one timeout for the whole attempt.
 * @throws {DownloadError}
 */
export async function download(url: URL, options: DownloadOptions): Promise<Downloaded> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let current = url;
  for (let hop = 0; hop <= (options.maxRedirects ?? 5); hop++) {
    try {
      checkTargetUrl(current, options.allowHosts);
    } catch (err) {
      throw new DownloadError((err as Error).message, false);
    }
    const response = await request(current, options.allowHosts, signal);
    const status = response.statusCode ?? 0;
    if (status >= 300 && status < 400 && response.headers.location) {
      response.resume();
      current = new URL(response.headers.location, current);
      continue;
    }
    if (status !== 200) {
      response.resume();
      throw new DownloadError(`the server answered ${status}`, status >= 500 || status === 429 || status === 408);
    }
    const declared = Number(response.headers['content-length']);
    if (declared > options.maxBytes) {
      response.destroy();
      throw new DownloadError(`the image is ${declared} bytes, over the limit of ${options.maxBytes}`, false);
    }
    const file = path.join(options.stagingDir, `import-${randomUUID()}`);
    let bytes = 0;
    const limit = new Transform({
      transform(chunk: Buffer, _enc, done) {
        bytes += chunk.length;
        if (bytes > options.maxBytes) return done(new DownloadError(`the image is over the limit of ${options.maxBytes} bytes`, false));
        options.onBytes?.(bytes);
        done(null, chunk);
      },
    });
    try {
      await pipeline(response, limit, createWriteStream(file), { signal });
    } catch (err) {
      await fs.rm(file, { force: true });
      throw asDownloadError(err, signal);
    }
    return { file, bytes, finalUrl: current };
  }
  throw new DownloadError('too many redirects', false);
}

function request(url: URL, allowHosts: ReadonlySet<string>, signal: AbortSignal): Promise<http.IncomingMessage> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.get(url, { lookup: guardedLookup(allowHosts), signal, headers: { 'User-Agent': 'imagestore-import/1', Accept: 'image/*' } }, resolve);
    req.on('error', (err) => reject(asDownloadError(err, signal)));
  });
}

function asDownloadError(err: unknown, signal: AbortSignal): DownloadError {
  if (err instanceof DownloadError) return err;
  if (err instanceof ForbiddenTargetError) return new DownloadError(err.message, false);
  const cause = (err as Error & { cause?: unknown }).cause;
  if (cause instanceof ForbiddenTargetError) return new DownloadError(cause.message, false);
  if (signal.aborted) {
    const reason = signal.reason as Error | undefined;
    return new DownloadError(reason?.name === 'TimeoutError' ? 'timed out' : 'cancelled', reason?.name === 'TimeoutError');
  }
  return new DownloadError(`network error: ${(err as Error).message}`, true);
}

/**
 * A counted upload client for the benchmarks: `count` multipart uploads of one
 * file under new names, `concurrency` at a time over keep-alive connections
 * (node:http, no FormData, so the client stays cheap next to the server), with
 * each request's latency and every status. wrk runs for a time, not a count;
 * this is for "fill the album to N images" and "p50 over N uploads at size S".
 */
import http from 'node:http';
import { percentile } from './lib.js';

/** What a counted burst of uploads did. */
export interface UploadBurst {
  /** Answers by HTTP status ("201": n, ...); "error" counts requests that got no answer. */
  statuses: Record<string, number>;
  /** Latency of each 201, ms (request written to last byte of the answer). */
  latenciesMs: number[];
  wallMs: number;
  p50Ms: number;
  p99Ms: number;
}

/** Where and what to upload. */
export interface UploadBurstOptions {
  /** The album's image collection, e.g. `http://127.0.0.1:PORT/api/v1/albums/a/images`. */
  url: string;
  file: Buffer;
  /** Name of upload i: `${prefix}-${i}.jpg`. */
  prefix: string;
  count: number;
  concurrency: number;
  /** Stop at the first answer other than 201 (a pre-fill must be complete). */
  failFast?: boolean;
}

const BOUNDARY = '----imagestore-bench-burst';

/** One multipart body: the part header with the file name, the bytes, the closing boundary. */
function multipart(name: string, file: Buffer): Buffer {
  const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/jpeg\r\n\r\n`;
  return Buffer.concat([Buffer.from(head), file, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
}

function post(agent: http.Agent, url: URL, body: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      agent,
      headers: { 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': body.length },
    }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
      res.once('error', reject);
    });
    req.once('error', reject);
    req.end(body);
  });
}

/** Runs `count` uploads, `concurrency` at a time; resolves when all have an answer. */
export async function uploadBurst({ url, file, prefix, count, concurrency, failFast = false }: UploadBurstOptions): Promise<UploadBurst> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const target = new URL(url);
  const statuses: Record<string, number> = {};
  const latenciesMs: number[] = [];
  let next = 0;
  let failure: Error | undefined;
  const started = performance.now();
  try {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, count) }, async () => {
        while (next < count && !failure) {
          const body = multipart(`${prefix}-${next++}.jpg`, file);
          const t0 = performance.now();
          let status: string;
          try {
            status = String(await post(agent, target, body));
          } catch {
            status = 'error';
          }
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status === '201') latenciesMs.push(performance.now() - t0);
          else if (failFast) failure = new Error(`upload to ${url} answered ${status}`);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  if (failure) throw failure;
  return { statuses, latenciesMs, wallMs: performance.now() - started, p50Ms: percentile(latenciesMs, 50), p99Ms: percentile(latenciesMs, 99) };
}

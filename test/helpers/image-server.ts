import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type supertest from 'supertest';
import type { ImportJobView } from '../../src/imports/job.js';
import { makeJpeg, makePng } from './images.js';
import { waitFor } from './wait-for.js';

/** One request the image server received. */
export interface SeenRequest {
  path: string;
  /** The client went away before the response was complete. */
  aborted: boolean;
  /** The response was sent to the end. */
  finished: boolean;
}

/** Options of `startImageServer`. */
export interface ImageServerOptions {
  /** Delay between the single bytes of `/slow/…`; default 100 ms. */
  slowByteIntervalMs?: number;
  /** The Content-Length that `/huge/declared/…` announces; default 64 MiB. */
  hugeDeclaredBytes?: number;
}

/**
 * A local HTTP server (127.0.0.1, ephemeral port) that import tests download from.
 * Routes (the rest of each path is free, so that every URL can carry its own file name):
 * - `/red/…`, `/green/…` PNGs of different colours; `/blue/…` a JPEG;
 * - `/text/…` a text/plain body (not an image);
 * - `/slow/…` a PNG sent one byte every `slowByteIntervalMs`;
 * - `/delayed/<ms>/…` the red PNG after `<ms>` ms;
 * - `/redirect?to=<url>` a 302 to `<url>` (relative or absolute);
 * - `/flaky/<key>/<n>/…` 500 for the first `<n>` requests of `<key>`, then the red PNG;
 * - `/huge/declared/…` a Content-Length over any test limit, then bytes until the client goes away;
 * - `/huge/chunked/…` chunked, no length, 16 KiB chunks until the client goes away (256 MiB at most);
 * - `/hang/<gate>/…` held until `release(gate)`, then the red PNG (later requests are answered at once);
 * - anything else 404.
 * The server records every request, counts requests in flight and their maximum.
 */
export interface ImageServer {
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  url: string;
  port: number;
  red: Buffer;
  green: Buffer;
  blue: Buffer;
  requests: SeenRequest[];
  /** Requests being answered now, and the most there ever were at once. */
  inFlight: number;
  maxInFlight: number;
  /** How many requests had paths starting with `prefix`. */
  hits(prefix: string): number;
  /** Waits (bounded) until `count` requests with paths starting with `prefix` arrived. */
  waitForHits(prefix: string, count: number, timeoutMs?: number): Promise<void>;
  /** Answers the held and the future requests of `/hang/<gate>/…`. */
  release(gate: string): void;
  /** Stops the server, cutting any connection still open. */
  close(): Promise<void>;
}

/** Starts an `ImageServer` on 127.0.0.1 and an ephemeral port. */
export async function startImageServer(options: ImageServerOptions = {}): Promise<ImageServer> {
  const slowMs = options.slowByteIntervalMs ?? 100;
  const hugeDeclared = options.hugeDeclaredBytes ?? 64 * 1024 * 1024;
  const [red, green, blue] = await Promise.all([
    makePng(24, 24, { r: 220, g: 20, b: 20 }),
    makePng(24, 24, { r: 20, g: 200, b: 40 }),
    makeJpeg(24, 24, { r: 20, g: 40, b: 220 }),
  ]);
  const requests: SeenRequest[] = [];
  const flakyCounts = new Map<string, number>();
  const released = new Set<string>();
  const held = new Map<string, Array<() => void>>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const seen: SeenRequest = { path: url.pathname + url.search, aborted: false, finished: false };
    requests.push(seen);
    self.inFlight += 1;
    self.maxInFlight = Math.max(self.maxInFlight, self.inFlight);
    res.on('close', () => {
      self.inFlight -= 1;
      seen.finished = res.writableFinished;
      seen.aborted = !res.writableFinished;
    });
    const sendImage = (body: Buffer, type = 'image/png') => {
      if (res.destroyed) return;
      res.writeHead(200, { 'Content-Type': type, 'Content-Length': body.length });
      res.end(body);
    };
    const parts = url.pathname.split('/').filter(Boolean);
    switch (parts[0]) {
      case 'red':
        return sendImage(red);
      case 'green':
        return sendImage(green);
      case 'blue':
        return sendImage(blue, 'image/jpeg');
      case 'text':
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        return res.end('just some text, not an image\n');
      case 'slow': {
        res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': red.length });
        let sent = 0;
        const tick = () => {
          if (res.destroyed) return;
          res.write(red.subarray(sent, sent + 1));
          sent += 1;
          if (sent < red.length) later(slowMs, tick);
          else res.end();
        };
        return tick();
      }
      case 'delayed':
        return later(Number(parts[1]), () => sendImage(red));
      case 'redirect':
        res.writeHead(302, { Location: url.searchParams.get('to') ?? '/' });
        return res.end();
      case 'flaky': {
        const count = (flakyCounts.get(parts[1]) ?? 0) + 1;
        flakyCounts.set(parts[1], count);
        if (count > Number(parts[2])) return sendImage(red);
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        return res.end('try again');
      }
      case 'huge':
        return sendHuge(res, parts[1] === 'declared' ? hugeDeclared : undefined, red, later);
      case 'hang': {
        if (released.has(parts[1])) return sendImage(red);
        const waiting = held.get(parts[1]) ?? [];
        waiting.push(() => sendImage(red));
        held.set(parts[1], waiting);
        return;
      }
      default:
        res.writeHead(404, { 'Content-Type': 'text/plain' });
        res.end('not found');
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const matching = (prefix: string) => requests.filter((r) => r.path.startsWith(prefix)).length;

  const self: ImageServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    red,
    green,
    blue,
    requests,
    inFlight: 0,
    maxInFlight: 0,
    hits: matching,
    async waitForHits(prefix, count, timeoutMs = 5000) {
      await waitFor(`${count} requests to ${prefix} (got ${matching(prefix)})`, () => matching(prefix) >= count, timeoutMs);
    },
    release(gate) {
      released.add(gate);
      for (const answer of held.get(gate) ?? []) answer();
      held.delete(gate);
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
  return self;
}

/** 16 KiB chunks every 2 ms (256 MiB at most) until the client goes away; `declared` sets a Content-Length. */
function sendHuge(res: http.ServerResponse, declared: number | undefined, head: Buffer, later: (ms: number, fn: () => void) => void): void {
  res.writeHead(200, declared === undefined ? { 'Content-Type': 'image/png' } : { 'Content-Type': 'image/png', 'Content-Length': declared });
  const chunk = Buffer.alloc(16 * 1024, 0x61);
  res.write(head);
  let sent = head.length;
  const limit = declared ?? 256 * 1024 * 1024;
  const next = () => {
    if (res.destroyed) return;
    if (sent + chunk.length > limit) return void res.end();
    sent += chunk.length;
    res.write(chunk);
    later(2, next);
  };
  next();
}

export type { ImportJobView };

type Http = ReturnType<typeof supertest>;

/** POST /api/v1/albums/{album}/imports, expecting 202 with a Location; returns the job and the Location. */
export async function createImportJob(http: Http, album: string, urls: string[]): Promise<{ job: ImportJobView; location: string }> {
  const res = await http.post(`/api/v1/albums/${encodeURIComponent(album)}/imports`).send({ urls }).expect(202);
  return { job: (res.body as { job: ImportJobView }).job, location: res.headers.location as string };
}

/** GET /api/v1/imports/{jobId}, expecting 200. */
export async function getImportJob(http: Http, jobId: string): Promise<ImportJobView> {
  return (await http.get(`/api/v1/imports/${jobId}`).expect(200)).body as ImportJobView;
}

/** Polls the job (bounded) until `done(job)` holds; by default until the job has finished. */
export async function waitForImportJob(
  http: Http,
  jobId: string,
  done: (job: ImportJobView) => boolean = (job) => ['done', 'failed', 'cancelled'].includes(job.state),
  timeoutMs = 8000,
): Promise<ImportJobView> {
  let last: ImportJobView | undefined;
  try {
    return await waitFor(`import job ${jobId}`, async () => {
      last = await getImportJob(http, jobId);
      return done(last) && last;
    }, timeoutMs, 25);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(last)}`);
  }
}

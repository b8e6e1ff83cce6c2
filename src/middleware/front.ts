import { randomUUID } from 'node:crypto';
import { Stream } from 'node:stream';
import type { Context, Middleware } from 'koa';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { answerError, answerUnmatched } from './error-handler.js';
import { SAFE_ID } from './request-id.js';

export interface FrontOptions {
  log: Logger;
  metrics: Metrics;
  /**
   * Headers every response carries whatever it is (security headers computed once,
   * `Vary: Origin` when CORS is off...), set in this order before the routes run.
   */
  staticHeaders?: ReadonlyArray<readonly [string, string]>;
}

/**
 * `ctx.state` of every request: its id, and a logger tied to it (`reqId`),
 * made only when something logs: most requests log only their access line,
 * which is written with the root logger and the same fields.
 */
export class RequestState {
  [key: string]: unknown;
  private child?: Logger;

  constructor(
    readonly requestId: string,
    private readonly root: Logger,
  ) {}

  get log(): Logger {
    return (this.child ??= this.root.child({ reqId: this.requestId }));
  }
}

/**
 * The first middleware, doing in one step what every request needs: a request
 * id (the client's `X-Request-Id` when short and safe, else a new UUID; echoed),
 * the static headers, the error answer (error-handler.ts: answerError,
 * answerUnmatched), one access line when the request completes (method, path,
 * status, ms; level by status: 5xx error, 4xx warn, else info) and the HTTP
 * metrics. A JSON body is serialised here, once, so its length is known (Koa
 * would serialise it again to measure it).
 */
export function front({ log, metrics, staticHeaders = [] }: FrontOptions): Middleware {
  return async function frontMiddleware(ctx, next) {
    const started = performance.now();
    const given = ctx.req.headers['x-request-id'];
    const id = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
    const state = new RequestState(id, log);
    ctx.state = state;
    const { res } = ctx;
    res.setHeader('X-Request-Id', id);
    for (const [name, value] of staticHeaders) res.setHeader(name, value);
    try {
      try {
        await next();
        answerUnmatched(ctx);
      } catch (caught) {
        answerError(ctx, caught);
      }
      serialiseJson(ctx);
    } finally {
      const ms = performance.now() - started;
      const status = ctx.status;
      const line = { reqId: id, method: ctx.method, path: ctx.path, status, ms: Math.round(ms * 10) / 10 };
      if (status >= 500) log.error(line, 'request completed');
      else if (status >= 400) log.warn(line, 'request completed');
      else log.info(line, 'request completed');
      const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
      metrics.record(ctx.method, route, status, ms / 1000, Number(ctx.req.headers['content-length']) || 0, ctx.response.length);
    }
  };
}

/** Turns an object body into the JSON bytes Koa would send (same bytes, same Content-Type). */
function serialiseJson(ctx: Context): void {
  const { body } = ctx;
  if (body === null || typeof body !== 'object' || Buffer.isBuffer(body) || body instanceof Stream || body instanceof Uint8Array) return;
  if (body instanceof Blob || body instanceof ReadableStream || body instanceof Response) return;
  ctx.body = Buffer.from(JSON.stringify(body));
}

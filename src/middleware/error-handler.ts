import type { Context, Middleware } from 'koa';
import { AppError, storageError, toErrorBody } from '../errors.js';
import type { Logger } from '../logger.js';

interface HttpLikeError extends Error {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  headers?: Record<string, string>;
}

/**
 * The one place that turns errors into answers: AppError → its status and
 * message; storage system errors (full or read-only disk, no file descriptors
 * left) → 507/503 by `storageError`, with a message naming no path;
 * http-errors that may be shown (koa-body, router 405/501, ctx.throw) → their
 * status and message; anything else → 500 with a generic message, the
 * details going to the log only. Also gives unmatched routes a
 * JSON 404, and the router's 405/501 (which carry `Allow`) a JSON body.
 * The service runs the same steps inside its front middleware (front.ts).
 */
export function errorHandler(): Middleware {
  return async function errorHandlerMiddleware(ctx, next) {
    try {
      await next();
      answerUnmatched(ctx);
    } catch (caught) {
      answerError(ctx, caught);
    }
  };
}

/** After the routes: a JSON body for an unmatched route (404) and for the router's 405/501. */
export function answerUnmatched(ctx: Context): void {
  if (ctx.body !== undefined) return;
  if (ctx.status === 404) {
    ctx.status = 404;
    ctx.body = toErrorBody(`no route for ${ctx.method} ${ctx.path}`);
  } else if (ctx.status === 405 || ctx.status === 501) {
    // The router's allowedMethods() set the status and the Allow header; add the JSON body.
    ctx.body = toErrorBody(`${ctx.method} is not allowed on ${ctx.path}; allowed: ${ctx.response.get('Allow') || 'none'}`);
  }
}

/** Answers an error that escaped the routes (see errorHandler); logs it with the request's logger (`ctx.state.log`). */
export function answerError(ctx: Context, caught: unknown): void {
  // A full, read-only or exhausted disk is the store's state, not a bug: no route needs to know.
  const err = (storageError(caught) ?? caught) as HttpLikeError;
  const log: Logger = ctx.state.log;
  const status = statusOf(err);
  if (ctx.headerSent || !ctx.writable) {
    // Nothing more can be sent, but the access line must not report Koa's default 404.
    if (!ctx.headerSent) ctx.status = status;
    log.warn({ err: caught }, 'error after the response started');
    return;
  }
  if (status >= 500) log.error({ err: caught }, 'request failed');
  ctx.set(err.headers ?? {});
  if (err instanceof AppError && err.retryAfterSeconds !== undefined) ctx.set('Retry-After', String(err.retryAfterSeconds));
  ctx.status = status;
  const body = toErrorBody(status >= 500 && !(err instanceof AppError) ? 'Internal Server Error' : err.message);
  // What a client needs to recover (a 410's oldest sequence): only errors that carry details say so.
  ctx.body = err instanceof AppError && err.details ? { ...body, ...err.details } : body;
}

function statusOf(err: HttpLikeError): number {
  if (err instanceof AppError) return err.status;
  const status = err.status ?? err.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 600 && err.expose !== false) return status;
  return 500;
}

import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from '../logger.js';

/** Request ids taken from the client: short, and safe in logs and headers. */
export const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Gives every request an id: the client's `X-Request-Id` when short and safe,
 * else a new UUID. Sets `ctx.state.requestId` and a child logger
 * `ctx.state.log`, and echoes the id in the response header.
 */
export function requestId(log: Logger): Middleware {
  return async function requestIdMiddleware(ctx, next) {
    const given = ctx.get('X-Request-Id');
    const id = SAFE_ID.test(given) ? given : randomUUID();
    ctx.state.requestId = id;
    ctx.state.log = log.child({ reqId: id });
    ctx.set('X-Request-Id', id);
    await next();
  };
}

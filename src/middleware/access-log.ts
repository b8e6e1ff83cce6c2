import type { Middleware } from 'koa';
import type { Logger } from '../logger.js';

/**
 * One log line per request when it completes: method, path, status, time.
 * Level follows the status: 5xx error, 4xx warn, else info. Runs
 * outside error-handler, so it sees the final status of failed requests too.
 */
export function accessLog(): Middleware {
  return async function accessLogMiddleware(ctx, next) {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const log: Logger = ctx.state.log;
      const line = { method: ctx.method, path: ctx.path, status: ctx.status, ms: Math.round(ms * 10) / 10 };
      if (ctx.status >= 500) log.error(line, 'request completed');
      else if (ctx.status >= 400) log.warn(line, 'request completed');
      else log.info(line, 'request completed');
    }
  };
}

import type { Middleware } from 'koa';
import { TooManyRequestsError } from '../errors.js';

export interface RateLimitOptions {
  /** Requests allowed per window per principal (key, or client address); 0 turns the limit off. */
  limit: number;
  windowMs: number;
  /** Paths never limited (health checks from orchestrators). */
  exempt?: RegExp;
}

/**
 * A fixed-window request limit per principal (set by the auth middleware:
 * the API key, or the client address). Over the limit: 429 with Retry-After
 * (seconds until the window ends). Counters live in memory, per node.
 */
export function rateLimit({ limit, windowMs, exempt }: RateLimitOptions): Middleware {
  const windows = new Map<string, { start: number; count: number }>();
  let lastSweep = Date.now();
  return async function rateLimitMiddleware(ctx, next) {
    if (limit === 0 || exempt?.test(ctx.path)) return next();
    const now = Date.now();
    if (now - lastSweep > windowMs) {
      // Drop finished windows so the map holds only clients seen in the current one.
      for (const [key, w] of windows) if (now - w.start >= windowMs) windows.delete(key);
      lastSweep = now;
    }
    const principal: string = ctx.state.principal ?? `ip:${ctx.ip}`;
    let window = windows.get(principal);
    if (!window || now - window.start >= windowMs) {
      window = { start: now, count: 0 };
      windows.set(principal, window);
    }
    window.count += 1;
    ctx.set('RateLimit-Limit', String(limit));
    ctx.set('RateLimit-Remaining', String(Math.max(0, limit - window.count)));
    if (window.count > limit) {
      const retryAfter = Math.max(1, Math.ceil((window.start + windowMs - now) / 1000));
      throw new TooManyRequestsError(`rate limit of ${limit} requests per ${windowMs / 1000} s exceeded; retry in ${retryAfter} s`, retryAfter);
    }
    return next();
  };
}

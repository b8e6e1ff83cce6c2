import type { Context, Middleware } from 'koa';
import { RequestTimeoutError } from '../errors.js';
import type { Logger } from '../logger.js';

export interface MinBodyRateOptions {
  /** Bytes per second a request body must arrive at, over every `windowMs`; 0 turns the check off. */
  bytesPerSecond: number;
  /** The span the rate is measured over, and so the grace a body has at its start. */
  windowMs: number;
}

/**
 * Cuts off request bodies that arrive slower than `bytesPerSecond`, measured
 * over each `windowMs`: the answer is 408 and the connection is closed, so what
 * the body held (an upload slot, a staged file) is freed within a window
 * instead of after REQUEST_TIMEOUT_MS. Without it, 32 connections sending a
 * byte every 15 s held every upload slot for 300 s.
 *
 * Bytes are counted on the socket (the body's stream is left alone for the
 * parsers). A window in which received bytes wait for the server (the route
 * has not started on the body yet, or back-pressure holds it) does not count
 * against the client.
 */
export function minBodyRate({ bytesPerSecond, windowMs }: MinBodyRateOptions): Middleware {
  const tickMs = Math.max(100, Math.min(1000, Math.floor(windowMs / 10)));
  const ticksPerWindow = Math.ceil(windowMs / tickMs);
  const minBytes = (bytesPerSecond * windowMs) / 1000;
  return async function minBodyRateMiddleware(ctx, next) {
    if (bytesPerSecond === 0 || !hasBody(ctx)) return next();
    const { req } = ctx;
    const first = req.socket.bytesRead;
    /** Bytes received at each of the last ticks, oldest first. */
    let samples = [0];
    let timer: NodeJS.Timeout | undefined;
    let cutOff: RequestTimeoutError | undefined;
    const tooSlow = new Promise<never>((_, reject) => {
      timer = setInterval(() => {
        if (req.complete || req.destroyed) return clearInterval(timer);
        const received = req.socket.bytesRead - first;
        // Bytes the server has not taken yet (no reader so far, or back-pressure): the wait is not the client's.
        if (req.readableLength > 0) {
          samples = [received];
          return;
        }
        samples.push(received);
        if (samples.length <= ticksPerWindow) return;
        const inWindow = received - samples.shift()!;
        if (inWindow >= minBytes) return;
        clearInterval(timer);
        (ctx.state.log as Logger).warn({ received, inWindow, windowMs, bytesPerSecond }, 'request body too slow; cut off');
        cutOff = new RequestTimeoutError(`the request body arrived slower than ${bytesPerSecond} bytes per second over ${windowMs / 1000} s`);
        // Read by the error handler: the rest of the body is not worth reading.
        reject(Object.assign(cutOff, { headers: { Connection: 'close' } }));
      }, tickMs);
      timer.unref();
    });
    try {
      await Promise.race([next(), tooSlow]);
    } catch (err) {
      // The body's reader still waits for bytes: once the 408 is out, abort the request so it gives up
      // (formidable then frees the upload slot and removes the staged file).
      if (err === cutOff) ctx.res.once('close', () => req.destroy());
      throw err;
    } finally {
      clearInterval(timer);
    }
  };
}

function hasBody(ctx: Context): boolean {
  return ctx.req.headers['transfer-encoding'] !== undefined || Number(ctx.get('Content-Length')) > 0;
}

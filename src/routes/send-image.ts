import type { Context } from 'koa';
import { RangeNotSatisfiableError } from '../errors.js';
import { queryFlag } from '../lib/query-flag.js';
import type { ImageBody, LoadedBody } from '../images/image-body.js';

/**
 * Sends an image with full HTTP semantics: Content-Type, strong ETag,
 * Last-Modified, 304 for If-None-Match / If-Modified-Since (answered from the
 * ready headers, before any file is opened), a single byte Range as 206 (416
 * when unsatisfiable; multi-range requests get the whole body), HEAD without a
 * body, Cache-Control, nosniff, and Content-Disposition (inline, or attachment
 * with ?download=1). The body streams from its source or is sent from one
 * buffer (small bodies, hot files).
 * @param ready called once the answer is sure (a 304, or the body loaded and the range good), before it is
 *   sent: the fetch event is journaled there, so a download that fails before that announces nothing
 */
export async function sendImage(ctx: Context, body: ImageBody, ready?: () => Promise<void>): Promise<void> {
  const { head } = body;
  ctx.set('ETag', head.etag);
  ctx.set('Last-Modified', head.lastModified);
  ctx.set('Cache-Control', head.cacheControl);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('X-Content-Type-Options', 'nosniff');
  if (head.csp !== undefined) ctx.set('Content-Security-Policy', head.csp);
  if (head.varyAccept) ctx.vary('Accept');
  ctx.set('Content-Disposition', queryFlag('download', ctx.query.download) ? head.attachment : head.inline);
  ctx.type = head.type;
  ctx.status = 200;

  if (notModified(ctx.get('If-None-Match'), ctx.get('If-Modified-Since'), head.etag, head.lastModifiedMs)) {
    ctx.status = 304;
    await body.close();
    await ready?.();
    return;
  }
  let loaded: LoadedBody;
  try {
    loaded = await body.load();
  } catch (err) {
    await body.close();
    throw err;
  }
  const { size } = loaded;
  const range = parseRange(ctx.get('Range'), size, ctx.get('If-Range'), head.etag);
  if (range === 'unsatisfiable') {
    await body.close();
    ctx.set('Content-Range', `bytes */${size}`);
    throw new RangeNotSatisfiableError(`Range ${JSON.stringify(ctx.get('Range'))} is outside the ${size} bytes of the image`);
  }
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  }
  ctx.length = range ? range.end - range.start + 1 : size;
  if (ctx.method === 'HEAD') {
    await body.close();
    return;
  }
  try {
    await ready?.();
  } catch (err) {
    await body.close();
    throw err;
  }
  ctx.body = await loaded.bytes(range);
}

/**
 * One byte range from a Range header (RFC 9110 14.2), or undefined to send
 * everything (no header, a stale If-Range, several ranges, or another unit).
 */
export function parseRange(header: string, size: number, ifRange: string, etag: string): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (!header || (ifRange && ifRange !== etag)) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (match[1] === '') {
    const suffix = Number(match[2]);
    if (suffix === 0) return 'unsatisfiable';
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(match[1]);
    end = match[2] === '' ? size - 1 : Math.min(Number(match[2]), size - 1);
    if (match[2] !== '' && Number(match[2]) < start) return undefined;
  }
  if (start >= size || size === 0) return 'unsatisfiable';
  return { start, end };
}

/**
 * Conditional GET (RFC 9110 13.1.1-13.1.3): If-None-Match wins over
 * If-Modified-Since. Unlike koa's `ctx.fresh`, a request `Cache-Control:
 * no-cache` does not disable it: that directive is for caches, and fetch()
 * adds it to every revalidation, which would otherwise never get a 304.
 */
export function notModified(ifNoneMatch: string, ifModifiedSince: string, etag: string, lastModifiedMs: number): boolean {
  if (ifNoneMatch) {
    const weak = (tag: string) => tag.trim().replace(/^W\//, '');
    return ifNoneMatch.trim() === '*' || ifNoneMatch.split(',').some((tag) => weak(tag) === weak(etag));
  }
  if (ifModifiedSince) {
    const since = Date.parse(ifModifiedSince);
    return Number.isFinite(since) && lastModifiedMs <= since;
  }
  return false;
}

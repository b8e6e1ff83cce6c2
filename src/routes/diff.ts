import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { File } from 'formidable';
import type { AlbumService } from '../services/album-service.js';
import { checkName } from '../albums/names.js';
import type { ImageHandle } from '../albums/types.js';
import { ServiceUnavailableError, ValidationError } from '../errors.js';
import type { DiffOptions } from '../images/diff.js';
import type { DiffJob, DiffPool } from '../images/diff-pool.js';
import { queryFlag } from '../lib/query-flag.js';
import { multipartUpload } from '../middleware/body.js';

export interface DiffRoutesDeps {
  albums: AlbumService;
  /** Checks an uploaded file is an accepted image within `maxPixels` (ImageEngine.inspect: in the engine's check lane). */
  inspect: (file: string, maxPixels: number) => Promise<unknown>;
  maxUploadBytes: number;
  /** The worker threads that compare (and render) off the event loop. */
  diffs: DiffPool;
  /** Largest width × height of either image (DIFF_MAX_PIXELS); larger ones are refused with 422 before decoding. */
  maxPixels: number;
  /** Comparisons at once (DIFF_CONCURRENCY), uploads of POST /diff included; more get 503 + Retry-After. */
  concurrency: number;
}

/**
 * GET /diff?a={album}/{image}|{id}&b=… compares two stored images; POST /diff
 * compares two uploaded files (multipart fields `a` and `b`). Answers JSON, or
 * the diff picture with output=png, or a, b and the diff with output=side-by-side.
 * Diffs have slots of their own: they take no upload slot and no engine lane.
 */
export function diffRoutes({ albums, inspect, maxUploadBytes, diffs, maxPixels, concurrency }: DiffRoutesDeps): Router {
  const router = new Router();
  const slots = diffSlots(concurrency);
  router.get('/diff', slots, async (ctx) => {
    const request = diffRequest(ctx, maxPixels);
    const handles: ImageHandle[] = [];
    try {
      for (const ref of [param(ctx, 'a'), param(ctx, 'b')]) handles.push(await openRef(albums, ref));
      await answer(ctx, diffs, { a: await handles[0].localPath(), b: await handles[1].localPath(), ...request });
      // Announced once both were found and compared, like a download that happened.
      for (const handle of handles) await albums.announceFetch(handle.info, { reqId: ctx.state.requestId });
    } finally {
      await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
    }
  });
  // The uploads' cap is the diff slots' (this route's own counter): POST /diff never takes an image upload's slot.
  const uploads = multipartUpload({ stagingDir: albums.stagingDir, maxFileBytes: maxUploadBytes, maxConcurrent: concurrency, maxFiles: 2 });
  router.post('/diff', slots, uploads, async (ctx) => {
    const request = diffRequest(ctx, maxPixels);
    const files = ctx.request.files ?? {};
    const [a, b] = (['a', 'b'] as const).map((field) => {
      const file = files[field] as File | File[] | undefined;
      if (!file || Array.isArray(file)) throw new ValidationError(`expected one file in multipart field "${field}"`);
      return file.filepath;
    });
    // One after the other: a comparison holds one libuv pool thread at most. The header check refuses an
    // image over the comparison cap before its full decode.
    await inspect(a, maxPixels);
    await inspect(b, maxPixels);
    await answer(ctx, diffs, { a, b, ...request });
  });
  return router;
}

async function answer(ctx: Context, diffs: DiffPool, job: DiffJob): Promise<void> {
  const { result, png } = await diffs.run(job);
  if (!png) {
    ctx.body = result;
    return;
  }
  ctx.type = 'image/png';
  ctx.set('X-Diff-Pixels', String(result.differentPixels));
  ctx.body = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
}

/** `album/image` (names cannot contain "/") or an image id, opened without announcing it yet. */
async function openRef(albums: AlbumService, ref: string): Promise<ImageHandle> {
  const slash = ref.indexOf('/');
  if (slash < 0) return albums.openImageById(ref);
  return albums.openImage(checkName('album', ref.slice(0, slash)), checkName('image', ref.slice(slash + 1)));
}

/** Answers 503 + Retry-After past `max` diffs in progress. */
function diffSlots(max: number): Middleware {
  let active = 0;
  return async function diffSlotsMiddleware(_ctx, next) {
    if (active >= max) throw new ServiceUnavailableError(`too many comparisons in progress (limit ${max}); retry shortly`);
    active += 1;
    try {
      await next();
    } finally {
      active -= 1;
    }
  };
}

function param(ctx: Context, name: string): string {
  const value = ctx.query[name];
  if (typeof value !== 'string' || value === '') throw new ValidationError(`Expected ${name}={album}/{image} or ${name}={id} but received ${JSON.stringify(value ?? null)}`);
  return value;
}

const OUTPUTS = ['json', 'png', 'side-by-side'];

function diffRequest(ctx: Context, maxPixels: number): Omit<DiffJob, 'a' | 'b'> {
  const q = ctx.query as Record<string, string | undefined>;
  const number = (name: string, fallback: number, min: number, max: number) => {
    if (q[name] === undefined) return fallback;
    const n = Number(q[name]);
    if (q[name] === '' || !Number.isFinite(n) || n < min || n > max) throw new ValidationError(`Expected number between ${min} and ${max} for ${name} but received ${JSON.stringify(q[name])}`);
    return n;
  };
  const output = q.output ?? 'json';
  if (!OUTPUTS.includes(output)) throw new ValidationError(`Expected one of ${OUTPUTS.join(', ')} for output but received ${JSON.stringify(output)}`);
  if (q.resize !== undefined && q.resize !== 'fit') throw new ValidationError(`Expected fit for resize but received ${JSON.stringify(q.resize)}`);
  const options: DiffOptions = {
    threshold: number('threshold', 0.1, 0, 1),
    includeAA: queryFlag('includeAA', q.includeAA),
    resizeToFit: q.resize === 'fit',
    mergeDistance: Math.round(number('mergeDistance', 4, 0, 1000)),
    maxBoxes: Math.round(number('maxBoxes', 50, 1, 1000)),
    maxPixels,
  };
  return { output: output as DiffJob['output'], options };
}

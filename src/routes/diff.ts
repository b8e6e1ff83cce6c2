import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import type { File } from 'formidable';
import type { AlbumService } from '../albums/album-service.js';
import { checkName } from '../albums/names.js';
import type { ImageHandle } from '../albums/types.js';
import { ServiceUnavailableError, ValidationError } from '../errors.js';
import { diffImages, type DiffOptions } from '../images/diff.js';
import { renderDiffPng, renderSideBySide } from '../images/diff-render.js';
import type { InspectOptions } from '../images/inspect.js';
import { inspectImage } from '../images/inspect.js';
import { multipartUpload } from '../middleware/body.js';

export interface DiffRoutesDeps {
  albums: AlbumService;
  inspect: InspectOptions;
  maxUploadBytes: number;
  maxConcurrentUploads: number;
}

/**
 * GET /diff?a={album}/{image}|{id}&b=… compares two stored images; POST /diff
 * compares two uploaded files (multipart fields `a` and `b`). Answers JSON, or
 * the diff picture with output=png, or a, b and the diff with output=side-by-side.
 */
export function diffRoutes({ albums, inspect, maxUploadBytes, maxConcurrentUploads }: DiffRoutesDeps): Router {
  const router = new Router();
  const slots = diffSlots(MAX_CONCURRENT_DIFFS);
  router.get('/diff', slots, async (ctx) => {
    const options = diffOptions(ctx, inspect.maxInputPixels);
    const handles: ImageHandle[] = [];
    try {
      for (const ref of [param(ctx, 'a'), param(ctx, 'b')]) handles.push(await openRef(albums, ref));
      await answer(ctx, await handles[0].localPath(), await handles[1].localPath(), options);
      // Announced once both were found and compared, like a download that happened.
      for (const handle of handles) await albums.announceFetch(handle.info, { reqId: ctx.state.requestId });
    } finally {
      await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
    }
  });
  router.post(
    '/diff',
    slots,
    multipartUpload({ stagingDir: albums.stagingDir, maxFileBytes: maxUploadBytes, maxConcurrent: maxConcurrentUploads, maxFiles: 2 }),
    async (ctx) => {
      const options = diffOptions(ctx, inspect.maxInputPixels);
      const files = ctx.request.files ?? {};
      const [a, b] = (['a', 'b'] as const).map((field) => {
        const file = files[field] as File | File[] | undefined;
        if (!file || Array.isArray(file)) throw new ValidationError(`expected one file in multipart field "${field}"`);
        return file.filepath;
      });
      await Promise.all([inspectImage(a, inspect), inspectImage(b, inspect)]);
      await answer(ctx, a, b, options);
    },
  );
  return router;
}

async function answer(ctx: Context, a: string, b: string, options: DiffOptions & { output: string }): Promise<void> {
  const { result, pixels } = await diffImages(a, b, options);
  if (options.output === 'json') {
    ctx.body = result;
    return;
  }
  ctx.type = 'image/png';
  ctx.set('X-Diff-Pixels', String(result.differentPixels));
  ctx.body = options.output === 'png' ? await renderDiffPng(pixels, result) : await renderSideBySide(pixels, result);
}

/** `album/image` (names cannot contain "/") or an image id, opened without announcing it yet. */
async function openRef(albums: AlbumService, ref: string): Promise<ImageHandle> {
  const slash = ref.indexOf('/');
  if (slash < 0) return albums.fetchImageById(ref, {}, false);
  return albums.fetchImage(checkName('album', ref.slice(0, slash)), checkName('image', ref.slice(slash + 1)), {}, false);
}

/** Diffs at once: each holds several full-size pixel buffers (about 230 MiB at 12 MP). */
const MAX_CONCURRENT_DIFFS = 2;

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

function diffOptions(ctx: Context, maxInputPixels: number): DiffOptions & { output: string } {
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
  if (q.includeAA !== undefined && !['true', 'false', '1', '0'].includes(q.includeAA)) throw new ValidationError(`Expected true or false for includeAA but received ${JSON.stringify(q.includeAA)}`);
  return {
    output,
    threshold: number('threshold', 0.1, 0, 1),
    includeAA: q.includeAA === 'true' || q.includeAA === '1',
    resizeToFit: q.resize === 'fit',
    mergeDistance: Math.round(number('mergeDistance', 4, 0, 1000)),
    maxBoxes: Math.round(number('maxBoxes', 50, 1, 1000)),
    maxInputPixels,
  };
}

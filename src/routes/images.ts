import Router from '@koa/router';
import type { Context } from 'koa';
import type { File } from 'formidable';
import type { AlbumService, DuplicatePolicy } from '../services/album-service.js';
import type { ImageHandle } from '../albums/types.js';
import { checkName, checkNewName } from '../albums/names.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { ID_URL_CACHE, NAME_URL_CACHE, type ImageDelivery } from '../images/image-delivery.js';
import { parseTransformSpec, type TransformSpec } from '../images/transform-spec.js';
import { jsonBody, multipartUpload, receivedFile, takeFile } from '../middleware/body.js';
import type { ListingCache } from './listing-cache.js';
import { ImageNameBody, ListQuery, SimilarQuery } from '../contract/schemas.js';
import { parseWith } from './schemas.js';
import { sendImage } from './send-image.js';
import { queryFlag } from '../lib/query-flag.js';

export interface ImageRoutesDeps {
  albums: AlbumService;
  delivery: ImageDelivery;
  maxJsonBytes: number;
  maxUploadBytes: number;
  maxConcurrentUploads: number;
  listings: ListingCache;
}

/**
 * Uploads up to this size are also kept in memory while they are written to the staging dir,
 * and checked from there: the image engine then reads no file (from a path, libvips opens it
 * once per format it tries). At most MAX_CONCURRENT_UPLOADS of them at once.
 */
const UPLOAD_MEMORY_BYTES = 1024 * 1024;

/**
 * Image routes: the Go service's /albums/{albumName}/images[/{imageName}],
 * plus /…/{imageName}/metadata and /images/{id}[.{ext}] by stable id.
 * Downloads take transform parameters (w, h, fit, format, q, …).
 */
export function imageRoutes(deps: ImageRoutesDeps): Router {
  const { albums, delivery, listings } = deps;
  const router = new Router();
  const json = jsonBody(deps.maxJsonBytes);
  const upload = multipartUpload({
    stagingDir: albums.stagingDir, maxFileBytes: deps.maxUploadBytes, maxConcurrent: deps.maxConcurrentUploads, memoryBytes: UPLOAD_MEMORY_BYTES, durable: true,
  });
  const base = '/albums/:albumName/images';

  router.get(base, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    await listings.send(ctx, album, async () => {
      const query = parseWith(ListQuery, ctx.query, 'query');
      const details = queryFlag('details', query.details);
      const listing = await albums.listImages(album, { limit: query.limit, cursor: query.cursor }, details, query.sort);
      return { imageList: listing.items, images: listing.details, nextCursor: listing.nextCursor };
    });
  });

  router.post(base, upload, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const file = singleFile(ctx.request.files?.file);
    const name = checkNewName('image', baseName(file.originalFilename));
    const onDuplicate = duplicatePolicy(ctx.query.onDuplicate);
    // formidable hashed the file (sha256) while receiving it; it is fdatasynced, and a small one is still in memory.
    const received = receivedFile(ctx, file);
    const known = file.hash ? { size: file.size, sha256: file.hash, bytes: received?.bytes, synced: received?.synced } : undefined;
    const image = await albums.addImage(album, name, file.filepath, { reqId: ctx.state.requestId }, known, onDuplicate);
    takeFile(ctx, file); // the store moved it
    ctx.status = 201;
    ctx.set('Location', `/api/v1/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(name)}`);
    ctx.body = { message: `${name} image added to album ${album}`, image };
  });

  router.get(`${base}/:imageName`, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const name = checkName('image', ctx.params.imageName);
    const spec = parseTransformSpec(ctx.query);
    const handle = await openByName(albums, ctx, album, name);
    await sendImage(ctx, await delivery.body(handle, spec, ctx.get('Accept'), NAME_URL_CACHE), announcer(albums, ctx, handle));
  });

  router.get(`${base}/:imageName/metadata`, async (ctx) => {
    ctx.body = await albums.imageInfo(checkName('album', ctx.params.albumName), checkName('image', ctx.params.imageName));
  });

  router.get('/images/:id/similar', async (ctx) => {
    const { maxDistance, limit } = parseWith(SimilarQuery, ctx.query, 'query');
    const id = checkId(ctx.params.id);
    ctx.body = { id, similar: await albums.similarImages(id, maxDistance, limit) };
  });

  router.get('/images/:idWithExtension', async (ctx) => {
    const { id, spec } = parseIdUrl(ctx);
    const handle = await albums.openImageById(id);
    await sendImage(ctx, await delivery.body(handle, spec, ctx.get('Accept'), ID_URL_CACHE), announcer(albums, ctx, handle));
  });

  router.patch(`${base}/:imageName`, json, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const from = checkName('image', ctx.params.imageName);
    const to = checkNewName('image', parseWith(ImageNameBody, ctx.request.body, 'body').imageName);
    const image = await albums.renameImage(album, from, to, { reqId: ctx.state.requestId });
    ctx.set('Location', `/api/v1/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(to)}`);
    ctx.body = { message: `${from} image modified to ${to}`, image };
  });

  router.delete(`${base}/:imageName`, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const name = checkName('image', ctx.params.imageName);
    const image = await albums.deleteImage(album, name, { reqId: ctx.state.requestId });
    ctx.body = { message: `${name} image deleted from album ${album}`, image };
  });

  return router;
}

/**
 * Opens an image by name for a download. A signed URL (auth sets `signedImageId`)
 * serves only the image it was signed for: once that one is deleted or replaced,
 * the name holds another image.
 */
async function openByName(albums: AlbumService, ctx: Context, album: string, name: string): Promise<ImageHandle> {
  const handle = await albums.openImage(album, name);
  const signedFor: string | undefined = ctx.state.signedImageId;
  if (signedFor !== undefined && handle.info.id !== signedFor) {
    await handle.close();
    throw new NotFoundError(`${name} image is not the one this signed URL was made for (it was deleted or replaced); make a new signed URL`);
  }
  return handle;
}

/** Records the fetch event once the answer is ready to go (sendImage calls it); HEAD sends no image, so none. */
function announcer(albums: AlbumService, ctx: Context, handle: ImageHandle): (() => Promise<void>) | undefined {
  if (ctx.method === 'HEAD') return undefined;
  return () => albums.announceFetch(handle.info, { reqId: ctx.state.requestId });
}

const ID_URL = /^([A-Za-z0-9_-]{1,64})(?:\.([a-z]{3,4}))?$/;

function checkId(raw: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(raw)) throw new ValidationError(`Expected an image id but received ${JSON.stringify(raw.slice(0, 80))}`);
  return raw;
}

/** `/images/{id}` or `/images/{id}.{ext}`: the extension asks for that format, like ?format=. */
function parseIdUrl(ctx: Context): { id: string; spec: TransformSpec | undefined } {
  const match = ID_URL.exec(ctx.params.idWithExtension);
  if (!match) throw new ValidationError(`Expected an image id, optionally with .jpg, .png, .webp, .avif, .gif or .tiff, but received ${JSON.stringify(ctx.params.idWithExtension.slice(0, 80))}`);
  const [, id, ext] = match;
  if (ext === undefined) return { id, spec: parseTransformSpec(ctx.query) };
  if (ctx.query.format !== undefined) throw new ValidationError('Expected either an extension or format, not both');
  const spec = parseTransformSpec({ ...ctx.query, format: ext });
  return { id, spec };
}

/** The upload's `onDuplicate` (allow or reject), or undefined for the configured default. */
function duplicatePolicy(raw: string | string[] | undefined): DuplicatePolicy | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'allow' || raw === 'reject') return raw;
  throw new ValidationError(`Expected allow or reject for onDuplicate but received ${JSON.stringify(raw)}`);
}

function singleFile(value: File | File[] | undefined): File {
  if (value === undefined) throw new ValidationError('expected a file in multipart field "file"');
  if (Array.isArray(value)) throw new ValidationError('expected exactly one file, in field "file"');
  return value;
}

/** The stored name is the uploaded file's base name, as in the Go service (Windows paths too). */
function baseName(filename: string | null): string {
  if (!filename) throw new ValidationError('the uploaded file has no file name');
  return filename.split(/[\\/]/).pop() ?? '';
}

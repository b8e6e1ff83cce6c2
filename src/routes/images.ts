import Router from '@koa/router';
import type { File } from 'formidable';
import type { AlbumService } from '../albums/album-service.js';
import { checkName } from '../albums/names.js';
import { fsyncFile } from '../albums/durable.js';
import { describeFile } from '../albums/image-meta.js';
import { ValidationError } from '../errors.js';
import { jsonBody, multipartUpload } from '../middleware/body.js';
import { ImageNameBody, ListQuery, parseWith } from './schemas.js';

export interface ImageRoutesDeps {
  albums: AlbumService;
  maxJsonBytes: number;
  maxUploadBytes: number;
  maxConcurrentUploads: number;
}

/** Image routes, compatible with the Go service: /albums/{albumName}/images[/{imageName}]. */
export function imageRoutes(deps: ImageRoutesDeps): Router {
  const { albums } = deps;
  const router = new Router({ prefix: '/albums/:albumName/images' });
  const json = jsonBody(deps.maxJsonBytes);
  const upload = multipartUpload({ stagingDir: albums.stagingDir, maxFileBytes: deps.maxUploadBytes, maxConcurrent: deps.maxConcurrentUploads });

  router.get('/', async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const query = parseWith(ListQuery, ctx.query, 'query');
    const details = query.details === 'true' || query.details === '1';
    const listing = await albums.listImages(album, { limit: query.limit, cursor: query.cursor }, details);
    ctx.body = { imageList: listing.items, images: listing.details, nextCursor: listing.nextCursor };
  });

  router.post('/', upload, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const file = singleFile(ctx.request.files?.file);
    const name = checkName('image', baseName(file.originalFilename));
    await fsyncFile(file.filepath);
    const { sha256, size, type } = await describeFile(file.filepath);
    const image = await albums.addImage(album, name, { path: file.filepath, size, sha256, type }, { reqId: ctx.state.requestId });
    ctx.status = 201;
    ctx.set('Location', `/api/v1/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(name)}`);
    ctx.body = { message: `${name} image added to album ${album}`, image };
  });

  router.get('/:imageName', async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const name = checkName('image', ctx.params.imageName);
    const handle = await albums.fetchImage(album, name, { reqId: ctx.state.requestId });
    ctx.type = handle.info.type;
    ctx.length = handle.info.size;
    ctx.set('Content-Disposition', contentDisposition('attachment', name));
    ctx.set('ETag', `"${handle.info.sha256}"`);
    ctx.set('Last-Modified', new Date(handle.info.modifiedAt).toUTCString());
    if (ctx.method === 'HEAD') {
      // No body is set, so Koa would keep its default 404 (and error-handler would answer "no route").
      ctx.status = 200;
      await handle.close();
      return;
    }
    ctx.body = handle.stream();
  });

  router.patch('/:imageName', json, async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const from = checkName('image', ctx.params.imageName);
    const to = checkName('image', parseWith(ImageNameBody, ctx.request.body, 'body').imageName);
    const image = await albums.renameImage(album, from, to, { reqId: ctx.state.requestId });
    ctx.set('Location', `/api/v1/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(to)}`);
    ctx.body = { message: `${from} image modified to ${to}`, image };
  });

  router.delete('/:imageName', async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const name = checkName('image', ctx.params.imageName);
    const image = await albums.deleteImage(album, name, { reqId: ctx.state.requestId });
    ctx.body = { message: `${name} image deleted from album ${album}`, image };
  });

  return router;
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

/** RFC 6266 header with an ASCII fallback and the UTF-8 name (RFC 8187). */
export function contentDisposition(kind: 'inline' | 'attachment', name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, '_');
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`;
}

import Router from '@koa/router';
import { checkName } from '../albums/names.js';
import type { ImportService } from '../imports/import-service.js';
import { jsonBody } from '../middleware/body.js';
import { ImportBody, ImportItemsQuery } from '../contract/schemas.js';
import { parseWith } from './schemas.js';

/**
 * Body allowance per URL of an import request. MAX_JSON_BYTES (16 KiB by default) is sized for
 * names; an import of IMPORT_MAX_URLS URLs needs room for that many, so its limit grows with it.
 */
export const IMPORT_BYTES_PER_URL = 1024;

/**
 * Import jobs: POST /albums/{albumName}/imports (202 + Location), GET
 * /imports/{jobId} (with a page of its items), GET /imports (without items),
 * DELETE /imports/{jobId} (cancel).
 */
export function importRoutes({ imports, maxJsonBytes, maxUrls }: { imports: ImportService; maxJsonBytes: number; maxUrls: number }): Router {
  const router = new Router();
  router.post('/albums/:albumName/imports', jsonBody(Math.max(maxJsonBytes, maxUrls * IMPORT_BYTES_PER_URL)), async (ctx) => {
    const album = checkName('album', ctx.params.albumName);
    const { urls } = parseWith(ImportBody, ctx.request.body, 'body');
    const job = await imports.create(album, urls, ctx.state.requestId);
    ctx.status = 202;
    ctx.set('Location', `/api/v1/imports/${job.id}`);
    ctx.body = { message: `import of ${job.total} URLs into album ${album} queued`, job };
  });
  router.get('/imports', (ctx) => {
    ctx.body = { jobs: imports.list() };
  });
  router.get('/imports/:jobId', (ctx) => {
    ctx.body = imports.get(ctx.params.jobId, parseWith(ImportItemsQuery, ctx.query, 'query'));
  });
  router.delete('/imports/:jobId', async (ctx) => {
    const job = await imports.cancel(ctx.params.jobId, ctx.state.requestId);
    ctx.body = { message: `import ${job.id} ${job.state}`, job };
  });
  return router;
}

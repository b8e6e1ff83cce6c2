import Router from '@koa/router';
import { z } from 'zod';
import { checkName } from '../albums/names.js';
import type { ImportService } from '../imports/import-service.js';
import { jsonBody } from '../middleware/body.js';
import { ImportItemsQuery, parseWith } from './schemas.js';

/** Body of POST /api/v1/albums/{albumName}/imports. */
export const ImportBody = z.object({ urls: z.array(z.string().max(8192)).min(1).describe('Absolute http(s) URLs of images') });

/**
 * Import jobs: POST /albums/{albumName}/imports (202 + Location), GET
 * /imports/{jobId} (with a page of its items), GET /imports (without items),
 * DELETE /imports/{jobId} (cancel).
 */
export function importRoutes({ imports, maxJsonBytes }: { imports: ImportService; maxJsonBytes: number }): Router {
  const router = new Router();
  router.post('/albums/:albumName/imports', jsonBody(maxJsonBytes), async (ctx) => {
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

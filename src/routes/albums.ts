import Router from '@koa/router';
import type { AlbumService } from '../services/album-service.js';
import { checkName, checkNewName } from '../albums/names.js';
import { jsonBody } from '../middleware/body.js';
import type { ListingCache } from './listing-cache.js';
import { AlbumNameBody, ListQuery } from '../contract/schemas.js';
import { parseWith } from './schemas.js';
import { queryFlag } from '../lib/query-flag.js';
import { ValidationError } from '../errors.js';

export interface AlbumRoutesDeps {
  albums: AlbumService;
  maxJsonBytes: number;
  listings: ListingCache;
}

/** Album routes, compatible with the Go service: /albums and /albums/{albumName}. */
export function albumRoutes({ albums, maxJsonBytes, listings }: AlbumRoutesDeps): Router {
  const router = new Router();
  const json = jsonBody(maxJsonBytes);

  router.get('/albums', async (ctx) => {
    await listings.send(ctx, undefined, async () => {
      const query = parseWith(ListQuery, ctx.query, 'query');
      if (query.sort === 'captured') throw new ValidationError('sort: albums are listed by name only (sort=captured is for images)');
      const details = queryFlag('details', query.details);
      const listing = await albums.listAlbums({ limit: query.limit, cursor: query.cursor }, details);
      return { albumList: listing.items, albums: listing.details, nextCursor: listing.nextCursor };
    });
  });

  router.post('/albums', json, async (ctx) => {
    const name = checkNewName('album', parseWith(AlbumNameBody, ctx.request.body, 'body').albumName);
    const album = await albums.createAlbum(name, { reqId: ctx.state.requestId });
    ctx.status = 201;
    ctx.set('Location', `/api/v1/albums/${encodeURIComponent(name)}`);
    ctx.body = { message: `${name} album added`, album };
  });

  router.patch('/albums/:albumName', json, async (ctx) => {
    const from = checkName('album', ctx.params.albumName);
    const to = checkNewName('album', parseWith(AlbumNameBody, ctx.request.body, 'body').albumName);
    const album = await albums.renameAlbum(from, to, { reqId: ctx.state.requestId });
    ctx.set('Location', `/api/v1/albums/${encodeURIComponent(to)}`);
    ctx.body = { message: `album ${from} modified to ${to}`, album };
  });

  router.delete('/albums/:albumName', async (ctx) => {
    const name = checkName('album', ctx.params.albumName);
    await albums.deleteAlbum(name, { reqId: ctx.state.requestId });
    ctx.body = { message: `${name} album deleted` };
  });

  return router;
}

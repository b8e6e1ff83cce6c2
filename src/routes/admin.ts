import Router from '@koa/router';
import type { AlbumService } from '../services/album-service.js';
import { checkName } from '../albums/names.js';
import { NotConfiguredError, ValidationError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { jsonBody } from '../middleware/body.js';
import { SIGNED_IMAGE_ID, signPath } from '../security/signed-url.js';
import { SignUrlBody } from '../contract/schemas.js';
import { parseWith } from './schemas.js';
import { queryFlag } from '../lib/query-flag.js';


export interface AdminRoutesDeps {
  metrics: Metrics;
  signingSecret?: string;
  maxJsonBytes: number;
  /** Finds the image a URL by name is signed for; checks the store (fsck), wherever it keeps its data. */
  albums: Pick<AlbumService, 'imageInfo' | 'check'>;
}

/**
 * GET /metrics (Prometheus text), GET /api/v1/admin/fsck (a read-only check of
 * the running store), POST /api/v1/signed-urls (a URL for <img> tags that works
 * without a key until it expires). Roles are enforced by the auth middleware.
 */
export function adminRoutes({ metrics, signingSecret, maxJsonBytes, albums }: AdminRoutesDeps): Router {
  const router = new Router();
  router.get('/metrics', async (ctx) => {
    ctx.type = metrics.registry.contentType;
    ctx.body = await metrics.registry.metrics();
  });
  router.get('/api/v1/admin/fsck', async (ctx) => {
    const verify = queryFlag('verify', ctx.query.verify);
    const report = await albums.check({ repair: false, verify });
    ctx.body = { albums: report.albums, images: report.images, problems: report.problems };
  });
  router.post('/api/v1/signed-urls', jsonBody(maxJsonBytes), async (ctx) => {
    if (!signingSecret) throw new NotConfiguredError('signed URLs need URL_SIGNING_SECRET');
    const body = parseWith(SignUrlBody, ctx.request.body, 'body');
    const url = new URL(body.path, 'http://x');
    if (!/^\/api\/v1\/(albums\/[^/]+\/images\/[^/]+|images\/[^/]+)$/.test(url.pathname)) {
      throw new ValidationError('path: expected an image URL path under /api/v1/albums/{album}/images/{image} or /api/v1/images/{id}');
    }
    const query = Object.fromEntries([...url.searchParams].filter(([k]) => k !== 'sig' && k !== 'expires' && k !== SIGNED_IMAGE_ID));
    // A URL by name is bound to the image the name holds now (404 if none); an id names one image anyway.
    const byName = /^\/api\/v1\/albums\/([^/]+)\/images\/([^/]+)$/.exec(url.pathname);
    if (byName) {
      const image = await albums.imageInfo(checkName('album', decodeSegment(byName[1])), checkName('image', decodeSegment(byName[2])));
      query[SIGNED_IMAGE_ID] = image.id;
    }
    const expires = Math.floor(Date.now() / 1000) + (body.expiresInSeconds ?? 3600);
    ctx.status = 201;
    ctx.body = { url: signPath(signingSecret, url.pathname, query, expires), expires: new Date(expires * 1000).toISOString() };
  });
  return router;
}

/** A path segment decoded as the router decodes it: an undecodable escape stays as typed. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

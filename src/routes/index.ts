import Router from '@koa/router';
import type { AlbumService } from '../albums/album-service.js';
import type { Config } from '../config.js';
import type { DiffPool } from '../images/diff-pool.js';
import type { ImageDelivery } from '../images/image-delivery.js';
import type { ImportService } from '../imports/import-service.js';
import { importRoutes } from './imports.js';
import { diffRoutes } from './diff.js';
import { buildAsyncApi } from '../docs/asyncapi.js';
import { buildOpenApi } from '../docs/openapi.js';
import type { Metrics } from '../metrics.js';
import { adminRoutes } from './admin.js';
import { albumRoutes } from './albums.js';
import { docsRoutes } from './docs.js';
import { healthRoutes, type ReadinessChecks } from './health.js';
import { imageRoutes } from './images.js';
import { ListingCache } from './listing-cache.js';

export interface RouterDeps {
  config: Config;
  albums: AlbumService;
  delivery: ImageDelivery;
  /** Worker threads for GET/POST /diff. */
  diffs: DiffPool;
  imports: ImportService;
  readiness: ReadinessChecks;
  version: string;
  metrics: Metrics;
}

/** Every route: the API under /api/v1, health at the root, and the docs unless PRODMODE. */
export function buildRouter({ config, albums, delivery, diffs, imports, readiness, version, metrics }: RouterDeps): Router {
  const { limits } = config;
  const api = new Router({ prefix: '/api/v1' });
  const listings = new ListingCache((album) => albums.version(album));
  const albumRouter = albumRoutes({ albums, maxJsonBytes: limits.maxJsonBytes, listings });
  const imageRouter = imageRoutes({
    albums, delivery, maxJsonBytes: limits.maxJsonBytes, maxUploadBytes: limits.maxUploadBytes, maxConcurrentUploads: limits.maxConcurrentUploads, listings,
  });
  api.use(albumRouter.routes(), albumRouter.allowedMethods());
  api.use(imageRouter.routes(), imageRouter.allowedMethods());
  const diffRouter = diffRoutes({
    albums, inspect: { maxInputPixels: config.images.maxInputPixels, allowSvg: config.images.allowSvg },
    maxUploadBytes: limits.maxUploadBytes, diffs, maxPixels: config.diff.maxPixels, concurrency: config.diff.concurrency,
  });
  api.use(diffRouter.routes(), diffRouter.allowedMethods());
  const importRouter = importRoutes({ imports, maxJsonBytes: limits.maxJsonBytes, maxUrls: config.imports.maxUrls });
  api.use(importRouter.routes(), importRouter.allowedMethods());

  const root = new Router();
  root.use(api.routes(), api.allowedMethods());
  const admin = adminRoutes({ metrics, signingSecret: config.security.signingSecret, maxJsonBytes: limits.maxJsonBytes, albums });
  root.use(admin.routes(), admin.allowedMethods());
  const health = healthRoutes(readiness);
  root.use(health.routes(), health.allowedMethods());
  if (!config.prodMode) {
    const docs = docsRoutes({
      openApi: buildOpenApi(version),
      // MQTT over WebSocket is served by the embedded broker only.
      asyncApi: buildAsyncApi(version, { webSocketPath: config.mqtt.url ? undefined : config.mqtt.wsPath || undefined }),
    });
    root.use(docs.routes(), docs.allowedMethods());
  }
  return root;
}

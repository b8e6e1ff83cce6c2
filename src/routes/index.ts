import Router from '@koa/router';
import type { AlbumService } from '../services/album-service.js';
import type { Config } from '../config.js';
import type { DiffPool } from '../images/diff-pool.js';
import type { ImageDelivery } from '../images/image-delivery.js';
import type { ImageEngine } from '../images/image-engine.js';
import type { ImportService } from '../imports/import-service.js';
import { importRoutes } from './imports.js';
import { diffRoutes } from './diff.js';
import type { Metrics } from '../metrics.js';
import { adminRoutes } from './admin.js';
import { albumRoutes } from './albums.js';
import { docsRoutes, type DocsDocuments } from './docs.js';
import { healthRoutes, type ReadinessChecks } from './health.js';
import { HOME_PATH, homeRoutes } from './home.js';
import { imageRoutes } from './images.js';
import { galleryRoutes } from './gallery.js';
import { ListingCache } from './listing-cache.js';
import { eventRoutes } from './events.js';
import type { EventFeed } from '../events/event-feed.js';
import type { EventStreams } from '../events/event-streams.js';
import type { WebhookService } from '../events/webhooks/webhook-service.js';
import { webhookRoutes } from './webhooks.js';
import { sessionRoutes } from './session.js';

export interface RouterDeps {
  config: Config;
  albums: AlbumService;
  delivery: ImageDelivery;
  /** The main thread's sharp lanes (POST /diff checks its uploads there). */
  engine: ImageEngine;
  /** Worker threads for GET/POST /diff. */
  diffs: DiffPool;
  imports: ImportService;
  readiness: ReadinessChecks;
  metrics: Metrics;
  /** Events over HTTP (replay, live stream); absent: no such routes. */
  events?: { feed: EventFeed; streams: EventStreams; webhooks: WebhookService };
  /** The service's version, for /livez and /api/v1/version. */
  version: string;
  /** The OpenAPI and AsyncAPI documents served at /openapi.json and /asyncapi.json (none with PRODMODE). */
  docs?: DocsDocuments;
  /** Secret of the gallery's session cookies; set when API keys are on (POST /api/v1/session answers 501 without). */
  sessionSecret?: string;
}

/** Every route: the API under /api/v1, health at the root, the docs unless PRODMODE, the gallery at / unless UI_ENABLED=false. */
export function buildRouter({ config, albums, delivery, engine, diffs, imports, readiness, metrics, version, docs: documents, events, sessionSecret }: RouterDeps): Router {
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
    albums, inspect: (file, maxPixels) => engine.inspect(file, maxPixels),
    maxUploadBytes: limits.maxUploadBytes, diffs, maxPixels: config.diff.maxPixels, concurrency: config.diff.concurrency,
  });
  api.use(diffRouter.routes(), diffRouter.allowedMethods());
  const importRouter = importRoutes({ imports, maxJsonBytes: limits.maxJsonBytes, maxUrls: config.imports.maxUrls });
  api.use(importRouter.routes(), importRouter.allowedMethods());
  if (events) {
    const eventRouter = eventRoutes(events);
    api.use(eventRouter.routes(), eventRouter.allowedMethods());
    const hooks = webhookRoutes({ webhooks: events.webhooks, maxJsonBytes: limits.maxJsonBytes });
    api.use(hooks.routes(), hooks.allowedMethods());
  }

  const root = new Router();
  root.use(api.routes(), api.allowedMethods());
  const admin = adminRoutes({ metrics, signingSecret: config.security.signingSecret, maxJsonBytes: limits.maxJsonBytes, albums });
  root.use(admin.routes(), admin.allowedMethods());
  const session = sessionRoutes({ secret: sessionSecret, secure: config.tls.certFile !== undefined });
  root.use(session.routes(), session.allowedMethods());
  if (config.uiEnabled) {
    const gallery = galleryRoutes();
    root.use(gallery.routes(), gallery.allowedMethods());
  }
  const health = healthRoutes(readiness, version);
  root.use(health.routes(), health.allowedMethods());
  if (documents) {
    const docs = docsRoutes(documents);
    root.use(docs.routes(), docs.allowedMethods());
    // `/` is the gallery's; without it, a browser opening the bare address lands on the API docs.
    if (!config.uiEnabled) {
      const home = homeRoutes(HOME_PATH);
      root.use(home.routes(), home.allowedMethods());
    }
  }
  return root;
}

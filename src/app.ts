import Koa from 'koa';
import type { AlbumService } from './albums/album-service.js';
import type { Config } from './config.js';
import type { ImageDelivery } from './images/image-delivery.js';
import type { Logger } from './logger.js';
import { accessLog } from './middleware/access-log.js';
import { errorHandler } from './middleware/error-handler.js';
import { requestId } from './middleware/request-id.js';
import { buildRouter } from './routes/index.js';
import type { ReadinessChecks } from './routes/health.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  albums: AlbumService;
  delivery: ImageDelivery;
  readiness: ReadinessChecks;
  version: string;
}

/** Wires middleware and routes into a Koa app. No listening, no env, no fs here. */
export function buildApp({ config, log, albums, delivery, readiness, version }: AppDeps): Koa {
  const app = new Koa();
  // Errors are answered and logged by errorHandler; this only catches what escapes it (none expected).
  app.silent = true;
  app.use(requestId(log)).use(accessLog()).use(errorHandler());
  const router = buildRouter({ config, albums, delivery, readiness, version });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}

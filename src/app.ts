import { randomBytes } from 'node:crypto';
import Koa from 'koa';
import type { AlbumService } from './services/album-service.js';
import type { Config } from './config.js';
import type { DiffPool } from './images/diff-pool.js';
import type { ImageDelivery } from './images/image-delivery.js';
import type { ImageEngine } from './images/image-engine.js';
import type { ImportService } from './imports/import-service.js';
import type { Logger } from './logger.js';
import { front } from './middleware/front.js';
import { minBodyRate } from './middleware/min-body-rate.js';
import { auth } from './middleware/auth.js';
import { rateLimit } from './middleware/rate-limit.js';
import { corsAllowList, securityHeaders } from './middleware/web-hardening.js';
import type { Metrics } from './metrics.js';
import { buildAsyncApi } from './docs/asyncapi.js';
import { buildOpenApi } from './docs/openapi.js';
import { buildRouter } from './routes/index.js';
import { readRoutes } from './routes/read-routes.js';
import { AuthFailures } from './security/auth-failures.js';
import type { ReadinessChecks } from './routes/health.js';
import type { RouterDeps } from './routes/index.js';

export interface AppDeps {
  config: Config;
  log: Logger;
  albums: AlbumService;
  delivery: ImageDelivery;
  engine: ImageEngine;
  diffs: DiffPool;
  imports: ImportService;
  readiness: ReadinessChecks;
  version: string;
  metrics: Metrics;
  events?: RouterDeps['events'];
}

/**
 * Wires middleware and routes into a Koa app. No listening, no env, no fs here.
 * What is off costs nothing per request: CORS, auth and the rate limit are not
 * installed when not configured (without CORS every answer still carries the
 * `Vary: Origin` it always had), and the security headers are a ready list.
 */
export async function buildApp({ config, log, albums, delivery, engine, diffs, imports, readiness, version, metrics, events }: AppDeps): Promise<Koa> {
  const app = new Koa({ proxy: false });
  // Errors are answered and logged by the front middleware; this only catches what escapes it (none expected).
  app.silent = true;
  const { security } = config;
  const cors = security.corsOrigins.length > 0;
  const staticHeaders = await securityHeaders({ hsts: config.tls.certFile !== undefined });
  if (!cors) staticHeaders.push(['Vary', 'Origin']);
  app
    .use(front({ log, metrics, staticHeaders }))
    .use(minBodyRate({ bytesPerSecond: config.http.minBodyBytesPerSecond, windowMs: config.http.minBodyRateWindowMs }));
  if (cors) app.use(corsAllowList(security.corsOrigins));
  // Session cookies (the gallery's) outlive a restart only when signed with the configured secret.
  const sessionSecret = security.apiKeys.enabled ? security.signingSecret ?? randomBytes(32).toString('base64url') : undefined;
  if (security.apiKeys.enabled) app.use(auth({ keys: security.apiKeys, signingSecret: security.signingSecret, failures: authFailures(security), sessionSecret }));
  if (security.rateLimit > 0) app.use(rateLimit({ limit: security.rateLimit, windowMs: security.rateLimitWindowMs, exempt: /^\/(livez|healthz|readyz)$/ }));
  const docs = config.prodMode ? undefined : {
    openApi: buildOpenApi(version, { keys: security.apiKeys.enabled }),
    // MQTT over WebSocket is served by the embedded broker only.
    asyncApi: buildAsyncApi(version, { webSocketPath: config.mqtt.url ? undefined : config.mqtt.wsPath || undefined }),
  };
  const router = buildRouter({ config, albums, delivery, engine, diffs, imports, readiness, metrics, version, docs, events, sessionSecret });
  app.use(readRoutes(router)).use(router.routes()).use(router.allowedMethods());
  return app;
}

function authFailures({ authFailureLimit, authFailureWindowMs }: Config['security']): AuthFailures | undefined {
  return authFailureLimit === 0 ? undefined : new AuthFailures({ limit: authFailureLimit, windowMs: authFailureWindowMs });
}

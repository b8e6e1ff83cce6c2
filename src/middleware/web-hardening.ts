import cors from '@koa/cors';
import type { Middleware } from 'koa';
import helmet from 'koa-helmet';

/**
 * CORS for the origins in the allow-list only (the Go service allowed every
 * origin). `*` in the list allows any origin, without credentials.
 * An empty list sends no CORS headers: browsers then allow same-origin only.
 */
export function corsAllowList(origins: string[]): Middleware {
  const any = origins.includes('*');
  return cors({
    origin: (ctx) => {
      const origin = ctx.get('Origin');
      if (any) return '*';
      return origins.includes(origin) ? origin : '';
    },
    allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'],
    allowHeaders: ['Authorization', 'Content-Type', 'X-Request-Id', 'Range', 'If-None-Match', 'If-Modified-Since'],
    exposeHeaders: ['X-Request-Id', 'Location', 'ETag', 'Content-Range', 'Content-Disposition', 'Retry-After'],
    maxAge: 600,
  });
}

/**
 * Security headers (helmet), with a Content-Security-Policy that Swagger UI
 * works under: scripts and styles from this origin only (Swagger UI's inline
 * style attributes need 'unsafe-inline' for styles), images from here and data: URLs.
 * HSTS only when serving HTTPS.
 *
 * Computed once, by running helmet against a response that records them: with
 * these options its headers never depend on the request, and setting a list is
 * much cheaper than running helmet per request.
 * @returns the headers, in helmet's order
 */
export async function securityHeaders({ hsts }: { hsts: boolean }): Promise<Array<[string, string]>> {
  const headers = new Map<string, [string, string]>();
  const res = {
    setHeader: (name: string, value: string | number | readonly string[]) => headers.set(name.toLowerCase(), [name, String(value)]),
    removeHeader: (name: string) => headers.delete(name.toLowerCase()),
  };
  const middleware = helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'", 'data:'],
        objectSrc: ["'none'"],
        frameAncestors: ["'none'"],
        baseUri: ["'self'"],
        formAction: ["'self'"],
      },
    },
    // Images are meant to be embedded by other sites' pages.
    crossOriginResourcePolicy: { policy: 'cross-origin' },
    // Only over HTTPS: on plain HTTP the header would be ignored, and it must never pin a dev host.
    strictTransportSecurity: hsts ? { maxAge: 15552000 } : false,
  }) as unknown as (ctx: unknown, next: () => Promise<void>) => Promise<void>;
  await middleware({ req: {}, res }, async () => undefined);
  return [...headers.values()];
}

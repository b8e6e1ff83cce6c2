import type Router from '@koa/router';
import type { Middleware } from 'koa';

/** The reads that make most of the traffic: found with one table lookup instead of the whole router. */
export const READ_ROUTES = [
  '/api/v1/albums',
  '/api/v1/albums/:albumName/images',
  '/api/v1/albums/:albumName/images/:imageName',
  '/api/v1/albums/:albumName/images/:imageName/metadata',
  '/api/v1/images/:idWithExtension',
];

interface ReadRoute {
  pattern: string;
  regexp: RegExp;
  params: string[];
  handler: Middleware;
}

/**
 * GET and HEAD of the READ_ROUTES, sent straight to their handlers (taken from
 * `router`, so there is one definition of each). The router matches every
 * route against the path, builds and composes a middleware chain per request,
 * and runs each nested router's allowedMethods on the way: for a download, more
 * than the rest of the request. Only the canonical spelling is taken here
 * (exact case, no trailing slash), with the router's own parameter syntax and
 * decoding, and `_matchedRoute` set as the router sets it (metrics); anything
 * else goes on to the router as before.
 * @throws {Error} at start, when a route is missing or has middleware of its own
 */
export function readRoutes(router: Router): Middleware {
  const routes: ReadRoute[] = READ_ROUTES.map((pattern) => {
    const layer = router.stack.find((l) => l.path === pattern && l.methods.includes('GET'));
    if (layer?.stack.length !== 1) throw new Error(`read route ${pattern}: expected one GET route with one handler`);
    const source = pattern.split('/').map((part) => (part.startsWith(':') ? '([^/]+)' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('/');
    return {
      pattern,
      regexp: new RegExp(`^${source}$`),
      params: pattern.split('/').filter((p) => p.startsWith(':')).map((p) => p.slice(1)),
      handler: layer.stack[0] as Middleware,
    };
  });
  return function readRoutesMiddleware(ctx, next) {
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') return next();
    const { path } = ctx;
    if (!path.startsWith('/api/v1/')) return next();
    for (const route of routes) {
      const match = route.regexp.exec(path);
      if (match === null) continue;
      const params: Record<string, string> = {};
      route.params.forEach((name, i) => (params[name] = decode(match[i + 1])));
      ctx.params = params;
      (ctx as unknown as { _matchedRoute: string })._matchedRoute = route.pattern;
      return route.handler(ctx, next);
    }
    return next();
  };
}

/** As the router decodes a parameter: an undecodable escape stays as typed. */
function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

import Router from '@koa/router';

/** Where GET / leads: Swagger UI until the service has a web gallery (then point this at it). */
export const HOME_PATH = '/swagger';

/**
 * GET /: a redirect to the service's page for people, so a browser pointed at the bare address lands somewhere.
 * @param home the path to redirect to
 */
export function homeRoutes(home: string): Router {
  const router = new Router();
  router.get('/', (ctx) => {
    ctx.redirect(home);
  });
  return router;
}

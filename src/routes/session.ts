import Router from '@koa/router';
import { NotConfiguredError } from '../errors.js';
import { makeSessionToken, SESSION_COOKIE } from '../security/session-cookie.js';

/** Lifetime of a session cookie; the gallery, which keeps the key for the tab, renews it before then. */
export const SESSION_SECONDS = 3600;

export interface SessionRoutesDeps {
  /** Secret the session tokens are signed with (the auth middleware checks them); none when API keys are off. */
  secret?: string;
  /** Mark the cookie Secure (the service serves HTTPS). */
  secure: boolean;
}

/**
 * POST /api/v1/session trades the key in the Authorization header (any role; the auth
 * middleware has checked it) for a `SameSite=Strict`, HttpOnly cookie that can only read,
 * and answers the key's role. DELETE /api/v1/session clears it. Without API keys there is
 * nothing to trade: POST answers 501.
 * The cookie never authorises a change, so changes need no CSRF token: they need the key.
 */
export function sessionRoutes({ secret, secure }: SessionRoutesDeps): Router {
  const router = new Router();
  const attributes = `Path=/; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  router.post('/api/v1/session', (ctx) => {
    if (secret === undefined) throw new NotConfiguredError('sessions exist only with API keys on (API_KEYS or API_KEYS_FILE); this service is open');
    const expires = Math.floor(Date.now() / 1000) + SESSION_SECONDS;
    ctx.set('Set-Cookie', `${SESSION_COOKIE}=${makeSessionToken(secret, expires)}; Max-Age=${SESSION_SECONDS}; ${attributes}`);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { role: ctx.state.role, expires: new Date(expires * 1000).toISOString() };
  });
  router.delete('/api/v1/session', (ctx) => {
    ctx.set('Set-Cookie', `${SESSION_COOKIE}=; Max-Age=0; ${attributes}`);
    ctx.status = 204;
  });
  return router;
}

import { createHash } from 'node:crypto';
import type { Middleware } from 'koa';
import { ForbiddenError, TooManyRequestsError, UnauthorizedError } from '../errors.js';
import { roleAllows, type ApiKeys } from '../security/api-keys.js';
import type { AuthFailures } from '../security/auth-failures.js';
import { checkSessionToken, cookieValue, SESSION_COOKIE } from '../security/session-cookie.js';
import { checkSignature, SIGNED_IMAGE_ID } from '../security/signed-url.js';
import { compileRoles, type RoleOf } from './required-role.js';

export interface AuthOptions {
  keys: ApiKeys;
  /** HMAC secret for signed URLs; signed URLs are refused without it. */
  signingSecret?: string;
  /** Counts wrong keys and signatures per client address; none: not limited. */
  failures?: AuthFailures;
  /** Secret of the gallery's session cookies (routes/session.ts); none: cookies are ignored. */
  sessionSecret?: string;
  /** The role each request needs; default: the operation table of src/contract/operations.ts. */
  roles?: RoleOf;
}

/**
 * Checks `Authorization: Bearer <key>` (or a signed URL for GET/HEAD) against
 * the role the operation needs: 401 without a valid key or signature, 403 for
 * a role too low. With no keys configured the service is open and this
 * passes everything. Sets `ctx.state.principal` (for rate limits and logs:
 * a key's digest prefix or the client address, never the key), and for a
 * signed URL `ctx.state.signedImageId` (its signed image id, or '' without one).
 * A valid session cookie (with `sessionSecret`) stands for a read key on GET/HEAD.
 *
 * With `failures`, a wrong key or a forged signature counts against the
 * client's address; past the limit the address gets 429 with Retry-After,
 * without its credentials being looked at, until its window ends. A missing
 * key, another scheme and an expired (but genuine) signed URL are not guesses and do not count.
 */
export function auth({ keys, signingSecret, failures, sessionSecret, roles = compileRoles() }: AuthOptions): Middleware {
  return async function authMiddleware(ctx, next) {
    const need = roles(ctx.method, ctx.path);
    if (!keys.enabled || need === 'open') {
      ctx.state.principal = `ip:${ctx.ip}`;
      return next();
    }
    const wait = failures?.retryAfterSeconds(ctx.ip) ?? 0;
    if (wait > 0) throw new TooManyRequestsError(`too many failed authentications from this address; retry in ${wait} s`, wait);
    const rejected = (message: string) => {
      failures?.record(ctx.ip);
      return unauthorized(message);
    };
    const header = ctx.get('Authorization');
    if (!header && (ctx.method === 'GET' || ctx.method === 'HEAD') && signingSecret) {
      const check = checkSignature(signingSecret, ctx.path, ctx.querystring, Math.floor(Date.now() / 1000));
      if (check === 'valid' && need === 'read') {
        ctx.state.principal = `signed:${ctx.path}`;
        // For the image route: a URL by name serves only the image it was signed for.
        ctx.state.signedImageId = new URLSearchParams(ctx.querystring).get(SIGNED_IMAGE_ID) ?? '';
        return next();
      }
      if (check === 'expired') throw unauthorized('the signed URL has expired');
      if (check === 'invalid') throw rejected('the signed URL signature is invalid');
    }
    // The session cookie reads and nothing more: a change always needs the key itself, so a
    // cross-site request (which carries cookies but cannot set Authorization) can change nothing.
    if (!header && need === 'read' && sessionSecret && (ctx.method === 'GET' || ctx.method === 'HEAD')) {
      const token = cookieValue(ctx.get('Cookie'), SESSION_COOKIE);
      if (token !== undefined && checkSessionToken(sessionSecret, token, Math.floor(Date.now() / 1000))) {
        ctx.state.role = 'read';
        ctx.state.principal = 'session';
        return next();
      }
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw unauthorized(header ? 'expected Authorization: Bearer <key>' : 'an API key is required (Authorization: Bearer <key>)');
    const role = keys.roleOf(match[1]);
    if (!role) throw rejected('the API key is not valid');
    if (!roleAllows(role, need)) throw new ForbiddenError(`this operation needs the ${need} role; the key has ${role}`);
    ctx.state.role = role;
    ctx.state.principal = `key:${keyLabel(match[1])}`;
    return next();
  };
}

function unauthorized(message: string): UnauthorizedError {
  const err = new UnauthorizedError(message);
  (err as UnauthorizedError & { headers: Record<string, string> }).headers = { 'WWW-Authenticate': 'Bearer realm="imagestore"' };
  return err;
}

/** A stable, non-secret label for a key (rate-limit bucket, logs): a prefix of its SHA-256. */
function keyLabel(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

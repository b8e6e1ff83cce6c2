import { createHmac, timingSafeEqual } from 'node:crypto';

/** Name of the gallery's session cookie. */
export const SESSION_COOKIE = 'imagestore_session';

/**
 * A session token: `<expires>.<HMAC-SHA256(secret, "session\n<expires>")>`, base64url.
 * It only proves that a valid key was shown before `expires` (Unix seconds); the auth
 * middleware lets it read (GET/HEAD) and nothing else, so a page can show images in
 * `<img>` tags and open an EventSource, which cannot send an Authorization header.
 */
export function makeSessionToken(secret: string, expires: number): string {
  return `${expires}.${mac(secret, expires)}`;
}

/**
 * Checks a session token from a Cookie header.
 * @param now Unix seconds
 * @returns true when it was made with `secret` and has not expired
 */
export function checkSessionToken(secret: string, token: string, now: number): boolean {
  const match = /^(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return false;
  const expires = Number(match[1]);
  const given = Buffer.from(match[2], 'base64url');
  const expected = Buffer.from(mac(secret, expires), 'base64url');
  return given.length === expected.length && timingSafeEqual(given, expected) && expires >= now;
}

/** The value of cookie `name` in a Cookie header, or undefined. */
export function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

function mac(secret: string, expires: number): string {
  return createHmac('sha256', secret).update(`session\n${expires}`).digest('base64url');
}

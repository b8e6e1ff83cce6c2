import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Query parameter of a signed URL by name (`/albums/{album}/images/{image}`)
 * holding the id of the image it was made for. It is signed like the rest, and
 * the image route serves the URL only while the name holds that image: a name
 * deleted and created again, or renamed onto, holds another one.
 */
export const SIGNED_IMAGE_ID = 'imageId';

/**
 * Signed URLs let a page embed an image (`<img src>`) without a key: a GET
 * with `expires` (Unix seconds) and `sig` = HMAC-SHA256(secret,
 * "GET\n<path>\n<query without sig, sorted>"), base64url. The signature
 * covers the transform parameters too, so they cannot be changed.
 */
export function signPath(secret: string, path: string, query: Record<string, string>, expires: number): string {
  const params = new URLSearchParams({ ...query, expires: String(expires) });
  params.sort();
  const sig = createHmac('sha256', secret).update(`GET\n${path}\n${params.toString()}`).digest('base64url');
  params.append('sig', sig);
  return `${path}?${params.toString()}`;
}

/** Result of checking a request's signature. */
export type SignatureCheck = 'valid' | 'expired' | 'invalid' | 'absent';

/**
 * Checks `expires` and `sig` of a GET/HEAD request.
 * @param rawQuery the query string as received (without `?`)
 * @param now Unix seconds
 */
export function checkSignature(secret: string, path: string, rawQuery: string, now: number): SignatureCheck {
  const params = new URLSearchParams(rawQuery);
  const sig = params.get('sig');
  const expires = params.get('expires');
  if (sig === null && expires === null) return 'absent';
  if (sig === null || expires === null || !/^\d{1,12}$/.test(expires) || params.getAll('sig').length > 1) return 'invalid';
  params.delete('sig');
  params.sort();
  const expected = createHmac('sha256', secret).update(`GET\n${path}\n${params.toString()}`).digest();
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'invalid';
  return Number(expires) < now ? 'expired' : 'valid';
}

import { parseImageMeta, type StoredImageMeta } from '../image-meta.js';

/** User-metadata keys (`x-amz-meta-<key>`): `im0`, `im1`, ... carry one JSON document in pieces. */
const KEY = 'im';
/**
 * Characters per piece. Swift's s3api takes at most 256 bytes per metadata value (AWS: 2 KB in all),
 * so the document is cut; without the name (the key tells it) it fits in two or three pieces.
 */
const PIECE = 240;

/**
 * An image's metadata as the user metadata of its bytes object, so that the one GET of a
 * download (or a HEAD) returns it with the bytes: base64url JSON without the name, which
 * the key gives (and a rename then needs no new document but the name in the key).
 */
export function metaToObjectMetadata(meta: StoredImageMeta): Record<string, string> {
  const { name: _name, ...rest } = meta;
  const text = Buffer.from(JSON.stringify(rest)).toString('base64url');
  const out: Record<string, string> = {};
  for (let i = 0, n = 0; i < text.length; i += PIECE, n++) out[`${KEY}${n}`] = text.slice(i, i + PIECE);
  return out;
}

/**
 * The metadata back from an object's user metadata (keys lower case, as the SDK gives them).
 * @returns undefined when the object carries none (written before this format, or by another tool) or it is damaged
 */
export function metaFromObjectMetadata(metadata: Record<string, string> | undefined, name: string): StoredImageMeta | undefined {
  if (!metadata?.[`${KEY}0`]) return undefined;
  let text = '';
  for (let n = 0; metadata[`${KEY}${n}`] !== undefined; n++) text += metadata[`${KEY}${n}`];
  try {
    const rest = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as Omit<StoredImageMeta, 'name'>;
    return parseImageMeta(JSON.stringify({ ...rest, name }));
  } catch {
    return undefined;
  }
}

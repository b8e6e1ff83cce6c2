import { ValidationError } from '../errors.js';

/** Longest name, in UTF-8 bytes: what ext4 and most filesystems allow for one path component. */
export const MAX_NAME_BYTES = 255;

/**
 * Names starting with this are reserved for the store's own files
 * (metadata, temporary files) inside the data dir and inside each album.
 */
export const RESERVED_PREFIX = '.imagestore';

// C0 controls, DEL and C1 controls: invisible, and some break terminals and logs.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Checks an album or image name and returns it in Unicode NFC form.
 *
 * Names are normalised to NFC, so "é" typed as one code point or as "e" plus
 * a combining accent is the same name (macOS clients send NFD).
 * @param kind `album` or `image`, used in the error message
 * @param raw the name as received
 * @throws {ValidationError} empty, `.`/`..`, slash, backslash, control characters,
 *   over 255 bytes, or the reserved prefix
 */
export function checkName(kind: 'album' | 'image', raw: unknown): string {
  const field = kind === 'album' ? 'albumName' : 'imageName';
  if (typeof raw !== 'string') {
    throw new ValidationError(`Expected string for ${field} but received ${raw === undefined ? 'nothing' : typeof raw}`);
  }
  if (!raw.isWellFormed()) throw new ValidationError(`Invalid ${kind} name: not valid Unicode`);
  const name = raw.normalize('NFC');
  const problem = nameProblem(name);
  if (problem) throw new ValidationError(`Invalid ${kind} name ${JSON.stringify(shorten(name))}: ${problem}`);
  return name;
}

function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'must not be empty';
  if (name === '.' || name === '..') return 'must not be "." or ".."';
  if (name.includes('/') || name.includes('\\')) return 'must not contain "/" or "\\"';
  if (CONTROL_CHARS.test(name)) return 'must not contain control characters';
  if (name.trim() !== name) return 'must not start or end with white space';
  if (Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) return `must be at most ${MAX_NAME_BYTES} bytes in UTF-8`;
  if (name.toLowerCase().startsWith(RESERVED_PREFIX)) return `names starting with "${RESERVED_PREFIX}" are reserved`;
  return undefined;
}

function shorten(name: string): string {
  return name.length > 64 ? `${name.slice(0, 61)}...` : name;
}

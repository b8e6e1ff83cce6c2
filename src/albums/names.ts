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

// Format characters (Cf: zero-width space and joiners, bidirectional controls such as U+202E,
// the BOM, tag characters), line and paragraph separators, and the Hangul fillers that render as
// nothing: with them two names that look the same differ, and "photo\u202Egnp.exe" shows as
// "photoexe.png". Refused in new names, as filesystems with spoofing protections do.
const INVISIBLE_CHARS = /[\p{Cf}\p{Zl}\p{Zp}\u115f\u1160\u3164\uffa0]/u;

// The two joiners are format characters too, but writing needs them: U+200C (ZWNJ) inside Persian,
// Urdu and Indic words, U+200D (ZWJ) after a virama and inside emoji sequences (family, flags with
// tags excluded). Allowed only between a letter or mark and a letter (ZWNJ), after a mark or between
// two pictographs (ZWJ), as IDNA's CONTEXTJ rules and Unicode's emoji ZWJ sequences use them; a
// leading, trailing or doubled joiner only hides a difference.
const JOINER_IN_CONTEXT = /(?<=[\p{L}\p{M}])\u200C(?=\p{L})|(?<=\p{M})\u200D|(?<=\p{Extended_Pictographic}\uFE0F?)\u200D(?=\p{Extended_Pictographic})/gu;

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
  if (problem) throw new ValidationError(`Invalid ${kind} name ${display(name)}: ${problem}`);
  return name;
}

/**
 * Checks a name an album or image is about to get (create, upload, rename,
 * import): checkName's rules, and no invisible or bidirectional control
 * characters (Unicode format characters such as U+200B and U+202E, line and
 * paragraph separators, Hangul fillers). Names already stored with them stay
 * reachable through checkName, so they can still be renamed or deleted.
 * The joiners U+200C and U+200D pass where scripts and emoji sequences need them (JOINER_IN_CONTEXT).
 * @throws {ValidationError} as checkName, or naming the first such character
 */
export function checkNewName(kind: 'album' | 'image', raw: unknown): string {
  const name = checkName(kind, raw);
  const invisible = INVISIBLE_CHARS.exec(name.replace(JOINER_IN_CONTEXT, ''));
  if (invisible) {
    throw new ValidationError(`Invalid ${kind} name ${display(name)}: must not contain invisible or bidirectional control characters (${codePoint(invisible[0])})`);
  }
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

/** The name for a message: quoted, shortened, its invisible characters written as \u escapes (a U+202E would reorder the message). */
function display(name: string): string {
  const short = name.length > 64 ? `${name.slice(0, 61)}...` : name;
  return JSON.stringify(short).replace(new RegExp(INVISIBLE_CHARS.source, 'gu'), (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

function codePoint(c: string): string {
  return `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
}

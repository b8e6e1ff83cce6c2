import { POSITIONS } from '../contract/schemas.js';
import { ValidationError } from '../errors.js';
import { queryFlag } from '../lib/query-flag.js';
import { SIGNED_IMAGE_ID } from '../security/signed-url.js';

/** Largest output side in pixels. */
export const MAX_OUTPUT_SIDE = 8192;

export const FITS = ['cover', 'contain', 'fill', 'inside', 'outside'] as const;
export const OUTPUT_FORMATS = ['jpeg', 'png', 'webp', 'avif', 'gif', 'tiff', 'jxl'] as const;
export { POSITIONS };
export type Fit = (typeof FITS)[number];
export type Position = (typeof POSITIONS)[number];
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** A checked, normalised transform request. Absent fields mean "leave as is". */
export interface TransformSpec {
  width?: number;
  height?: number;
  fit?: Fit;
  /** With fit=cover or contain: which part is kept (entropy, attention: smart crop). */
  position?: Position;
  /** Allow the output to be larger than the input. */
  enlarge?: boolean;
  /** `auto` picks AVIF or WebP from the Accept header. */
  format?: OutputFormat | 'auto';
  quality?: number;
  rotate?: 90 | 180 | 270;
  flip?: boolean;
  flop?: boolean;
  grayscale?: boolean;
  blur?: number;
  crop?: { left: number; top: number; width: number; height: number };
}

/** Query parameters that are not transforms but may appear on image URLs. */
const PASS_THROUGH = new Set(['download', 'expires', 'sig', SIGNED_IMAGE_ID]);
const FORMAT_ALIASES: Record<string, OutputFormat | 'auto'> = {
  jpeg: 'jpeg', jpg: 'jpeg', png: 'png', webp: 'webp', avif: 'avif', gif: 'gif', tiff: 'tiff', tif: 'tiff', jxl: 'jxl', auto: 'auto',
};

type Query = Record<string, string | string[] | undefined>;

function one(query: Query, name: string): string | undefined {
  const value = query[name];
  if (Array.isArray(value)) throw new ValidationError(`Expected one value for ${name} but received ${value.length}`);
  return value;
}

function int(name: string, raw: string, min: number, max: number): number {
  const n = /^-?\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new ValidationError(`Expected integer between ${min} and ${max} for ${name} but received ${JSON.stringify(raw)}`);
  }
  return n;
}

function oneOf<T extends string>(name: string, raw: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(raw)) {
    throw new ValidationError(`Expected one of ${allowed.join(', ')} for ${name} but received ${JSON.stringify(raw)}`);
  }
  return raw as T;
}

/**
 * Reads transform parameters from a query string: `w`, `h`, `fit`, `enlarge`,
 * `format`, `q`, `rotate`, `flip`, `flop`, `grayscale`, `blur`, `crop=x,y,w,h`.
 * @returns undefined when the query asks for no transform (serve the original)
 * @throws {ValidationError} naming the first bad parameter
 */
export function parseTransformSpec(query: Query): TransformSpec | undefined {
  const spec: TransformSpec = {};
  for (const name of Object.keys(query)) {
    const raw = one(query, name);
    if (raw === undefined || PASS_THROUGH.has(name)) continue;
    switch (name) {
      case 'w': spec.width = int('w', raw, 1, MAX_OUTPUT_SIDE); break;
      case 'h': spec.height = int('h', raw, 1, MAX_OUTPUT_SIDE); break;
      case 'fit': spec.fit = oneOf('fit', raw, FITS); break;
      case 'position': spec.position = oneOf('position', raw, POSITIONS); break;
      case 'enlarge': spec.enlarge = queryFlag('enlarge', raw) || undefined; break;
      case 'format': {
        const format = FORMAT_ALIASES[raw];
        if (!format) throw new ValidationError(`Expected one of jpeg, jpg, png, webp, avif, gif, tiff, jxl, auto for format but received ${JSON.stringify(raw)}`);
        spec.format = format;
        break;
      }
      case 'q': spec.quality = int('q', raw, 1, 100); break;
      case 'rotate': {
        const angle = int('rotate', raw, -270, 270);
        if (angle % 90 !== 0) throw new ValidationError(`Expected a multiple of 90 for rotate but received ${JSON.stringify(raw)}`);
        const normalised = ((angle % 360) + 360) % 360;
        if (normalised !== 0) spec.rotate = normalised as 90 | 180 | 270;
        break;
      }
      case 'flip': spec.flip = queryFlag('flip', raw) || undefined; break;
      case 'flop': spec.flop = queryFlag('flop', raw) || undefined; break;
      case 'grayscale': spec.grayscale = queryFlag('grayscale', raw) || undefined; break;
      case 'blur': {
        const sigma = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
        if (!(sigma >= 0.3 && sigma <= 100)) throw new ValidationError(`Expected number between 0.3 and 100 for blur but received ${JSON.stringify(raw)}`);
        spec.blur = sigma;
        break;
      }
      case 'crop': spec.crop = parseCrop(raw); break;
      default:
        throw new ValidationError(`Unknown parameter ${JSON.stringify(name)}; expected w, h, fit, position, enlarge, format, q, rotate, flip, flop, grayscale, blur, crop or download`);
    }
  }
  if (spec.fit !== undefined && spec.width === undefined && spec.height === undefined) {
    throw new ValidationError('fit needs w or h');
  }
  if (spec.position !== undefined) {
    if (spec.width === undefined || spec.height === undefined) throw new ValidationError('position needs both w and h');
    const fit = spec.fit ?? 'cover';
    if (fit !== 'cover' && fit !== 'contain') throw new ValidationError(`position needs fit=cover or fit=contain but received fit=${fit}`);
    if (fit === 'contain' && (spec.position === 'entropy' || spec.position === 'attention')) {
      throw new ValidationError(`position=${spec.position} needs fit=cover (it chooses what to crop)`);
    }
    if (spec.position === 'center') spec.position = 'centre';
  }
  const cleaned = Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as TransformSpec;
  return Object.keys(cleaned).length === 0 ? undefined : cleaned;
}

function parseCrop(raw: string): TransformSpec['crop'] {
  const parts = raw.split(',');
  if (parts.length !== 4) throw new ValidationError(`Expected x,y,width,height for crop but received ${JSON.stringify(raw)}`);
  const [left, top] = parts.slice(0, 2).map((p, i) => int(i === 0 ? 'crop x' : 'crop y', p, 0, 1_000_000));
  const [width, height] = parts.slice(2).map((p, i) => int(i === 0 ? 'crop width' : 'crop height', p, 1, 1_000_000));
  return { left, top, width, height };
}

/**
 * Chooses the output format for `format=auto` from an Accept header: JPEG XL, then AVIF, then WebP, else the original's.
 * @param allowed whether a format may be picked for this image (an encoder's pixel budget); default: any
 */
export function negotiateFormat(accept: string, original: OutputFormat, allowed: (format: OutputFormat) => boolean = () => true): OutputFormat {
  // Media ranges named explicitly, except those with q=0 ("not acceptable", RFC 9110 12.4.2).
  const accepted = accept.toLowerCase().split(',').flatMap((range) => {
    const [type, ...params] = range.split(';').map((part) => part.trim());
    return params.some((param) => /^q=0(\.0{0,3})?$/.test(param)) ? [] : [type];
  });
  if (accepted.includes('image/jxl') && allowed('jxl')) return 'jxl';
  if (accepted.includes('image/avif') && allowed('avif')) return 'avif';
  if (accepted.includes('image/webp') && allowed('webp')) return 'webp';
  return original;
}

/** A stable string for a resolved spec (keys in a fixed order), used in cache keys. */
export function specKey(spec: TransformSpec & { format: OutputFormat }): string {
  const order: Array<keyof TransformSpec> = ['crop', 'width', 'height', 'fit', 'position', 'enlarge', 'rotate', 'flip', 'flop', 'grayscale', 'blur', 'format', 'quality'];
  return JSON.stringify(order.filter((k) => spec[k] !== undefined).map((k) => [k, spec[k]]));
}

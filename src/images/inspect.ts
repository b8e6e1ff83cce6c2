import sharp, { type Metadata } from 'sharp';
import { promises as fs } from 'node:fs';
import { AppError, storageError, stripPaths, UnprocessableImageError, UnsupportedMediaTypeError } from '../errors.js';
import { readCapture, type CaptureMeta } from './capture.js';
import type { Decoder } from './decode-pool.js';
import { isJxl, jxlSize } from './jxl-header.js';
import { FINGERPRINT_SIDE, fingerprints, type Fingerprints } from './fingerprints.js';

/** What an upload's bytes turned out to be. */
export interface ImageFacts {
  /** jpeg, png, webp, gif, avif, tiff or svg. */
  format: string;
  /** MIME type. */
  type: string;
  width: number;
  height: number;
  /** EXIF orientation 1-8 (1 when absent). */
  orientation: number;
  hasAlpha: boolean;
  /** Frames: more than 1 for an animated GIF/WebP or a multi-page TIFF; images in a HEIF file. */
  pages: number;
  /** Placeholders and perceptual hash (when asked for). */
  thumbhash?: string;
  dominantColor?: string;
  phash?: string;
  /** From EXIF, when it has any of it. */
  capture?: CaptureMeta;
}

export interface InspectOptions {
  /** Largest width × height accepted (decompression-bomb guard). */
  maxInputPixels: number;
  /** Accept SVG (it can carry script, so off by default). */
  allowSvg: boolean;
  /** Decodes HEIC (DecodePool); without it HEIC is refused with 415. */
  decode?: Decoder;
  /** Compute placeholders and the perceptual hash (fingerprints.ts) from the decode pass. */
  fingerprints?: boolean;
}

const MIME_BY_FORMAT: Record<string, string> = {
  jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', tiff: 'image/tiff', svg: 'image/svg+xml',
};

/** The formats an upload may have (sharp names), with their MIME types, in the order of the error message. */
export const ACCEPTED_FORMATS = 'JPEG, PNG, WebP, GIF, AVIF, TIFF, HEIC, JPEG XL';

/**
 * Checks that a file is an image we accept, fully decodable, within the pixel
 * limit, and returns what it is. The bytes decide, never the name or the
 * declared type. Two passes: the header (format, size: the pixel limit is
 * checked before any decoding), then a decode to a tiny thumbnail, so libvips
 * reads every byte (a truncated file fails) without holding the full image
 * (JPEG and WebP even decode at 1/8 scale). Given the bytes rather than a path,
 * neither pass touches the disk: from a path, libvips opens the file once per
 * format it tries, for each pass.
 * @param file a path, or the bytes
 * @throws {UnsupportedMediaTypeError} not an image, or a format not accepted (415)
 * @throws {UnprocessableImageError} truncated or corrupt, or over the pixel limit (422)
 */
export async function inspectImage(file: string | Buffer, options: InspectOptions): Promise<ImageFacts> {
  const { maxInputPixels, allowSvg, decode } = options;
  let meta: Metadata;
  try {
    meta = await sharp(file, { limitInputPixels: false }).metadata();
  } catch (err) {
    const message = (err as Error).message;
    if (/unsupported image format/i.test(message) && decode && isJxl(await head(file))) return inspectJxl(file, options);
    if (/unsupported image format/i.test(message)) {
      throw new UnsupportedMediaTypeError(`not an image this service accepts (${ACCEPTED_FORMATS}${allowSvg ? ', SVG' : ''})`);
    }
    throw engineError(err, 'the image cannot be decoded');
  }
  const format = meta.format === 'heif' ? heifKind(meta) : meta.format;
  if (format === 'svg' && !allowSvg) throw new UnsupportedMediaTypeError('SVG images are not accepted (they can carry script)');
  if (format === 'heic' && !decode) throw new UnsupportedMediaTypeError('HEIC images are not accepted here');
  if (format !== 'avif' && format !== 'heic' && !MIME_BY_FORMAT[format ?? '']) {
    throw new UnsupportedMediaTypeError(`${String(format).toUpperCase()} images are not accepted; accepted: ${ACCEPTED_FORMATS}`);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const pages = meta.pages ?? 1;
  if (width * height > maxInputPixels) {
    throw new UnprocessableImageError(`image of ${width}x${height} pixels exceeds the limit of ${maxInputPixels} pixels`);
  }
  // The header read (sharp) gives HEIF's size after its irot/imir transforms; its EXIF orientation is not to be applied.
  const decoded = format === 'heic' ? await decode!(file, maxInputPixels, 'heic') : undefined;
  const [extra, capture] = await Promise.all([checkDecodes(file, decoded, maxInputPixels, options.fingerprints ?? false), readCapture(meta.exif)]);
  return {
    format: format!,
    type: format === 'avif' ? 'image/avif' : format === 'heic' ? heifType(meta) : MIME_BY_FORMAT[format!],
    width: decoded?.width ?? width,
    height: decoded?.height ?? (meta.pageHeight && pages > 1 ? meta.pageHeight : height),
    orientation: decoded ? 1 : meta.orientation ?? 1,
    hasAlpha: decoded?.hasAlpha ?? meta.hasAlpha ?? false,
    pages: decoded?.pages ?? pages,
    ...extra,
    ...(capture ? { capture } : {}),
  };
}

/**
 * JPEG XL, which libvips here cannot read at all: the size from its header (pixel limit
 * first), then the whole file decoded by the decode pool, which also checks it.
 */
async function inspectJxl(file: string | Buffer, options: InspectOptions): Promise<ImageFacts> {
  const bytes = typeof file === 'string' ? await fs.readFile(file) : file;
  const size = jxlSize(bytes);
  if (!size) throw new UnprocessableImageError('the JPEG XL image cannot be decoded: its header is unreadable');
  if (size.width * size.height > options.maxInputPixels) {
    throw new UnprocessableImageError(`image of ${size.width}x${size.height} pixels exceeds the limit of ${options.maxInputPixels} pixels`);
  }
  const decoded = await options.decode!(bytes, options.maxInputPixels, 'jxl');
  const extra = await checkDecodes(bytes, decoded, options.maxInputPixels, options.fingerprints ?? false);
  return { format: 'jxl', type: 'image/jxl', width: decoded.width, height: decoded.height, orientation: 1, hasAlpha: decoded.hasAlpha, pages: 1, ...extra };
}

/** The first bytes of a file (its signature). */
async function head(file: string | Buffer): Promise<Buffer> {
  if (typeof file !== 'string') return file.subarray(0, 16);
  const handle = await fs.open(file, 'r');
  try {
    const { buffer, bytesRead } = await handle.read(Buffer.alloc(16), 0, 16, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * The decode pass: every byte decoded (a truncated file fails) to a small thumbnail,
 * never the full image in memory (JPEG and WebP even decode at 1/8 scale), from which
 * the fingerprints are computed when asked for. HEIC comes already decoded (DecodePool).
 */
async function checkDecodes(file: string | Buffer, decoded: { width: number; height: number; data: Uint8Array } | undefined, maxInputPixels: number, wanted: boolean): Promise<Partial<Fingerprints>> {
  const side = wanted ? FINGERPRINT_SIDE : 8;
  const image = decoded
    ? sharp(decoded.data, { raw: { width: decoded.width, height: decoded.height, channels: 4 } })
    : sharp(file, { failOn: 'truncated', limitInputPixels: maxInputPixels, pages: 1 }).autoOrient();
  let thumbnail;
  try {
    thumbnail = await image.resize(side, side, { fit: 'inside', withoutEnlargement: true }).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw engineError(err, 'the image is truncated or corrupt');
  }
  return wanted ? fingerprints(thumbnail.info.width, thumbnail.info.height, thumbnail.data) : {};
}

/**
 * What a client is told when sharp fails on a stored or staged file: a storage failure (full or
 * read-only disk) as such, anything else as this image's fault (422); never with a path in it.
 */
export function engineError(err: unknown, what: string): AppError {
  return storageError(err) ?? new UnprocessableImageError(`${what}: ${stripPaths((err as Error).message)}`);
}

/** sharp reports AVIF and HEIC both as `heif`; the compression tells them apart. HEIC (HEVC) is decoded by DecodePool. */
function heifKind(meta: Metadata): string {
  return meta.compression === 'av1' ? 'avif' : 'heic';
}

/** image/heic for HEVC-coded HEIF (what iPhones write), as its brand says; image/heif for the generic `mif1` brand. */
function heifType(meta: Metadata): string {
  return (meta.mediaType as string) === 'image/heif' ? 'image/heif' : 'image/heic';
}

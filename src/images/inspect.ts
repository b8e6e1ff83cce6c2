import sharp, { type Metadata } from 'sharp';
import { type AppError, storageError, stripPaths, UnprocessableImageError, UnsupportedMediaTypeError } from '../errors.js';

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
  /** Frames: more than 1 for an animated GIF/WebP or a multi-page TIFF. */
  pages: number;
}

export interface InspectOptions {
  /** Largest width × height accepted (decompression-bomb guard). */
  maxInputPixels: number;
  /** Accept SVG (it can carry script, so off by default). */
  allowSvg: boolean;
}

const MIME_BY_FORMAT: Record<string, string> = {
  jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif', tiff: 'image/tiff', svg: 'image/svg+xml',
};

/** The formats an upload may have (sharp names), with their MIME types, in the order of the error message. */
export const ACCEPTED_FORMATS = 'JPEG, PNG, WebP, GIF, AVIF, TIFF';

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
export async function inspectImage(file: string | Buffer, { maxInputPixels, allowSvg }: InspectOptions): Promise<ImageFacts> {
  let meta: Metadata;
  try {
    meta = await sharp(file, { limitInputPixels: false }).metadata();
  } catch (err) {
    const message = (err as Error).message;
    if (/unsupported image format/i.test(message)) {
      throw new UnsupportedMediaTypeError(`not an image this service accepts (${ACCEPTED_FORMATS}${allowSvg ? ', SVG' : ''})`);
    }
    throw engineError(err, 'the image cannot be decoded');
  }
  const format = meta.format === 'heif' ? heifKind(meta) : meta.format;
  if (format === 'svg' && !allowSvg) throw new UnsupportedMediaTypeError('SVG images are not accepted (they can carry script)');
  if (format !== 'avif' && !MIME_BY_FORMAT[format ?? '']) {
    throw new UnsupportedMediaTypeError(`${String(format).toUpperCase()} images are not accepted; accepted: ${ACCEPTED_FORMATS}`);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  const pages = meta.pages ?? 1;
  if (width * height > maxInputPixels) {
    throw new UnprocessableImageError(`image of ${width}x${height} pixels exceeds the limit of ${maxInputPixels} pixels`);
  }
  try {
    await sharp(file, { failOn: 'truncated', limitInputPixels: maxInputPixels, pages: 1 }).resize(8, 8, { fit: 'inside' }).raw().toBuffer();
  } catch (err) {
    throw engineError(err, 'the image is truncated or corrupt');
  }
  return {
    format: format!,
    type: format === 'avif' ? 'image/avif' : MIME_BY_FORMAT[format!],
    width,
    height: meta.pageHeight && pages > 1 ? meta.pageHeight : height,
    orientation: meta.orientation ?? 1,
    hasAlpha: meta.hasAlpha ?? false,
    pages,
  };
}

/**
 * What a client is told when sharp fails on a stored or staged file: a storage failure (full or
 * read-only disk) as such, anything else as this image's fault (422); never with a path in it.
 */
export function engineError(err: unknown, what: string): AppError {
  return storageError(err) ?? new UnprocessableImageError(`${what}: ${stripPaths((err as Error).message)}`);
}

/** sharp reports AVIF and HEIC both as `heif`; the compression tells them apart. HEIC (HEVC) is not decodable here. */
function heifKind(meta: Metadata): string {
  return meta.compression === 'av1' ? 'avif' : 'heic';
}

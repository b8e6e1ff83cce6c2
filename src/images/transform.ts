import { promises as fs } from 'node:fs';
import sharp, { type Sharp } from 'sharp';
import type { JxlEncoder } from './decode-pool.js';
import { ValidationError } from '../errors.js';
import { engineError } from './inspect.js';
import { ANIMATED_OUTPUTS, orientedSize, outputSize, type SourceFacts } from './output-size.js';
import { MAX_OUTPUT_SIDE, type OutputFormat, type TransformSpec } from './transform-spec.js';

export type { SourceFacts } from './output-size.js';

/** A spec whose output format is decided (format=auto resolved). */
export type ResolvedSpec = Omit<TransformSpec, 'format'> & { format: OutputFormat };

export const MIME_BY_OUTPUT: Record<OutputFormat, string> = {
  jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', avif: 'image/avif', gif: 'image/gif', tiff: 'image/tiff', jxl: 'image/jxl',
};

/** A source decoded outside libvips (HEIC: DecodePool): 8-bit RGBA pixels, transforms already applied. */
export interface DecodedInput {
  data: Uint8Array;
  width: number;
  height: number;
  hasAlpha: boolean;
}

type Step = (image: Sharp, spec: ResolvedSpec, source: SourceFacts) => Sharp;

/** EXIF orientation first, so crop coordinates and sizes refer to the picture as seen. */
const orient: Step = (image) => image.autoOrient();

const crop: Step = (image, { crop: box }, source) => {
  if (!box) return image;
  const { width, height } = orientedSize(source);
  if (box.left + box.width > width || box.top + box.height > height) {
    throw new ValidationError(`crop ${box.left},${box.top},${box.width},${box.height} is outside the ${width}x${height} image`);
  }
  return image.extract(box);
};

const resize: Step = (image, spec, source) => {
  if (!spec.width && !spec.height) return image;
  if (spec.enlarge) checkEnlargedSize(spec, source);
  return image.resize({ width: spec.width, height: spec.height, fit: spec.fit ?? 'cover', position: spec.position, withoutEnlargement: !spec.enlarge });
};

/**
 * With `enlarge`, a single side or fit=inside/outside can scale the other side
 * past MAX_OUTPUT_SIDE (w=8192 of a 10x1000 image is 8192x819200): refuse it.
 * @throws {ValidationError}
 */
function checkEnlargedSize(spec: ResolvedSpec, source: SourceFacts): void {
  const { width: outWidth, height: outHeight } = outputSize(spec, source);
  if (outWidth > MAX_OUTPUT_SIDE || outHeight > MAX_OUTPUT_SIDE) {
    throw new ValidationError(`w and h with enlarge would make a ${outWidth}x${outHeight} image; no side may exceed ${MAX_OUTPUT_SIDE} px`);
  }
}

const rotate: Step = (image, spec) => (spec.rotate ? image.rotate(spec.rotate) : image);
const flipFlop: Step = (image, spec) => image.flip(spec.flip ?? false).flop(spec.flop ?? false);
const grayscale: Step = (image, spec) => (spec.grayscale ? image.grayscale() : image);
const blur: Step = (image, spec) => (spec.blur ? image.blur(spec.blur) : image);

/** Output in sRGB with the colour profile kept (everything else stripped), in the requested format. */
const output: Step = (image, spec) => {
  const quality = spec.quality;
  const colour = image.toColourspace('srgb').keepIccProfile();
  switch (spec.format) {
    // JPEG has no alpha: transparent areas become white (as browsers show them), not black.
    case 'jpeg': return colour.flatten({ background: '#ffffff' }).jpeg({ quality, mozjpeg: false });
    case 'png': return colour.png({ quality });
    case 'webp': return colour.webp({ quality });
    case 'avif': return colour.avif({ quality, effort: 2 });
    case 'gif': return colour.gif();
    case 'tiff': return colour.tiff({ quality });
    // libvips here cannot encode JPEG XL: RGBA pixels for the encoder (transformToFile).
    case 'jxl': return colour.ensureAlpha().raw();
  }
};

/** The pipeline, in order (imgproxy-style steps). */
const STEPS: Step[] = [orient, crop, resize, rotate, flipFlop, grayscale, blur, output];

/**
 * Builds the sharp pipeline for a transform of the file at `input`.
 * Animated sources stay animated when the output format can animate (GIF, WebP).
 * @throws {ValidationError} a crop outside the image
 */
export function buildTransform(input: string | DecodedInput, spec: ResolvedSpec, source: SourceFacts, maxInputPixels: number): Sharp {
  const animated = source.pages > 1 && ANIMATED_OUTPUTS.has(spec.format);
  let image = typeof input === 'string'
    ? sharp(input, { animated, limitInputPixels: maxInputPixels, failOn: 'error' })
    : sharp(input.data, { raw: { width: input.width, height: input.height, channels: 4 }, limitInputPixels: maxInputPixels });
  if (typeof input !== 'string' && !input.hasAlpha) image = image.removeAlpha();
  for (const step of STEPS) image = step(image, spec, source);
  return image;
}

/**
 * Runs a transform to a file.
 * @throws {ValidationError} bad crop; {UnprocessableImageError} the engine failed on this image;
 *   {InsufficientStorageError} no room for the output
 */
export async function transformToFile(
  input: string | DecodedInput, output: string, spec: ResolvedSpec, source: SourceFacts, maxInputPixels: number, encodeJxl?: JxlEncoder,
): Promise<{ size: number; width: number; height: number }> {
  const pipeline = buildTransform(input, spec, source, maxInputPixels);
  if (spec.format === 'jxl') {
    if (!encodeJxl) throw new ValidationError('JPEG XL output is not available here');
    let pixels;
    try {
      pixels = await pipeline.toBuffer({ resolveWithObject: true });
    } catch (err) {
      throw engineError(err, 'the image cannot be transformed');
    }
    const { width, height } = pixels.info;
    const encoded = await encodeJxl({ data: pixels.data, width, height }, spec.quality ?? 75);
    await fs.writeFile(output, encoded).catch((err: unknown) => Promise.reject(engineError(err, 'the image cannot be written')));
    return { size: encoded.length, width, height };
  }
  try {
    const info = await pipeline.toFile(output);
    return { size: info.size, width: info.width, height: info.height };
  } catch (err) {
    throw engineError(err, 'the image cannot be transformed');
  }
}

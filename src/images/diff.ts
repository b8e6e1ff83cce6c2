import pixelmatch from 'pixelmatch';
import sharp from 'sharp';
import { SizeMismatchError, UnprocessableImageError } from '../errors.js';
import { findRegions, type Box } from './diff-regions.js';
import { engineError } from './inspect.js';

export interface DiffOptions {
  /** pixelmatch threshold, 0 (strict) to 1; default 0.1. */
  threshold: number;
  /** Count anti-aliased pixels as differences. */
  includeAA: boolean;
  /** Scale the second image to the first's size instead of refusing different sizes. */
  resizeToFit: boolean;
  /** Regions closer than this (pixels) are merged into one box. */
  mergeDistance: number;
  maxBoxes: number;
  /**
   * Largest width × height of either input (DIFF_MAX_PIXELS): checked from the
   * header before any decode, since a comparison holds several full-size RGBA
   * copies (a 25 MP pair takes about 400 MB).
   */
  maxPixels: number;
}

export interface DiffResult {
  a: { width: number; height: number };
  b: { width: number; height: number };
  /** Size compared at (a's). */
  width: number;
  height: number;
  differentPixels: number;
  differentFraction: number;
  /** Mean SSIM of the two images' luma, 1 = identical. */
  ssim: number;
  boxes: Box[];
  /** Regions found before the cap. */
  truncated: boolean;
}

/** Decoded RGBA pixels of both images (and pixelmatch's mask), for rendering. */
export interface DiffPixels {
  a: Buffer;
  b: Buffer;
  mask: Uint8Array;
}

type Input = string | Buffer;

/**
 * Compares two images pixel by pixel (pixelmatch) after normalising them with
 * libvips: EXIF orientation applied, sRGB, alpha added, and (with resizeToFit)
 * the second scaled to the first. Holds four full-size RGBA buffers at most
 * (a, b, mask, plus libvips' own while decoding). CPU-bound JavaScript: run it
 * in a worker thread (DiffPool), never on the event loop. The engine steps run
 * one after the other, so a comparison holds one libuv pool thread at most.
 * @throws {SizeMismatchError} different sizes without resizeToFit
 * @throws {UnprocessableImageError} an input that cannot be decoded, or over `maxPixels`
 */
export async function diffImages(a: Input, b: Input, options: DiffOptions): Promise<{ result: DiffResult; pixels: DiffPixels }> {
  const metaA = await orientedSize('a', a, options);
  const metaB = await orientedSize('b', b, options);
  if (!options.resizeToFit && (metaA.width !== metaB.width || metaA.height !== metaB.height)) {
    throw new SizeMismatchError(`the images differ in size: a is ${metaA.width}x${metaA.height}, b is ${metaB.width}x${metaB.height} (resize=fit scales b to a)`);
  }
  const { width, height } = metaA;
  const pixelsA = await rgba(a, options);
  const pixelsB = await rgba(b, options, { width, height });
  const mask = new Uint8Array(width * height * 4);
  const differentPixels = pixelmatch(pixelsA, pixelsB, mask, width, height, {
    threshold: options.threshold, includeAA: options.includeAA, diffMask: true,
  });
  // One more than asked: enough to tell whether there were more, without sorting every region.
  const all = findRegions(mask, width, height, options.mergeDistance, options.maxBoxes + 1);
  return {
    result: {
      a: metaA, b: metaB, width, height, differentPixels, differentFraction: differentPixels / (width * height),
      ssim: await meanSsim(pixelsA, pixelsB, width, height), boxes: all.slice(0, options.maxBoxes), truncated: all.length > options.maxBoxes,
    },
    pixels: { a: pixelsA, b: pixelsB, mask },
  };
}

/** The size as seen (header only), refused over the cap before anything is decoded. */
async function orientedSize(name: string, input: Input, { maxPixels }: DiffOptions): Promise<{ width: number; height: number }> {
  let size: { width: number; height: number };
  try {
    const meta = await sharp(input, { limitInputPixels: false }).metadata();
    size = meta.autoOrient ?? { width: meta.width ?? 0, height: meta.height ?? 0 };
  } catch (err) {
    throw engineError(err, 'cannot read the image');
  }
  if (size.width * size.height > maxPixels) {
    throw new UnprocessableImageError(`image ${name} of ${size.width}x${size.height} pixels exceeds the limit of ${maxPixels} pixels for comparisons`);
  }
  return size;
}

async function rgba(input: Input, options: DiffOptions, size?: { width: number; height: number }): Promise<Buffer> {
  try {
    let image = sharp(input, { limitInputPixels: options.maxPixels, failOn: 'error' }).autoOrient().toColourspace('srgb');
    if (size) image = image.resize(size.width, size.height, { fit: 'fill' });
    return await image.ensureAlpha().raw().toBuffer();
  } catch (err) {
    throw engineError(err, 'cannot decode the image');
  }
}

/** Longest side SSIM is computed at: structure matters, not every pixel, and it keeps the cost small. */
const SSIM_SIDE = 512;

/**
 * Mean SSIM (Wang et al. 2004) over 8×8 windows of the luma, on copies
 * scaled to at most 512 px a side by libvips.
 */
async function meanSsim(a: Buffer, b: Buffer, width: number, height: number): Promise<number> {
  const scale = Math.min(1, SSIM_SIDE / Math.max(width, height));
  const w = Math.max(1, Math.round(width * scale));
  const h = Math.max(1, Math.round(height * scale));
  const luma = (pixels: Buffer) =>
    sharp(pixels, { raw: { width, height, channels: 4 } }).flatten({ background: '#ffffff' }).resize(w, h, { fit: 'fill' }).grayscale().raw().toBuffer();
  const la = await luma(a);
  const lb = await luma(b);
  const c1 = (0.01 * 255) ** 2;
  const c2 = (0.03 * 255) ** 2;
  const win = Math.min(8, w, h);
  let total = 0;
  let windows = 0;
  for (let y = 0; y + win <= h; y += Math.max(1, win / 2)) {
    for (let x = 0; x + win <= w; x += Math.max(1, win / 2)) {
      let sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0;
      for (let j = 0; j < win; j++) {
        for (let i = 0; i < win; i++) {
          const p = (y + j) * w + x + i;
          const va = la[p];
          const vb = lb[p];
          sa += va; sb += vb; saa += va * va; sbb += vb * vb; sab += va * vb;
        }
      }
      const n = win * win;
      const ma = sa / n, mb = sb / n;
      const va = saa / n - ma * ma, vb = sbb / n - mb * mb, cov = sab / n - ma * mb;
      total += ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2));
      windows += 1;
    }
  }
  return windows === 0 ? 1 : Math.round((total / windows) * 1e6) / 1e6;
}

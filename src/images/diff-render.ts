import sharp, { type OverlayOptions } from 'sharp';
import type { DiffPixels, DiffResult } from './diff.js';

/** Colour of the region boxes drawn on the diff picture. */
const BOX_COLOUR = '#0066ff';

/**
 * The diff picture as PNG: the first image dimmed to a light grey, the
 * differing pixels in red (pixelmatch's mask) and each region's box drawn.
 */
export async function renderDiffPng(pixels: DiffPixels, result: DiffResult): Promise<Buffer> {
  return sharp(await diffPicture(pixels, result)).png().toBuffer();
}

/** a, b and the diff picture side by side in one PNG. */
export async function renderSideBySide(pixels: DiffPixels, result: DiffResult): Promise<Buffer> {
  const { width, height } = result;
  const gap = 8;
  const raw = (data: Buffer) => sharp(data, { raw: { width, height, channels: 4 } }).png({ compressionLevel: 1 }).toBuffer();
  const [a, b, diff] = await Promise.all([raw(pixels.a), raw(pixels.b), diffPicture(pixels, result)]);
  return sharp({ create: { width: width * 3 + gap * 2, height, channels: 4, background: '#ffffff' } })
    .composite([
      { input: a, left: 0, top: 0 },
      { input: b, left: width + gap, top: 0 },
      { input: diff, left: (width + gap) * 2, top: 0 },
    ])
    .png()
    .toBuffer();
}

/** The diff picture, encoded losslessly and fast (an intermediate). */
async function diffPicture(pixels: DiffPixels, result: DiffResult): Promise<Buffer> {
  const { width, height } = result;
  const dimmed = await sharp(pixels.a, { raw: { width, height, channels: 4 } })
    .flatten({ background: '#ffffff' })
    .grayscale()
    .linear(0.25, 255 * 0.75) // fade towards white, as pixelmatch's own output does
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  const overlays: OverlayOptions[] = [
    { input: Buffer.from(pixels.mask.buffer, pixels.mask.byteOffset, pixels.mask.byteLength), raw: { width, height, channels: 4 } },
  ];
  if (result.boxes.length > 0) overlays.push({ input: Buffer.from(boxesSvg(result)), left: 0, top: 0 });
  return sharp(dimmed.data, { raw: dimmed.info })
    .composite(overlays)
    .png({ compressionLevel: 1 })
    .toBuffer();
}

function boxesSvg({ width, height, boxes }: DiffResult): string {
  const stroke = Math.max(1, Math.round(Math.max(width, height) / 400));
  const rects = boxes
    .map((b) => `<rect x="${b.x - stroke / 2}" y="${b.y - stroke / 2}" width="${b.width + stroke}" height="${b.height + stroke}" fill="none" stroke="${BOX_COLOUR}" stroke-width="${stroke}"/>`)
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${rects}</svg>`;
}

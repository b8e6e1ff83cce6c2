import sharp from 'sharp';

/** A small real PNG of the given size and colour (sharp `create`). */
export async function makePng(width = 16, height = 16, background = { r: 200, g: 30, b: 30 }): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background } }).png().toBuffer();
}

/** A small real JPEG. */
export async function makeJpeg(width = 16, height = 16, background = { r: 30, g: 30, b: 200 }): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background } }).jpeg().toBuffer();
}

import zlib from 'node:zlib';
import sharp from 'sharp';

/** A small real PNG of the given size and colour (sharp `create`). */
export async function makePng(width = 16, height = 16, background = { r: 200, g: 30, b: 30 }): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background } }).png().toBuffer();
}

/** A small real JPEG. */
export async function makeJpeg(width = 16, height = 16, background = { r: 30, g: 30, b: 200 }): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background } }).jpeg().toBuffer();
}

/**
 * A valid PNG of exactly `bytes` bytes: a small image plus a tEXt chunk of padding before IEND
 * (for byte-limit tests that need a real image at the limit).
 */
export async function pngOfSize(bytes: number): Promise<Buffer> {
  const base = await makePng(4, 4);
  const iend = base.length - 12;
  const padding = bytes - base.length - 12;
  if (padding < 2) throw new Error(`a PNG cannot be smaller than ${base.length + 14} bytes`);
  const data = Buffer.concat([Buffer.from('pad\0', 'latin1'), Buffer.alloc(padding - 4, 0x61)]);
  const head = Buffer.alloc(4);
  head.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from('tEXt', 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typed) >>> 0);
  return Buffer.concat([base.subarray(0, iend), head, typed, crc, base.subarray(iend)]);
}

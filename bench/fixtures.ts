/**
 * Generated benchmark inputs: a photo-like picture (smooth colour fields,
 * mid-scale texture, fine grain and sharp-edged shapes, so JPEG and WebP have
 * real work to do; never a flat colour), a ~100 KB JPEG, small sources, and a
 * valid ~50 MiB PNG. Deterministic (seeded), so runs compare.
 */
import { randomFillSync } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

/** Small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random RGB noise of `w`×`h` upscaled to `width`×`height`: smooth blobs whose size depends on the ratio. */
async function noiseField(w: number, h: number, width: number, height: number, random: () => number): Promise<Buffer> {
  const pixels = Buffer.alloc(w * h * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(random() * 256);
  return sharp(pixels, { raw: { width: w, height: h, channels: 3 } }).resize(width, height, { kernel: 'cubic' }).raw().toBuffer();
}

/** An SVG of random translucent shapes (edges and lines), as a photo has objects. */
function shapesSvg(width: number, height: number, random: () => number): Buffer {
  const colour = () => `rgb(${Math.floor(random() * 256)},${Math.floor(random() * 256)},${Math.floor(random() * 256)})`;
  const parts: string[] = [];
  for (let i = 0; i < 60; i++) {
    const x = random() * width;
    const y = random() * height;
    const s = (0.02 + random() * 0.15) * width;
    const kind = i % 3;
    if (kind === 0) parts.push(`<circle cx="${x}" cy="${y}" r="${s / 2}" fill="${colour()}" fill-opacity="${0.3 + random() * 0.6}"/>`);
    else if (kind === 1) parts.push(`<rect x="${x}" y="${y}" width="${s}" height="${s * (0.3 + random())}" fill="${colour()}" fill-opacity="${0.3 + random() * 0.6}" transform="rotate(${random() * 90} ${x} ${y})"/>`);
    else parts.push(`<line x1="${x}" y1="${y}" x2="${random() * width}" y2="${random() * height}" stroke="${colour()}" stroke-width="${1 + random() * width * 0.004}"/>`);
  }
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`);
}

/**
 * A photo-like RGB picture as raw pixels: large soft colour fields + mid-scale
 * texture + per-pixel grain + translucent shapes with hard edges.
 */
export async function photoPixels(width: number, height: number, seed = 1): Promise<{ data: Buffer; width: number; height: number }> {
  const random = rng(seed);
  const broad = await noiseField(Math.max(2, Math.round(width / 400)), Math.max(2, Math.round(height / 400)), width, height, random);
  const texture = await noiseField(Math.max(2, Math.round(width / 16)), Math.max(2, Math.round(height / 16)), width, height, random);
  const data = Buffer.alloc(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    const grain = (random() - 0.5) * 28;
    data[i] = Math.max(0, Math.min(255, broad[i] * 0.75 + (texture[i] - 128) * 0.35 + grain + 32));
  }
  const withShapes = await sharp(data, { raw: { width, height, channels: 3 } })
    .composite([{ input: shapesSvg(width, height, random) }])
    .removeAlpha()
    .raw()
    .toBuffer();
  return { data: withShapes, width, height };
}

/** A 4000×3000 (12 MP) photo-like JPEG, quality 85, 4:2:0 (as a camera or phone writes). */
export async function twelveMegapixelJpeg(seed = 1): Promise<Buffer> {
  const { data, width, height } = await photoPixels(4000, 3000, seed);
  return sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

/**
 * A photo-like JPEG as close as possible to `targetBytes` (default 100 KiB):
 * 800×600, quality searched by bisection.
 */
export async function jpegOfAbout(targetBytes = 100 * 1024, seed = 2): Promise<{ bytes: Buffer; quality: number; width: number; height: number }> {
  const { data, width, height } = await photoPixels(800, 600, seed);
  const encode = (quality: number) => sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality }).toBuffer();
  let lo = 1;
  let hi = 100;
  let best = { bytes: await encode(50), quality: 50 };
  while (lo <= hi) {
    const q = Math.floor((lo + hi) / 2);
    const bytes = await encode(q);
    if (Math.abs(bytes.length - targetBytes) < Math.abs(best.bytes.length - targetBytes)) best = { bytes, quality: q };
    if (bytes.length < targetBytes) lo = q + 1;
    else hi = q - 1;
  }
  return { ...best, width, height };
}

/** `count` small photo-like JPEGs (default 400×300, q80), each different. */
export async function smallJpegs(count: number, size = { width: 400, height: 300 }, seed = 3): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const { data, width, height } = await photoPixels(size.width, size.height, seed + i);
    out.push(await sharp(data, { raw: { width, height, channels: 3 } }).jpeg({ quality: 80 }).toBuffer());
  }
  return out;
}

/**
 * A valid PNG of at least `minBytes` (default 50 MiB): per-pixel random RGB noise,
 * which deflate cannot shrink, so a 4200×4200 image is ~50.5 MiB. It passes
 * upload validation (decodes fully, 17.6 MP < the 100 MP limit).
 */
export async function noisyPng(minBytes = 50 * 1024 * 1024): Promise<Buffer> {
  const side = Math.ceil(Math.sqrt(minBytes / 3));
  const data = randomFillSync(Buffer.alloc(side * side * 3));
  return sharp(data, { raw: { width: side, height: side, channels: 3 } }).png({ compressionLevel: 1, adaptiveFiltering: false }).toBuffer();
}

/** Writes `bytes` to `dir/name` and returns the path. */
export async function writeFixture(dir: string, name: string, bytes: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, bytes);
  return file;
}

import zlib from 'node:zlib';
import sharp, { type Sharp } from 'sharp';

/**
 * Image fixtures generated with sharp at test time (no binary files in the
 * repository). Sizes are small so the whole set builds in well under a second.
 */

type Rgb = { r: number; g: number; b: number };

/** A `width`×`height` image whose left half is `left` and right half `right` (so orientation and flips are visible). */
function twoTone(width: number, height: number, left: Rgb, right: Rgb, channels: 3 | 4 = 3): Sharp {
  const half = Math.floor(width / 2);
  const alpha = channels === 4 ? { alpha: 1 } : {};
  return sharp({ create: { width, height, channels, background: { ...left, ...alpha } } }).composite([
    { input: { create: { width: width - half, height, channels, background: { ...right, ...alpha } } }, left: half, top: 0 },
  ]);
}

/** Pixels that do not compress well (so a JPEG has a long entropy-coded body to cut). */
function noise(width: number, height: number): Sharp {
  return sharp({ create: { width, height, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 60 } } });
}

/**
 * A JPEG stored 48 wide × 32 high whose EXIF orientation is 6 (rotate 90° clockwise
 * to view): upright it is 32 wide × 48 high.
 */
export async function jpegWithOrientation6(): Promise<Buffer> {
  return twoTone(48, 32, { r: 255, g: 0, b: 0 }, { r: 0, g: 0, b: 255 }).jpeg().withMetadata({ orientation: 6 }).toBuffer();
}

/** A PNG in four quadrants: top-left red, top-right green, bottom-left blue, bottom-right white (even sizes). */
export async function quadrantsPng(width = 200, height = 100): Promise<Buffer> {
  const [w, h] = [width / 2, height / 2];
  const block = (background: Rgb) => ({ create: { width: w, height: h, channels: 3 as const, background } });
  return sharp({ create: { width, height, channels: 3, background: { r: 255, g: 0, b: 0 } } })
    .composite([
      { input: block({ r: 0, g: 255, b: 0 }), left: w, top: 0 },
      { input: block({ r: 0, g: 0, b: 255 }), left: 0, top: h },
      { input: block({ r: 255, g: 255, b: 255 }), left: w, top: h },
    ])
    .png()
    .toBuffer();
}

/** A JPEG with an embedded Display P3 ICC profile and EXIF (orientation 1, an artist tag), 40×30. */
export async function jpegWithP3Profile(): Promise<Buffer> {
  return twoTone(40, 30, { r: 230, g: 40, b: 40 }, { r: 40, g: 200, b: 80 })
    .withIccProfile('p3')
    .withExif({ IFD0: { Artist: 'imagestore test' } })
    .jpeg({ quality: 95 })
    .toBuffer();
}

/** A CMYK JPEG (4 channels in the file), 40×30. */
export async function cmykJpeg(): Promise<Buffer> {
  return twoTone(40, 30, { r: 250, g: 200, b: 0 }, { r: 0, g: 120, b: 200 }).toColourspace('cmyk').jpeg().toBuffer();
}

/** Three solid frames of `width`×`height` (red, green, blue). */
function frames(width: number, height: number): Promise<Buffer[]> {
  const colours = [{ r: 255, g: 0, b: 0 }, { r: 0, g: 255, b: 0 }, { r: 0, g: 0, b: 255 }];
  return Promise.all(colours.map((background) => sharp({ create: { width, height, channels: 3, background } }).png().toBuffer()));
}

/** An animated GIF of 3 frames, each 24×20. */
export async function animatedGif(): Promise<Buffer> {
  return sharp(await frames(24, 20), { join: { animated: true } }).gif({ delay: [100, 100, 100], loop: 0 }).toBuffer();
}

/** An animated WebP of 3 frames, each 24×20. */
export async function animatedWebp(): Promise<Buffer> {
  return sharp(await frames(24, 20), { join: { animated: true } }).webp({ delay: [100, 100, 100], loop: 0 }).toBuffer();
}

/** A still WebP, 30×20. */
export async function webp(): Promise<Buffer> {
  return twoTone(30, 20, { r: 10, g: 200, b: 10 }, { r: 200, g: 10, b: 200 }).webp().toBuffer();
}

/** An AVIF, 32×24. */
export async function avif(): Promise<Buffer> {
  return twoTone(32, 24, { r: 10, g: 100, b: 200 }, { r: 200, g: 100, b: 10 }).avif({ effort: 0 }).toBuffer();
}

/** A TIFF, 36×28. */
export async function tiff(): Promise<Buffer> {
  return twoTone(36, 28, { r: 90, g: 90, b: 90 }, { r: 220, g: 220, b: 220 }).tiff().toBuffer();
}

/** A PNG with an alpha channel (left half opaque red, right half half-transparent green), 20×10. */
export async function pngWithAlpha(): Promise<Buffer> {
  const [width, height] = [20, 10];
  const pixels = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i += 1) {
    const left = i % width < width / 2;
    pixels.set(left ? [255, 0, 0, 255] : [0, 255, 0, 128], i * 4);
  }
  return sharp(pixels, { raw: { width, height, channels: 4 } }).png().toBuffer();
}

/** A JPEG of `width`×`height` noise (large enough that libvips reads a real scan). */
export async function noisyJpeg(width = 64, height = 64): Promise<Buffer> {
  return noise(width, height).jpeg({ quality: 90 }).toBuffer();
}

/** The first half of a noisy JPEG: the header is intact, the scan data stops early, no EOI marker. */
export async function truncatedJpeg(): Promise<Buffer> {
  const whole = await noisyJpeg(64, 64);
  return whole.subarray(0, Math.floor(whole.length / 2));
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typed) >>> 0);
  return Buffer.concat([length, typed, crc]);
}

/**
 * A decompression bomb: a PNG of a few hundred bytes whose IHDR declares
 * `width`×`height` (default 30000×30000 = 900 megapixels), 8-bit grayscale,
 * with one IDAT holding the start of a zlib stream of zero rows.
 */
export function pngBomb(width = 30_000, height = 30_000): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: grayscale
  // compression, filter, interlace: 0
  const rows = zlib.deflateSync(Buffer.alloc((width + 1) * 4)); // the first 4 rows only
  return Buffer.concat([
    Buffer.from('\x89PNG\r\n\x1a\n', 'latin1'),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', rows),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A plain text file (not an image). */
export function textFile(): Buffer {
  return Buffer.from('hello, this is not an image\n'.repeat(10), 'utf8');
}

/** A small SVG, 40×20, with a script element (why SVG is off by default). */
export function svg(): Buffer {
  return Buffer.from(
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><script>alert(1)</script>' +
      '<rect width="40" height="20" fill="#c03"/></svg>',
    'utf8',
  );
}

/** A fixture and the file name it is uploaded under. */
export interface NamedFixture {
  name: string;
  bytes: Buffer;
}

/** Every accepted still and animated format, keyed by a short label (HEIC is absent: sharp's prebuilt libvips cannot encode HEVC). */
export async function acceptedFixtures(): Promise<Record<string, NamedFixture>> {
  const [jpeg, png, still, animWebp, gif, av, tif, oriented, cmyk] = await Promise.all([
    noisyJpeg(40, 30), pngWithAlpha(), webp(), animatedWebp(), animatedGif(), avif(), tiff(), jpegWithOrientation6(), cmykJpeg(),
  ]);
  return {
    jpeg: { name: 'photo.jpg', bytes: jpeg },
    'png with alpha': { name: 'alpha.png', bytes: png },
    webp: { name: 'still.webp', bytes: still },
    'animated webp': { name: 'anim.webp', bytes: animWebp },
    'animated gif': { name: 'anim.gif', bytes: gif },
    avif: { name: 'pic.avif', bytes: av },
    tiff: { name: 'scan.tiff', bytes: tif },
    'jpeg with EXIF orientation 6': { name: 'sideways.jpg', bytes: oriented },
    'CMYK jpeg': { name: 'print.jpg', bytes: cmyk },
  };
}

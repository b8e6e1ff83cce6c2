import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { UnprocessableImageError } from '../errors.js';
import { jxlSize } from './jxl-header.js';

/** Decoded pixels: 8-bit RGBA, row after row. */
export interface RgbaPixels {
  width: number;
  height: number;
  data: Uint8Array;
}

interface HeifImage {
  get_width(): number;
  get_height(): number;
  is_primary(): boolean;
  has_alpha_channel(): boolean;
  display(target: { data: Uint8ClampedArray; width: number; height: number }, done: (result: unknown) => void): void;
  free(): void;
}

interface LibHeif {
  HeifDecoder: new () => { decoder: number | null; decode(bytes: Uint8Array): HeifImage[] };
  heif_context_free(context: number): void;
}

let loading: Promise<LibHeif> | undefined;

/**
 * libheif compiled to WebAssembly (libheif-js), loaded once per thread: from its
 * .wasm file rather than the bundle that inlines it in base64 (0.4 s to load, not 1.4 s).
 */
function libheif(): Promise<LibHeif> {
  loading ??= new Promise((resolve, reject) => {
    try {
      const require = createRequire(import.meta.url);
      const factory = require('libheif-js/libheif-wasm/libheif.js') as (options: object) => LibHeif;
      const wasmBinary = readFileSync(require.resolve('libheif-js/libheif-wasm/libheif.wasm'));
      // The module logs its failures with console.log; ours are thrown as errors instead.
      const lib = factory({ wasmBinary, print: () => undefined, printErr: () => undefined, onRuntimeInitialized: () => queueMicrotask(() => resolve(lib)) });
      // (the callback may run before the factory returns: hence the microtask)
    } catch (err) {
      reject(err);
    }
  });
  return loading;
}

type JxlDecode = (bytes: ArrayBuffer) => Promise<{ width: number; height: number; data: Uint8ClampedArray }>;
let jxlLoading: Promise<JxlDecode> | undefined;

/** The JPEG XL decoder of @jsquash/jxl (libjxl in WebAssembly), loaded once per thread from its .wasm file. */
function jxlDecoder(): Promise<JxlDecode> {
  jxlLoading ??= (async () => {
    const module = await import('@jsquash/jxl/decode.js');
    const wasm = readFileSync(createRequire(import.meta.url).resolve('@jsquash/jxl/codec/dec/jxl_dec.wasm'));
    // (Node's global WebAssembly; the DOM lib that would declare it is not in this project's types)
    const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<unknown> } };
    await module.init((await wasmApi.compile(wasm)) as never);
    return module.default as unknown as JxlDecode;
  })();
  return jxlLoading;
}

type JxlEncode = (image: { data: Uint8ClampedArray; width: number; height: number }, options: { quality: number; effort: number }) => Promise<ArrayBuffer>;
let jxlEncoderLoading: Promise<JxlEncode> | undefined;

/**
 * Encodes RGBA pixels as JPEG XL (@jsquash/jxl, libjxl in WebAssembly, single-threaded:
 * the pool's workers are the parallelism). Effort 3: libvips' default for its own encoders
 * is a fast one too; higher efforts take seconds per megapixel here.
 */
export async function encodeJxl(pixels: RgbaPixels, quality: number): Promise<Uint8Array> {
  jxlEncoderLoading ??= (async () => {
    const module = await import('@jsquash/jxl/encode.js');
    const wasm = readFileSync(createRequire(import.meta.url).resolve('@jsquash/jxl/codec/enc/jxl_enc.wasm'));
    const { WebAssembly: wasmApi } = globalThis as unknown as { WebAssembly: { compile(bytes: Uint8Array): Promise<unknown> } };
    await module.init((await wasmApi.compile(wasm)) as never);
    return module.default as unknown as JxlEncode;
  })();
  const encode = await jxlEncoderLoading;
  const data = new Uint8ClampedArray(pixels.data.buffer, pixels.data.byteOffset, pixels.data.byteLength);
  return new Uint8Array(await encode({ data, width: pixels.width, height: pixels.height }, { quality, effort: 3 }));
}

/**
 * Decodes a JPEG XL file to RGBA. Its size comes from the header first, so an image
 * over `maxPixels` is refused before any pixel is decoded.
 * @throws {UnprocessableImageError} corrupt or truncated, or over the pixel limit
 */
export async function decodeJxl(bytes: Uint8Array, maxPixels: number): Promise<RgbaPixels & { pages: number; hasAlpha: boolean }> {
  const size = jxlSize(bytes);
  if (!size) throw new UnprocessableImageError('the JPEG XL image cannot be decoded: its header is unreadable');
  if (size.width * size.height > maxPixels) throw new UnprocessableImageError(`image of ${size.width}x${size.height} pixels exceeds the limit of ${maxPixels} pixels`);
  const decode = await jxlDecoder();
  let image;
  try {
    image = await decode(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  } catch {
    throw new UnprocessableImageError('the JPEG XL image is truncated or corrupt');
  }
  const data = new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  let hasAlpha = false;
  for (let i = 3; i < data.length && !hasAlpha; i += 4) hasAlpha = data[i] !== 255;
  return { width: image.width, height: image.height, data, pages: 1, hasAlpha };
}

/**
 * Decodes the primary image of a HEIF file (HEIC: HEVC inside) to RGBA, with its
 * `irot`/`imir` transforms applied by libheif. The size is read from the header
 * first, so an image over `maxPixels` is refused before any pixel is decoded.
 * @throws {UnprocessableImageError} corrupt or truncated, or over the pixel limit
 */
export async function decodeHeif(bytes: Uint8Array, maxPixels: number): Promise<RgbaPixels & { pages: number; hasAlpha: boolean }> {
  const lib = await libheif();
  const decoder = new lib.HeifDecoder();
  const images = decoder.decode(bytes);
  try {
    if (images.length === 0) throw new UnprocessableImageError('the HEIF image cannot be decoded: no image found in the file');
    const primary = images.find((image) => image.is_primary()) ?? images[0];
    const [width, height] = [primary.get_width(), primary.get_height()];
    if (width * height > maxPixels) throw new UnprocessableImageError(`image of ${width}x${height} pixels exceeds the limit of ${maxPixels} pixels`);
    const data = new Uint8ClampedArray(width * height * 4);
    const shown = await new Promise((resolve) => primary.display({ data, width, height }, resolve));
    if (!shown) throw new UnprocessableImageError('the HEIF image is truncated or corrupt');
    return { width, height, data: new Uint8Array(data.buffer), pages: images.length, hasAlpha: primary.has_alpha_channel() };
  } finally {
    for (const image of images) image.free();
    if (decoder.decoder) lib.heif_context_free(decoder.decoder);
  }
}

import { InsufficientStorageError, ServiceUnavailableError } from '../errors.js';
import type { RgbaPixels } from './heif-decoder.js';
import { UnprocessableImageError } from '../errors.js';
import { WorkerPool, workerUrl } from './worker-pool.js';

/** One decode: a file's path (read by the worker) or its bytes, and the pixel limit checked from its header. */
export interface DecodeJob {
  file: string | Uint8Array;
  maxPixels: number;
  format: DecodedFormat;
}

/** One JPEG XL encode: RGBA pixels (moved to the worker) and a quality. */
export interface EncodeJob {
  encode: 'jxl';
  pixels: RgbaPixels;
  quality: number;
}

/** Encodes RGBA pixels as JPEG XL. */
export type JxlEncoder = (pixels: RgbaPixels, quality: number) => Promise<Uint8Array>;

/** The stored formats decoded here rather than by libvips. */
export const DECODED_FORMATS = ['heic', 'jxl'] as const;
export type DecodedFormat = (typeof DECODED_FORMATS)[number];

/** The decoded primary image (RGBA), with what only the decoder knows. */
export type DecodedImage = RgbaPixels & { pages: number; hasAlpha: boolean };

/** Decodes an image file to pixels. */
export type Decoder = (file: string | Buffer, maxPixels: number, format: DecodedFormat) => Promise<DecodedImage>;

/**
 * Decodes HEIC and JPEG XL off the event loop, in worker threads (libheif and
 * libjxl in WebAssembly: the libvips bundled with sharp has neither). The callers' engine
 * lanes (upload checks, transforms) bound the decodes in flight, so at most
 * that many workers exist, each holding one image's pixels at a time.
 */
export class DecodePool extends WorkerPool<DecodeJob | EncodeJob, DecodedImage | Uint8Array> {
  constructor() {
    super(workerUrl('decode-worker', import.meta.url), {
      unprocessable_image: UnprocessableImageError,
      insufficient_storage: InsufficientStorageError,
      unavailable: ServiceUnavailableError,
    }, 'image decode');
  }

  /** The Decoder of this pool. */
  readonly decode: Decoder = (file, maxPixels, format) => this.run({ file, maxPixels, format }) as Promise<DecodedImage>;

  /** The JPEG XL encoder of this pool (libvips here has none either); the pixels are moved, not copied. */
  readonly encodeJxl: JxlEncoder = (pixels, quality) =>
    this.run({ encode: 'jxl', pixels, quality }, [pixels.data.buffer as ArrayBuffer]) as Promise<Uint8Array>;
}

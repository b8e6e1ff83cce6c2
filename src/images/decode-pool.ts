import { InsufficientStorageError, ServiceUnavailableError } from '../errors.js';
import type { RgbaPixels } from './heif-decoder.js';
import { UnprocessableImageError } from './inspect.js';
import { WorkerPool, workerUrl } from './worker-pool.js';

/** One decode: a file's path (read by the worker) or its bytes, and the pixel limit checked from its header. */
export interface DecodeJob {
  file: string | Uint8Array;
  maxPixels: number;
}

/** The decoded primary image (RGBA), with what only the decoder knows. */
export type DecodedImage = RgbaPixels & { pages: number; hasAlpha: boolean };

/** Decodes an image file to pixels. */
export type Decoder = (file: string | Buffer, maxPixels: number) => Promise<DecodedImage>;

/**
 * Decodes HEIC off the event loop, in worker threads (libheif in WebAssembly:
 * the libvips bundled with sharp has no HEVC decoder). The callers' engine
 * lanes (upload checks, transforms) bound the decodes in flight, so at most
 * that many workers exist, each holding one image's pixels at a time.
 */
export class DecodePool extends WorkerPool<DecodeJob, DecodedImage> {
  constructor() {
    super(workerUrl('decode-worker', import.meta.url), {
      unprocessable_image: UnprocessableImageError,
      insufficient_storage: InsufficientStorageError,
      unavailable: ServiceUnavailableError,
    }, 'image decode');
  }

  /** The Decoder of this pool. */
  readonly decode: Decoder = (file, maxPixels) => this.run({ file, maxPixels });
}

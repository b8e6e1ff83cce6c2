import type { Config } from '../config.js';
import type { Decoder } from './decode-pool.js';
import { EngineSlots } from './engine-slots.js';
import { inspectImage, type ImageFacts, type InspectOptions } from './inspect.js';

/**
 * The main thread's image engine (sharp): every pipeline it runs goes through one of its
 * lanes, each with its own cap (EngineSlots), so libuv's pool never runs more pipelines
 * than configured. Two lanes: an upload's check never waits behind a transform, and only
 * transforms queue with a bound. Comparisons run in the diff workers (DiffPool), capped
 * by DIFF_CONCURRENCY; their uploads' checks take the check lane here.
 */
export class ImageEngine {
  /** Upload checks (UPLOAD_CHECK_CONCURRENCY). */
  readonly checks: EngineSlots;
  /** Transforms (TRANSFORM_CONCURRENCY, TRANSFORM_MAX_QUEUE, TRANSFORM_QUEUE_TIMEOUT_MS). */
  readonly transforms: EngineSlots;
  private readonly inspectOptions: InspectOptions;

  /** @param decode the worker decoder of the formats sharp's libvips cannot read (HEIC, JPEG XL) */
  constructor(images: Config['images'], decode?: Decoder) {
    this.checks = new EngineSlots(images.uploadCheckConcurrency);
    this.transforms = new EngineSlots(images.transformConcurrency, {
      maxQueue: images.transformMaxQueue, queueTimeoutMs: images.transformQueueTimeoutMs, what: 'image transforms',
    });
    this.inspectOptions = { maxInputPixels: images.maxInputPixels, allowSvg: images.allowSvg, decode, fingerprints: images.fingerprints };
  }

  /**
   * inspectImage in the check lane.
   * @param maxInputPixels a lower pixel limit than MAX_INPUT_PIXELS: a comparison's upload, which is
   *   not stored, so it gets no fingerprints (placeholders, perceptual hash) either
   */
  inspect(file: string | Buffer, maxInputPixels?: number): Promise<ImageFacts> {
    const options = maxInputPixels === undefined
      ? this.inspectOptions
      : { ...this.inspectOptions, maxInputPixels: Math.min(maxInputPixels, this.inspectOptions.maxInputPixels), fingerprints: false };
    return this.checks.run(() => inspectImage(file, options));
  }
}

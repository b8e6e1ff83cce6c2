import { InsufficientStorageError, ServiceUnavailableError, SizeMismatchError, UnprocessableImageError, ValidationError } from '../errors.js';
import type { DiffOptions, DiffResult } from './diff.js';
import { WorkerPool, workerUrl, type WorkerReply } from './worker-pool.js';

/** One comparison: two image files, the options, and the answer wanted. */
export interface DiffJob {
  a: string;
  b: string;
  options: DiffOptions;
  output: 'json' | 'png' | 'side-by-side';
}

/** The comparison, and the PNG for picture outputs. */
export interface DiffAnswer {
  result: DiffResult;
  png?: Uint8Array;
}

/** What a worker posts back (diff-worker.ts). */
export type DiffReply = WorkerReply<DiffAnswer>;

/** The errors a comparison may end with, by code. */
const ERRORS = {
  size_mismatch: SizeMismatchError,
  unprocessable_image: UnprocessableImageError,
  validation_failed: ValidationError,
  insufficient_storage: InsufficientStorageError,
  unavailable: ServiceUnavailableError,
};

/**
 * Runs comparisons in worker threads (WorkerPool), so pixelmatch, the region
 * search and SSIM (seconds of JavaScript on large images) never block the event
 * loop. The caller bounds the comparisons in flight (DIFF_CONCURRENCY).
 */
export class DiffPool extends WorkerPool<DiffJob, DiffAnswer> {
  constructor() {
    super(workerUrl('diff-worker', import.meta.url), ERRORS, 'comparison');
  }
}

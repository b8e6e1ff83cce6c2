import type { Readable } from 'node:stream';
import type { ReadyHeaders } from './ready-headers.js';

/**
 * An image response, in two steps: its ready-made headers (from memory: enough
 * for a 304), then, only when bytes or a length are needed, its body.
 */
export interface ImageBody {
  head: ReadyHeaders;
  /** The body's size and a way to get its bytes: files are opened, or the transform run, only now. */
  load(): Promise<LoadedBody>;
  /** Releases what is held when the bytes are not taken (HEAD, 304, 416, an error); safe to call more than once. */
  close(): Promise<void>;
}

/** A body whose size is known. */
export interface LoadedBody {
  size: number;
  /** Bytes start..end inclusive, or all: one buffer for a small body, else a stream. Releases the source. */
  bytes(range?: { start: number; end: number }): Promise<Buffer | Readable>;
}

/**
 * Bodies up to this size are read into one buffer and sent whole (when the source
 * can); larger ones stream, so a big image is never held in memory.
 * One read instead of a ReadStream doubles small-download throughput (bench/RESULTS.md).
 */
export const SMALL_BODY_BYTES = 256 * 1024;

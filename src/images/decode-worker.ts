/**
 * Entry of a decode worker thread (started by DecodePool): decodes the formats
 * libvips cannot (HEIC) with WebAssembly, one job at a time, and moves the
 * pixels back to the parent without a copy.
 */
import { readFile } from 'node:fs/promises';
import { parentPort } from 'node:worker_threads';
import type { DecodeJob, DecodedImage, EncodeJob } from './decode-pool.js';
import { AppError, stripPaths } from '../errors.js';
import { decodeHeif, decodeJxl, encodeJxl } from './heif-decoder.js';
import { UnprocessableImageError } from '../errors.js';
import { serveJobs } from './worker-pool.js';

async function run(job: DecodeJob | EncodeJob): Promise<DecodedImage | Uint8Array> {
  if ('encode' in job) return encodeJxl(job.pixels, job.quality);
  const { file, maxPixels, format } = job;
  const bytes = typeof file === 'string' ? await readFile(file) : file;
  try {
    return await (format === 'jxl' ? decodeJxl(bytes, maxPixels) : decodeHeif(bytes, maxPixels));
  } catch (err) {
    // libheif's own failures (an abort inside WebAssembly) are this file's fault, like libvips' for other formats.
    throw err instanceof AppError ? err : new UnprocessableImageError(`the ${format === 'jxl' ? 'JPEG XL' : 'HEIF'} image cannot be decoded: ${stripPaths((err as Error).message)}`);
  }
}

// libheif-js reports its failures with console.log too; here they are thrown as errors, so its lines would only be noise.
console.log = () => undefined;
serveJobs(parentPort!, run, (answer) => [(answer instanceof Uint8Array ? answer : answer.data).buffer as ArrayBuffer]);

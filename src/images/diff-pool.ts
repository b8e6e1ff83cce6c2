import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { type AppError, InsufficientStorageError, ServiceUnavailableError, SizeMismatchError, UnprocessableImageError, ValidationError } from '../errors.js';
import type { DiffOptions, DiffResult } from './diff.js';

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
export type DiffReply = { ok: true; answer: DiffAnswer } | { ok: false; code?: string; message: string };

/** The errors a comparison may end with, by code, rebuilt on this side (structured clone drops classes). */
const ERRORS: Record<string, new (message: string) => AppError> = {
  size_mismatch: SizeMismatchError,
  unprocessable_image: UnprocessableImageError,
  validation_failed: ValidationError,
  insufficient_storage: InsufficientStorageError,
  unavailable: ServiceUnavailableError,
};

/** An idle worker is stopped after this: it frees its heap (GC of an idle thread may never come) and its share of libvips. */
const IDLE_TIMEOUT_MS = 10_000;

const FROM_SOURCE = fileURLToPath(import.meta.url).endsWith('.ts');
const WORKER_URL = new URL(`./diff-worker.${FROM_SOURCE ? 'ts' : 'js'}`, import.meta.url);

/**
 * Runs comparisons in worker threads, so pixelmatch, the region search and
 * SSIM (seconds of JavaScript on large images) never block the event loop.
 * Workers are started on demand, reused, and stopped when idle. It does not
 * queue: the caller bounds the comparisons in flight (DIFF_CONCURRENCY), and
 * at most that many workers exist.
 *
 * Hand-written rather than piscina: piscina loads the task file inside its own
 * worker, which under tsx on Node 20 (tests) cannot import TypeScript without
 * a JavaScript shim in src/; without a queue, the pool is this one class.
 */
export class DiffPool {
  private readonly idle = new Map<Worker, NodeJS.Timeout>();
  private readonly workers = new Set<Worker>();
  private closed = false;

  /** Workers alive now (idle or busy). */
  get size(): number {
    return this.workers.size;
  }

  /**
   * Runs one comparison in a worker.
   * @throws {SizeMismatchError} {UnprocessableImageError} {ValidationError} as diffImages does
   * @throws {ServiceUnavailableError} after close()
   */
  async run(job: DiffJob): Promise<DiffAnswer> {
    if (this.closed) throw new ServiceUnavailableError('shutting down');
    const worker = this.take();
    let reply: DiffReply;
    try {
      reply = await call(worker, job);
    } catch (err) {
      this.retire(worker);
      throw err;
    }
    this.release(worker);
    if (reply.ok) return reply.answer;
    const ErrorClass = reply.code ? ERRORS[reply.code] : undefined;
    throw ErrorClass ? new ErrorClass(reply.message) : new Error(`comparison failed: ${reply.message}`);
  }

  /** Stops every worker (a comparison still running fails). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.workers].map((worker) => this.retire(worker)));
  }

  private take(): Worker {
    const [worker, timer] = this.idle.entries().next().value ?? [];
    if (worker) {
      clearTimeout(timer);
      this.idle.delete(worker);
      return worker;
    }
    const started = startWorker();
    // Idle workers must not keep the process alive; a busy one has its request doing that.
    started.unref();
    // Errors during a job reach its own listener; this one only keeps a stray one from crashing the process.
    started.on('error', () => undefined);
    started.once('exit', () => this.forget(started));
    this.workers.add(started);
    return started;
  }

  private release(worker: Worker): void {
    if (this.closed) {
      void this.retire(worker);
      return;
    }
    this.idle.set(worker, setTimeout(() => void this.retire(worker), IDLE_TIMEOUT_MS).unref());
  }

  private retire(worker: Worker): Promise<number> {
    this.forget(worker);
    return worker.terminate();
  }

  private forget(worker: Worker): void {
    clearTimeout(this.idle.get(worker));
    this.idle.delete(worker);
    this.workers.delete(worker);
  }
}

function startWorker(): Worker {
  if (!FROM_SOURCE) return new Worker(WORKER_URL);
  // Running from source (tests, tsx): Node 20 does not hand the parent's tsx loader to workers, so the worker registers it first.
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs/api');
  const bootstrap = `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(fileURLToPath(WORKER_URL))});`;
  return new Worker(bootstrap, { eval: true });
}

/** Sends one job and waits for its reply, or for the worker's death. */
function call(worker: Worker, job: DiffJob): Promise<DiffReply> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    };
    const onMessage = (reply: DiffReply) => {
      done();
      resolve(reply);
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onExit = (code: number) => {
      done();
      reject(new Error(`the diff worker stopped (exit code ${code})`));
    };
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    worker.postMessage(job);
  });
}

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Worker, type TransferListItem } from 'node:worker_threads';
import { AppError, ServiceUnavailableError } from '../errors.js';

/** What a worker posts back (see `serveJobs`). */
export type WorkerReply<A> = { ok: true; answer: A } | { ok: false; code?: string; message: string };

/** The errors a job may end with, by code, rebuilt on this side (structured clone drops classes). */
export type ErrorsByCode = Record<string, new (message: string) => AppError>;

/** An idle worker is stopped after this: it frees its heap (GC of an idle thread may never come) and its share of libvips. */
const IDLE_TIMEOUT_MS = 10_000;

/**
 * Runs jobs in worker threads, so long JavaScript or WebAssembly work (pixelmatch,
 * SSIM, the HEIF and JPEG XL decoders) never blocks the event loop. Workers are
 * started on demand, reused, and stopped when idle. It does not queue: the caller
 * bounds the jobs in flight (DIFF_CONCURRENCY, the engine lanes), and at most that
 * many workers exist.
 *
 * Hand-written rather than piscina: piscina loads the task file inside its own
 * worker, which under tsx on Node 20 (tests) cannot import TypeScript without
 * a JavaScript shim in src/; without a queue, the pool is this one class.
 */
export class WorkerPool<J, A> {
  private readonly idle = new Map<Worker, NodeJS.Timeout>();
  private readonly workers = new Set<Worker>();
  private closed = false;

  /**
   * @param workerUrl the worker's entry module, next to the caller (`.ts` when running from source)
   * @param errors the AppErrors a job may throw, by code
   * @param what what a job is, for the message of an unexpected failure
   */
  constructor(
    private readonly workerUrl: URL,
    private readonly errors: ErrorsByCode,
    private readonly what: string,
  ) {}

  /** Workers alive now (idle or busy). */
  get size(): number {
    return this.workers.size;
  }

  /**
   * Runs one job in a worker.
   * @param transfer buffers moved to the worker, not copied
   * @throws the job's AppError, rebuilt from its code; {ServiceUnavailableError} after close()
   */
  async run(job: J, transfer: TransferListItem[] = []): Promise<A> {
    if (this.closed) throw new ServiceUnavailableError('shutting down');
    const worker = this.take();
    let reply: WorkerReply<A>;
    try {
      reply = await call(worker, job, transfer, this.what);
    } catch (err) {
      this.retire(worker);
      throw err;
    }
    this.release(worker);
    if (reply.ok) return reply.answer;
    const ErrorClass = reply.code ? this.errors[reply.code] : undefined;
    throw ErrorClass ? new ErrorClass(reply.message) : new Error(`${this.what} failed: ${reply.message}`);
  }

  /** Stops every worker (a job still running fails). */
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
    const started = startWorker(this.workerUrl);
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

/** The `.ts` or `.js` URL of a worker entry beside `base` (a caller's import.meta.url). */
export function workerUrl(name: string, base: string): URL {
  return new URL(`./${name}.${fileURLToPath(base).endsWith('.ts') ? 'ts' : 'js'}`, base);
}

function startWorker(url: URL): Worker {
  if (!url.pathname.endsWith('.ts')) return new Worker(url);
  // Running from source (tests, tsx): Node 20 does not hand the parent's tsx loader to workers, so the worker registers it first.
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs/api');
  const bootstrap = `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(fileURLToPath(url))});`;
  return new Worker(bootstrap, { eval: true });
}

/** Sends one job and waits for its reply, or for the worker's death. */
function call<J, A>(worker: Worker, job: J, transfer: TransferListItem[], what: string): Promise<WorkerReply<A>> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.off('message', onMessage).off('error', onError).off('exit', onExit);
    };
    const onMessage = (reply: WorkerReply<A>) => {
      done();
      resolve(reply);
    };
    const onError = (err: Error) => {
      done();
      reject(err);
    };
    const onExit = (code: number) => {
      done();
      reject(new Error(`the ${what} worker stopped (exit code ${code})`));
    };
    worker.on('message', onMessage).on('error', onError).on('exit', onExit);
    worker.postMessage(job, transfer);
  });
}

/**
 * The worker side: answers each job from the parent with `handle`'s result (and
 * moves the buffers `transfer` picks from it), or with the error's code and message.
 */
export function serveJobs<J, A>(port: import('node:worker_threads').MessagePort, handle: (job: J) => Promise<A>, transfer: (answer: A) => TransferListItem[] = () => []): void {
  port.on('message', (job: J) => {
    handle(job).then(
      (answer) => port.postMessage({ ok: true, answer } satisfies WorkerReply<A>, transfer(answer)),
      (err: Error) => port.postMessage({ ok: false, code: err instanceof AppError ? err.code : undefined, message: err.message } satisfies WorkerReply<A>),
    );
  });
}

import { ServiceUnavailableError } from '../errors.js';

/** Limits of an EngineSlots queue. */
export interface QueueLimits {
  /** Jobs that may wait for a slot; one more is refused at once (default: no limit). */
  maxQueue?: number;
  /** Longest wait for a slot in ms; a job still waiting then is refused (default: no limit). */
  queueTimeoutMs?: number;
  /** What the jobs are, for the refusal message, e.g. `image transforms`. */
  what?: string;
}

/** Retry-After of a refusal: a slot frees when a pipeline ends, which takes seconds, not minutes. */
const RETRY_AFTER_SECONDS = 5;

/**
 * Caps the image-engine jobs (sharp pipelines) of one kind running at once;
 * the others wait their turn, first come first served. Each kind of job has
 * its own instance (a lane), so a long transform never holds up an upload check.
 * Without a cap, libuv's thread pool (4 threads) runs up to 4 pipelines of
 * large images together: on a 2-CPU machine that is no faster than 2, holds
 * twice the pixel memory, and leaves no pool thread for file I/O meanwhile.
 * With `maxQueue` / `queueTimeoutMs` the wait is bounded too: a job that cannot
 * get a slot in time fails with ServiceUnavailableError (503 + Retry-After).
 */
export class EngineSlots {
  private active = 0;
  /** Waiting jobs, oldest first; each is started with `true` or refused with `false`. */
  private readonly waiting: Array<(granted: boolean) => void> = [];

  /**
   * @param slots jobs at once (≥ 1)
   * @param limits bounds of the wait (none by default)
   */
  constructor(
    readonly slots: number,
    private readonly limits: QueueLimits = {},
  ) {
    if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`Expected a positive integer for slots but received ${slots}`);
  }

  /** Jobs waiting for a slot now. */
  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `job` when a slot is free; the slot is released when it settles.
   * @throws {ServiceUnavailableError} the queue is full, or no slot freed within `queueTimeoutMs`
   */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.active < this.slots) this.active += 1;
    else await this.wait(); // the finishing job hands its slot over
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next(true);
      else this.active -= 1;
    }
  }

  private wait(): Promise<void> {
    const { maxQueue = Infinity, queueTimeoutMs, what = 'image jobs' } = this.limits;
    if (this.waiting.length >= maxQueue) {
      return Promise.reject(new ServiceUnavailableError(`too many ${what} waiting (limit ${maxQueue}); retry shortly`, RETRY_AFTER_SECONDS));
    }
    return new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const entry = (granted: boolean) => {
        clearTimeout(timer);
        if (granted) resolve();
        else reject(new ServiceUnavailableError(`${what} are busy: no slot freed within ${queueTimeoutMs} ms; retry shortly`, RETRY_AFTER_SECONDS));
      };
      this.waiting.push(entry);
      if (queueTimeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.waiting.splice(this.waiting.indexOf(entry), 1);
          entry(false);
        }, queueTimeoutMs);
      }
    });
  }
}

/**
 * Caps the image-engine jobs (sharp pipelines: transforms and upload checks)
 * running at once; the others wait their turn, first come first served.
 * Without a cap, libuv's thread pool (4 threads) runs up to 4 pipelines of
 * large images together: on a 2-CPU machine that is no faster than 2, holds
 * twice the pixel memory, and leaves no pool thread for file I/O meanwhile.
 */
export class EngineSlots {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  /** @param slots jobs at once (≥ 1) */
  constructor(readonly slots: number) {
    if (!Number.isSafeInteger(slots) || slots < 1) throw new RangeError(`Expected a positive integer for slots but received ${slots}`);
  }

  /** Runs `job` when a slot is free; the slot is released when it settles. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.active < this.slots) this.active += 1;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the finishing job hands its slot over
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active -= 1;
    }
  }
}

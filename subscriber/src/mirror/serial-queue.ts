/**
 * Runs tasks one at a time, in the order they were pushed. The handler must not throw (the mirror
 * catches and logs in it); a throw is kept from stopping the queue all the same.
 */
export class SerialQueue<T> {
  private readonly items: T[] = [];
  private readonly idleWaiters: Array<() => void> = [];
  private busy = false;
  private stopped = false;
  private loop: Promise<void> = Promise.resolve();

  /**
   * @param handle runs one task
   * @param whenDrained called when the queue runs dry; a task it returns runs next
   */
  constructor(
    private readonly handle: (task: T) => Promise<void>,
    private readonly whenDrained: () => T | undefined = () => undefined,
  ) {}

  /** Tasks waiting (the one running not included). */
  get length(): number {
    return this.items.length;
  }

  push(task: T): void {
    if (this.stopped) return;
    this.items.push(task);
    if (!this.busy) this.loop = this.run();
  }

  /** Resolves once nothing is queued or running (more tasks may be pushed later). */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Drops the waiting tasks and resolves once the running one has finished. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.items.length = 0;
    await this.loop;
  }

  private async run(): Promise<void> {
    this.busy = true;
    try {
      while (!this.stopped) {
        const task = this.items.shift() ?? this.whenDrained();
        if (task === undefined) break;
        try {
          await this.handle(task);
        } catch {
          // the handler logs its own failures
        }
      }
    } finally {
      this.busy = false;
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }
}

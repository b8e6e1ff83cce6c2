import type { Logger } from '../logger.js';
import type { StoreEvent } from './events.js';
import type { Outbox } from './outbox.js';
import type { EventTransport } from './types.js';

export interface DispatcherOptions {
  /** Events in flight at once (QoS 1 messages awaiting PUBACK). */
  window: number;
  /** Pause after a failed delivery before retrying. */
  retryDelayMs: number;
}

/**
 * Moves events from the outbox to the broker, oldest first. An event is
 * acknowledged in the outbox only once every topic's PUBACK is in; after a
 * failure, delivery restarts from the first unacknowledged event, so order
 * per album is kept and delivery is at least once (subscribers dedupe by id).
 */
export class Dispatcher {
  private stopped = false;
  /** Events delivered since start (PUBACK received on every topic). */
  delivered = 0;
  private wake: (() => void) | undefined;
  private loop: Promise<void> | undefined;
  private readonly idleWaiters: Array<() => void> = [];

  constructor(
    private readonly outbox: Outbox,
    private readonly transport: EventTransport,
    private readonly topicsFor: (event: StoreEvent) => string[],
    private readonly log: Logger,
    private readonly options: DispatcherOptions = { window: 64, retryDelayMs: 500 },
  ) {
    outbox.onAppend(() => this.poke()); // also after a change is applied or aborted
    transport.onConnect(() => this.poke());
  }

  /** Starts delivering in the background. */
  start(): void {
    this.loop ??= this.run();
  }

  /** Resolves true once the outbox is empty, false if `timeoutMs` passes first. */
  async drain(timeoutMs: number): Promise<boolean> {
    if (this.outbox.pendingCount === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const result = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return result;
  }

  /** Stops after the batch in flight. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.loop;
  }

  private poke(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async sleep(ms?: number): Promise<void> {
    await new Promise<void>((resolve) => {
      this.wake = resolve;
      if (ms !== undefined) setTimeout(() => this.poke(), ms).unref();
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      if (this.outbox.pendingCount === 0) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
        await this.sleep();
        continue;
      }
      if (!this.transport.connected) {
        await this.sleep(this.options.retryDelayMs);
        continue;
      }
      const batch = this.outbox.peek(this.options.window);
      if (batch.length === 0) {
        await this.sleep(); // the oldest event's change is being applied: woken when it is
        continue;
      }
      const results = await Promise.allSettled(batch.map((r) => this.transport.deliver(r.event, this.topicsFor(r.event), r.payload)));
      const firstFailure = results.findIndex((r) => r.status === 'rejected');
      const delivered = firstFailure === -1 ? batch.length : firstFailure;
      if (delivered > 0) {
        this.outbox.acknowledge(batch[delivered - 1].seq);
        this.delivered += delivered;
      }
      if (firstFailure !== -1) {
        const reason = (results[firstFailure] as PromiseRejectedResult).reason as Error;
        this.log.warn({ err: reason.message, pending: this.outbox.pendingCount }, 'event delivery failed; will retry');
        await this.sleep(this.options.retryDelayMs);
      }
    }
  }
}

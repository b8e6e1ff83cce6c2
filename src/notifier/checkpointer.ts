import type { Checkpointable, CrashPoint } from '../albums/changes.js';
import { NO_CRASH } from '../albums/changes.js';
import { sharedRuns } from '../lib/durable.js';
import type { Logger } from '../logger.js';
import type { Outbox } from './outbox.js';

/** Options of the Checkpointer. */
export interface CheckpointerOptions {
  /** A checkpoint runs this often while changes wait for one (CHECKPOINT_INTERVAL_MS). */
  intervalMs: number;
  /** ... and at once when this many changes wait (CHECKPOINT_MAX_CHANGES). */
  maxChanges: number;
  log: Logger;
  crash?: CrashPoint;
}

/**
 * Makes applied changes durable in the store, many at a time, and records it in the
 * journal: the store fsyncs what its applies wrote (`flush`), then the journal records
 * the checkpoint (up to the last change with every earlier one applied), then the
 * store deletes what only redo needed (staged uploads). Runs every `intervalMs`, when
 * `maxChanges` wait, at shutdown, and before every album change (`barrier`).
 */
export class Checkpointer {
  private timer: NodeJS.Timeout | undefined;
  /** One checkpoint at a time; a call waits for one that starts after it. */
  readonly run: () => Promise<void> = sharedRuns(() => this.once());

  constructor(
    private readonly outbox: Outbox,
    private readonly store: Checkpointable,
    private readonly options: CheckpointerOptions,
  ) {}

  /** Starts the periodic checkpoints. */
  start(): void {
    this.timer ??= setInterval(() => this.background(), this.options.intervalMs);
    this.timer.unref();
  }

  /** A change was applied: checkpoints early when many are waiting. */
  changeApplied(): void {
    if (this.outbox.uncheckpointedCount >= this.options.maxChanges) this.background();
  }

  /**
   * Checkpoints every change committed so far, waiting for those being applied. An album
   * change is committed only after one, so that recovery never meets an image change
   * of an album that a later album change renamed or deleted (fs-changes.ts).
   */
  async barrier(): Promise<void> {
    await this.outbox.whenSettled(this.outbox.lastSeq);
    await this.run();
  }

  /** Stops the periodic checkpoints and checkpoints what is left. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.run();
  }

  private background(): void {
    this.run().catch((err: unknown) => this.options.log.error({ err }, 'checkpoint failed; retried at the next one'));
  }

  private async once(): Promise<void> {
    const target = this.outbox.settledSeq;
    const first = this.outbox.firstUncheckpointed;
    if (first === undefined || first > target) return; // no applied change waits
    const crash = this.options.crash ?? NO_CRASH;
    await this.store.flush();
    crash('checkpoint:after-flush');
    await this.outbox.checkpoint(target);
    crash('checkpoint:after-record');
    await this.store.checkpointed(target);
  }
}

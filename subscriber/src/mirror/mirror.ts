import type { Logger } from 'pino';
import type { ReceivedEvent } from '../handle-message.js';
import { applyEvent, InvalidEventError, type ActionDeps, type Outcome } from './actions.js';
import { MirrorFs, STATE_FILE_NAME, UnsafeNameError } from './fs-ops.js';
import { reconcile } from './reconcile.js';
import { SerialQueue } from './serial-queue.js';
import type { ImageStoreClient } from '../../../src/client/client.js';
import { ImageStoreError } from '../../../src/client/errors.js';
import { errorText, isUnreachable, mirrorClient, type RetryPolicy } from './remote.js';
import { MirrorState } from './state.js';

/** The state file is written at most this often while events keep coming (and always when the queue empties). */
export const STATE_SAVE_INTERVAL_MS = 1000;

/** Waits between reconcile attempts while the service is unreachable: doubling from first to max. */
export const RECONCILE_RETRY = { firstDelayMs: 500, maxDelayMs: 10_000 };

/** What `Mirror.open` needs. */
export interface MirrorOptions {
  /** Absolute path of the mirror directory. */
  dir: string;
  /** The service, e.g. `http://127.0.0.1:3333`. */
  apiUrl: string;
  /** API key for the service, when it has keys. */
  apiKey?: string;
  /** Only these albums are mirrored; all when empty or absent. */
  albums?: string[];
  log: Logger;
  /** Retries of one HTTP request (default DEFAULT_RETRY of remote.ts). */
  retry?: RetryPolicy;
  /** Waits between failed reconciles (default RECONCILE_RETRY). */
  reconcileRetry?: { firstDelayMs: number; maxDelayMs: number };
}

/** Counters of what the mirror did, since it was opened. */
export interface MirrorStats {
  /** Events by outcome; `duplicate` were dropped by id, `deferred` left to a reconcile while the service was away. */
  events: Record<Outcome | 'duplicate' | 'deferred' | 'failed', number>;
  /** Images downloaded, by events and by reconciles. */
  downloads: number;
  reconciles: number;
  reconcileFailures: number;
  /** Catch-ups by replay (GET /events?after=) done instead of a reconcile, and events they replayed. */
  catchUps: number;
  replayed: number;
}

/** Events per replay page, and pages per catch-up at most (then a reconcile is cheaper). */
const REPLAY_PAGE = 1000;
const REPLAY_MAX_PAGES = 100;

/** Thrown by `Mirror.open` when the directory cannot be used as a mirror. */
export class MirrorSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MirrorSetupError';
  }
}

type Task = { kind: 'event'; event: ReceivedEvent } | { kind: 'reconcile'; reason: string } | { kind: 'catch-up'; reason: string };

/**
 * Keeps a copy of the store in a directory. Events and reconciles go through one queue and run
 * one at a time, in arrival order. Duplicate events are dropped by id. A stale event (404) or a
 * failed action asks for a reconcile once the queue is empty; while the service is unreachable
 * events are deferred and reconciles retried with backoff, so the copy converges after any outage.
 */
export class Mirror {
  readonly stats: MirrorStats = {
    events: { applied: 0, downloaded: 0, ignored: 0, stale: 0, duplicate: 0, deferred: 0, failed: 0 },
    downloads: 0,
    reconciles: 0,
    reconcileFailures: 0,
    catchUps: 0,
    replayed: 0,
  };
  private readonly queue = new SerialQueue<Task>(
    (task) => this.runTask(task),
    () => this.wantedReconcile(),
  );
  private readonly abort = new AbortController();
  private readonly deps: ActionDeps;
  private closed = false;
  private reconcileQueued = false;
  /** A reconcile is wanted once the queue is empty (after a stale or failed event). */
  private reconcileWanted = false;
  /** The service could not be reached: events are deferred until a reconcile succeeds. */
  private serviceAway = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly reconcileRetry: { firstDelayMs: number; maxDelayMs: number };
  private retryDelayMs: number;
  private lastSave = 0;
  /** The service's REST API, through the published client (src/client). */
  private readonly api: ImageStoreClient;
  /** The sequence processed last before the connection was lost: a catch-up replays from there. */
  private resumeAfter: number | undefined;
  private catchUpQueued = false;
  /** The first subscription reconciles (local files may have changed while the mirror was stopped); later ones catch up. */
  private subscribedBefore = false;

  private constructor(
    files: MirrorFs,
    private readonly state: MirrorState,
    options: MirrorOptions,
  ) {
    const albums = options.albums ?? [];
    this.reconcileRetry = options.reconcileRetry ?? RECONCILE_RETRY;
    this.retryDelayMs = this.reconcileRetry.firstDelayMs;
    this.api = mirrorClient(options.apiUrl, { apiKey: options.apiKey, retry: options.retry });
    this.deps = {
      api: this.api,
      signal: this.abort.signal,
      files,
      state,
      log: options.log,
      inScope: (album) => albums.length === 0 || albums.includes(album),
    };
  }

  /**
   * Prepares the directory, loads the state and queues the start-up reconcile.
   * @throws {MirrorSetupError} when the directory holds files but no state file (not a mirror)
   */
  static async open(options: MirrorOptions): Promise<Mirror> {
    const files = new MirrorFs(options.dir);
    if (!(await MirrorState.exists(files)) && !(await files.isEmpty())) {
      throw new MirrorSetupError(
        `refusing to mirror into ${options.dir}: it is not empty and has no ${STATE_FILE_NAME}; give an empty or new directory, or one a mirror made`,
      );
    }
    await files.prepare();
    const { state, problem } = await MirrorState.load(files);
    if (problem) options.log.warn({ problem }, 'mirror state unreadable; starting from an empty state');
    await state.save(); // from now on the directory is marked as a mirror
    const mirror = new Mirror(files, state, options);
    options.log.info({ dir: options.dir, api: options.apiUrl }, 'mirror ready');
    mirror.requestReconcile('start-up');
    return mirror;
  }

  /** To be called once subscribed, after every (re)connection: events may have been missed before. */
  onSubscribed(): void {
    if (this.subscribedBefore) this.requestResync('subscribed to the broker again');
    else this.requestReconcile('subscribed to the broker');
    this.subscribedBefore = true;
  }

  /** The broker connection was lost: a catch-up will start from what was processed by now. */
  onDisconnected(): void {
    this.resumeAfter ??= this.state.lastSequence;
  }

  /** Queues an event; it is applied after everything queued before it. */
  push(event: ReceivedEvent): void {
    if (!this.closed) this.queue.push({ kind: 'event', event });
  }

  /** Resolves once the queue is empty and nothing runs (more events may arrive later). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  /** Stops after the task in progress (requests in flight are aborted) and saves the state. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.abort.abort(new Error('mirror closed'));
    await this.queue.stop();
    await this.saveState(true);
  }

  /**
   * Events may have been missed: replays them from the journal (GET /events?after=) when the
   * mirror knows where it stopped, and reconciles when it does not or the journal no longer
   * holds that point (410).
   */
  private requestResync(reason: string): void {
    if (this.resumeAfter === undefined && this.state.lastSequence === undefined) {
      this.requestReconcile(reason);
      return;
    }
    if (this.closed || this.catchUpQueued || this.reconcileQueued) return;
    this.catchUpQueued = true;
    this.queue.push({ kind: 'catch-up', reason });
  }

  private requestReconcile(reason: string): void {
    if (this.closed || this.reconcileQueued) return;
    this.reconcileQueued = true;
    this.queue.push({ kind: 'reconcile', reason });
  }

  /** The reconcile asked for by stale or failed events, once the queue has run dry. */
  private wantedReconcile(): Task | undefined {
    if (!this.reconcileWanted || this.closed) return undefined;
    this.reconcileWanted = false;
    this.reconcileQueued = true;
    return { kind: 'reconcile', reason: 'stale or failed events' };
  }

  private async runTask(task: Task): Promise<void> {
    if (task.kind === 'event') await this.processEvent(task.event);
    else if (task.kind === 'catch-up') await this.runCatchUp(task.reason);
    else await this.runReconcile(task.reason);
    await this.saveState(this.queue.length === 0);
  }

  private async processEvent(event: ReceivedEvent): Promise<void> {
    const { state, log } = this.deps;
    if (state.seen(event.id)) {
      this.stats.events.duplicate++;
      log.debug({ id: event.id, type: event.type }, 'duplicate event dropped');
      return;
    }
    const where = { id: event.id, type: event.type, album: event.data.album, image: event.data.image, previousName: event.data.previousName };
    let outcome: Outcome | 'deferred' | 'failed';
    if (this.serviceAway) {
      outcome = 'deferred';
    } else {
      try {
        outcome = await applyEvent(this.deps, event);
      } catch (err) {
        if (this.closed) return; // aborted: not processed, the next start-up reconcile covers it
        outcome = this.onActionError(err, where);
      }
    }
    this.stats.events[outcome]++;
    if (outcome === 'downloaded') this.stats.downloads++;
    if (outcome === 'stale') this.reconcileWanted = true;
    if (outcome === 'applied' || outcome === 'downloaded') log.info({ ...where, outcome }, 'event applied');
    else log.debug({ ...where, outcome }, 'event not applied');
    state.remember(event.id);
    const seq = event.sequence === undefined ? NaN : Number(event.sequence);
    if (Number.isSafeInteger(seq)) state.processedSequence(seq);
  }

  /** Replays the events after the cursor through the usual path (duplicates dropped by id). */
  private async runCatchUp(reason: string): Promise<void> {
    this.catchUpQueued = false;
    const from = this.resumeAfter ?? this.state.lastSequence;
    if (from === undefined) return this.runReconcile(reason);
    const { log } = this.deps;
    let cursor = from;
    let replayed = 0;
    try {
      for (let pages = 0; pages < REPLAY_MAX_PAGES; pages += 1) {
        const page = await this.api.listEvents({ after: cursor, limit: REPLAY_PAGE, signal: this.abort.signal });
        this.serviceAway = false;
        for (const event of page.events) await this.processEvent(event as unknown as ReceivedEvent);
        replayed += page.events.length;
        const next = Number(page.next);
        if (next === cursor) break;
        cursor = next;
        if (pages === REPLAY_MAX_PAGES - 1) throw new Error(`more than ${REPLAY_MAX_PAGES * REPLAY_PAGE} events to replay`);
      }
    } catch (err) {
      if (this.closed) return;
      const status = err instanceof ImageStoreError ? err.status : undefined;
      // 410: the journal no longer reaches back there; 404: a service without replay. Either way, a reconcile.
      log.warn({ reason, from, err: errorText(err), status }, 'catch-up by replay not possible; reconciling instead');
      this.resumeAfter = undefined;
      await this.runReconcile(`${reason} (replay not possible)`);
      return;
    }
    this.resumeAfter = undefined;
    this.stats.catchUps++;
    this.stats.replayed += replayed;
    log.info({ reason, from, replayed }, 'caught up by replay');
  }

  private onActionError(err: unknown, where: Record<string, unknown>): 'ignored' | 'deferred' | 'failed' {
    const { log } = this.deps;
    if (err instanceof UnsafeNameError || err instanceof InvalidEventError) {
      log.warn({ ...where, reason: err.message }, 'event refused');
      return 'ignored';
    }
    if (isUnreachable(err)) {
      log.warn({ ...where, err: errorText(err) }, 'service unreachable; events wait for a reconcile');
      this.serviceAway = true;
      this.scheduleReconcileRetry();
      return 'deferred';
    }
    log.warn({ ...where, err: errorText(err) }, 'event failed; a reconcile will follow');
    this.reconcileWanted = true;
    return 'failed';
  }

  private async runReconcile(reason: string): Promise<void> {
    this.reconcileQueued = false;
    const { log } = this.deps;
    try {
      // Every event up to the journal's head is reflected in what the reconcile reads next: a later catch-up starts there.
      const head = await this.api.listEvents({ limit: 1, signal: this.abort.signal }).then((p) => Number(p.head), () => NaN);
      const report = await reconcile({ ...this.deps, checkpoint: () => this.saveState(false) });
      if (Number.isSafeInteger(head)) this.deps.state.processedSequence(head);
      this.stats.reconciles++;
      this.stats.downloads += report.downloaded;
      this.serviceAway = false;
      this.resumeAfter = undefined;
      this.retryDelayMs = this.reconcileRetry.firstDelayMs;
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      log.info({ reason, ...report }, 'reconciled');
    } catch (err) {
      if (this.closed) return;
      this.stats.reconcileFailures++;
      if (isUnreachable(err)) this.serviceAway = true;
      log.warn({ reason, err: errorText(err), retryInMs: this.retryDelayMs }, 'reconcile failed; will retry');
      this.scheduleReconcileRetry();
    }
  }

  private scheduleReconcileRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.requestReconcile('retry');
    }, this.retryDelayMs);
    this.retryTimer.unref();
    this.retryDelayMs = Math.min(this.retryDelayMs * 2, this.reconcileRetry.maxDelayMs);
  }

  /** Saves the state when it changed: always with `force`, else at most every STATE_SAVE_INTERVAL_MS. */
  private async saveState(force: boolean): Promise<void> {
    if (!this.state.dirty || (!force && Date.now() - this.lastSave < STATE_SAVE_INTERVAL_MS)) return;
    this.lastSave = Date.now();
    try {
      await this.state.save();
    } catch (err) {
      this.deps.log.error({ err: (err as Error).message }, 'could not save the mirror state');
    }
  }
}

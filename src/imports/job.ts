import type { ImportCounts } from '../contract/events.js';
import type { ImportItem, ImportJob, ImportJobSummary, ImportJobView, ItemState, JobState } from '../contract/types.js';
import { DEFAULT_ITEMS_PAGE } from '../contract/schemas.js';

export { DEFAULT_ITEMS_PAGE };
export type { ImportItem, ImportJob, ImportJobSummary, ImportJobView, ItemState, JobState } from '../contract/types.js';

/** Which items a view shows. */
export interface ItemsPage {
  offset?: number;
  limit?: number;
}

/** Items by state. */
export function countItems(items: readonly ImportItem[]): ImportCounts {
  const counts: ImportCounts = { queued: 0, downloading: 0, stored: 0, failed: 0, cancelled: 0 };
  for (const item of items) counts[item.state] += 1;
  return counts;
}

/** The job's state from its item counts: queued until an item starts, then running until every item has finished. */
export function jobStateOf(state: JobState, counts: ImportCounts, total: number): JobState {
  if (state === 'cancelled') return 'cancelled';
  if (counts.queued + counts.downloading > 0) return state === 'queued' && counts.queued === total ? 'queued' : 'running';
  return counts.stored === 0 && counts.failed > 0 ? 'failed' : 'done';
}

/**
 * A job in memory: the stored job plus what is derived from it and kept up to
 * date on every change (counts, bytes, the next queued item), so that no
 * change, summary or scheduling decision walks all items: a job may hold
 * IMPORT_MAX_URLS (up to 100,000) URLs.
 */
export class TrackedJob {
  readonly counts: ImportCounts;
  /** Aborts the job's downloads (cancel, shutdown). */
  readonly controller = new AbortController();
  /** Downloads of this job in flight. */
  active = 0;
  /** When the scheduler last started one of its downloads (a tick count). */
  lastServed = 0;
  private totalBytes = 0;
  /** Every queued item before this index is in `retries` or waiting for its retry delay. */
  private cursor = 0;
  /** Items whose retry delay has passed, first to be taken. */
  private readonly retries: number[] = [];

  constructor(readonly job: ImportJob) {
    this.counts = countItems(job.items);
    for (const item of job.items) this.totalBytes += item.bytes;
  }

  get id(): string {
    return this.job.id;
  }

  get state(): JobState {
    return this.job.state;
  }

  /** Neither running nor waiting: done, failed or cancelled. */
  get finished(): boolean {
    return this.job.state === 'done' || this.job.state === 'failed' || this.job.state === 'cancelled';
  }

  item(index: number): ImportItem {
    return this.job.items[index];
  }

  /** Changes an item's state, and the job's state with it. */
  setState(index: number, state: ItemState): void {
    this.move(index, state);
    this.touch();
  }

  /** Bytes of an item's current attempt. */
  setBytes(index: number, bytes: number): void {
    const item = this.job.items[index];
    this.totalBytes += bytes - item.bytes;
    item.bytes = bytes;
  }

  /** The next queued item in URL order, now `downloading`; undefined when none is queued. */
  takeQueued(): number | undefined {
    if (this.job.state === 'cancelled' || this.counts.queued === 0) return undefined;
    const { items } = this.job;
    let index = this.retries.shift();
    while (index !== undefined && items[index].state !== 'queued') index = this.retries.shift();
    if (index === undefined) {
      while (this.cursor < items.length && items[this.cursor].state !== 'queued') this.cursor += 1;
      if (this.cursor === items.length) return undefined; // every queued item waits for its retry
      index = this.cursor++;
    }
    this.setState(index, 'downloading');
    return index;
  }

  /** Item `index` (queued) can be taken again after `delayMs`; then `ready` is called. Cancel and shutdown drop the wait. */
  retryAfter(index: number, delayMs: number, ready: () => void): void {
    const { signal } = this.controller;
    if (signal.aborted) return;
    const drop = () => clearTimeout(timer);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', drop);
      this.retries.push(index);
      ready();
    }, delayMs);
    signal.addEventListener('abort', drop, { once: true });
  }

  /** Items that were downloading when the service stopped are queued again (after a restart). */
  requeueInterrupted(): void {
    this.job.items.forEach((item, i) => item.state === 'downloading' && this.move(i, 'queued'));
    this.cursor = 0;
    this.touch();
  }

  /** Cancels the unfinished items and the job. */
  cancel(): void {
    this.job.items.forEach((item, i) => (item.state === 'queued' || item.state === 'downloading') && this.move(i, 'cancelled'));
    this.job.state = 'cancelled';
    this.touch();
    this.controller.abort();
  }

  /** The job without its items. */
  summary(): ImportJobSummary {
    const { items, ...rest } = this.job;
    return { ...rest, total: items.length, bytes: this.totalBytes, counts: { ...this.counts } };
  }

  /** The summary with items `offset` to `offset + limit - 1` (copies). */
  view({ offset = 0, limit = DEFAULT_ITEMS_PAGE }: ItemsPage = {}): ImportJobView {
    const items = this.job.items.slice(offset, offset + limit).map((item) => ({ ...item, ...(item.image ? { image: { ...item.image } } : {}) }));
    const next = Math.min(offset, this.job.items.length) + items.length;
    return { ...this.summary(), items, ...(next < this.job.items.length ? { nextOffset: next } : {}) };
  }

  private move(index: number, state: ItemState): void {
    const item = this.job.items[index];
    this.counts[item.state] -= 1;
    this.counts[state] += 1;
    item.state = state;
  }

  private touch(): void {
    this.job.state = jobStateOf(this.job.state, this.counts, this.job.items.length);
    this.job.updatedAt = new Date().toISOString();
  }
}

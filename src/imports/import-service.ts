import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { AlbumService } from '../services/album-service.js';
import { checkNewName } from '../albums/names.js';
import { describeFile } from '../albums/image-meta.js';
import { AppError, ConflictError, InsufficientStorageError, NotFoundError, ValidationError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EventInput } from '../notifier/events.js';
import type { Notifier } from '../notifier/types.js';
import { download, DownloadError } from './downloader.js';
import { TrackedJob, type ImportJobSummary, type ImportJobView, type ItemsPage } from './job.js';
import { KEPT_FINISHED_JOBS, type JobStore } from './job-store.js';

export interface ImportOptions {
  stagingDir: string;
  /** Downloads at once, over all jobs. */
  concurrency: number;
  timeoutMs: number;
  /** Retries after the first attempt, for network errors and 5xx answers. */
  retries: number;
  retryBaseDelayMs: number;
  maxBytes: number;
  maxUrls: number;
  /** Hosts exempt from the SSRF guard (e.g. 127.0.0.1 in tests). */
  allowHosts: ReadonlySet<string>;
}

/**
 * Import jobs: a list of URLs downloaded in the background (bounded
 * concurrency over all jobs, timeouts, retries with exponential backoff) and
 * stored through the album service, so they get the same validation, limits,
 * durability and events as uploads. Jobs are on disk: after a restart,
 * unfinished items resume. Progress is published as imagestore.import.* events.
 *
 * Fairness: a free download slot goes to the job with the fewest downloads in
 * flight (the one served longest ago among equals), so a job created behind a
 * big or slow one starts as soon as any download ends, and the slots are then
 * shared between the jobs, instead of waiting for every earlier URL.
 */
export class ImportService {
  private readonly jobs = new Map<string, TrackedJob>();
  /** Jobs that may have queued items. */
  private readonly waiting = new Set<TrackedJob>();
  private readonly running = new Set<Promise<void>>();
  private active = 0;
  private ticks = 0;
  private closed = false;

  constructor(
    private readonly albums: AlbumService,
    private readonly store: JobStore,
    private readonly notifier: Notifier,
    private readonly options: ImportOptions,
    private readonly log: Logger,
  ) {}

  /** Loads the jobs on disk and resumes the unfinished ones. */
  async start(): Promise<void> {
    for (const stored of await this.store.loadAll()) {
      const job = new TrackedJob(stored);
      this.jobs.set(job.id, job);
      if (job.state === 'cancelled' || job.counts.queued + job.counts.downloading === 0) continue;
      job.requeueInterrupted();
      this.waiting.add(job);
      this.log.info({ jobId: job.id, queued: job.counts.queued }, 'resuming import job');
    }
    this.pump();
  }

  /**
   * Creates a job. URLs must be absolute http(s) URLs; duplicates are imported once.
   * @throws {NotFoundError} unknown album; {ValidationError} bad list
   */
  async create(album: string, urls: string[], reqId?: string): Promise<ImportJobView> {
    await this.albums.requireAlbum(album);
    if (urls.length === 0 || urls.length > this.options.maxUrls) throw new ValidationError(`urls: expected 1 to ${this.options.maxUrls} URLs, got ${urls.length}`);
    const unique = new Set<string>();
    urls.forEach((raw, i) => {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new ValidationError(`urls.${i}: not an absolute URL: ${JSON.stringify(raw.slice(0, 200))}`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ValidationError(`urls.${i}: only http and https URLs can be imported`);
      unique.add(url.href);
    });
    const now = new Date().toISOString();
    const job = new TrackedJob({
      id: `imp_${randomBytes(9).toString('base64url')}`, album, state: 'queued', createdAt: now, updatedAt: now,
      items: [...unique].map((url) => ({ url, state: 'queued', bytes: 0, attempts: 0 })),
      duplicatesIgnored: urls.length - unique.size,
    });
    await this.notifier.change(
      async () => {
        await this.store.create(job.job);
        this.jobs.set(job.id, job);
      },
      () => ({ type: 'imagestore.import.created', album, jobId: job.id, counts: { ...job.counts } }),
      { reqId },
    );
    this.waiting.add(job);
    this.pump();
    void this.pruneFinished();
    return job.view();
  }

  /** A job with one page of its items (the first DEFAULT_ITEMS_PAGE by default). @throws {NotFoundError} */
  get(id: string, page?: ItemsPage): ImportJobView {
    return this.find(id).view(page);
  }

  /** Most recent first, without their items. */
  list(limit = 100): ImportJobSummary[] {
    return [...this.jobs.values()].sort((a, b) => b.job.createdAt.localeCompare(a.job.createdAt)).slice(0, limit).map((j) => j.summary());
  }

  /** Cancels a job: items not finished are cancelled, downloads in flight aborted. */
  async cancel(id: string, reqId?: string): Promise<ImportJobView> {
    const job = this.find(id);
    if (job.finished) return job.view();
    await this.notifier.change(
      async () => {
        job.cancel();
        this.waiting.delete(job);
        await this.save(job, () => this.store.compact(job.job));
      },
      () => ({ type: 'imagestore.import.cancelled', album: job.job.album, jobId: job.id, counts: { ...job.counts } }),
      { reqId },
    );
    return job.view();
  }

  /**
   * Stops starting downloads, aborts those in flight and waits until they have
   * settled and saved their jobs (jobs resume on the next start): nothing writes
   * to the data dir after this.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.jobs.values()) job.controller.abort();
    await Promise.allSettled([...this.running]);
  }

  private find(id: string): TrackedJob {
    const job = this.jobs.get(id);
    if (!job) throw new NotFoundError(`no import job ${id}`);
    return job;
  }

  /** Starts downloads while slots are free, each for the waiting job with the fewest in flight. */
  private pump(): void {
    while (!this.closed && this.active < this.options.concurrency) {
      const job = this.nextJob();
      if (!job) return;
      const index = job.takeQueued();
      if (index === undefined) {
        this.waiting.delete(job);
        continue;
      }
      job.active += 1;
      job.lastServed = ++this.ticks;
      this.active += 1;
      const running: Promise<void> = this.run(job, index)
        .catch((err) => this.log.error({ err, jobId: job.id }, 'import item failed unexpectedly'))
        .finally(() => {
          this.running.delete(running);
          this.active -= 1;
          job.active -= 1;
          this.pump();
        });
      this.running.add(running);
    }
  }

  /** The waiting job with the fewest downloads in flight; among equals, the one served longest ago. */
  private nextJob(): TrackedJob | undefined {
    let best: TrackedJob | undefined;
    for (const job of this.waiting) {
      if (!best || job.active < best.active || (job.active === best.active && job.lastServed < best.lastServed)) best = job;
    }
    return best;
  }

  /**
   * One attempt at item `index`, which takeQueued made `downloading`. A
   * retryable failure puts the item back in the queue after its backoff delay
   * instead of sleeping in the slot: slots only ever hold downloads in progress.
   */
  private async run(job: TrackedJob, index: number): Promise<void> {
    const item = job.item(index);
    try {
      item.image = await this.importOne(job, index, job.controller.signal);
      delete item.error;
      job.setState(index, 'stored');
    } catch (err) {
      if (job.state === 'cancelled') return; // cancel() saved the item as cancelled
      const retryable = err instanceof DownloadError && err.retryable;
      if (this.closed || (retryable && item.attempts <= this.options.retries)) {
        job.setState(index, 'queued'); // resumes on the next start after a shutdown
        if (!this.closed) {
          const delayMs = this.options.retryBaseDelayMs * 2 ** (item.attempts - 1);
          this.log.info({ jobId: job.id, url: item.url, attempt: item.attempts, delayMs, err: (err as Error).message }, 'import download failed; retrying');
          job.retryAfter(index, delayMs, () => {
            this.waiting.add(job);
            this.pump();
          });
        }
        await this.save(job, () => this.store.append(job.job, index));
        return;
      }
      item.error = (err as Error).message;
      job.setState(index, 'failed');
    }
    await this.finishItem(job, index);
  }

  /** Downloads the item's URL, then stores it under a free name derived from the URL. */
  private async importOne(job: TrackedJob, index: number, signal: AbortSignal): Promise<{ name: string; id: string }> {
    const { options } = this;
    const item = job.item(index);
    item.attempts += 1;
    const got = await download(new URL(item.url), {
      stagingDir: options.stagingDir, maxBytes: options.maxBytes, timeoutMs: options.timeoutMs, allowHosts: options.allowHosts, signal,
      onBytes: (bytes) => job.setBytes(index, bytes),
    });
    job.setBytes(index, got.bytes);
    try {
      return await this.storeFile(job.job.album, got.file, nameFromUrl(got.finalUrl, index));
    } finally {
      await fs.rm(got.file, { force: true });
    }
  }

  /**
   * Stores a downloaded file. A taken name gets a numbered suffix, unless the
   * image there has the same bytes (a resumed item already stored): then it is that image.
   */
  private async storeFile(album: string, file: string, name: string): Promise<{ name: string; id: string }> {
    const { sha256, size } = await describeFile(file);
    for (let n = 0; n < 50; n++) {
      const candidate = n === 0 ? name : withSuffix(name, n);
      try {
        const image = await this.albums.addImage(album, candidate, file, {}, { size, sha256 });
        return { name: image.name, id: image.id };
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err instanceof AppError ? new Error(err.message) : err;
        const existing = await this.albums.imageInfo(album, candidate).catch(() => undefined);
        if (existing?.sha256 === sha256) return { name: existing.name, id: existing.id };
      }
    }
    throw new Error(`no free name for ${name} in album ${album}`);
  }

  /** Saves the item's change (the whole job once it has ended), then publishes the progress. */
  private async finishItem(job: TrackedJob, index: number): Promise<void> {
    const ended = job.state === 'done' || job.state === 'failed';
    await this.save(job, () => (ended ? this.store.compact(job.job) : this.store.append(job.job, index)));
    const item = job.item(index);
    const counts = { ...job.counts };
    const { album } = job.job;
    await this.announce({
      type: 'imagestore.import.progress', album, jobId: job.id, url: item.url, state: item.state,
      image: item.image?.name, id: item.image?.id, error: item.error, counts,
    });
    if (ended) {
      this.waiting.delete(job);
      await this.announce({ type: job.state === 'done' ? 'imagestore.import.completed' : 'imagestore.import.failed', album, jobId: job.id, counts });
    }
  }

  /** Runs a store write; a failure is logged, not thrown (the import goes on; a restart redoes what was lost). */
  private async save(job: TrackedJob, write: () => Promise<void>): Promise<void> {
    await write().catch((err) => this.log.error({ err, jobId: job.id }, 'could not save import job'));
  }

  /** Progress events follow the job file (the record of truth); on a full disk they are refused and logged. */
  private async announce(input: EventInput): Promise<void> {
    await this.notifier.publish(input, { durable: true }).catch((err: unknown) => {
      if (!(err instanceof InsufficientStorageError)) throw err;
      this.log.warn({ type: input.type, album: input.album }, 'import event not journaled: the disk is full');
    });
  }

  private async pruneFinished(): Promise<void> {
    const finished = [...this.jobs.values()].filter((j) => j.finished).sort((a, b) => b.job.createdAt.localeCompare(a.job.createdAt));
    for (const job of finished.slice(KEPT_FINISHED_JOBS)) {
      this.jobs.delete(job.id);
      await this.store.remove(job.id);
    }
  }
}

/** The image name from the URL's last path segment; `image-<n>` when there is none usable. */
export function nameFromUrl(url: URL, index: number): string {
  let last = url.pathname.split('/').filter(Boolean).pop() ?? '';
  try {
    last = decodeURIComponent(last);
  } catch {
    // keep it encoded
  }
  try {
    return checkNewName('image', last);
  } catch {
    return `image-${index + 1}`;
  }
}

function withSuffix(name: string, n: number): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}-${n}${name.slice(dot)}` : `${name}-${n}`;
}

import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { AlbumService } from '../albums/album-service.js';
import { checkName } from '../albums/names.js';
import { describeFile } from '../albums/image-meta.js';
import { AppError, ConflictError, NotFoundError, ValidationError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { EventInput } from '../notifier/events.js';
import type { Notifier } from '../notifier/types.js';
import { download, DownloadError } from './downloader.js';
import { countItems, jobStateOf, jobView, type ImportItem, type ImportJob } from './job.js';
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

const FINISHED = new Set(['stored', 'failed', 'cancelled']);

/**
 * Import jobs: a list of URLs downloaded in the background (bounded
 * concurrency over all jobs, timeouts, retries with exponential backoff) and
 * stored through the album service, so they get the same validation, limits,
 * durability and events as uploads. Jobs are on disk: after a restart,
 * unfinished items resume. Progress is published as imagestore.import.* events.
 */
export class ImportService {
  private readonly jobs = new Map<string, ImportJob>();
  private readonly queue: Array<{ job: ImportJob; item: ImportItem }> = [];
  private readonly controllers = new Map<string, AbortController>();
  private readonly saves = new Map<string, Promise<void>>();
  private readonly running = new Set<Promise<void>>();
  private active = 0;
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
    for (const job of await this.store.loadAll()) {
      this.jobs.set(job.id, job);
      if (job.state === 'cancelled' || !job.items.some((i) => !FINISHED.has(i.state))) continue;
      for (const item of job.items) {
        if (item.state === 'downloading') item.state = 'queued';
        if (item.state === 'queued') this.queue.push({ job, item });
      }
      this.log.info({ jobId: job.id, queued: countItems(job).queued }, 'resuming import job');
    }
    this.pump();
  }

  /**
   * Creates a job. URLs must be absolute http(s) URLs; duplicates are imported once.
   * @throws {NotFoundError} unknown album; {ValidationError} bad list
   */
  async create(album: string, urls: string[], reqId?: string) {
    await this.albums.listImages(album, { limit: 1 }, false); // 404 for an unknown album
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
    const job: ImportJob = {
      id: `imp_${randomBytes(9).toString('base64url')}`, album, state: 'queued', createdAt: now, updatedAt: now,
      items: [...unique].map((url) => ({ url, state: 'queued', bytes: 0, attempts: 0 })),
      duplicatesIgnored: urls.length - unique.size,
    };
    await this.store.save(job, true);
    this.jobs.set(job.id, job);
    await this.announce({ type: 'imagestore.import.created', album, jobId: job.id, counts: countItems(job) }, reqId);
    for (const item of job.items) this.queue.push({ job, item });
    this.pump();
    void this.pruneFinished();
    return jobView(job);
  }

  get(id: string) {
    const job = this.jobs.get(id);
    if (!job) throw new NotFoundError(`no import job ${id}`);
    return jobView(job);
  }

  /** Most recent first. */
  list(limit = 100) {
    return [...this.jobs.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt)).slice(0, limit).map(jobView);
  }

  /** Cancels a job: items not finished are cancelled, downloads in flight aborted. */
  async cancel(id: string, reqId?: string) {
    const job = this.jobs.get(id);
    if (!job) throw new NotFoundError(`no import job ${id}`);
    if (job.state === 'cancelled' || job.state === 'done' || job.state === 'failed') return jobView(job);
    for (const item of job.items) if (!FINISHED.has(item.state)) item.state = 'cancelled';
    job.state = 'cancelled';
    this.controllers.get(id)?.abort();
    await this.persist(job);
    await this.announce({ type: 'imagestore.import.cancelled', album: job.album, jobId: job.id, counts: countItems(job) }, reqId);
    return jobView(job);
  }

  /**
   * Stops starting downloads, aborts those in flight and waits until they have
   * settled and saved their jobs (jobs resume on the next start): nothing writes
   * to the data dir after this.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const controller of this.controllers.values()) controller.abort();
    await Promise.allSettled([...this.running]);
  }

  private pump(): void {
    while (!this.closed && this.active < this.options.concurrency && this.queue.length > 0) {
      const next = this.queue.shift()!;
      if (next.item.state !== 'queued' || next.job.state === 'cancelled') continue;
      this.active += 1;
      const running: Promise<void> = this.run(next.job, next.item)
        .catch((err) => this.log.error({ err, jobId: next.job.id }, 'import item failed unexpectedly'))
        .finally(() => {
        this.running.delete(running);
        this.active -= 1;
        this.pump();
      });
      this.running.add(running);
    }
  }

  private async run(job: ImportJob, item: ImportItem): Promise<void> {
    const controller = this.controllers.get(job.id) ?? new AbortController();
    this.controllers.set(job.id, controller);
    item.state = 'downloading';
    job.state = jobStateOf(job);
    await this.persist(job);
    try {
      const image = await this.importOne(job, item, controller.signal);
      item.image = image;
      item.state = 'stored';
      delete item.error;
    } catch (err) {
      if (job.state === 'cancelled' || this.closed) {
        if (this.closed && job.state !== 'cancelled') item.state = 'queued'; // resumes on the next start
        await this.persist(job);
        return;
      }
      item.state = 'failed';
      item.error = (err as Error).message;
    }
    await this.finishItem(job, item);
  }

  /** Downloads with retries, then stores under a free name derived from the URL. */
  private async importOne(job: ImportJob, item: ImportItem, signal: AbortSignal): Promise<{ name: string; id: string }> {
    const { options } = this;
    for (;;) {
      item.attempts += 1;
      try {
        const got = await download(new URL(item.url), {
          stagingDir: options.stagingDir, maxBytes: options.maxBytes, timeoutMs: options.timeoutMs, allowHosts: options.allowHosts, signal,
          onBytes: (bytes) => (item.bytes = bytes),
        });
        item.bytes = got.bytes;
        try {
          return await this.storeFile(job, got.file, nameFromUrl(got.finalUrl, job.items.indexOf(item)));
        } finally {
          await fs.rm(got.file, { force: true });
        }
      } catch (err) {
        const retryable = err instanceof DownloadError && err.retryable;
        if (!retryable || item.attempts > options.retries || signal.aborted) throw err;
        const delay = options.retryBaseDelayMs * 2 ** (item.attempts - 1);
        this.log.info({ jobId: job.id, url: item.url, attempt: item.attempts, delayMs: delay, err: (err as Error).message }, 'import download failed; retrying');
        await sleep(delay, undefined, { signal }); // a cancel or a shutdown ends the wait
      }
    }
  }

  /**
   * Stores a downloaded file. A taken name gets a numbered suffix, unless the
   * image there has the same bytes (a resumed item already stored): then it is that image.
   */
  private async storeFile(job: ImportJob, file: string, name: string): Promise<{ name: string; id: string }> {
    const { sha256, size } = await describeFile(file);
    for (let n = 0; n < 50; n++) {
      const candidate = n === 0 ? name : withSuffix(name, n);
      try {
        const image = await this.albums.addImage(job.album, candidate, file, {}, { size, sha256 });
        return { name: image.name, id: image.id };
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err instanceof AppError ? new Error(err.message) : err;
        const existing = await this.albums.imageInfo(job.album, candidate).catch(() => undefined);
        if (existing?.sha256 === sha256) return { name: existing.name, id: existing.id };
      }
    }
    throw new Error(`no free name for ${name} in album ${job.album}`);
  }

  private async finishItem(job: ImportJob, item: ImportItem): Promise<void> {
    job.state = jobStateOf(job);
    await this.persist(job);
    const counts = countItems(job);
    await this.announce({
      type: 'imagestore.import.progress', album: job.album, jobId: job.id, url: item.url, state: item.state,
      image: item.image?.name, id: item.image?.id, error: item.error, counts,
    });
    if (job.state === 'done' || job.state === 'failed') {
      this.controllers.delete(job.id);
      await this.announce({ type: job.state === 'done' ? 'imagestore.import.completed' : 'imagestore.import.failed', album: job.album, jobId: job.id, counts });
    }
  }

  /** Saves a job; saves of one job are applied in order. */
  private async persist(job: ImportJob): Promise<void> {
    job.updatedAt = new Date().toISOString();
    const snapshot = { ...job, items: job.items.map((i) => ({ ...i })) };
    const previous = this.saves.get(job.id) ?? Promise.resolve();
    const next = previous.then(() => this.store.save(snapshot)).catch((err) => this.log.error({ err, jobId: job.id }, 'could not save import job'));
    this.saves.set(job.id, next);
    await next;
    if (this.saves.get(job.id) === next) this.saves.delete(job.id);
  }

  private async announce(input: EventInput, reqId?: string): Promise<void> {
    await this.notifier.publish(input, { reqId, durable: true });
  }

  private async pruneFinished(): Promise<void> {
    const finished = [...this.jobs.values()].filter((j) => j.state !== 'queued' && j.state !== 'running').sort((a, b) => b.createdAt.localeCompare(a.createdAt));
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
    return checkName('image', last);
  } catch {
    return `image-${index + 1}`;
  }
}

function withSuffix(name: string, n: number): string {
  const dot = name.lastIndexOf('.');
  return dot > 0 ? `${name.slice(0, dot)}-${n}${name.slice(dot)}` : `${name}-${n}`;
}

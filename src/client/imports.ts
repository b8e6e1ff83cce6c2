import { albumPath } from './albums.js';
import { ImageStoreError } from './errors.js';
import type { HttpClient } from './http.js';
import type { ImportJob, ImportJobState, ImportJobSummary } from './types.js';

/** Job states after which nothing changes any more. */
export const FINAL_JOB_STATES: readonly ImportJobState[] = ['done', 'failed', 'cancelled'];

/** Options of waitForJob. */
export interface WaitForJobOptions {
  /** Time between two polls; default 500 ms. */
  intervalMs?: number;
  /** Longest wait; default 10 minutes. */
  timeoutMs?: number;
  /** Called with the job (its counts, without items) after each poll that shows a change (and after the first). */
  onProgress?: (job: ImportJobSummary) => void;
  signal?: AbortSignal;
}

/** Items per request when getImport reads a job's pages (the service's largest page). */
const ITEMS_PAGE = 10_000;

/** POST /albums/{album}/imports: starts a job that downloads `urls` into the album (202); the job shows its first items. */
export async function createImport(http: HttpClient, album: string, urls: string[], signal?: AbortSignal): Promise<ImportJob> {
  const { job } = await http.json({ method: 'POST', path: `${albumPath(album)}/imports`, json: { urls }, signal }, 'ImportJobResponse');
  return withoutPaging(job);
}

/** GET /imports/{jobId}: the job with every item (read page after page; items may change between pages). */
export async function getImport(http: HttpClient, jobId: string, signal?: AbortSignal): Promise<ImportJob> {
  const job = await importPage(http, jobId, 0, ITEMS_PAGE, signal);
  for (let next = job.nextOffset; next !== undefined;) {
    const page = await importPage(http, jobId, next, ITEMS_PAGE, signal);
    job.items.push(...page.items);
    next = page.nextOffset;
  }
  return withoutPaging(job);
}

/** GET /imports: recent jobs, without their items. */
export async function listImports(http: HttpClient, signal?: AbortSignal): Promise<ImportJobSummary[]> {
  return (await http.json({ method: 'GET', path: '/api/v1/imports', signal }, 'ImportListResponse')).jobs;
}

/** DELETE /imports/{jobId}: cancels the job's unfinished items. */
export async function cancelImport(http: HttpClient, jobId: string, signal?: AbortSignal): Promise<ImportJob> {
  const { job } = await http.json({ method: 'DELETE', path: `/api/v1/imports/${encodeURIComponent(jobId)}`, signal }, 'ImportJobResponse');
  return withoutPaging(job);
}

/**
 * Polls a job until it is done, failed or cancelled, and returns it with every
 * item (a failed job is returned, not thrown: look at `state` and each item's
 * `error`). The polls read the job without its items, so they stay small
 * whatever the number of URLs.
 * @throws {ImageStoreError} `timeout` when the job is still running after `timeoutMs`, `aborted` on `signal`
 */
export async function waitForJob(http: HttpClient, jobId: string, options: WaitForJobOptions = {}): Promise<ImportJob> {
  const { intervalMs = 500, timeoutMs = 600_000, onProgress, signal } = options;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const { items: _none, nextOffset: _next, ...job } = await importPage(http, jobId, 0, 0, signal);
    const seen = JSON.stringify([job.state, job.updatedAt, job.counts]);
    if (seen !== last) onProgress?.(job);
    last = seen;
    if (FINAL_JOB_STATES.includes(job.state)) return getImport(http, jobId, signal);
    if (Date.now() + intervalMs > deadline) {
      throw new ImageStoreError({
        status: 0, code: 'timeout', method: 'GET', url: http.url(`/api/v1/imports/${encodeURIComponent(jobId)}`),
        message: `import job ${jobId} is still ${job.state} after ${timeoutMs} ms`,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    if (signal?.aborted) {
      throw new ImageStoreError({ status: 0, code: 'aborted', method: 'GET', url: http.url(`/api/v1/imports/${encodeURIComponent(jobId)}`), message: `waiting for import job ${jobId} aborted` });
    }
  }
}

/** One page of a job's items (limit 0: the job alone). */
function importPage(http: HttpClient, jobId: string, offset: number, limit: number, signal?: AbortSignal) {
  return http.json({ method: 'GET', path: `/api/v1/imports/${encodeURIComponent(jobId)}`, query: { offset, limit }, signal }, 'ImportJobObject');
}

function withoutPaging<T extends { nextOffset?: number }>(job: T): Omit<T, 'nextOffset'> {
  const { nextOffset: _ignored, ...rest } = job;
  return rest;
}

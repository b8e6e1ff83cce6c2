import { albumPath } from './albums.js';
import { ImageStoreError } from './errors.js';
import type { HttpClient } from './http.js';
import type { ImportJob, ImportJobState } from './types.js';

/** Job states after which nothing changes any more. */
export const FINAL_JOB_STATES: readonly ImportJobState[] = ['done', 'failed', 'cancelled'];

/** Options of waitForJob. */
export interface WaitForJobOptions {
  /** Time between two polls; default 500 ms. */
  intervalMs?: number;
  /** Longest wait; default 10 minutes. */
  timeoutMs?: number;
  /** Called with the job after each poll that shows a change (and after the first). */
  onProgress?: (job: ImportJob) => void;
  signal?: AbortSignal;
}

/** POST /albums/{album}/imports: starts a job that downloads `urls` into the album (202). */
export async function createImport(http: HttpClient, album: string, urls: string[], signal?: AbortSignal): Promise<ImportJob> {
  const body = await http.json({ method: 'POST', path: `${albumPath(album)}/imports`, json: { urls }, signal });
  return (body as { job: ImportJob }).job;
}

/** GET /imports/{jobId}. */
export function getImport(http: HttpClient, jobId: string, signal?: AbortSignal): Promise<ImportJob> {
  return http.json<ImportJob>({ method: 'GET', path: `/api/v1/imports/${encodeURIComponent(jobId)}`, signal });
}

/** GET /imports: recent jobs. */
export async function listImports(http: HttpClient, signal?: AbortSignal): Promise<ImportJob[]> {
  const body = await http.json({ method: 'GET', path: '/api/v1/imports', signal });
  return (body as { jobs: ImportJob[] }).jobs;
}

/** DELETE /imports/{jobId}: cancels the job's unfinished items. */
export async function cancelImport(http: HttpClient, jobId: string, signal?: AbortSignal): Promise<ImportJob> {
  const body = await http.json({ method: 'DELETE', path: `/api/v1/imports/${encodeURIComponent(jobId)}`, signal });
  return (body as { job: ImportJob }).job;
}

/**
 * Polls a job until it is done, failed or cancelled, and returns it (a failed
 * job is returned, not thrown: look at `state` and each item's `error`).
 * @throws {ImageStoreError} `timeout` when the job is still running after `timeoutMs`, `aborted` on `signal`
 */
export async function waitForJob(http: HttpClient, jobId: string, options: WaitForJobOptions = {}): Promise<ImportJob> {
  const { intervalMs = 500, timeoutMs = 600_000, onProgress, signal } = options;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const job = await getImport(http, jobId, signal);
    const seen = JSON.stringify([job.state, job.updatedAt, job.counts]);
    if (seen !== last) onProgress?.(job);
    last = seen;
    if (FINAL_JOB_STATES.includes(job.state)) return job;
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

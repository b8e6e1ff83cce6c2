import type { ImportCounts } from '../notifier/events.js';

export type ItemState = 'queued' | 'downloading' | 'stored' | 'failed' | 'cancelled';
export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** One URL of an import job. */
export interface ImportItem {
  url: string;
  state: ItemState;
  bytes: number;
  attempts: number;
  image?: { name: string; id: string };
  error?: string;
}

/** An import job as stored and as the API shows it. */
export interface ImportJob {
  id: string;
  album: string;
  state: JobState;
  createdAt: string;
  updatedAt: string;
  items: ImportItem[];
  /** URLs given more than once: each is imported once. */
  duplicatesIgnored: number;
}

/** Items by state. */
export function countItems(job: ImportJob): ImportCounts {
  const counts: ImportCounts = { queued: 0, downloading: 0, stored: 0, failed: 0, cancelled: 0 };
  for (const item of job.items) counts[item.state] += 1;
  return counts;
}

/** The job's state from its items: running until every item has finished. */
export function jobStateOf(job: ImportJob): JobState {
  if (job.state === 'cancelled') return 'cancelled';
  const counts = countItems(job);
  if (counts.queued + counts.downloading > 0) return counts.queued === job.items.length ? 'queued' : 'running';
  return counts.stored === 0 && counts.failed > 0 ? 'failed' : 'done';
}

/** The job with its counts, for API answers. */
export function jobView(job: ImportJob) {
  return { ...job, counts: countItems(job) };
}

import type { ImportCounts } from './events.js';

// Wire types that have no zod schema: the answers of the admin and import routes, as the client sees them.

/** One thing fsck found wrong, and whether it was repaired. */
export interface FsckProblem {
  kind:
    | 'temp-file' | 'trash' | 'stray-entry' | 'invalid-name' | 'album-without-metadata'
    | 'file-without-metadata' | 'metadata-without-file' | 'bad-metadata' | 'content-mismatch'
    | 'go-index-entry-missing' | 'change-not-redone' | 'journal-changes-to-redo'
    | 'journal-torn-record' | 'journal-corrupt-record' | 'journal-missing-records'
    // Buckets (albums/s3/s3-check.ts):
    | 'album-rename-unfinished' | 'object-metadata-missing' | 'id-entry-missing' | 'stale-id-entry'
    | 'content-entry-missing' | 'stale-content-entry';
  path: string;
  detail: string;
  repaired: boolean;
}

/** State of one URL of an import job. */
export type ItemState = 'queued' | 'downloading' | 'stored' | 'failed' | 'cancelled';
/** State of an import job. */
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

/** An import job as stored. */
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

/** A job without its items, as GET /imports lists it. */
export interface ImportJobSummary extends Omit<ImportJob, 'items'> {
  /** Number of URLs (items) of the job. */
  total: number;
  /** Bytes downloaded so far, over all items. */
  bytes: number;
  counts: ImportCounts;
}

/** A job with one page of its items, as GET /imports/{jobId} shows it. */
export interface ImportJobView extends ImportJobSummary {
  /** Items `offset` to `offset + limit - 1`. */
  items: ImportItem[];
  /** The offset of the next page, when more items follow. */
  nextOffset?: number;
}

/** When, with what and where a photo was taken, from its EXIF. Absent fields were not recorded. */
export interface CaptureMeta {
  /** `DateTimeOriginal`, ISO 8601: with its offset (`OffsetTimeOriginal`) when recorded, else local time without one. */
  capturedAt?: string;
  make?: string;
  model?: string;
  lens?: string;
  /** Seconds. */
  exposureTime?: number;
  fNumber?: number;
  iso?: number;
  /** Millimetres. */
  focalLength?: number;
  /** WGS 84 degrees (and metres): shown only to keys with read access, never written into a derivative. */
  gps?: { latitude: number; longitude: number; altitude?: number };
}

import type { z } from 'zod';
import type {
  AlbumListResponse, AlbumObject, AlbumResponse, DiffQuery, DiffResponse, ImageListResponse, ImageObject, ImageResponse, MessageResponse, TransformQuery,
  SignUrlBody, SimilarResponse, VersionResponse,
} from '../contract/schemas.js';
import type { FsckProblem, ImportJobSummary as JobSummary, ImportJobView, ItemState, JobState } from '../contract/types.js';

// Every type here comes from the wire contract the routes use too (src/contract), so client and server cannot drift apart.

/** An album, as the service returns it. */
export type Album = z.infer<typeof AlbumObject>;
/** A stored image's metadata (id, size, type, sha256, width, height, times, …). */
export type ImageInfo = z.infer<typeof ImageObject>;
/** GET /albums: names, plus `albums` with details, plus `nextCursor` when more pages follow. */
export type AlbumList = z.infer<typeof AlbumListResponse>;
/** GET /albums/{album}/images. */
export type ImageList = z.infer<typeof ImageListResponse>;
/** POST /albums and PATCH /albums/{album}. */
export type AlbumResult = z.infer<typeof AlbumResponse>;
/** Upload, rename and delete of an image. */
export type ImageResult = z.infer<typeof ImageResponse>;
/** An answer that only says what was done. */
export type MessageResult = z.infer<typeof MessageResponse>;

/**
 * Transform options of a download, typed from the service's TransformQuery:
 * `{ w: 320, format: 'webp', q: 80 }` becomes `?w=320&format=webp&q=80`.
 */
export type TransformOptions = z.infer<typeof TransformQuery>;
/** Options of similarImages: largest Hamming distance (0-16, default 8) and most images (default 20). */
export type SimilarOptions = { maxDistance?: number; limit?: number };
/** The near-duplicates of an image, nearest first. */
export type SimilarResult = z.infer<typeof SimilarResponse>;

/** Paging and detail options of the listings. */
export interface ListOptions {
  /** Page size (1-1000); every item when absent. */
  limit?: number;
  /** `nextCursor` of the previous page. */
  cursor?: string;
  /** Include the objects (`albums` / `images`) beside the names. */
  details?: boolean;
  signal?: AbortSignal;
}

/** POST /signed-urls body. */
export type SignUrlOptions = z.infer<typeof SignUrlBody>;
/** POST /signed-urls answer: a path that works without a key until `expires`. */
export interface SignedUrl {
  url: string;
  expires: string;
}

/** GET /admin/fsck answer. */
export interface FsckResult {
  albums: number;
  images: number;
  problems: FsckProblem[];
}

/** GET /readyz answer (200 or 503: both are answers, not errors). */
export interface Readiness {
  ready: boolean;
  status: string;
  checks: Record<string, string>;
  pendingEvents: number;
}

/** State of an import job. */
export type ImportJobState = JobState;
/** State of one URL of an import job. */
export type ImportItemState = ItemState;
/** An import job with its items (GET /imports/{jobId}, every page): the stored job plus its counts by state. */
export type ImportJob = Omit<ImportJobView, 'nextOffset'>;
/** An import job without its items, as GET /imports lists it and waitForJob reports progress. */
export type ImportJobSummary = JobSummary;
/** One URL of an import job: state, bytes, the stored image once `stored`, the error once `failed`. */
export type ImportItem = ImportJob['items'][number];

/** Options of the diff operations (DiffQuery without the image references and the output). */
export type DiffOptions = Omit<z.infer<typeof DiffQuery>, 'a' | 'b' | 'output'>;
/** A comparison: sizes, differing pixels, SSIM and the boxes of the differing regions. */
export type DiffResult = z.infer<typeof DiffResponse>;

/** GET /api/v1/version answer. */
export type ServiceVersion = z.infer<typeof VersionResponse>;

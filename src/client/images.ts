import { albumPath } from './albums.js';
import type { HttpClient, QueryValues, RequestSpec } from './http.js';
import { allPages, invalidListing } from './pages.js';
import type { ImageInfo, ImageList, ImageResult, ListOptions, SimilarOptions, SimilarResult, TransformOptions } from './types.js';
import { uploadBody, type UploadOptions, type UploadSource } from './upload-source.js';

/** `/api/v1/albums/{album}/images/{image}`, names percent-encoded. */
export function imagePath(album: string, image: string): string {
  return `${albumPath(album)}/images/${encodeURIComponent(image)}`;
}

/** Options of a download: a transform, plus HTTP conditions. */
export interface DownloadOptions extends TransformOptions {
  /** Bytes `start`..`end` inclusive (206); `end` defaults to the last byte. */
  range?: { start: number; end?: number };
  /** An ETag from an earlier download: a 304 answer (`notModified`) when unchanged. */
  ifNoneMatch?: string;
  /** `Accept` header, for `format: 'auto'`. */
  accept?: string;
  signal?: AbortSignal;
}

/** A download's answer; read the body once, with `bytes()` or `stream()`. */
export interface ImageDownload {
  status: number;
  /** True for a 304 answer to `ifNoneMatch` (no body). */
  notModified: boolean;
  contentType: string;
  /** Content-Length of this answer (the range's length for a 206). */
  size: number | undefined;
  etag: string | undefined;
  /** The answer itself, for headers not copied here. */
  response: Response;
  /** The whole body: a Buffer in Node, a Uint8Array in browsers. */
  bytes(): Promise<Uint8Array>;
  /** The body as a web stream (Node: `Readable.fromWeb(download.stream())`). */
  stream(): ReadableStream<Uint8Array>;
}

/** The query of a transform: `{ w: 64, grayscale: true }` → `w=64&grayscale=true`. */
export function transformQuery(options: TransformOptions): QueryValues {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as QueryValues;
}

/** GET /albums/{album}/images: one page of names (and objects with `details`). */
export function listImages(http: HttpClient, album: string, options: ListOptions = {}): Promise<ImageList> {
  const { limit, cursor, details, signal } = options;
  return http.json({ method: 'GET', path: `${albumPath(album)}/images`, query: { limit, cursor, details: details || undefined }, signal }, 'ImageListResponse');
}

/**
 * Every image of an album with its metadata, following the pages.
 * @param pageSize images per request, default 1000
 * @throws {ImageStoreError} `invalid_response` for a listing without its `images`, or one that pages in a circle
 */
export function listAllImages(http: HttpClient, album: string, pageSize = 1000, signal?: AbortSignal): Promise<ImageInfo[]> {
  const path = `${albumPath(album)}/images`;
  return allPages(http, path, async (cursor) => {
    const listing = await listImages(http, album, { limit: pageSize, cursor, details: true, signal });
    // Without the objects an empty album and a service that ignored `details` look alike: refuse the second.
    if (!Array.isArray(listing.images)) throw invalidListing(http, path, `the listing ${path} has no "images" (asked with details)`);
    return { items: listing.images, nextCursor: listing.nextCursor };
  });
}

/** POST /albums/{album}/images: uploads one image (never retried: POST). */
export async function uploadImage(http: HttpClient, album: string, source: UploadSource, options: UploadOptions = {}): Promise<ImageResult> {
  const upload = await uploadBody(source, options);
  return http.json({
    method: 'POST', path: `${albumPath(album)}/images`, body: upload.body, signal: options.signal,
    headers: upload.contentType ? { 'Content-Type': upload.contentType } : undefined,
  }, 'ImageResponse');
}

/** GET /albums/{album}/images/{image}: the image, or a transform of it. */
export function getImage(http: HttpClient, album: string, image: string, options: DownloadOptions = {}): Promise<ImageDownload> {
  return download(http, imagePath(album, image), options);
}

/**
 * GET /images/{id}[.ext]: an image by its stable id; an extension converts it
 * (`abc.webp` is `abc` with `format: 'webp'`).
 */
export function getImageById(http: HttpClient, idWithExtension: string, options: DownloadOptions = {}): Promise<ImageDownload> {
  return download(http, `/api/v1/images/${encodeURIComponent(idWithExtension)}`, options);
}

/** Options of readImage: those of a download, and which errors of the reader are worth another try. */
export interface ReadImageOptions extends DownloadOptions {
  /** True for an error of `read` after which the whole download is tried again (default: none but a body cut off by the network). */
  retryRead?: (err: unknown) => boolean;
}

/**
 * GET /albums/{album}/images/{image}, with the answer handed to `read`. Unlike getImage, the
 * exchange is retried as a whole, reading included, when the connection breaks mid-body (or
 * `retryRead` accepts `read`'s error), as far as the client's retries go.
 * @throws {ImageStoreError} status 404 when the image is not there
 */
export function readImage<T>(http: HttpClient, album: string, image: string, read: (download: ImageDownload) => Promise<T>, options: ReadImageOptions = {}): Promise<T> {
  const { retryRead, ...downloadOptions } = options;
  return http.exchange(downloadSpec(imagePath(album, image), downloadOptions), (res) => read(downloadOf(res)), retryRead);
}

/** GET /albums/{album}/images/{image}/metadata. */
export function getImageMetadata(http: HttpClient, album: string, image: string, signal?: AbortSignal): Promise<ImageInfo> {
  return http.json({ method: 'GET', path: `${imagePath(album, image)}/metadata`, signal }, 'ImageObject');
}

/** GET /images/{id}/similar: near-duplicates across the store, nearest first (filesystem store only: 501 on S3). */
export function similarImages(http: HttpClient, id: string, options: SimilarOptions = {}, signal?: AbortSignal): Promise<SimilarResult> {
  return http.json({ method: 'GET', path: `/api/v1/images/${encodeURIComponent(id)}/similar`, query: { maxDistance: options.maxDistance, limit: options.limit }, signal }, 'SimilarResponse');
}

/** PATCH /albums/{album}/images/{image}. */
export function renameImage(http: HttpClient, album: string, from: string, to: string, signal?: AbortSignal): Promise<ImageResult> {
  return http.json({ method: 'PATCH', path: imagePath(album, from), json: { imageName: to }, signal }, 'ImageResponse');
}

/** DELETE /albums/{album}/images/{image}. */
export function deleteImage(http: HttpClient, album: string, image: string, signal?: AbortSignal): Promise<ImageResult> {
  return http.json({ method: 'DELETE', path: imagePath(album, image), signal }, 'ImageResponse');
}

async function download(http: HttpClient, path: string, options: DownloadOptions): Promise<ImageDownload> {
  return downloadOf(await http.request(downloadSpec(path, options)));
}

function downloadSpec(path: string, options: DownloadOptions): RequestSpec {
  const { range, ifNoneMatch, accept, signal, ...transform } = options;
  const headers: Record<string, string> = {};
  if (range) headers.Range = `bytes=${range.start}-${range.end ?? ''}`;
  if (ifNoneMatch) {
    headers['If-None-Match'] = ifNoneMatch;
    // fetch adds `Cache-Control: no-cache` to conditional requests unless one is given, and the
    // service (koa's ctx.fresh, the `fresh` package) then ignores If-None-Match and answers 200.
    headers['Cache-Control'] = 'max-age=0';
  }
  if (accept) headers.Accept = accept;
  return { method: 'GET', path, query: transformQuery(transform), headers, signal, accept: [304] };
}

function downloadOf(res: Response): ImageDownload {
  const length = res.headers.get('content-length');
  return {
    status: res.status,
    notModified: res.status === 304,
    contentType: res.headers.get('content-type') ?? 'application/octet-stream',
    size: length === null ? undefined : Number(length),
    etag: res.headers.get('etag') ?? undefined,
    response: res,
    async bytes() {
      const buffer = await res.arrayBuffer();
      return typeof Buffer === 'function' ? Buffer.from(buffer) : new Uint8Array(buffer);
    },
    stream() {
      return res.body ?? new ReadableStream({ start: (c) => c.close() });
    },
  };
}

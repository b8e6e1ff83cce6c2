import * as albums from './albums.js';
import * as diff from './diff.js';
import { events, type EventStream, type EventsOptions } from './events.js';
import { HttpClient, type HttpOptions } from './http.js';
import * as images from './images.js';
import * as imports from './imports.js';
import * as service from './service.js';
import { listEvents, type EventPage, type ReplayOptions } from './replay.js';
import * as webhooks from './webhooks.js';
import type { SendResult, Webhook, WebhookDelivery, WebhookInput } from './webhooks.js';
import type {
  AlbumList, AlbumResult, DiffOptions, DiffResult, FsckResult, ImageInfo, ImageList, ImageResult, ImportJob, ImportJobSummary, ListOptions, MessageResult, Readiness,
  ServiceVersion, SignedUrl, SignUrlOptions, SimilarOptions, SimilarResult,
} from './types.js';
import type { UploadOptions, UploadSource } from './upload-source.js';

/** Options of the client: the HTTP settings, plus where the events are. */
export interface ClientOptions extends HttpOptions {
  /** The MQTT broker for events(); default `mqtt://{host of baseUrl}:1883`. */
  mqttUrl?: string;
}

/** The broker URL a service at `baseUrl` has by default: the same host, port 1883. */
export function defaultMqttUrl(baseUrl: string): string {
  return `mqtt://${new URL(baseUrl).hostname}:1883`;
}

/**
 * A typed client of every imagestore REST operation, plus events over MQTT.
 * Method names are the OpenAPI operationIds. Runs in Node 20+ and browsers
 * (fetch, FormData, Blob, URL); only uploads from a file path need Node.
 * Failures throw ImageStoreError; idempotent calls are retried (see HttpOptions).
 * @example
 * const store = new ImageStoreClient({ baseUrl: 'http://127.0.0.1:3333', apiKey: process.env.IMAGESTORE_KEY });
 * await store.createAlbum('holidays');
 * const { image } = await store.uploadImage('holidays', './beach.jpg');
 * const thumb = await store.downloadImage('holidays', image.name, { w: 320, format: 'webp' });
 */
export class ImageStoreClient {
  readonly http: HttpClient;
  readonly mqttUrl: string;

  /** @param options the service's base URL, or every option */
  constructor(options: string | ClientOptions) {
    const opts = typeof options === 'string' ? { baseUrl: options } : options;
    this.http = new HttpClient(opts);
    this.mqttUrl = opts.mqttUrl ?? defaultMqttUrl(opts.baseUrl);
  }

  /** One page of the event journal after a cursor (GET /events); 410 past the retention. */
  listEvents(options?: ReplayOptions): Promise<EventPage> {
    return listEvents(this.http, options);
  }

  /** Registers a webhook endpoint (admin); the secret is in this answer only. */
  createWebhook(input: WebhookInput & { url: string }, signal?: AbortSignal): Promise<{ webhook: Webhook; secret: string }> {
    return webhooks.createWebhook(this.http, input, signal);
  }

  listWebhooks(signal?: AbortSignal): Promise<Webhook[]> {
    return webhooks.listWebhooks(this.http, signal);
  }

  getWebhook(id: string, signal?: AbortSignal): Promise<Webhook> {
    return webhooks.getWebhook(this.http, id, signal);
  }

  updateWebhook(id: string, input: WebhookInput, signal?: AbortSignal): Promise<Webhook> {
    return webhooks.updateWebhook(this.http, id, input, signal);
  }

  deleteWebhook(id: string, signal?: AbortSignal): Promise<{ message: string }> {
    return webhooks.deleteWebhook(this.http, id, signal);
  }

  rotateWebhookSecret(id: string, signal?: AbortSignal): Promise<{ secret: string; previousValidUntil: string }> {
    return webhooks.rotateWebhookSecret(this.http, id, signal);
  }

  listWebhookDeliveries(id: string, signal?: AbortSignal): Promise<WebhookDelivery[]> {
    return webhooks.listWebhookDeliveries(this.http, id, signal);
  }

  pingWebhook(id: string, signal?: AbortSignal): Promise<SendResult> {
    return webhooks.pingWebhook(this.http, id, signal);
  }

  redeliverWebhookEvent(id: string, sequence: string, signal?: AbortSignal): Promise<SendResult> {
    return webhooks.redeliverWebhookEvent(this.http, id, sequence, signal);
  }

  /** One page of album names; `details` adds the album objects. */
  listAlbums(options?: ListOptions): Promise<AlbumList> {
    return albums.listAlbums(this.http, options);
  }

  /** Every album name, following the pages (`pageSize` names per request, default 1000). */
  listAllAlbums(pageSize?: number, signal?: AbortSignal): Promise<string[]> {
    return albums.listAllAlbums(this.http, pageSize, signal);
  }

  createAlbum(name: string, signal?: AbortSignal): Promise<AlbumResult> {
    return albums.createAlbum(this.http, name, signal);
  }

  renameAlbum(from: string, to: string, signal?: AbortSignal): Promise<AlbumResult> {
    return albums.renameAlbum(this.http, from, to, signal);
  }

  /** Deletes the album and its images (admin role when keys are configured). */
  deleteAlbum(name: string, signal?: AbortSignal): Promise<MessageResult> {
    return albums.deleteAlbum(this.http, name, signal);
  }

  /** One page of image names; `details` adds the metadata. */
  listImages(album: string, options?: ListOptions): Promise<ImageList> {
    return images.listImages(this.http, album, options);
  }

  /** Every image of the album with its metadata, following the pages. */
  listAllImages(album: string, pageSize?: number, signal?: AbortSignal): Promise<ImageInfo[]> {
    return images.listAllImages(this.http, album, pageSize, signal);
  }

  /** Uploads from a path (Node), bytes, a Blob or a stream; the name defaults to the path's or File's. */
  uploadImage(album: string, source: UploadSource, options?: UploadOptions): Promise<ImageResult> {
    return images.uploadImage(this.http, album, source, options);
  }

  /** Downloads an image or a transform of it; read the answer with `bytes()` or `stream()`. */
  getImage(album: string, image: string, options?: images.DownloadOptions): Promise<images.ImageDownload> {
    return images.getImage(this.http, album, image, options);
  }

  /**
   * Downloads an image and hands the answer to `read` (to stream it somewhere); the download is tried
   * again, reading included, when the connection breaks mid-body or `options.retryRead` accepts `read`'s error.
   * @example await store.readImage('holidays', 'a.jpg', (d) => pipeline(Readable.fromWeb(d.stream()), createWriteStream('a.jpg')))
   */
  readImage<T>(album: string, image: string, read: (download: images.ImageDownload) => Promise<T>, options?: images.ReadImageOptions): Promise<T> {
    return images.readImage(this.http, album, image, read, options);
  }

  /** The image's bytes (a Buffer in Node), transformed when options say so. */
  async downloadImage(album: string, image: string, options?: images.DownloadOptions): Promise<Uint8Array> {
    return (await images.getImage(this.http, album, image, options)).bytes();
  }

  /** Downloads by stable id; `id.webp` converts, as `format` does. */
  getImageById(idWithExtension: string, options?: images.DownloadOptions): Promise<images.ImageDownload> {
    return images.getImageById(this.http, idWithExtension, options);
  }

  /** Near-duplicates of image `id` across the store (perceptual hash), nearest first. */
  similarImages(id: string, options?: SimilarOptions, signal?: AbortSignal): Promise<SimilarResult> {
    return images.similarImages(this.http, id, options, signal);
  }

  getImageMetadata(album: string, image: string, signal?: AbortSignal): Promise<ImageInfo> {
    return images.getImageMetadata(this.http, album, image, signal);
  }

  renameImage(album: string, from: string, to: string, signal?: AbortSignal): Promise<ImageResult> {
    return images.renameImage(this.http, album, from, to, signal);
  }

  deleteImage(album: string, image: string, signal?: AbortSignal): Promise<ImageResult> {
    return images.deleteImage(this.http, album, image, signal);
  }

  /** Compares two stored images (`{album}/{image}` or an id): differing pixels, SSIM, region boxes. */
  diffStored(a: diff.ImageRef, b: diff.ImageRef, options?: DiffOptions, signal?: AbortSignal): Promise<DiffResult> {
    return diff.diffStored(this.http, a, b, options, signal);
  }

  /** The diff of two stored images as a PNG: the diff picture, or a | b | diff side by side. */
  diffStoredPicture(a: diff.ImageRef, b: diff.ImageRef, output: diff.DiffPicture, options?: DiffOptions, signal?: AbortSignal): Promise<Uint8Array> {
    return diff.diffStoredPicture(this.http, a, b, output, options, signal);
  }

  /** Compares two images sent with the request (paths, bytes, blobs or streams). */
  diffUploaded(a: UploadSource, b: UploadSource, options?: DiffOptions, signal?: AbortSignal): Promise<DiffResult> {
    return diff.diffUploaded(this.http, a, b, options, signal);
  }

  /** The diff of two sent images as a PNG. */
  diffUploadedPicture(a: UploadSource, b: UploadSource, output: diff.DiffPicture, options?: DiffOptions, signal?: AbortSignal): Promise<Uint8Array> {
    return diff.diffUploadedPicture(this.http, a, b, output, options, signal);
  }

  /** Starts an import job of `urls` into `album`. */
  createImport(album: string, urls: string[], signal?: AbortSignal): Promise<ImportJob> {
    return imports.createImport(this.http, album, urls, signal);
  }

  /** An import job with every item (a big job is read in pages of 10,000 items). */
  getImport(jobId: string, signal?: AbortSignal): Promise<ImportJob> {
    return imports.getImport(this.http, jobId, signal);
  }

  /** Recent import jobs, with their counts but without their items. */
  listImports(signal?: AbortSignal): Promise<ImportJobSummary[]> {
    return imports.listImports(this.http, signal);
  }

  cancelImport(jobId: string, signal?: AbortSignal): Promise<ImportJob> {
    return imports.cancelImport(this.http, jobId, signal);
  }

  /** Polls a job until done, failed or cancelled; `onProgress` sees each change. */
  waitForJob(jobId: string, options?: imports.WaitForJobOptions): Promise<ImportJob> {
    return imports.waitForJob(this.http, jobId, options);
  }

  /** A signed image URL path, usable without a key until it expires (needs URL_SIGNING_SECRET). */
  signUrl(options: SignUrlOptions, signal?: AbortSignal): Promise<SignedUrl> {
    return service.signUrl(this.http, options, signal);
  }

  /** Read-only check of the data dir (admin role). */
  fsck(options: { verify?: boolean; signal?: AbortSignal } = {}): Promise<FsckResult> {
    return service.fsck(this.http, options.verify, options.signal);
  }

  /** Prometheus text. */
  metrics(signal?: AbortSignal): Promise<string> {
    return service.metrics(this.http, signal);
  }

  livez(signal?: AbortSignal): Promise<{ status: string; version: string }> {
    return service.livez(this.http, signal);
  }

  /** The service's name and version. */
  getVersion(signal?: AbortSignal): Promise<ServiceVersion> {
    return service.getVersion(this.http, signal);
  }

  /** Readiness, 200 or 503 alike (`ready` tells which). */
  readyz(signal?: AbortSignal): Promise<Readiness> {
    return service.readyz(this.http, signal);
  }

  getOpenApi(signal?: AbortSignal): Promise<Record<string, unknown>> {
    return service.getOpenApi(this.http, signal);
  }

  getAsyncApi(signal?: AbortSignal): Promise<Record<string, unknown>> {
    return service.getAsyncApi(this.http, signal);
  }

  /**
   * Subscribes to the service's events over MQTT, with this client's broker URL and API key.
   * @example for await (const e of store.events({ filter: { album: 'holidays' } })) console.log(e.data.message);
   */
  events(options: Partial<EventsOptions> = {}): EventStream {
    return events({ mqttUrl: this.mqttUrl, apiKey: this.http.options.apiKey, ...options });
  }
}

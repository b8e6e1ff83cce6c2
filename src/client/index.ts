/**
 * imagestore's client library: `import { ImageStoreClient } from 'imagestore/client'`.
 * Works in Node 20+ and browsers; see docs/client.md.
 */
export { ImageStoreClient, defaultMqttUrl, type ClientOptions } from './client.js';
export { brokerUrlFromEnv } from './broker-url.js';
export { ImageStoreError, codeForStatus, type ImageStoreErrorCode } from './errors.js';
export { HttpClient, parseRetryAfter, type HttpOptions, type RequestSpec, type QueryValues } from './http.js';
export { events, matchesFilter, EVENTS_TOPIC, type EventFilter, type EventsOptions, type EventStream, type StoreEvent } from './events.js';
export { type DiffPicture, type ImageRef } from './diff.js';
export { type EventPage, type ReplayOptions } from './replay.js';
export type { SendResult, Webhook, WebhookBatch, WebhookDelivery, WebhookInput } from './webhooks.js';
export { transformQuery, type DownloadOptions, type ImageDownload, type ReadImageOptions } from './images.js';
export { FINAL_JOB_STATES, type WaitForJobOptions } from './imports.js';
export { typeFromName, type UploadOptions, type UploadSource } from './upload-source.js';
export type * from './types.js';

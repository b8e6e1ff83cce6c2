import { z } from 'zod';
import { operation, type Operation } from '../contract/operations.js';
import { EVENTS_DOC_PATH } from '../routes/docs.js';
import {
  AlbumListResponse, AlbumNameBody, AlbumResponse, DiffQuery, DiffResponse, ErrorResponse, ImageListResponse, ImageNameBody, ImageResponse,
  ImageObject, ImportBody, ImportItemsQuery, ImportJobObject, ImportJobResponse, ImportListResponse, ListQuery, LivenessResponse, MessageResponse, SignUrlBody, VersionResponse,
  SimilarQuery, SimilarResponse, TransformQuery, UploadQuery,
} from '../contract/schemas.js';

import { EventsQuery } from '../routes/events.js';
import {
  DeliveryListResponse, RedeliverBody, RotatedSecretResponse, SendResultResponse, WebhookCreateBody, WebhookCreatedResponse, WebhookListResponse,
  WebhookResponse, WebhookUpdateBody,
} from '../routes/webhooks.js';
import { StoreEventSchema } from './asyncapi.js';

/** One documented operation: its entry of the operation table (src/contract/operations.ts) and what the document says about it. */
export interface OperationDoc extends Operation {
  summary: string;
  tags: string[];
  query?: z.ZodObject;
  jsonBody?: z.ZodType;
  /** The body is multipart with these file fields (default ['file']). */
  multipart?: boolean;
  fileFields?: string[];
  /** status → [description, schema or a media type for binary bodies] */
  responses: Record<number, [string, z.ZodType | string | undefined]>;
}

const albumParam = { name: 'albumName', in: 'path', required: true, schema: { type: 'string' } };
const imageParam = { name: 'imageName', in: 'path', required: true, schema: { type: 'string' } };
const errors = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, [ERROR_TEXT[code], ErrorResponse]])) as OperationDoc['responses'];
const ERROR_TEXT: Record<number, string> = {
  401: 'No API key, a wrong key, or a bad or expired signed URL', 403: 'The key\'s role is too low', 429: 'Rate limit exceeded, or too many failed authentications from this address; see Retry-After',
  400: 'Malformed input (name, body or query)', 404: 'Unknown album or image', 409: 'Name already exists, or (upload with onDuplicate=reject) these bytes are already stored: Location names that image',
  413: 'Body too large', 415: 'Wrong Content-Type or Content-Encoding, or not an accepted image format', 416: 'Range not satisfiable',
  422: 'Image truncated, corrupt or over a pixel limit (MAX_INPUT_PIXELS; DIFF_MAX_PIXELS for /diff; AVIF_MAX_PIXELS / GIF_MAX_PIXELS for transforms)',
  503: 'Busy (too many uploads or comparisons in progress, or transforms queued), the store not writable (read-only disk) or out of file descriptors; retry after Retry-After',
  507: 'The disk holding the store is full: nothing was changed',
  501: 'Not available with this configuration (near-duplicate search needs the filesystem store)',
};

const MALFORMED = 'The HTTP request itself is malformed (a bad request line or header), answered before routing';
const GONE = 'The cursor is older than the events still held (EVENT_RETENTION): resume from oldestSequence - 1, or reconcile';
const GoneResponse = ErrorResponse.extend({ oldestSequence: z.string().describe('The oldest sequence still held') });
const EventPageResponse = z.object({ events: z.array(StoreEventSchema), next: z.string().describe('Cursor of the next page (the same as after when nothing newer is held yet)'),
  head: z.string().describe('The latest sequence readable when the page was read'),
});

const LISTING_UNAVAILABLE = 'With details: the server is out of file descriptors; retry after Retry-After (never a partial list)';

/** Every API operation. A test checks this list against the router, both ways. */
export const OPERATIONS: OperationDoc[] = [
  { ...operation('listAlbums'), summary: 'List albums (sorted; paged with limit and cursor)', tags: ['albums'], query: ListQuery,
    responses: { 200: ['Album names', AlbumListResponse], ...errors(400), 503: [LISTING_UNAVAILABLE, ErrorResponse] } },
  { ...operation('createAlbum'), summary: 'Create an album', tags: ['albums'], jsonBody: AlbumNameBody,
    responses: { 201: ['Created; Location names the album', AlbumResponse], ...errors(400, 409, 413, 415, 503, 507) } },
  { ...operation('renameAlbum'), summary: 'Rename an album', tags: ['albums'], jsonBody: AlbumNameBody,
    responses: { 200: ['Renamed', AlbumResponse], ...errors(400, 404, 409, 413, 415, 503, 507) } },
  { ...operation('deleteAlbum'), summary: 'Delete an album and its images', tags: ['albums'],
    responses: { 200: ['Deleted', MessageResponse], ...errors(400, 404, 503, 507) } },
  { ...operation('listImages'), summary: 'List images of an album (sorted; paged)', tags: ['images'], query: ListQuery,
    responses: { 200: ['Image names', ImageListResponse], ...errors(400, 404), 503: [LISTING_UNAVAILABLE, ErrorResponse] } },
  { ...operation('uploadImage'), summary: 'Upload an image: JPEG, PNG, WebP, GIF, AVIF, TIFF, HEIC or JPEG XL (multipart field "file"; stored under the file\'s base name)', tags: ['images'], multipart: true, query: UploadQuery,
    responses: { 201: ['Stored durably; Location names the image', ImageResponse], ...errors(400, 404, 409, 413, 415, 422, 503, 507) } },
  { ...operation('getImage'), summary: 'Download an image (byte-identical to the upload), or a transform of it; ETag, Range, conditional requests, HEAD', tags: ['images'], query: TransformQuery,
    responses: { 200: ['The image bytes, with their real Content-Type', 'application/octet-stream'], 206: ['The requested byte range', 'application/octet-stream'], 304: ['Not modified', undefined], ...errors(400, 404, 415, 416, 422, 503) } },
  { ...operation('getImageMetadata'), summary: 'Image metadata: id, size, type, format, width, height, orientation, alpha, pages, sha256, times', tags: ['images'],
    responses: { 200: ['Metadata', ImageObject], ...errors(400, 404) } },
  { ...operation('similarImages'), summary: 'Near-duplicates of an image across the store (perceptual hash within maxDistance bits), nearest first', tags: ['images'], query: SimilarQuery,
    responses: { 200: ['The near-duplicates', SimilarResponse], ...errors(400, 404, 501) } },
  { ...operation('getImageById'), summary: 'Download an image by its stable id ({id}); {id}.{jpg,png,webp,avif,gif,tiff} converts it. Immutable: cached for a year', tags: ['images'], query: TransformQuery,
    responses: { 200: ['The image bytes', 'application/octet-stream'], 206: ['The requested byte range', 'application/octet-stream'], 304: ['Not modified', undefined], ...errors(400, 404, 415, 416, 422, 503) } },
  { ...operation('renameImage'), summary: 'Rename an image', tags: ['images'], jsonBody: ImageNameBody,
    responses: { 200: ['Renamed', ImageResponse], ...errors(400, 404, 409, 413, 415, 503, 507) } },
  { ...operation('deleteImage'), summary: 'Delete an image', tags: ['images'],
    responses: { 200: ['Deleted', ImageResponse], ...errors(400, 404, 503, 507) } },
  { ...operation('diffStored'), summary: 'Compare two stored images (a and b: {album}/{image} or an id): differing pixels, SSIM, boxes of the regions; output=png or side-by-side for pictures', tags: ['diff'], query: DiffQuery,
    responses: { 200: ['The comparison (JSON), or a PNG with output=png / side-by-side', DiffResponse], ...errors(400, 404, 422, 503) } },
  { ...operation('diffUploaded'), summary: 'Compare two uploaded images (multipart fields a and b); same parameters and answers as GET', tags: ['diff'], query: DiffQuery.omit({ a: true, b: true }), multipart: true, fileFields: ['a', 'b'],
    responses: { 200: ['The comparison (JSON), or a PNG', DiffResponse], ...errors(400, 413, 415, 422, 503) } },
  { ...operation('createImport'), summary: 'Import images from URLs in the background (202; poll the job at Location)', tags: ['imports'], jsonBody: ImportBody,
    responses: { 202: ['Job queued (with the first page of its items)', ImportJobResponse], ...errors(400, 404, 413, 415, 503, 507) } },
  { ...operation('listImports'), summary: 'Recent import jobs, newest first, with their counts but without their items', tags: ['imports'],
    responses: { 200: ['Jobs', ImportListResponse] } },
  { ...operation('getImport'), summary: 'An import job: its state, counts and a page of its URLs (state, bytes, stored image, error); follow nextOffset for more', tags: ['imports'], query: ImportItemsQuery,
    responses: { 200: ['The job', ImportJobObject], ...errors(400, 404) } },
  { ...operation('cancelImport'), summary: 'Cancel an import job', tags: ['imports'],
    responses: { 200: ['Cancelled (with the first page of its items)', ImportJobResponse], ...errors(404, 503, 507) } },
  { ...operation('signUrl'), summary: 'Make a signed image URL (works without a key until it expires; needs URL_SIGNING_SECRET)', tags: ['security'], jsonBody: SignUrlBody,
    responses: { 201: ['The signed URL path and its expiry', z.object({ url: z.string(), expires: z.string() })], ...errors(400, 401, 403, 404, 415), 501: ['URL_SIGNING_SECRET not set', ErrorResponse] } },
  { ...operation('listEvents'), summary: 'Replay the event journal in order from a cursor (read role); 410 with oldestSequence when the cursor is older than EVENT_RETENTION', tags: ['events'], query: EventsQuery,
    responses: { 200: ['Events after the cursor, oldest first, and the cursor of the next page', EventPageResponse], ...errors(400), 410: [GONE, GoneResponse] } },
  { ...operation('streamEvents'), summary: 'Live events as Server-Sent Events (id = sequence, event = type, data = the CloudEvent); resumes with Last-Event-ID or after; heartbeats', tags: ['events'], query: EventsQuery,
    responses: { 200: ['An endless text/event-stream; `event: reconnect` asks a client that fell too far behind (EVENT_STREAM_MAX_LAG) to reconnect', 'text/event-stream'], ...errors(400), 410: [GONE, GoneResponse] } },
  { ...operation('createWebhook'), summary: 'Register a webhook endpoint (admin role); it gets the events from now on. The secret is in this answer only', tags: ['webhooks'], jsonBody: WebhookCreateBody,
    responses: { 201: ['Registered; Location names it', WebhookCreatedResponse], ...errors(400, 413, 415) } },
  { ...operation('listWebhooks'), summary: 'List webhook endpoints (admin role), without secrets', tags: ['webhooks'],
    responses: { 200: ['Endpoints', WebhookListResponse] } },
  { ...operation('getWebhook'), summary: 'One webhook endpoint (admin role), without its secret', tags: ['webhooks'],
    responses: { 200: ['The endpoint', WebhookResponse], ...errors(404) } },
  { ...operation('updateWebhook'), summary: 'Change url, types, albums or enabled (admin role); enabling resumes from the endpoint\'s cursor', tags: ['webhooks'], jsonBody: WebhookUpdateBody,
    responses: { 200: ['Changed', WebhookResponse], ...errors(400, 404, 413, 415) } },
  { ...operation('deleteWebhook'), summary: 'Delete a webhook endpoint (admin role)', tags: ['webhooks'],
    responses: { 200: ['Deleted', MessageResponse], ...errors(404) } },
  { ...operation('rotateWebhookSecret'), summary: 'New signing secret (shown once); the previous one keeps signing for WEBHOOK_SECRET_GRACE', tags: ['webhooks'],
    responses: { 200: ['The new secret', RotatedSecretResponse], ...errors(404) } },
  { ...operation('listWebhookDeliveries'), summary: 'Delivery log: status, attempts, latency and last error of the latest attempts (admin role)', tags: ['webhooks'],
    responses: { 200: ['Attempts, newest first', DeliveryListResponse], ...errors(404) } },
  { ...operation('pingWebhook'), summary: 'Send a signed test event (imagestore.webhook.test, not journaled) now', tags: ['webhooks'],
    responses: { 200: ['How the receiver answered', SendResultResponse], ...errors(404) } },
  { ...operation('redeliverWebhookEvent'), summary: 'Send one journaled event to the endpoint again now', tags: ['webhooks'], jsonBody: RedeliverBody,
    responses: { 200: ['How the receiver answered', SendResultResponse], ...errors(400, 404, 413, 415) } },
  { ...operation('startSession'), summary: 'Trade the key for a read-only, SameSite=Strict HttpOnly session cookie (for <img> tags and EventSource in the gallery). API keys on only (501 without)', tags: ['security'],
    responses: { 200: ['The key\'s role and the cookie\'s expiry', z.object({ role: z.enum(['read', 'write', 'admin']), expires: z.string() })], ...errors(401, 429), 501: ['API keys are off: the service is open', ErrorResponse] } },
  { ...operation('endSession'), summary: 'Clear the session cookie', tags: ['security'],
    responses: { 204: ['Cleared', undefined] } },
  { ...operation('fsck'), summary: 'Check the data dir (read-only; ?verify=true re-hashes every image). Admin role', tags: ['admin'],
    responses: { 200: ['Problems found', undefined], ...errors(401, 403) } },
  { ...operation('metrics'), summary: 'Prometheus metrics. Admin role when keys are configured', tags: ['admin'],
    responses: { 200: ['Prometheus text format', 'text/plain'], ...errors(401, 403) } },
  { ...operation('livez'), summary: 'Liveness (alias /healthz), with the service version', tags: ['health'], responses: { 200: ['Alive', LivenessResponse] } },
  { ...operation('healthz'), summary: 'Liveness (alias of /livez)', tags: ['health'], responses: { 200: ['Alive', LivenessResponse] } },
  { ...operation('getVersion'), summary: 'The service name and version (open, like /livez)', tags: ['health'], responses: { 200: ['Name and version', VersionResponse] } },
  { ...operation('readyz'), summary: 'Readiness: store writable and broker reachable', tags: ['health'],
    responses: { 200: ['Ready', undefined], 503: ['Not ready', undefined] } },
  { ...operation('getOpenApi'), summary: 'This OpenAPI 3.1 document (not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['The document', z.looseObject({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) })] } },
  { ...operation('getAsyncApi'), summary: 'AsyncAPI 3.1 document of the MQTT events (not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['The document', z.looseObject({ asyncapi: z.string(), channels: z.record(z.string(), z.unknown()) })] } },
  { ...operation('getEventsDoc'), summary: 'The events and their delivery guarantee, as Markdown (docs/events.md; not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['The Markdown text', 'text/markdown'] } },
  { ...operation('swaggerUi'), summary: 'Swagger UI for this API, served locally (not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['HTML page', 'text/html'] } },
  { ...operation('gallery'), summary: 'The web gallery (its scripts and styles are under /ui/; not served with UI_ENABLED=false)', tags: ['docs'],
    responses: { 200: ['HTML page', 'text/html'], 501: ['The gallery was not built (npm run build)', ErrorResponse] } },
];

const schema = (s: z.ZodType) => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function multipartSchema(fields: string[]) {
  return { type: 'object', required: fields, properties: Object.fromEntries(fields.map((f) => [f, { type: 'string', format: 'binary' }])) };
}

/** The operation's entry of the document; with `keys`, what a caller needs (401 and 403 only then: without keys nothing refuses a caller). */
function operationObject(op: OperationDoc, keys: boolean) {
  const parameters: unknown[] = [];
  if (op.path.includes('{albumName}')) parameters.push(albumParam);
  if (op.path.includes('{imageName}')) parameters.push(imageParam);
  if (op.path.includes('{jobId}')) parameters.push({ name: 'jobId', in: 'path', required: true, schema: { type: 'string' } });
  if (op.path.includes('{webhookId}')) parameters.push({ name: 'webhookId', in: 'path', required: true, schema: { type: 'string' } });
  if (op.operationId === 'streamEvents') parameters.push({ name: 'Last-Event-ID', in: 'header', required: false, description: 'Sent by EventSource on a reconnect: resumes after it (wins over after)', schema: { type: 'string' } });
  if (op.path.includes('{id}')) parameters.push({ name: 'id', in: 'path', required: true, description: 'Image id', schema: { type: 'string' } });
  if (op.path.includes('{idWithExtension}')) parameters.push({ name: 'idWithExtension', in: 'path', required: true, description: 'Image id, optionally followed by .jpg, .png, .webp, .avif, .gif or .tiff', schema: { type: 'string' } });
  for (const [name, field] of Object.entries(op.query?.shape ?? {})) {
    parameters.push({ name, in: 'query', required: false, description: (field as z.ZodType).description, schema: schema(field as z.ZodType) });
  }
  const requestBody = op.jsonBody
    ? { required: true, content: { 'application/json': { schema: schema(op.jsonBody) } } }
    : op.multipart
      ? { required: true, content: { 'multipart/form-data': { schema: multipartSchema(op.fileFields ?? ['file']) } } }
      : undefined;
  const open = op.role === 'open';
  // Every protected operation can be refused by the key check (when keys are on) or the rate limit; any request at
  // all can be refused before routing when the HTTP request itself is malformed (server.ts answerClientError).
  const { 401: _unauthorized, 403: _forbidden, ...own } = op.responses;
  const refusals: OperationDoc['responses'] = keys ? { 401: [ERROR_TEXT[401], ErrorResponse], 403: [ERROR_TEXT[403], ErrorResponse] } : {};
  const all: OperationDoc['responses'] = open ? { ...op.responses } : { ...refusals, 429: [ERROR_TEXT[429], ErrorResponse], ...(keys ? op.responses : own) };
  const withMalformed: OperationDoc['responses'] = Object.keys(all).some((s) => s.startsWith('4')) ? all : { ...all, 400: [MALFORMED, ErrorResponse] };
  const responses = Object.fromEntries(
    Object.entries(withMalformed).map(([status, [description, body]]) => [
      status,
      body === undefined ? { description }
        : typeof body === 'string' ? { description, content: { [body]: { schema: body.startsWith('text/') ? { type: 'string' } : { type: 'string', format: 'binary' } } } }
          : { description, content: { 'application/json': { schema: schema(body) } } },
    ]),
  );
  const access = keys ? (open ? { security: [] } : { description: `Needs an API key with the ${op.role} role${op.role === 'admin' ? '' : ' or higher'}.`, 'x-required-role': op.role }) : {};
  return { operationId: op.operationId, summary: op.summary, tags: op.tags, ...access, parameters, ...(requestBody ? { requestBody } : {}), responses };
}

/** What the document says about authentication: the service's own setting. */
export interface OpenApiOptions {
  /** API keys are configured: declare the bearer scheme. Without keys nothing is declared, so Swagger UI shows no lock. */
  keys: boolean;
}

/** The OpenAPI 3.1 document served at /openapi.json. */
export function buildOpenApi(version: string, { keys }: OpenApiOptions = { keys: false }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) {
    (paths[op.path] ??= {})[op.method] = operationObject(op, keys);
  }
  const auth = keys
    ? 'Authentication: an API key as `Authorization: Bearer <key>` (or a signed URL for an image), except for the operations without a security '
      + 'requirement (health, the documents, the gallery\'s page, leaving a session). `x-required-role` on each other operation names the least role it needs.'
    : 'Authentication is off on this service: no API keys are configured, so every operation is open (set API_KEYS or API_KEYS_FILE).';
  return {
    openapi: '3.1.0',
    info: {
      title: 'imagestore',
      version,
      license: { name: 'MIT', identifier: 'MIT' },
      description:
        'Album-oriented image store. Every change and download is published as a CloudEvent on MQTT topic `imagestore/notifier`: ' +
        `see the [AsyncAPI document](/asyncapi.json) and [the events and their delivery guarantee](${EVENTS_DOC_PATH}).\n\n${auth}`,
    },
    servers: [{ url: '/' }],
    ...(keys
      ? {
          components: {
            securitySchemes: {
              bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key (API_KEYS / API_KEYS_FILE) with role read, write or admin.' },
            },
          },
          security: [{ bearerAuth: [] }],
        }
      // Declared as none, so that Swagger UI shows no lock and linters see a decision.
      : { security: [] }),
    tags: [
      { name: 'albums', description: 'Create, list, rename and delete albums' },
      { name: 'images', description: 'Upload, download (as stored or transformed), rename and delete images; by name or by stable id' },
      { name: 'imports', description: 'Background jobs that download images from URLs into an album' },
      { name: 'events', description: 'The event journal over HTTP: replay and a live stream (docs/events.md)' },
      { name: 'webhooks', description: 'Endpoints the service POSTs every event to (admin role); see the webhooks section' },
      { name: 'diff', description: 'Pixel comparison of two images' },
      { name: 'security', description: 'Signed URLs that work without a key' },
      { name: 'admin', description: 'Operator tools: data dir check and metrics' },
      { name: 'health', description: 'Liveness, readiness and version, open to probes' },
      { name: 'docs', description: 'Machine-readable documents and this UI; the UI\'s static files under /swagger/ are not listed' },
    ],
    paths,
    webhooks: {
      storeEvent: {
        post: {
          operationId: 'receiveStoreEvent',
          summary: 'Every event selected by a registered endpoint, in journal order, at least once: one per request, or in batches when the endpoint opted in',
          description: 'Standard Webhooks: verify webhook-signature (v1, base64 HMAC-SHA256 of `webhook-id.webhook-timestamp.body` with the whsec_ secret; several space-separated during a rotation) '
            + 'and dedupe by webhook-id. Any 2xx acknowledges; anything else (or no answer within WEBHOOK_TIMEOUT_MS) is retried with exponential backoff and jitter, honouring Retry-After; '
            + '410 disables the endpoint; failing for WEBHOOK_DISABLE_AFTER disables it too. Redirects are not followed. '
            + 'An endpoint registered with `batch` gets application/cloudevents-batch+json: a JSON array of the events available after its cursor (up to batch.maxEvents, in order), '
            + 'signed once; a 2xx acknowledges all of them, and a failed batch is retried with the same events and webhook-id. Ping and redeliver send a single event either way.',
          parameters: [
            { name: 'webhook-id', in: 'header', required: true, description: 'The CloudEvent id; for a batch, <first event id>_<last event id>. The same on every retry', schema: { type: 'string' } },
            { name: 'webhook-timestamp', in: 'header', required: true, description: 'Seconds since the epoch when this attempt was signed', schema: { type: 'string' } },
            { name: 'webhook-signature', in: 'header', required: true, description: 'v1,<base64> (space-separated list)', schema: { type: 'string' } },
          ],
          requestBody: {
            required: true,
            content: {
              'application/cloudevents+json': { schema: schema(StoreEventSchema) },
              'application/cloudevents-batch+json': { schema: schema(z.array(StoreEventSchema).min(1).max(1000)) },
            },
          },
          responses: {
            '2XX': { description: 'Acknowledged (every event of a batch): the next request follows' },
            410: { description: 'The endpoint is disabled (PATCH enabled=true resumes from its cursor)' },
            default: { description: 'Retried later' },
          },
        },
      },
    },
  };
}

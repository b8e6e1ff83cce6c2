import { z } from 'zod';
import {
  AlbumListResponse, AlbumNameBody, AlbumResponse, ErrorResponse, ImageListResponse, ImageNameBody, ImageResponse,
  ImageObject, ListQuery, MessageResponse, TransformQuery,
} from '../routes/schemas.js';
import { SignUrlBody } from '../routes/admin.js';
import { ImportBody } from '../routes/imports.js';
import { DiffQuery, DiffResponse, ImportItemsQuery, ImportJobObject, ImportJobResponse, ImportListResponse, SimilarQuery, SimilarResponse, UploadQuery } from '../routes/schemas.js';

/** One documented operation. `path` uses OpenAPI `{param}` syntax, relative to the server root. */
export interface OperationDoc {
  method: 'get' | 'post' | 'patch' | 'delete';
  path: string;
  operationId: string;
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

const LISTING_UNAVAILABLE = 'With details: the server is out of file descriptors; retry after Retry-After (never a partial list)';

/** Every API operation. A test checks this list against the router, both ways. */
export const OPERATIONS: OperationDoc[] = [
  { method: 'get', path: '/api/v1/albums', operationId: 'listAlbums', summary: 'List albums (sorted; paged with limit and cursor)', tags: ['albums'], query: ListQuery,
    responses: { 200: ['Album names', AlbumListResponse], ...errors(400), 503: [LISTING_UNAVAILABLE, ErrorResponse] } },
  { method: 'post', path: '/api/v1/albums', operationId: 'createAlbum', summary: 'Create an album', tags: ['albums'], jsonBody: AlbumNameBody,
    responses: { 201: ['Created; Location names the album', AlbumResponse], ...errors(400, 409, 413, 415, 503, 507) } },
  { method: 'patch', path: '/api/v1/albums/{albumName}', operationId: 'renameAlbum', summary: 'Rename an album', tags: ['albums'], jsonBody: AlbumNameBody,
    responses: { 200: ['Renamed', AlbumResponse], ...errors(400, 404, 409, 413, 415, 503, 507) } },
  { method: 'delete', path: '/api/v1/albums/{albumName}', operationId: 'deleteAlbum', summary: 'Delete an album and its images', tags: ['albums'],
    responses: { 200: ['Deleted', MessageResponse], ...errors(400, 404, 503, 507) } },
  { method: 'get', path: '/api/v1/albums/{albumName}/images', operationId: 'listImages', summary: 'List images of an album (sorted; paged)', tags: ['images'], query: ListQuery,
    responses: { 200: ['Image names', ImageListResponse], ...errors(400, 404), 503: [LISTING_UNAVAILABLE, ErrorResponse] } },
  { method: 'post', path: '/api/v1/albums/{albumName}/images', operationId: 'uploadImage', summary: 'Upload an image: JPEG, PNG, WebP, GIF, AVIF, TIFF, HEIC or JPEG XL (multipart field "file"; stored under the file\'s base name)', tags: ['images'], multipart: true, query: UploadQuery,
    responses: { 201: ['Stored durably; Location names the image', ImageResponse], ...errors(400, 404, 409, 413, 415, 422, 503, 507) } },
  { method: 'get', path: '/api/v1/albums/{albumName}/images/{imageName}', operationId: 'getImage', summary: 'Download an image (byte-identical to the upload), or a transform of it; ETag, Range, conditional requests, HEAD', tags: ['images'], query: TransformQuery,
    responses: { 200: ['The image bytes, with their real Content-Type', 'application/octet-stream'], 206: ['The requested byte range', 'application/octet-stream'], 304: ['Not modified', undefined], ...errors(400, 404, 415, 416, 422, 503) } },
  { method: 'get', path: '/api/v1/albums/{albumName}/images/{imageName}/metadata', operationId: 'getImageMetadata', summary: 'Image metadata: id, size, type, format, width, height, orientation, alpha, pages, sha256, times', tags: ['images'],
    responses: { 200: ['Metadata', ImageObject], ...errors(400, 404) } },
  { method: 'get', path: '/api/v1/images/{id}/similar', operationId: 'similarImages', summary: 'Near-duplicates of an image across the store (perceptual hash within maxDistance bits), nearest first', tags: ['images'], query: SimilarQuery,
    responses: { 200: ['The near-duplicates', SimilarResponse], ...errors(400, 404, 501) } },
  { method: 'get', path: '/api/v1/images/{idWithExtension}', operationId: 'getImageById', summary: 'Download an image by its stable id ({id}); {id}.{jpg,png,webp,avif,gif,tiff} converts it. Immutable: cached for a year', tags: ['images'], query: TransformQuery,
    responses: { 200: ['The image bytes', 'application/octet-stream'], 206: ['The requested byte range', 'application/octet-stream'], 304: ['Not modified', undefined], ...errors(400, 404, 415, 416, 422, 503) } },
  { method: 'patch', path: '/api/v1/albums/{albumName}/images/{imageName}', operationId: 'renameImage', summary: 'Rename an image', tags: ['images'], jsonBody: ImageNameBody,
    responses: { 200: ['Renamed', ImageResponse], ...errors(400, 404, 409, 413, 415, 503, 507) } },
  { method: 'delete', path: '/api/v1/albums/{albumName}/images/{imageName}', operationId: 'deleteImage', summary: 'Delete an image', tags: ['images'],
    responses: { 200: ['Deleted', ImageResponse], ...errors(400, 404, 503, 507) } },
  { method: 'get', path: '/api/v1/diff', operationId: 'diffStored', summary: 'Compare two stored images (a and b: {album}/{image} or an id): differing pixels, SSIM, boxes of the regions; output=png or side-by-side for pictures', tags: ['diff'], query: DiffQuery,
    responses: { 200: ['The comparison (JSON), or a PNG with output=png / side-by-side', DiffResponse], ...errors(400, 404, 422, 503) } },
  { method: 'post', path: '/api/v1/diff', operationId: 'diffUploaded', summary: 'Compare two uploaded images (multipart fields a and b); same parameters and answers as GET', tags: ['diff'], query: DiffQuery.omit({ a: true, b: true }), multipart: true, fileFields: ['a', 'b'],
    responses: { 200: ['The comparison (JSON), or a PNG', DiffResponse], ...errors(400, 413, 415, 422, 503) } },
  { method: 'post', path: '/api/v1/albums/{albumName}/imports', operationId: 'createImport', summary: 'Import images from URLs in the background (202; poll the job at Location)', tags: ['imports'], jsonBody: ImportBody,
    responses: { 202: ['Job queued (with the first page of its items)', ImportJobResponse], ...errors(400, 404, 413, 415, 503, 507) } },
  { method: 'get', path: '/api/v1/imports', operationId: 'listImports', summary: 'Recent import jobs, newest first, with their counts but without their items', tags: ['imports'],
    responses: { 200: ['Jobs', ImportListResponse] } },
  { method: 'get', path: '/api/v1/imports/{jobId}', operationId: 'getImport', summary: 'An import job: its state, counts and a page of its URLs (state, bytes, stored image, error); follow nextOffset for more', tags: ['imports'], query: ImportItemsQuery,
    responses: { 200: ['The job', ImportJobObject], ...errors(400, 404) } },
  { method: 'delete', path: '/api/v1/imports/{jobId}', operationId: 'cancelImport', summary: 'Cancel an import job', tags: ['imports'],
    responses: { 200: ['Cancelled (with the first page of its items)', ImportJobResponse], ...errors(404, 503, 507) } },
  { method: 'post', path: '/api/v1/signed-urls', operationId: 'signUrl', summary: 'Make a signed image URL (works without a key until it expires; needs URL_SIGNING_SECRET)', tags: ['security'], jsonBody: SignUrlBody,
    responses: { 201: ['The signed URL path and its expiry', z.object({ url: z.string(), expires: z.string() })], ...errors(400, 401, 403, 404, 415), 501: ['URL_SIGNING_SECRET not set', ErrorResponse] } },
  { method: 'get', path: '/api/v1/admin/fsck', operationId: 'fsck', summary: 'Check the data dir (read-only; ?verify=true re-hashes every image). Admin role', tags: ['admin'],
    responses: { 200: ['Problems found', undefined], ...errors(401, 403) } },
  { method: 'get', path: '/metrics', operationId: 'metrics', summary: 'Prometheus metrics. Admin role when keys are configured', tags: ['admin'],
    responses: { 200: ['Prometheus text format', 'text/plain'], ...errors(401, 403) } },
  { method: 'get', path: '/livez', operationId: 'livez', summary: 'Liveness (alias /healthz)', tags: ['health'], responses: { 200: ['Alive', undefined] } },
  { method: 'get', path: '/healthz', operationId: 'healthz', summary: 'Liveness (alias of /livez)', tags: ['health'], responses: { 200: ['Alive', undefined] } },
  { method: 'get', path: '/readyz', operationId: 'readyz', summary: 'Readiness: store writable and broker reachable', tags: ['health'],
    responses: { 200: ['Ready', undefined], 503: ['Not ready', undefined] } },
  { method: 'get', path: '/openapi.json', operationId: 'getOpenApi', summary: 'This OpenAPI 3.1 document (not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['The document', z.looseObject({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) })] } },
  { method: 'get', path: '/asyncapi.json', operationId: 'getAsyncApi', summary: 'AsyncAPI 3.0 document of the MQTT events (not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['The document', z.looseObject({ asyncapi: z.string(), channels: z.record(z.string(), z.unknown()) })] } },
  { method: 'get', path: '/swagger', operationId: 'swaggerUi', summary: 'Swagger UI for this API, served locally (not served in PRODMODE)', tags: ['docs'],
    responses: { 200: ['HTML page', 'text/html'] } },
];

const schema = (s: z.ZodType) => {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

function multipartSchema(fields: string[]) {
  return { type: 'object', required: fields, properties: Object.fromEntries(fields.map((f) => [f, { type: 'string', format: 'binary' }])) };
}

function operationObject(op: OperationDoc) {
  const parameters: unknown[] = [];
  if (op.path.includes('{albumName}')) parameters.push(albumParam);
  if (op.path.includes('{imageName}')) parameters.push(imageParam);
  if (op.path.includes('{jobId}')) parameters.push({ name: 'jobId', in: 'path', required: true, schema: { type: 'string' } });
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
  const responses = Object.fromEntries(
    Object.entries(op.responses).map(([status, [description, body]]) => [
      status,
      body === undefined ? { description }
        : typeof body === 'string' ? { description, content: { [body]: { schema: body.startsWith('text/') ? { type: 'string' } : { type: 'string', format: 'binary' } } } }
          : { description, content: { 'application/json': { schema: schema(body) } } },
    ]),
  );
  const open = op.tags.includes('health') || op.tags.includes('docs');
  if (!open) {
    // Every protected operation can be refused by the key check or the rate limit.
    for (const status of [401, 403, 429]) op.responses[status] ??= [ERROR_TEXT[status], ErrorResponse];
  }
  return { operationId: op.operationId, summary: op.summary, tags: op.tags, ...(open ? { security: [] } : {}), parameters, ...(requestBody ? { requestBody } : {}), responses };
}

/** The OpenAPI 3.1 document served at /openapi.json. */
export function buildOpenApi(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) (paths[op.path] ??= {})[op.method] = operationObject(op);
  return {
    openapi: '3.1.0',
    info: {
      title: 'imagestore',
      version,
      description:
        'Album-oriented image store. Every change and download is published as a CloudEvent on MQTT topic `imagestore/notifier`: ' +
        'see the [AsyncAPI document](/asyncapi.json) and docs/events.md.',
    },
    servers: [{ url: '/' }],
    components: {
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key (API_KEYS / API_KEYS_FILE) with role read, write or admin. Not needed when the service runs open (no keys configured).' },
      },
    },
    // Optional: an open service (no keys) takes requests without one.
    security: [{ bearerAuth: [] }, {}],
    tags: [{ name: 'albums' }, { name: 'images' }, { name: 'imports' }, { name: 'diff' }, { name: 'security' }, { name: 'admin' }, { name: 'health' }, { name: 'docs', description: 'Machine-readable documents and this UI; the UI\'s static files under /swagger/ are not listed' }],
    paths,
  };
}

// The operation table: every HTTP operation of the service with the role a key needs for it. The auth
// middleware decides from it, the OpenAPI document takes method, path and role from it, and the
// security tests call every operation as every role against it. Plain data: no imports.

/** Who may call an operation when API keys are on: anyone (`open`), or a key of this role or a higher one. */
export type RequiredRole = 'open' | 'read' | 'write' | 'admin';

/** One operation: its OpenAPI operationId, method and path template (`{param}` is one path segment). */
export interface Operation {
  readonly operationId: string;
  readonly method: 'get' | 'post' | 'patch' | 'delete';
  readonly path: string;
  readonly role: RequiredRole;
}

/**
 * Every operation. Reads need `read`, changes `write`; deleting an album, the admin API, /metrics and
 * every webhook operation (they send events to a URL of the caller's choosing) need `admin`. Signing a
 * URL and comparing two uploads store nothing: `read`. Health, the documents and the gallery's page are
 * open (the data the gallery shows needs a key), and so is leaving a session (clearing its cookie).
 */
export const OPERATIONS_TABLE = [
  { operationId: 'listAlbums', method: 'get', path: '/api/v1/albums', role: 'read' },
  { operationId: 'createAlbum', method: 'post', path: '/api/v1/albums', role: 'write' },
  { operationId: 'renameAlbum', method: 'patch', path: '/api/v1/albums/{albumName}', role: 'write' },
  { operationId: 'deleteAlbum', method: 'delete', path: '/api/v1/albums/{albumName}', role: 'admin' },
  { operationId: 'listImages', method: 'get', path: '/api/v1/albums/{albumName}/images', role: 'read' },
  { operationId: 'uploadImage', method: 'post', path: '/api/v1/albums/{albumName}/images', role: 'write' },
  { operationId: 'getImage', method: 'get', path: '/api/v1/albums/{albumName}/images/{imageName}', role: 'read' },
  { operationId: 'getImageMetadata', method: 'get', path: '/api/v1/albums/{albumName}/images/{imageName}/metadata', role: 'read' },
  { operationId: 'similarImages', method: 'get', path: '/api/v1/images/{id}/similar', role: 'read' },
  { operationId: 'getImageById', method: 'get', path: '/api/v1/images/{idWithExtension}', role: 'read' },
  { operationId: 'renameImage', method: 'patch', path: '/api/v1/albums/{albumName}/images/{imageName}', role: 'write' },
  { operationId: 'deleteImage', method: 'delete', path: '/api/v1/albums/{albumName}/images/{imageName}', role: 'write' },
  { operationId: 'diffStored', method: 'get', path: '/api/v1/diff', role: 'read' },
  { operationId: 'diffUploaded', method: 'post', path: '/api/v1/diff', role: 'read' },
  { operationId: 'createImport', method: 'post', path: '/api/v1/albums/{albumName}/imports', role: 'write' },
  { operationId: 'listImports', method: 'get', path: '/api/v1/imports', role: 'read' },
  { operationId: 'getImport', method: 'get', path: '/api/v1/imports/{jobId}', role: 'read' },
  { operationId: 'cancelImport', method: 'delete', path: '/api/v1/imports/{jobId}', role: 'write' },
  { operationId: 'signUrl', method: 'post', path: '/api/v1/signed-urls', role: 'read' },
  { operationId: 'listEvents', method: 'get', path: '/api/v1/events', role: 'read' },
  { operationId: 'streamEvents', method: 'get', path: '/api/v1/events/stream', role: 'read' },
  { operationId: 'createWebhook', method: 'post', path: '/api/v1/webhooks', role: 'admin' },
  { operationId: 'listWebhooks', method: 'get', path: '/api/v1/webhooks', role: 'admin' },
  { operationId: 'getWebhook', method: 'get', path: '/api/v1/webhooks/{webhookId}', role: 'admin' },
  { operationId: 'updateWebhook', method: 'patch', path: '/api/v1/webhooks/{webhookId}', role: 'admin' },
  { operationId: 'deleteWebhook', method: 'delete', path: '/api/v1/webhooks/{webhookId}', role: 'admin' },
  { operationId: 'rotateWebhookSecret', method: 'post', path: '/api/v1/webhooks/{webhookId}/rotate-secret', role: 'admin' },
  { operationId: 'listWebhookDeliveries', method: 'get', path: '/api/v1/webhooks/{webhookId}/deliveries', role: 'admin' },
  { operationId: 'pingWebhook', method: 'post', path: '/api/v1/webhooks/{webhookId}/ping', role: 'admin' },
  { operationId: 'redeliverWebhookEvent', method: 'post', path: '/api/v1/webhooks/{webhookId}/redeliver', role: 'admin' },
  // Starting a session needs a key of any role; the cookie it sets reads and nothing more.
  { operationId: 'startSession', method: 'post', path: '/api/v1/session', role: 'read' },
  { operationId: 'endSession', method: 'delete', path: '/api/v1/session', role: 'open' },
  { operationId: 'fsck', method: 'get', path: '/api/v1/admin/fsck', role: 'admin' },
  { operationId: 'metrics', method: 'get', path: '/metrics', role: 'admin' },
  { operationId: 'livez', method: 'get', path: '/livez', role: 'open' },
  { operationId: 'healthz', method: 'get', path: '/healthz', role: 'open' },
  { operationId: 'getVersion', method: 'get', path: '/api/v1/version', role: 'open' },
  { operationId: 'readyz', method: 'get', path: '/readyz', role: 'open' },
  { operationId: 'getOpenApi', method: 'get', path: '/openapi.json', role: 'open' },
  { operationId: 'getAsyncApi', method: 'get', path: '/asyncapi.json', role: 'open' },
  { operationId: 'getEventsDoc', method: 'get', path: '/docs/events.md', role: 'open' },
  { operationId: 'swaggerUi', method: 'get', path: '/swagger', role: 'open' },
  { operationId: 'gallery', method: 'get', path: '/', role: 'open' },
] as const satisfies readonly Operation[];

/** An operationId of the table. */
export type OperationId = (typeof OPERATIONS_TABLE)[number]['operationId'];

/**
 * Routes served but not documented as operations (files named by swagger-ui-dist and by the gallery's
 * build, not an API): open, like the pages that load them.
 */
export const ASSET_ROUTES: readonly Operation[] = [
  { operationId: 'swaggerAsset', method: 'get', path: '/swagger/{asset}', role: 'open' },
  { operationId: 'galleryAsset', method: 'get', path: '/ui/{file}', role: 'open' },
];

/**
 * What a path no operation serves needs (an answer of 404 or 405), by prefix: a guess at a name under
 * an admin area is refused as any admin call is, and Swagger UI's folder stays open. Elsewhere reads
 * (GET, HEAD) need `read` and anything else `write`, so a 404 or 405 is never revealed without a key.
 */
export const PATH_AREAS: ReadonlyArray<{ readonly prefix: string; readonly role: RequiredRole }> = [
  { prefix: '/api/v1/admin/', role: 'admin' },
  { prefix: '/api/v1/webhooks/', role: 'admin' },
  { prefix: '/swagger/', role: 'open' },
];

const BY_ID = new Map<string, Operation>(OPERATIONS_TABLE.map((op) => [op.operationId, op]));

/**
 * The table's entry of `operationId`.
 * @throws {Error} for an operationId not in the table (a programming error)
 */
export function operation(operationId: OperationId): Operation {
  const op = BY_ID.get(operationId);
  if (!op) throw new Error(`no operation ${operationId} in src/contract/operations.ts`);
  return op;
}

import { z } from 'zod';
import { buildEvent, EVENT_TYPES, formatSequence, NOTIFIER_TOPIC, type EventData, type EventInput, type EventType, type StoreEvent } from '../notifier/events.js';

const ImageId = z.string().describe('Stable image id (kept across renames)');

/** `data` of album events. */
const AlbumData = z.object({
  album: z.string().describe('Album name (the new name for renames)'),
  message: z.string().describe('Human sentence, the Go service\'s wording: "holidays album created"'),
});

/** `data` of image events. id, size and contentType are sent by this version for every image event. */
const ImageData = AlbumData.extend({
  image: z.string().describe('Image name (the new name for renames)'),
  id: ImageId.optional(),
  size: z.number().int().nonnegative().optional().describe('Size in bytes'),
  contentType: z.string().optional().describe('MIME type sniffed from the bytes, e.g. image/jpeg'),
  thumbhash: z.string().optional().describe('image.created: ThumbHash (base64) of the picture, a placeholder to paint before the image arrives'),
  dominantColor: z.string().optional().describe('image.created: the most common colour, #rrggbb'),
  duplicateOf: z.array(z.string()).optional().describe('image.created: ids of the images that already had exactly these bytes'),
});

const Renamed = { previousName: z.string().describe('The name before the rename') };

const Counts = z.object({
  queued: z.number().int(), downloading: z.number().int(), stored: z.number().int(), failed: z.number().int(), cancelled: z.number().int(),
}).describe('Items of the job by state');

/** `data` of import job events (created, completed, failed, cancelled). */
const ImportData = AlbumData.extend({ jobId: z.string().describe('Import job id (GET /api/v1/imports/{jobId})'), counts: Counts });

/** `data` of import progress events: one per item that finished (stored or failed). */
const ImportProgressData = ImportData.extend({
  url: z.string().describe('The item\'s URL'),
  state: z.string().describe('The item\'s state: stored or failed'),
  image: z.string().optional().describe('Name of the stored image'),
  id: ImageId.optional(),
  error: z.string().optional().describe('Why the item failed'),
});

/** `data` of every event, all types together: the zod twin of `EventData`. */
export const EventDataSchema = ImageData.extend({
  image: ImageData.shape.image.optional(),
  previousName: Renamed.previousName.optional(),
  jobId: z.string().optional(),
  url: z.string().optional(),
  state: z.string().optional(),
  error: z.string().optional(),
  counts: Counts.optional(),
});

/** The CloudEvents 1.0 envelope of every event: the zod twin of `StoreEvent`. */
export const StoreEventSchema = z.object({
  specversion: z.literal('1.0').describe('CloudEvents version'),
  id: z.string().min(1).describe('Unique per event; the same on a redelivery, so consumers dedupe by it'),
  source: z.string().min(1).describe('The publishing node, EVENT_SOURCE (default /imagestore/<hostname>)'),
  type: z.enum(EVENT_TYPES).describe('What happened'),
  time: z.iso.datetime().describe('When the change was made (UTC, RFC 3339)'),
  subject: z.string().describe('Resource path below /api/v1, names URI-encoded: albums/<album>[/images/<image>]'),
  datacontenttype: z.literal('application/json'),
  reqid: z.string().optional().describe('X-Request-Id of the HTTP request that caused the event (CloudEvents extension)'),
  sequence: z.string().regex(/^\d{16}$/).optional()
    .describe('Position in the event journal (CloudEvents sequence extension), zero-padded to 16 digits: orders lexicographically; the cursor of GET /api/v1/events and the SSE id'),
  data: EventDataSchema,
});

// Compile-time guard: the zod schemas and the TS types in events.ts must describe the same shape.
type SameShape<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const dataInStep: SameShape<z.infer<typeof EventDataSchema>, EventData> = true;
const eventInStep: SameShape<z.infer<typeof StoreEventSchema>, StoreEvent> = true;
void dataInStep;
void eventInStep;

const DATA_BY_TYPE: Record<EventType, z.ZodObject> = {
  'imagestore.album.created': AlbumData,
  'imagestore.album.renamed': AlbumData.extend(Renamed),
  'imagestore.album.deleted': AlbumData,
  'imagestore.image.created': ImageData,
  'imagestore.image.renamed': ImageData.extend(Renamed),
  'imagestore.image.deleted': ImageData,
  'imagestore.image.fetched': ImageData,
  'imagestore.import.created': ImportData,
  'imagestore.import.progress': ImportProgressData,
  'imagestore.import.completed': ImportData,
  'imagestore.import.failed': ImportData,
  'imagestore.import.cancelled': ImportData,
};

/** The exact schema of one event type: the envelope, `type` fixed, and that type's `data`. */
export function eventSchema(type: EventType): z.ZodObject {
  return StoreEventSchema.extend({ type: z.literal(type), data: DATA_BY_TYPE[type] });
}

const TITLES: Record<EventType, [string, string]> = {
  'imagestore.album.created': ['Album created', 'POST /api/v1/albums created an album.'],
  'imagestore.album.renamed': ['Album renamed', 'PATCH /api/v1/albums/{albumName} renamed an album; data.previousName is the old name.'],
  'imagestore.album.deleted': ['Album deleted', 'DELETE /api/v1/albums/{albumName} deleted an album and its images (no event per image).'],
  'imagestore.image.created': ['Image added', 'POST /api/v1/albums/{albumName}/images stored an image durably.'],
  'imagestore.image.renamed': ['Image renamed', 'PATCH .../images/{imageName} renamed an image; data.previousName is the old name, data.id is unchanged.'],
  'imagestore.image.deleted': ['Image deleted', 'DELETE .../images/{imageName} deleted an image.'],
  'imagestore.import.created': ['Import job queued', 'POST /api/v1/albums/{albumName}/imports accepted a job of URLs to download.'],
  'imagestore.import.progress': ['Import item finished', 'One URL of an import job was stored (an imagestore.image.created event follows for the image) or failed.'],
  'imagestore.import.completed': ['Import job completed', 'Every item of the job finished; counts tell how many were stored and failed.'],
  'imagestore.import.failed': ['Import job failed', 'Every item of the job failed.'],
  'imagestore.import.cancelled': ['Import job cancelled', 'DELETE /api/v1/imports/{jobId} cancelled the job; items not finished are cancelled.'],
  'imagestore.image.fetched': ['Image downloaded', 'GET .../images/{imageName} served an image. Journaled without waiting for the disk: a crash right after a download may lose this one event.'],
};

const SAMPLE_IMAGE = { album: 'holidays', image: 'table.jpg', id: 'q3Vt0bXk2yF1mZcA', size: 48213, contentType: 'image/jpeg' };
const SAMPLES: { [T in EventType]: EventInput & { type: T } } = {
  'imagestore.album.created': { type: 'imagestore.album.created', album: 'holidays' },
  'imagestore.album.renamed': { type: 'imagestore.album.renamed', album: 'holidays-2024', previousName: 'holidays' },
  'imagestore.album.deleted': { type: 'imagestore.album.deleted', album: 'holidays' },
  'imagestore.image.created': { type: 'imagestore.image.created', ...SAMPLE_IMAGE },
  'imagestore.image.renamed': { type: 'imagestore.image.renamed', ...SAMPLE_IMAGE, image: 'kitchen-table.jpg', previousName: 'table.jpg' },
  'imagestore.image.deleted': { type: 'imagestore.image.deleted', ...SAMPLE_IMAGE },
  'imagestore.image.fetched': { type: 'imagestore.image.fetched', ...SAMPLE_IMAGE },
  'imagestore.import.created': { type: 'imagestore.import.created', album: 'holidays', jobId: 'imp_7QmXc2', counts: { queued: 2, downloading: 0, stored: 0, failed: 0, cancelled: 0 } },
  'imagestore.import.progress': {
    type: 'imagestore.import.progress', album: 'holidays', jobId: 'imp_7QmXc2', url: 'https://images.example.com/table.jpg', state: 'stored',
    image: 'table.jpg', id: 'q3Vt0bXk2yF1mZcA', counts: { queued: 1, downloading: 0, stored: 1, failed: 0, cancelled: 0 },
  },
  'imagestore.import.completed': { type: 'imagestore.import.completed', album: 'holidays', jobId: 'imp_7QmXc2', counts: { queued: 0, downloading: 0, stored: 2, failed: 0, cancelled: 0 } },
  'imagestore.import.failed': { type: 'imagestore.import.failed', album: 'holidays', jobId: 'imp_7QmXc2', counts: { queued: 0, downloading: 0, stored: 0, failed: 2, cancelled: 0 } },
  'imagestore.import.cancelled': { type: 'imagestore.import.cancelled', album: 'holidays', jobId: 'imp_7QmXc2', counts: { queued: 0, downloading: 0, stored: 1, failed: 0, cancelled: 1 } },
};

/**
 * An example event of `type`, built by the service's own `buildEvent` (fixed id and time, so the document is stable).
 * @example exampleEvent('imagestore.album.created').data.message // 'holidays album created'
 */
export function exampleEvent(type: EventType): StoreEvent {
  const index = EVENT_TYPES.indexOf(type);
  const event = buildEvent(SAMPLES[type], '/imagestore/host-1', 'b5e1c0de-4a7f-4c1e-9a53-2f0d7c1e8a01', new Date(Date.UTC(2025, 0, 15, 9, 30, index)));
  return { ...event, id: `5f0c6d2e-7b1a-4c3e-8d9f-0a1b2c3d4e${String(index).padStart(2, '0')}`, sequence: formatSequence(1000 + index) };
}

/** `imagestore.album.created` → `albumCreated`: the message's key in the document. */
export function messageKey(type: EventType): string {
  const [, noun, verb] = type.split('.');
  return `${noun}${verb[0].toUpperCase()}${verb.slice(1)}`;
}

const jsonSchema = (schema: z.ZodType) => {
  // draft-7: AsyncAPI's default schema format is a superset of it. io 'input' keeps objects open (consumers must ignore new fields).
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { target: 'draft-7', io: 'input' }) as Record<string, unknown>;
  return rest;
};

const CONTENT_TYPE = 'application/cloudevents+json';
const MQTT_BINDING_VERSION = '0.2.0';

const DESCRIPTION = `Events published by imagestore on MQTT topic \`${NOTIFIER_TOPIC}\`: one CloudEvents 1.0 event per change
(and per download), structured mode, JSON. Delivery: every event is written to a durable outbox before the HTTP
answer, then published with QoS 1 until the broker acknowledges it, so delivery is at least once; a redelivered
event keeps its \`id\`, so consumers dedupe by \`id\`. Events are published in the order of the changes, so the
events of one album arrive in order. See docs/events.md and the REST API at /swagger.`;

function message(type: EventType) {
  const [title, summary] = TITLES[type];
  return {
    name: type,
    title,
    summary,
    contentType: CONTENT_TYPE,
    payload: jsonSchema(eventSchema(type)),
    examples: [{ name: messageKey(type), summary: `Example ${type} event`, payload: exampleEvent(type) }],
    bindings: { mqtt: { bindingVersion: MQTT_BINDING_VERSION } },
  };
}

const SSE_DESCRIPTION = `GET /api/v1/events/stream (text/event-stream), read role. Every event of the journal in order,
as \`id: <sequence>\` \`event: <type>\` \`data: <the CloudEvent on one line>\`, then a blank line. Resume with the
Last-Event-ID header (EventSource sends it on its own when it reconnects) or \`?after=<sequence>\`; filter with
\`?type=\` and \`?album=\` (comma-separated). Comment lines (\`: heartbeat\`) come every EVENT_STREAM_HEARTBEAT_MS.
A client that falls more than EVENT_STREAM_MAX_LAG events behind gets \`event: reconnect\` (data: {"after": cursor})
and the stream ends; a cursor older than EVENT_RETENTION is answered 410 before the stream starts. Replay pages:
GET /api/v1/events (OpenAPI).`;

const HTTP_SERVER = {
  host: '{host}:{port}',
  protocol: 'http',
  title: 'The service\'s HTTP port',
  description: 'Server-Sent Events on the REST API\'s port (https with TLS_CERT_FILE).',
  variables: { host: { default: 'localhost', description: 'HOST' }, port: { default: '3333', description: 'PORT' } },
};

/** The structured topic families (topics.ts): which event types each carries. */
const STRUCTURED: Array<{ key: string; address: string; title: string; family: string; parameters: Record<string, { description: string }> }> = [
  { key: 'albumEvents', address: 'imagestore/v1/albums/{album}/{action}', title: 'Album events by album', family: 'imagestore.album.',
    parameters: { album: { description: 'Album name, percent-encoded (encodeURIComponent); the new name after a rename' }, action: { description: 'created, renamed or deleted' } } },
  { key: 'imageEvents', address: 'imagestore/v1/albums/{album}/images/{image}/{action}', title: 'Image events by album and image', family: 'imagestore.image.',
    parameters: {
      album: { description: 'Album name, percent-encoded' }, image: { description: 'Image name, percent-encoded; the new name after a rename' },
      action: { description: 'created, renamed, deleted or fetched' },
    } },
  { key: 'importEvents', address: 'imagestore/v1/albums/{album}/imports/{jobId}/{action}', title: 'Import job events by album and job', family: 'imagestore.import.',
    parameters: { album: { description: 'Album name, percent-encoded' }, jobId: { description: 'The import job id' }, action: { description: 'created, progress, completed, failed or cancelled' } } },
];

/** One channel per structured topic family, on the MQTT servers. */
function structuredChannels(serverNames: string[]): Record<string, unknown> {
  return Object.fromEntries(STRUCTURED.map(({ key, address, title, family, parameters }) => [key, {
    address, title,
    description: 'The same payload and id as on imagestore/notifier, on a topic a subscriber can filter with wildcards (e.g. imagestore/v1/albums/holidays/#).',
    parameters,
    servers: serverNames.map((name) => ({ $ref: `#/servers/${name}` })),
    messages: Object.fromEntries(EVENT_TYPES.filter((t) => t.startsWith(family)).map((t) => [messageKey(t), { $ref: `#/components/messages/${messageKey(t)}` }])),
    bindings: { mqtt: { bindingVersion: MQTT_BINDING_VERSION } },
  }]));
}

function structuredOperations(): Record<string, unknown> {
  return Object.fromEntries(STRUCTURED.map(({ key, family }) => [`publish${key[0].toUpperCase()}${key.slice(1)}`, {
    action: 'send',
    channel: { $ref: `#/channels/${key}` },
    summary: 'Each event also published here, QoS 1, not retained.',
    messages: EVENT_TYPES.filter((t) => t.startsWith(family)).map((t) => ({ $ref: `#/channels/${key}/messages/${messageKey(t)}` })),
    bindings: { mqtt: { qos: 1, retain: false, bindingVersion: MQTT_BINDING_VERSION } },
  }]));
}

/** Options of buildAsyncApi. */
export interface AsyncApiOptions {
  /** Path of MQTT over WebSocket on the HTTP port (MQTT_WS_PATH), when the embedded broker serves it; no such server entry when absent. */
  webSocketPath?: string;
}

function servers(webSocketPath: string | undefined) {
  const host = { default: 'localhost', description: 'MQTT_HOST (defaults to HOST)' };
  const embedded = {
    host: '{host}:{port}',
    protocol: 'mqtt',
    protocolVersion: '3.1.1',
    title: 'Embedded broker',
    description: 'The aedes broker started inside the service unless MQTT_URL names an external broker (then use that broker instead).',
    variables: { host, port: { default: '1883', description: 'MQTT_PORT' } },
  };
  if (!webSocketPath) return { embedded };
  const embeddedWebSocket = {
    host: '{host}:{port}',
    pathname: webSocketPath,
    protocol: 'ws',
    protocolVersion: '3.1.1',
    title: 'Embedded broker over WebSocket',
    description: 'The same broker, MQTT over WebSocket on the HTTP port (for browsers).',
    variables: { host: { default: 'localhost', description: 'HOST' }, port: { default: '3333', description: 'PORT (the HTTP port)' } },
  };
  return { embedded, embeddedWebSocket };
}

/**
 * The AsyncAPI 3.1 document served at /asyncapi.json: the embedded broker, the
 * `imagestore/notifier` channel, one message per EVENT_TYPES entry (schema
 * generated from the zod schemas above, with an example), and the QoS 1 binding.
 * @param version the service version, for `info.version`
 * @param options.webSocketPath adds the MQTT-over-WebSocket server entry
 * @example buildAsyncApi('1.0.0', { webSocketPath: '/mqtt' })
 */
export function buildAsyncApi(version: string, { webSocketPath }: AsyncApiOptions = {}): Record<string, unknown> {
  const keys = EVENT_TYPES.map(messageKey);
  const serverEntries = servers(webSocketPath);
  return {
    asyncapi: '3.1.0',
    info: { title: 'imagestore events', version, description: DESCRIPTION },
    defaultContentType: CONTENT_TYPE,
    servers: { ...serverEntries, http: HTTP_SERVER },
    channels: {
      notifier: {
        address: NOTIFIER_TOPIC,
        title: 'Store events',
        description: 'Every event type on one topic, as the Go service did; tell them apart by `type`.',
        servers: Object.keys(serverEntries).map((name) => ({ $ref: `#/servers/${name}` })),
        messages: Object.fromEntries(keys.map((key) => [key, { $ref: `#/components/messages/${key}` }])),
        bindings: { mqtt: { bindingVersion: MQTT_BINDING_VERSION } },
      },
      ...structuredChannels(Object.keys(serverEntries)),
      eventStream: {
        address: '/api/v1/events/stream',
        title: 'Live event stream (Server-Sent Events)',
        description: SSE_DESCRIPTION,
        servers: [{ $ref: '#/servers/http' }],
        messages: Object.fromEntries(keys.map((key) => [key, { $ref: `#/components/messages/${key}` }])),
      },
    },
    operations: {
      ...structuredOperations(),
      streamEvents: {
        action: 'send',
        channel: { $ref: '#/channels/eventStream' },
        title: 'Stream events over HTTP (Server-Sent Events)',
        summary: 'Each event as `id: <sequence>`, `event: <type>`, `data: <the CloudEvent, one line>`; resumable with Last-Event-ID.',
        messages: keys.map((key) => ({ $ref: `#/channels/eventStream/messages/${key}` })),
      },
      publishStoreEvent: {
        action: 'send',
        channel: { $ref: '#/channels/notifier' },
        title: 'Publish a store event',
        summary: 'Sent once per change, QoS 1, not retained, at least once; dedupe by id.',
        messages: keys.map((key) => ({ $ref: `#/channels/notifier/messages/${key}` })),
        bindings: { mqtt: { qos: 1, retain: false, bindingVersion: MQTT_BINDING_VERSION } },
      },
    },
    components: {
      schemas: { StoreEvent: jsonSchema(StoreEventSchema) },
      messages: Object.fromEntries(EVENT_TYPES.map((type) => [messageKey(type), message(type)])),
    },
  };
}

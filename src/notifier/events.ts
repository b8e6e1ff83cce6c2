import { randomUUID } from 'node:crypto';

/** The compatible topic: every event is published here, as the Go service did. */
export const NOTIFIER_TOPIC = 'imagestore/notifier';

/** Every event type the service emits, in CloudEvents `type` form. */
export const EVENT_TYPES = [
  'imagestore.album.created',
  'imagestore.album.renamed',
  'imagestore.album.deleted',
  'imagestore.image.created',
  'imagestore.image.renamed',
  'imagestore.image.deleted',
  'imagestore.image.fetched',
  'imagestore.import.created',
  'imagestore.import.progress',
  'imagestore.import.completed',
  'imagestore.import.failed',
  'imagestore.import.cancelled',
] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** The `data` member of every event. `image` is absent for album events. */
export interface EventData {
  album: string;
  image?: string;
  /** The old name, for `*.renamed` events (album name for album renames, image name for image renames). */
  previousName?: string;
  /** Image id, size and MIME type, when the event concerns one stored image. */
  id?: string;
  size?: number;
  contentType?: string;
  /** `image.created`: placeholders to paint before any byte of the image arrives (ThumbHash base64, `#rrggbb`). */
  thumbhash?: string;
  dominantColor?: string;
  /** `image.created`: ids of the images that already had these bytes. */
  duplicateOf?: string[];
  /** Import job events: the job, the item's URL and outcome, and the job's item counts. */
  jobId?: string;
  url?: string;
  state?: string;
  error?: string;
  counts?: ImportCounts;
  /** A human sentence, as the Go service sent: "table.jpg image added to album holidays". */
  message: string;
}

/** Items of an import job by state. */
export interface ImportCounts {
  queued: number;
  downloading: number;
  stored: number;
  failed: number;
  cancelled: number;
}

/** A CloudEvents 1.0 event in structured mode (JSON), as published on MQTT. */
export interface StoreEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: EventType;
  time: string;
  subject: string;
  datacontenttype: 'application/json';
  /** Request id of the HTTP request that caused the event (CloudEvents extension attribute). */
  reqid?: string;
  data: EventData;
}

/** Describes a change; the service turns it into a StoreEvent with `buildEvent`. */
export type EventInput =
  | { type: 'imagestore.album.created' | 'imagestore.album.deleted'; album: string }
  | { type: 'imagestore.album.renamed'; album: string; previousName: string }
  | {
      type: 'imagestore.image.created' | 'imagestore.image.deleted' | 'imagestore.image.fetched';
      album: string;
      image: string;
      id?: string;
      size?: number;
      contentType?: string;
      thumbhash?: string;
      dominantColor?: string;
      duplicateOf?: string[];
    }
  | {
      type: 'imagestore.image.renamed';
      album: string;
      image: string;
      previousName: string;
      id?: string;
      size?: number;
      contentType?: string;
    }
  | {
      type: 'imagestore.import.created' | 'imagestore.import.completed' | 'imagestore.import.failed' | 'imagestore.import.cancelled';
      album: string;
      jobId: string;
      counts: ImportCounts;
    }
  | {
      type: 'imagestore.import.progress';
      album: string;
      jobId: string;
      url: string;
      state: string;
      image?: string;
      id?: string;
      error?: string;
      counts: ImportCounts;
    };

/** The sentence carried in `data.message`: the Go service's exact wording (it had no fetch event). */
export function describe(input: EventInput): string {
  switch (input.type) {
    case 'imagestore.album.created':
      return `${input.album} album created`;
    case 'imagestore.album.deleted':
      return `${input.album} album deleted`;
    case 'imagestore.album.renamed':
      return `${input.previousName} album modified to ${input.album}`;
    case 'imagestore.image.created':
      return `${input.image} image added to album ${input.album}`;
    case 'imagestore.image.deleted':
      return `${input.image} image deleted from album ${input.album}`;
    case 'imagestore.image.fetched':
      return `${input.image} image fetched from album ${input.album}`;
    case 'imagestore.image.renamed':
      return `${input.previousName} image modified to ${input.image}`;
    case 'imagestore.import.created':
      return `import ${input.jobId} of ${total(input.counts)} URLs into album ${input.album} queued`;
    case 'imagestore.import.progress':
      return input.state === 'stored' ? `${input.url} imported into album ${input.album} as ${input.image}` : `${input.url} ${input.state}${input.error ? `: ${input.error}` : ''}`;
    case 'imagestore.import.completed':
    case 'imagestore.import.failed':
    case 'imagestore.import.cancelled':
      return `import ${input.jobId} into album ${input.album} ${input.type.slice('imagestore.import.'.length)}: ${input.counts.stored} stored, ${input.counts.failed} failed`;
  }
}

function total(counts: ImportCounts): number {
  return counts.queued + counts.downloading + counts.stored + counts.failed + counts.cancelled;
}

/** The CloudEvents `subject`: the resource path below /api/v1. */
export function subjectOf(input: EventInput): string {
  const album = `albums/${encodeURIComponent(input.album)}`;
  if ('jobId' in input) return `imports/${input.jobId}`;
  return 'image' in input && input.image !== undefined ? `${album}/images/${encodeURIComponent(input.image)}` : album;
}

/**
 * Builds a CloudEvents 1.0 structured event.
 * @param input what happened
 * @param source the CloudEvents `source` (identifies this node, e.g. `/imagestore/host-1`)
 * @param reqId the HTTP request id, carried as the `reqid` extension attribute
 */
export function buildEvent(input: EventInput, source: string, reqId?: string, now = new Date()): StoreEvent {
  const { type, ...rest } = input;
  const data: EventData = { ...rest, message: describe(input) };
  const event: StoreEvent = {
    specversion: '1.0',
    id: randomUUID(),
    source,
    type,
    time: now.toISOString(),
    subject: subjectOf(input),
    datacontenttype: 'application/json',
    data,
  };
  if (reqId) event.reqid = reqId;
  return event;
}

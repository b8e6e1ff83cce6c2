// The events as they travel on MQTT: shared by the service (which builds them) and the client (which reads them).

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
  /** `image.created`: ids of images that already had these bytes (at most 10). */
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
  /**
   * The event's position in the journal (CloudEvents `sequence` extension: a string that orders
   * lexicographically, so zero-padded decimal); set when the event is journaled, the same on every transport.
   */
  sequence?: string;
  data: EventData;
}

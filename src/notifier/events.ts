import { randomUUID } from 'node:crypto';

import { EVENT_TYPES, NOTIFIER_TOPIC, type EventData, type EventType, type ImportCounts, type StoreEvent } from '../contract/events.js';

export { EVENT_TYPES, NOTIFIER_TOPIC, type EventData, type EventType, type ImportCounts, type StoreEvent };

/** Digits of a `sequence`: 16 orders lexicographically up to 10^16 events. */
const SEQUENCE_DIGITS = 16;

/** A journal position as the CloudEvents `sequence` string: `42` → `0000000000000042`. */
export function formatSequence(seq: number): string {
  return String(seq).padStart(SEQUENCE_DIGITS, '0');
}

/** A `sequence` (or any decimal form of it) as a number; undefined when it is not one. */
export function parseSequence(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
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

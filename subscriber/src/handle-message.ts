import type { EventData } from '../../src/notifier/events.js';
import { shortType, type EventFilter, type OutputFormat } from './config.js';

/**
 * A CloudEvents 1.0 event as received. `type` stays a plain string so that a newer service's
 * event types are still printed; unknown extra attributes are kept for the JSON output.
 */
export interface ReceivedEvent {
  specversion: '1.0';
  id: string;
  source: string;
  type: string;
  time: string;
  subject?: string;
  reqid?: string;
  /** Position in the service's journal (CloudEvents sequence extension). */
  sequence?: string;
  data: EventData;
  [attribute: string]: unknown;
}

/** What `handleMessage` decided about one MQTT message. */
export type HandleResult =
  | { kind: 'event'; event: ReceivedEvent; line: string }
  | { kind: 'filtered'; event: ReceivedEvent }
  | { kind: 'invalid'; reason: string };

/** Options of `handleMessage`: the output form and the filters from the config. */
export interface HandleOptions {
  format: OutputFormat;
  filter: EventFilter;
}

const REQUIRED_STRINGS = ['id', 'source', 'type', 'time'] as const;
const OPTIONAL_STRINGS = ['subject', 'reqid', 'datacontenttype'] as const;
const OPTIONAL_DATA_STRINGS = ['image', 'previousName', 'message'] as const;

/**
 * Parses and checks one message (pure: no I/O), applies the filters and renders the output line.
 * @param topic the topic it arrived on (named in the reason of an invalid message)
 * @param payload the raw MQTT payload
 * @param opts output format and filters
 * @returns `event` with the line to print, `filtered`, or `invalid` with the reason
 * @example handleMessage('imagestore/notifier', Buffer.from(json), { format: 'text', filter: { albums: [], types: [] } })
 */
export function handleMessage(topic: string, payload: Buffer, opts: HandleOptions): HandleResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    return { kind: 'invalid', reason: `payload on ${topic} is not JSON: ${(err as Error).message}` };
  }
  const problem = checkEvent(parsed);
  if (problem) return { kind: 'invalid', reason: `payload on ${topic} is not an imagestore CloudEvent: ${problem}` };
  const event = parsed as ReceivedEvent;
  const { albums, types } = opts.filter;
  if ((albums.length > 0 && !concernsAlbums(event, albums)) || (types.length > 0 && !types.some((t) => t === event.type))) {
    return { kind: 'filtered', event };
  }
  return { kind: 'event', event, line: opts.format === 'json' ? JSON.stringify(event) : formatLine(event) };
}

/**
 * True when the event is about one of `albums`. An album rename concerns both its old and its
 * new name, so a subscriber of "holidays" sees "holidays" being renamed away.
 */
export function concernsAlbums(event: Pick<ReceivedEvent, 'type' | 'data'>, albums: string[]): boolean {
  if (albums.includes(event.data.album)) return true;
  const { previousName } = event.data;
  return event.type === 'imagestore.album.renamed' && previousName !== undefined && albums.includes(previousName);
}

/** Returns what is wrong with `value` as a ReceivedEvent, or undefined when it is one. */
function checkEvent(value: unknown): string | undefined {
  if (!isObject(value)) return `expected a JSON object, got ${describe(value)}`;
  if (value.specversion !== '1.0') return `expected specversion "1.0", got ${describe(value.specversion)}`;
  for (const key of REQUIRED_STRINGS) {
    if (typeof value[key] !== 'string' || value[key] === '') return `expected ${key} to be a non-empty string, got ${describe(value[key])}`;
  }
  if (Number.isNaN(Date.parse(value.time as string))) return `expected time to be an RFC 3339 timestamp, got ${describe(value.time)}`;
  for (const key of OPTIONAL_STRINGS) {
    if (value[key] !== undefined && typeof value[key] !== 'string') return `expected ${key} to be a string, got ${describe(value[key])}`;
  }
  const data = value.data;
  if (!isObject(data)) return `expected data to be an object, got ${describe(data)}`;
  if (typeof data.album !== 'string' || data.album === '') return `expected data.album to be a non-empty string, got ${describe(data.album)}`;
  for (const key of OPTIONAL_DATA_STRINGS) {
    if (data[key] !== undefined && typeof data[key] !== 'string') return `expected data.${key} to be a string, got ${describe(data[key])}`;
  }
  return undefined;
}

/**
 * One readable line for an event: time, short type, `album=`, `image=` and `from=` (previous name)
 * when present, then the message. Values with spaces, quotes or control characters are JSON-quoted,
 * and control characters in the message are escaped, so the line never breaks.
 * @example formatLine(event) // '2026-11-23T07:00:00.000Z image.created album=holidays image=table.jpg — table.jpg image added to album holidays'
 */
export function formatLine(event: Pick<ReceivedEvent, 'time' | 'type' | 'data'>): string {
  const { album, image, previousName, message } = event.data;
  const parts = [event.time, shortType(event.type), `album=${quote(album)}`];
  if (image !== undefined) parts.push(`image=${quote(image)}`);
  if (previousName !== undefined) parts.push(`from=${quote(previousName)}`);
  const line = parts.join(' ');
  return message === undefined || message === '' ? line : `${line} — ${escapeControls(message)}`;
}

function quote(value: string): string {
  return value === '' || /[\s"'=\\\u0000-\u001f\u007f]/.test(value) ? JSON.stringify(value) : value;
}

function escapeControls(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A short, bounded rendering of a received value for an error message. */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

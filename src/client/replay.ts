import type { StoreEvent } from '../contract/events.js';
import type { HttpClient } from './http.js';

/** Options of listEvents. */
export interface ReplayOptions {
  /** The cursor: events after this sequence (a `sequence` or the `next` of the last page); none: from the oldest held. */
  after?: string | number;
  /** Events per page, 1-1000; default 100. */
  limit?: number;
  /** Event types (`imagestore.image.*` allowed); none: all. */
  types?: string[];
  /** Albums; none: all. */
  albums?: string[];
  signal?: AbortSignal;
}

/** One page of the event journal. */
export interface EventPage {
  events: StoreEvent[];
  /** Pass as `after` for the next page; the same as `after` when there is nothing newer yet. */
  next: string;
  /** The latest sequence readable when the page was read. */
  head: string;
}

/**
 * GET /events: the journaled events after a cursor, in order, one page.
 * @throws {ImageStoreError} status 410 when `after` is older than the service's EVENT_RETENTION
 */
export async function listEvents(http: HttpClient, { after, limit, types, albums, signal }: ReplayOptions = {}): Promise<EventPage> {
  return http.json<EventPage>({
    method: 'GET', path: '/api/v1/events', signal,
    query: { after: after === undefined ? undefined : String(after), limit, type: types?.join(','), album: albums?.join(',') },
  });
}

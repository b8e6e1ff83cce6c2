import { NOTIFIER_TOPIC, type StoreEvent } from './events.js';

/** Root of the structured topic tree. */
export const STRUCTURED_ROOT = 'imagestore/v1/albums';

/**
 * One topic level from a name. Percent-encoding (encodeURIComponent) turns
 * `/`, `+`, `#`, `%`, spaces and every non-ASCII character into `%XX` UTF-8
 * escapes, so no name can add a level or act as a wildcard; decode with
 * decodeURIComponent.
 */
export function encodeTopicLevel(name: string): string {
  return encodeURIComponent(name);
}

/**
 * The topics an event is published on: the compatible `imagestore/notifier`
 * and the structured one a subscriber can filter with wildcards:
 * `imagestore/v1/albums/{album}/{action}` for album events,
 * `imagestore/v1/albums/{album}/images/{image}/{action}` for image events
 * (action: created, renamed, deleted, fetched), and
 * `imagestore/v1/albums/{album}/imports/{jobId}/{action}` for import jobs
 * (created, progress, completed, failed, cancelled).
 */
export function topicsFor(event: StoreEvent): string[] {
  const action = event.type.slice(event.type.lastIndexOf('.') + 1);
  const album = `${STRUCTURED_ROOT}/${encodeTopicLevel(event.data.album)}`;
  const structured = event.data.jobId !== undefined
    ? `${album}/imports/${encodeTopicLevel(event.data.jobId)}/${action}`
    : event.data.image === undefined ? `${album}/${action}` : `${album}/images/${encodeTopicLevel(event.data.image)}/${action}`;
  return [NOTIFIER_TOPIC, structured];
}

import { EVENT_TYPES, type EventType, type StoreEvent } from '../notifier/events.js';
import { ValidationError } from '../errors.js';

/** Which events a reader wants: by type and by album (none given: all). */
export interface EventSelection {
  types?: EventType[];
  albums?: string[];
}

/**
 * Reads `type` and `album` query parameters (repeated or comma-separated). A type may end in `.*`
 * (`imagestore.image.*`).
 * @throws {ValidationError} for an unknown type
 */
export function selectionFromQuery(query: Record<string, string | string[] | undefined>): EventSelection {
  const list = (value: string | string[] | undefined) =>
    (Array.isArray(value) ? value : value === undefined ? [] : [value]).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const types = list(query.type).flatMap((type) => {
    const matches = type.endsWith('.*') ? EVENT_TYPES.filter((t) => t.startsWith(type.slice(0, -1))) : EVENT_TYPES.filter((t) => t === type);
    if (matches.length === 0) throw new ValidationError(`Expected an event type such as imagestore.image.created or imagestore.image.* for type but received ${JSON.stringify(type)}`);
    return matches;
  });
  const albums = list(query.album);
  return { types: types.length > 0 ? types : undefined, albums: albums.length > 0 ? albums : undefined };
}

/** The selection as a predicate on events. */
export function eventFilter({ types, albums }: EventSelection): (event: StoreEvent) => boolean {
  const typeSet = types && new Set<string>(types);
  const albumSet = albums && new Set(albums);
  // A rename matches by its old name too: a reader of one album sees it leave.
  return (event) => (!typeSet || typeSet.has(event.type))
    && (!albumSet || albumSet.has(event.data.album) || (event.type === 'imagestore.album.renamed' && albumSet.has(event.data.previousName ?? '')));
}

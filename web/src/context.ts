import type { Api, Role } from './api.js';
import type { StoreEvent } from './events.js';

/** A set of listeners for the service's events: each view subscribes while it is open. */
export class EventBus {
  private readonly listeners = new Set<(event: StoreEvent) => void>();

  /** Subscribes; the returned function unsubscribes (a useEffect cleanup). */
  on(listener: (event: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  emit(event: StoreEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

/** What every view gets: the API client, the events, and what the key may do. */
export interface Session {
  api: Api;
  bus: EventBus;
  role: Role;
}

/** The key may change things (upload, rename, delete images, create albums). */
export const canWrite = (role: Role) => role !== 'read';
/** Deleting an album needs the admin role. */
export const canAdmin = (role: Role) => role === 'admin';

/** Hash routes: #/ albums, #/a/{album}, #/a/{album}/i/{image}, #/c/{album}/{a}/{b}. */
export type Route =
  | { view: 'albums' }
  | { view: 'album'; album: string; image?: string }
  | { view: 'compare'; album: string; a: string; b: string };

/** The route of a location hash; unknown hashes show the albums. */
export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  if (parts[0] === 'a' && parts[1]) return parts[2] === 'i' && parts[3] ? { view: 'album', album: parts[1], image: parts[3] } : { view: 'album', album: parts[1] };
  if (parts[0] === 'c' && parts.length === 4) return { view: 'compare', album: parts[1], a: parts[2], b: parts[3] };
  return { view: 'albums' };
}

/** The hash of a route. */
export function href(route: Route): string {
  const e = encodeURIComponent;
  if (route.view === 'album') return `#/a/${e(route.album)}${route.image === undefined ? '' : `/i/${e(route.image)}`}`;
  if (route.view === 'compare') return `#/c/${e(route.album)}/${e(route.a)}/${e(route.b)}`;
  return '#/';
}

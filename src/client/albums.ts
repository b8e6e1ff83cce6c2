import type { HttpClient } from './http.js';
import { allPages } from './pages.js';
import type { AlbumList, AlbumResult, ListOptions, MessageResult } from './types.js';

/** `/api/v1/albums/{album}`, the name percent-encoded. */
export function albumPath(album: string): string {
  return `/api/v1/albums/${encodeURIComponent(album)}`;
}

/** GET /albums: one page of album names (and objects with `details`). */
export function listAlbums(http: HttpClient, options: ListOptions = {}): Promise<AlbumList> {
  const { limit, cursor, details, signal } = options;
  return http.json({ method: 'GET', path: '/api/v1/albums', query: { limit, cursor, details: details || undefined }, signal }, 'AlbumListResponse');
}

/**
 * Every album name, following the pages.
 * @param pageSize names per request, default 1000
 * @throws {ImageStoreError} `invalid_response` for a listing that pages in a circle
 */
export function listAllAlbums(http: HttpClient, pageSize = 1000, signal?: AbortSignal): Promise<string[]> {
  return allPages(http, '/api/v1/albums', async (cursor) => {
    const { albumList, nextCursor } = await listAlbums(http, { limit: pageSize, cursor, signal });
    return { items: albumList, nextCursor };
  });
}

/** POST /albums. */
export function createAlbum(http: HttpClient, name: string, signal?: AbortSignal): Promise<AlbumResult> {
  return http.json({ method: 'POST', path: '/api/v1/albums', json: { albumName: name }, signal }, 'AlbumResponse');
}

/** PATCH /albums/{album}. */
export function renameAlbum(http: HttpClient, from: string, to: string, signal?: AbortSignal): Promise<AlbumResult> {
  return http.json({ method: 'PATCH', path: albumPath(from), json: { albumName: to }, signal }, 'AlbumResponse');
}

/** DELETE /albums/{album} (and its images; needs the admin role when keys are configured). */
export function deleteAlbum(http: HttpClient, name: string, signal?: AbortSignal): Promise<MessageResult> {
  return http.json({ method: 'DELETE', path: albumPath(name), signal }, 'MessageResponse');
}

import type { HttpClient } from './http.js';
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

import { ImageStoreError } from './errors.js';
import type { HttpClient } from './http.js';

/**
 * The items of every page of the listing at `path`, from its first page until one has no `nextCursor`.
 * @throws {ImageStoreError} `invalid_response` when a cursor comes back (the listing would never end)
 */
export async function allPages<T>(http: HttpClient, path: string, page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string }>): Promise<T[]> {
  const items: T[] = [];
  const seen = new Set<string>();
  let cursor: string | undefined;
  for (;;) {
    const next = await page(cursor);
    items.push(...next.items);
    cursor = next.nextCursor || undefined;
    if (cursor === undefined) return items;
    if (seen.has(cursor)) throw invalidListing(http, path, `the listing ${path} repeats cursor ${cursor}`);
    seen.add(cursor);
  }
}

/** The `invalid_response` error of a listing (GET `path`). */
export function invalidListing(http: HttpClient, path: string, message: string): ImageStoreError {
  return new ImageStoreError({ status: 0, code: 'invalid_response', method: 'GET', url: http.url(path), message });
}

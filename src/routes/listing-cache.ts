import type { Context } from 'koa';
import { HotCache } from '../images/hot-cache.js';

/** Bytes of serialised listing pages kept, and the largest page kept (a 10,000-name page is ~200 KB). */
export const LISTING_CACHE_BYTES = 16 * 1024 * 1024;
export const LISTING_CACHE_MAX_PAGE_BYTES = 2 * 1024 * 1024;

/**
 * Listing answers kept as the JSON bytes sent, least recently used out past a
 * byte budget: a page asked for again costs about what a static file does.
 * A page is kept under the album's (or the album list's) version and the exact
 * query string; the store gives every change a version never used before
 * (AlbumStore.version), so a kept page is never stale and nothing has to be
 * told about changes. A store without versions gets no caching.
 */
export class ListingCache {
  private readonly pages = new HotCache(LISTING_CACHE_BYTES, LISTING_CACHE_MAX_PAGE_BYTES);
  private readonly making = new Map<string, Promise<Buffer>>();

  /** @param version AlbumService.version */
  constructor(private readonly version: (album?: string) => number | undefined) {}

  /**
   * Answers the listing of `album` (undefined: the album list) from a kept page, or
   * from `make` (which checks the query and may throw) and keeps it.
   */
  async send(ctx: Context, album: string | undefined, make: () => Promise<unknown>): Promise<void> {
    // Read before the listing is made: a change meanwhile then leaves it under a version no one asks for again.
    const version = this.version(album);
    const key = version === undefined ? undefined : `${album ?? ''}\n${version}\n${ctx.querystring}`;
    let bytes = key === undefined ? undefined : this.pages.get(key);
    if (bytes === undefined && key !== undefined) {
      // Requests for a page being made wait for it (one listing, not one per request: on S3 each is a round trip).
      let making = this.making.get(key);
      if (!making) {
        making = make().then((page) => Buffer.from(JSON.stringify(page))).finally(() => this.making.delete(key));
        this.making.set(key, making);
      }
      bytes = await making;
      this.pages.set(key, bytes);
    } else if (bytes === undefined) {
      bytes = Buffer.from(JSON.stringify(await make()));
    }
    ctx.type = 'json';
    ctx.body = bytes;
  }
}

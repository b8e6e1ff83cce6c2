import { contentDisposition } from '../lib/content-disposition.js';

/** An image response's headers that do not depend on the request, made once and kept. */
export interface ReadyHeaders {
  /** Strong ETag, quoted. */
  etag: string;
  /** Last-Modified (an HTTP date). */
  lastModified: string;
  /** Last-Modified in ms, whole seconds: the precision If-Modified-Since compares at. */
  lastModifiedMs: number;
  type: string;
  cacheControl: string;
  /** Content-Disposition values. */
  inline: string;
  attachment: string;
  /** Adds `Vary: Accept` (the format was negotiated). */
  varyAccept: boolean;
  /** Content-Security-Policy: only for SVG, which can carry script (sandboxed, no scripts, when opened directly). */
  csp?: string;
}

/** What ready headers are made of: a kept set is used only while every one of these is the same. */
export interface HeaderSource {
  etag: string;
  /** ISO date of the last change. */
  modifiedAt: string;
  /** File name for Content-Disposition. */
  name: string;
  type: string;
  cacheControl: string;
  varyAccept: boolean;
}

const SVG_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:";

/** Header sets kept by default: enough for the images a node serves most. */
export const READY_HEADERS_ENTRIES = 4096;

/**
 * Ready-made response headers, least recently used out past `max` entries.
 * An entry is checked against its source on every use, so a renamed,
 * re-uploaded or otherwise changed image gets new headers at once: nothing
 * has to be told about changes, and nothing served is ever stale.
 */
export class ReadyHeadersCache {
  /** Map order is the LRU order (oldest first). */
  private readonly entries = new Map<string, { source: HeaderSource; headers: ReadyHeaders }>();

  constructor(private readonly max = READY_HEADERS_ENTRIES) {}

  /**
   * The headers for `source`, made now unless kept.
   * @param key what the headers are of (e.g. the image id and the derivative); `source` decides whether a kept set is still right
   */
  get(key: string, source: HeaderSource): ReadyHeaders {
    const kept = this.entries.get(key);
    if (kept !== undefined) {
      this.entries.delete(key);
      if (sameSource(kept.source, source)) {
        this.entries.set(key, kept);
        return kept.headers;
      }
    }
    const headers = makeHeaders(source);
    this.entries.set(key, { source, headers });
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value!);
    return headers;
  }
}

function sameSource(a: HeaderSource, b: HeaderSource): boolean {
  return a.etag === b.etag && a.modifiedAt === b.modifiedAt && a.name === b.name && a.type === b.type && a.cacheControl === b.cacheControl && a.varyAccept === b.varyAccept;
}

function makeHeaders({ etag, modifiedAt, name, type, cacheControl, varyAccept }: HeaderSource): ReadyHeaders {
  const modified = new Date(modifiedAt);
  return {
    etag, type, cacheControl, varyAccept,
    lastModified: modified.toUTCString(),
    lastModifiedMs: Math.floor(modified.getTime() / 1000) * 1000,
    inline: contentDisposition('inline', name),
    attachment: contentDisposition('attachment', name),
    csp: type === 'image/svg+xml' ? SVG_CSP : undefined,
  };
}

/** The service's REST API as the gallery uses it: same origin, the key (when any) in Authorization. */

/** An image's metadata, as GET …/metadata and listings with details=true answer it. */
export interface ImageInfo {
  id: string;
  name: string;
  album: string;
  size: number;
  type: string;
  sha256: string;
  format?: string;
  width?: number;
  height?: number;
  createdAt: string;
  modifiedAt: string;
}

/** A page of an album's images, in name order. */
export interface ImagePage {
  imageList: string[];
  images?: ImageInfo[];
  nextCursor?: string;
}

/** What the service answered, in words a person understands. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Words for the upload failures a person can act on; the service's own message follows. */
const UPLOAD_WORDS: Record<number, string> = {
  409: 'an image of that name is already in the album',
  413: 'the file is too large for this service',
  415: 'not an image (JPEG, PNG, WebP, GIF, AVIF, TIFF, HEIC or JPEG XL expected)',
  422: 'the image is corrupt or has too many pixels',
  507: 'the service is out of disk space',
};

/** The URL path of an album, or of one of its images, names escaped. */
export function albumPath(album: string, image?: string): string {
  const base = `/api/v1/albums/${encodeURIComponent(album)}`;
  return image === undefined ? base : `${base}/images/${encodeURIComponent(image)}`;
}

/** A thumbnail (or any size) of an image: a transform URL the service caches. */
export function thumbUrl(album: string, image: string, side: number): string {
  return `${albumPath(album, image)}?w=${side}&h=${side}&fit=cover&format=auto`;
}

/**
 * The API client of one page. `key` is the API key of the tab (undefined when the service is open):
 * fetches send it as a Bearer token; `<img>` tags and EventSource rely on the session cookie instead.
 */
export class Api {
  key: string | undefined;

  constructor(key?: string) {
    this.key = key;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return this.key ? { ...extra, Authorization: `Bearer ${this.key}` } : extra;
  }

  /** A JSON request; throws ApiError with the service's `error` message on a non-2xx answer. */
  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(path, {
      method,
      headers: this.headers(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
    if (!res.ok) throw await apiError(res);
    return (res.status === 204 ? undefined : await res.json()) as T;
  }

  /** Starts (or renews) the read-only session cookie; answers the key's role. */
  async startSession(): Promise<Role> {
    return (await this.json<{ role: Role }>('POST', '/api/v1/session')).role;
  }

  albums(): Promise<{ albumList: string[] }> {
    return this.json('GET', '/api/v1/albums');
  }

  images(album: string, options: { limit?: number; cursor?: string; details?: boolean } = {}): Promise<ImagePage> {
    const q = new URLSearchParams();
    if (options.limit) q.set('limit', String(options.limit));
    if (options.cursor) q.set('cursor', options.cursor);
    if (options.details) q.set('details', 'true');
    return this.json('GET', `${albumPath(album)}/images${q.size ? `?${q}` : ''}`);
  }

  metadata(album: string, image: string): Promise<ImageInfo> {
    return this.json('GET', `${albumPath(album, image)}/metadata`);
  }

  /**
   * Uploads one file with progress (XMLHttpRequest: fetch reports no upload progress).
   * @throws {ApiError} with the failure in words (409, 413, 415, 422 …) and the service's message
   */
  upload(album: string, file: File, onProgress: (sent: number) => void): Promise<ImageInfo> {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', `${albumPath(album)}/images`);
      if (this.key) xhr.setRequestHeader('Authorization', `Bearer ${this.key}`);
      xhr.upload.onprogress = (e) => onProgress(e.loaded);
      xhr.onerror = () => reject(new ApiError(0, 'the connection to the service failed'));
      xhr.onload = () => {
        let body: { error?: string; image?: ImageInfo } = {};
        try {
          body = JSON.parse(xhr.responseText);
        } catch { /* not JSON: the status says enough */ }
        if (xhr.status === 201 && body.image) return resolve(body.image);
        const words = UPLOAD_WORDS[xhr.status];
        // The words for the statuses a person can act on; the service's own message otherwise.
        reject(new ApiError(xhr.status, words ?? body.error ?? `HTTP ${xhr.status}`));
      };
      const form = new FormData();
      form.append('file', file, file.name);
      xhr.send(form);
    });
  }
}

/** A key's role: read sees no write controls; admin may also delete albums. */
export type Role = 'read' | 'write' | 'admin';

async function apiError(res: Response): Promise<ApiError> {
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: string };
    if (body.error) message = body.error;
  } catch { /* not JSON */ }
  return new ApiError(res.status, message);
}

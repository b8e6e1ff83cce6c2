/**
 * A stable, machine-readable name for what went wrong. HTTP answers map by
 * status (the service's error bodies carry only `{ error: message }`);
 * `network_error`, `timeout`, `aborted` and `invalid_response` happen on the
 * client side, with `status` 0 for the first three.
 */
export type ImageStoreErrorCode =
  | 'validation_failed' | 'unauthorized' | 'forbidden' | 'not_found' | 'method_not_allowed' | 'request_timeout'
  | 'conflict' | 'payload_too_large' | 'unsupported_media_type' | 'range_not_satisfiable' | 'unprocessable_image'
  | 'rate_limited' | 'server_error' | 'not_configured' | 'bad_gateway' | 'unavailable' | 'gateway_timeout' | 'http_error'
  | 'network_error' | 'timeout' | 'aborted' | 'invalid_response';

const CODE_BY_STATUS: Record<number, ImageStoreErrorCode> = {
  400: 'validation_failed', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 405: 'method_not_allowed',
  408: 'request_timeout', 409: 'conflict', 413: 'payload_too_large', 415: 'unsupported_media_type',
  416: 'range_not_satisfiable', 422: 'unprocessable_image', 429: 'rate_limited', 500: 'server_error',
  501: 'not_configured', 502: 'bad_gateway', 503: 'unavailable', 504: 'gateway_timeout',
};

/** The code for an HTTP status (`http_error` for statuses the service does not use). */
export function codeForStatus(status: number): ImageStoreErrorCode {
  return CODE_BY_STATUS[status] ?? (status >= 500 ? 'server_error' : 'http_error');
}

/** What an ImageStoreError is built from. */
export interface ImageStoreErrorInit {
  status: number;
  code: ImageStoreErrorCode;
  message: string;
  method: string;
  url: string;
  /** The service's X-Request-Id, to find the request in its logs. */
  requestId?: string;
  /** Seconds the service asked to wait (Retry-After), when it said. */
  retryAfterSeconds?: number;
  /** How many attempts were made (more than 1 after retries). */
  attempts?: number;
  cause?: unknown;
}

/**
 * Every failure of the client: an error answer of the service (its status and
 * its `{ error }` message), or a failure to get one (network, timeout).
 * @example
 * try { await client.deleteAlbum('x'); } catch (err) { if (err instanceof ImageStoreError && err.status === 404) … }
 */
export class ImageStoreError extends Error {
  /** HTTP status, or 0 when no answer came (network error, timeout, abort). */
  readonly status: number;
  readonly code: ImageStoreErrorCode;
  readonly method: string;
  readonly url: string;
  readonly requestId?: string;
  readonly retryAfterSeconds?: number;
  readonly attempts: number;

  constructor(init: ImageStoreErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'ImageStoreError';
    this.status = init.status;
    this.code = init.code;
    this.method = init.method;
    this.url = init.url;
    this.requestId = init.requestId;
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.attempts = init.attempts ?? 1;
  }

  /** A plain object for logs and `--json` output. */
  toJSON(): Record<string, unknown> {
    return { error: this.message, status: this.status, code: this.code, method: this.method, url: this.url, requestId: this.requestId };
  }
}

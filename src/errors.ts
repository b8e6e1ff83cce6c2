/**
 * The one error hierarchy. Domain and store code throw these; only
 * middleware/error-handler.ts turns them into HTTP answers.
 */
export abstract class AppError extends Error {
  /** HTTP status the error maps to. */
  abstract readonly status: number;
  /** Stable machine-readable id, e.g. `not_found`. */
  abstract readonly code: string;
  /** The message is safe to show to clients (koa/http-errors meaning). */
  readonly expose = true;
  /** Seconds the client should wait before retrying (sent as Retry-After); only on errors that say so. */
  readonly retryAfterSeconds?: number;
  constructor(
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** 400: the request is malformed (bad name, bad JSON, missing field). */
export class ValidationError extends AppError {
  readonly status = 400;
  readonly code = 'validation_failed';
}

/** 404: unknown album, image or route. */
export class NotFoundError extends AppError {
  readonly status = 404;
  readonly code = 'not_found';
}

/** 409: the name is taken. */
export class ConflictError extends AppError {
  readonly status = 409;
  readonly code = 'conflict';
}

/** 409: the upload's bytes are already stored and the duplicate policy is `reject`; Location names the existing image. */
export class DuplicateImageError extends ConflictError {
  readonly headers: Record<string, string>;
  constructor(message: string, location: string) {
    super(message);
    this.headers = { Location: location };
  }
}

/** 413: body or file larger than allowed. */
export class PayloadTooLargeError extends AppError {
  readonly status = 413;
  readonly code = 'payload_too_large';
}

/** 415: body of a type the route does not take. */
export class UnsupportedMediaTypeError extends AppError {
  readonly status = 415;
  readonly code = 'unsupported_media_type';
}

/**
 * 410: what was asked for is gone for good, e.g. a replay cursor older than the event retention;
 * `details` (such as the oldest sequence still held) go into the answer's body.
 */
export class GoneError extends AppError {
  readonly status = 410;
  readonly code = 'gone';
}

/** 408: the client was too slow sending its request. */
export class RequestTimeoutError extends AppError {
  readonly status = 408;
  readonly code = 'request_timeout';
}

/** 416: the Range cannot be satisfied. */
export class RangeNotSatisfiableError extends AppError {
  readonly status = 416;
  readonly code = 'range_not_satisfiable';
}

/** 422: the bytes claim to be an image but cannot be decoded, or it is too large to decode. */
export class UnprocessableImageError extends AppError {
  readonly status = 422;
  readonly code = 'unprocessable_image';
}

/** 422: two images of different sizes compared without resize=fit. */
export class SizeMismatchError extends AppError {
  readonly status = 422;
  readonly code = 'size_mismatch';
}

/** 431: the request's headers are larger than Node's parser takes. */
export class HeadersTooLargeError extends AppError {
  readonly status = 431;
  readonly code = 'headers_too_large';
}

/** 503: temporarily unable (upload slots full, shutting down). Carries `retryAfterSeconds`. */
export class ServiceUnavailableError extends AppError {
  readonly status = 503;
  readonly code = 'unavailable';
  constructor(
    message: string,
    override readonly retryAfterSeconds = 1,
  ) {
    super(message);
  }
}

/** 507: the disk holding the data dir is full (or over quota): the change was not made. */
export class InsufficientStorageError extends AppError {
  readonly status = 507;
  readonly code = 'insufficient_storage';
}

/** Thrown by loadConfig with every problem found, one per line. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The JSON body every error answer carries. */
export function toErrorBody(message: string): { error: string } {
  return { error: message };
}

/** 401: no key, a wrong key, or a bad or expired signature. */
export class UnauthorizedError extends AppError {
  readonly status = 401;
  readonly code = 'unauthorized';
}

/** 403: the key's role is too low for the operation. */
export class ForbiddenError extends AppError {
  readonly status = 403;
  readonly code = 'forbidden';
}

/** 429: over the rate limit. Carries `retryAfterSeconds`. */
export class TooManyRequestsError extends AppError {
  readonly status = 429;
  readonly code = 'rate_limited';
  constructor(
    message: string,
    override readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** 501: the feature needs configuration that is absent (e.g. URL_SIGNING_SECRET). */
export class NotConfiguredError extends AppError {
  readonly status = 501;
  readonly code = 'not_configured';
}

const OUT_OF_SPACE = new Set(['ENOSPC', 'EDQUOT']);
const NOT_WRITABLE = new Set(['EACCES', 'EPERM']);
const TOO_MANY_FILES = new Set(['EMFILE', 'ENFILE']);
/** libvips reports system errors as text ("system error: No space left on device"), without a code. */
const STRERROR_CODES: Array<[RegExp, string]> = [
  [/No space left on device/i, 'ENOSPC'], [/Disk quota exceeded/i, 'EDQUOT'], [/Read-only file system/i, 'EROFS'],
  [/Too many open files/i, 'EMFILE'],
];

/** True when the error says the disk is full or over quota (ENOSPC, EDQUOT; also in libvips messages). */
export function isOutOfSpace(err: unknown): boolean {
  return OUT_OF_SPACE.has(systemErrorCode(err) ?? '');
}

/**
 * Turns an error of the storage (a Node system error, or a libvips message quoting one) into the
 * AppError a client should see, with a message that names no path: ENOSPC/EDQUOT → 507;
 * EROFS/EACCES/EPERM → 503 (the store cannot be written); EMFILE/ENFILE → 503 with Retry-After.
 * Anything else → undefined (the caller keeps the error: a 500, logged with its details).
 * @example storageError(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' })) // InsufficientStorageError
 */
export function storageError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err;
  const code = systemErrorCode(err);
  if (code === undefined) return undefined;
  if (OUT_OF_SPACE.has(code)) return new InsufficientStorageError('not enough storage space: the disk holding the store is full');
  if (code === 'EROFS') return new ServiceUnavailableError('the store cannot be written: its file system is read-only', 60);
  if (NOT_WRITABLE.has(code)) return new ServiceUnavailableError('the store cannot be accessed: permission denied', 60);
  if (TOO_MANY_FILES.has(code)) return new ServiceUnavailableError('too many open files; retry shortly', 1);
  return undefined;
}

function systemErrorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { code, message } = err as { code?: unknown; message?: unknown };
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  if (typeof message !== 'string') return undefined;
  return STRERROR_CODES.find(([pattern]) => pattern.test(message))?.[1];
}

/**
 * Replaces absolute file paths in an engine's message (sharp and libvips quote the files they
 * read and write) with `<file>`, so a client never learns the server's layout.
 * @example stripPaths('Input file is missing: /data/image-store/a/b.png') // 'Input file is missing: <file>'
 */
export function stripPaths(message: string): string {
  return message.replace(/(^|[\s"'(=:,])\/[^\s"'),:]+/g, '$1<file>');
}

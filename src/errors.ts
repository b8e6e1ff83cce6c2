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

/** 408: the client was too slow sending its request. */
export class RequestTimeoutError extends AppError {
  readonly status = 408;
  readonly code = 'request_timeout';
}

/** 503: temporarily unable (upload slots full, shutting down). Carries `retryAfterSeconds`. */
export class ServiceUnavailableError extends AppError {
  readonly status = 503;
  readonly code = 'unavailable';
  constructor(
    message: string,
    readonly retryAfterSeconds = 1,
  ) {
    super(message);
  }
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
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** 501: the feature needs configuration that is absent (e.g. URL_SIGNING_SECRET). */
export class NotConfiguredError extends AppError {
  readonly status = 501;
  readonly code = 'not_configured';
}

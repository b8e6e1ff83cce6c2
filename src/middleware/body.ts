import { promises as fs } from 'node:fs';
import type { Middleware } from 'koa';
import { koaBody } from 'koa-body';
import { PayloadTooLargeError, ServiceUnavailableError, UnsupportedMediaTypeError, ValidationError } from '../errors.js';

/**
 * Parses a small JSON body (rename and create requests). Anything but
 * `application/json` is a 415; bad JSON a 400; more than `maxBytes` a 413.
 */
export function jsonBody(maxBytes: number): Middleware {
  const parse = koaBody({
    json: true, jsonStrict: true, jsonLimit: maxBytes, multipart: false, urlencoded: false, text: false,
    onError: (err) => {
      throw mapBodyError(err as BodyError, maxBytes);
    },
  });
  return async function jsonBodyMiddleware(ctx, next) {
    if (!ctx.is('application/json')) {
      throw new UnsupportedMediaTypeError(`Expected Content-Type application/json but received ${JSON.stringify(ctx.get('Content-Type') || 'nothing')}`);
    }
    await parse(ctx, next);
  };
}

export interface MultipartOptions {
  /** Where received files are written (the store's staging dir). */
  stagingDir: string;
  maxFileBytes: number;
  /** Uploads in progress at once; more are answered 503 with Retry-After. */
  maxConcurrent: number;
  /** Files one request may carry (default 1). */
  maxFiles?: number;
}

/**
 * Streams a multipart upload to a file in the staging dir, hashing it on the
 * way (formidable), and stops with 413 as soon as the size limit is passed.
 * Files of a failed upload are removed. Concurrent uploads are capped.
 */
export function multipartUpload({ stagingDir, maxFileBytes, maxConcurrent, maxFiles = 1 }: MultipartOptions): Middleware {
  let active = 0;
  return async function multipartUploadMiddleware(ctx, next) {
    if (!ctx.is('multipart/form-data')) {
      throw new UnsupportedMediaTypeError(`Expected Content-Type multipart/form-data but received ${JSON.stringify(ctx.get('Content-Type') || 'nothing')}`);
    }
    if (active >= maxConcurrent) throw new ServiceUnavailableError(`too many uploads in progress (limit ${maxConcurrent}); retry shortly`);
    active += 1;
    const written: string[] = [];
    const parse = koaBody({
      multipart: true, json: false, urlencoded: false, text: false,
      formidable: {
        uploadDir: stagingDir, maxFileSize: maxFileBytes, maxFiles, maxTotalFileSize: maxFileBytes * maxFiles, maxFields: 20, maxFieldsSize: 64 * 1024,
        hashAlgorithm: 'sha256', allowEmptyFiles: false, minFileSize: 1,
        onFileBegin: (_name, file) => void written.push(file.filepath),
      },
      onError: (err) => {
        const error = err as BodyError;
        if (error.code === 1015 && maxFiles > 1) throw new ValidationError(`expected at most ${maxFiles} files`);
        throw mapBodyError(error, maxFileBytes);
      },
    });
    try {
      await parse(ctx, next);
    } finally {
      active -= 1;
      // Committed files were linked into their album; the staged names can always go.
      await Promise.all(written.map((file) => fs.rm(file, { force: true })));
    }
  };
}

interface BodyError extends Error {
  status?: number;
  httpCode?: number;
  code?: number | string;
  type?: string;
}

const FORMIDABLE_MESSAGES: Record<number, string> = {
  1002: 'request aborted by the client',
  1010: 'the uploaded file is empty',
  1008: 'the uploaded file is empty',
  1015: 'expected exactly one file, in field "file"',
  1006: 'form fields too large',
  1007: 'too many form fields',
  1012: 'malformed multipart body',
  1013: 'multipart body without boundary',
};

/** Turns koa-body (co-body, formidable) errors into our error types. */
function mapBodyError(err: BodyError, maxBytes: number): Error {
  const status = err.status ?? err.httpCode;
  if (err.type === 'entity.too.large' || err.code === 1009 || err.code === 1016 || (status === 413 && err.code !== 1015)) {
    return new PayloadTooLargeError(`body larger than the limit of ${maxBytes} bytes`);
  }
  if (typeof err.code === 'number' && FORMIDABLE_MESSAGES[err.code]) return new ValidationError(FORMIDABLE_MESSAGES[err.code]);
  if (err.type === 'entity.parse.failed' || err instanceof SyntaxError) return new ValidationError(`invalid JSON body: ${err.message}`);
  if (status !== undefined && status >= 400 && status < 500) return new ValidationError(err.message);
  return err;
}

import { randomUUID } from 'node:crypto';
import { closeSync, promises as fs, openSync, write, writeSync } from 'node:fs';
import { Writable } from 'node:stream';
import type { File } from 'formidable';
import type { Context, Middleware } from 'koa';
import { koaBody } from 'koa-body';
import { syncFd } from '../lib/durable.js';
import { AppError, PayloadTooLargeError, ServiceUnavailableError, UnsupportedMediaTypeError, ValidationError } from '../errors.js';
import { dispositionFilename } from './disposition-filename.js';

/** The Content-Encodings co-body decodes (through `inflation`) for JSON bodies. */
const JSON_ENCODINGS = ['gzip', 'deflate', 'br', 'identity'];
/** Form fields a multipart body may carry beside its files, and their bytes together. */
const MAX_FIELDS = 20;
const MAX_FIELDS_BYTES = 64 * 1024;

/**
 * Parses a small JSON body (rename and create requests). Anything but
 * `application/json` is a 415, and so is a Content-Encoding other than gzip,
 * deflate, br or identity; bad JSON, or a body not in its declared encoding, a 400;
 * more than `maxBytes` (as sent, or once decoded) a 413.
 */
export function jsonBody(maxBytes: number): Middleware {
  const parse = koaBody({
    json: true, jsonStrict: true, jsonLimit: maxBytes, multipart: false, urlencoded: false, text: false,
    onError: (err, ctx) => {
      throw mapBodyError(err as BodyError, maxBytes, contentEncoding(ctx));
    },
  });
  return async function jsonBodyMiddleware(ctx, next) {
    if (!ctx.is('application/json')) {
      throw new UnsupportedMediaTypeError(`Expected Content-Type application/json but received ${JSON.stringify(ctx.get('Content-Type') || 'nothing')}`);
    }
    const encoding = contentEncoding(ctx);
    if (!JSON_ENCODINGS.includes(encoding)) {
      throw new UnsupportedMediaTypeError(`unsupported Content-Encoding ${JSON.stringify(encoding.slice(0, 64))}; supported: ${JSON_ENCODINGS.join(', ')}`);
    }
    // Coding names are case-insensitive (RFC 9110), but co-body only knows them in lower case.
    if (ctx.req.headers['content-encoding'] !== undefined) ctx.req.headers['content-encoding'] = encoding;
    // co-body reads Content-Length with `~~`, which wraps from 2^31 on: such bodies skipped its early 413.
    if (declaredLength(ctx) > maxBytes) throw tooLarge(maxBytes);
    await unlessAborted(ctx, parse(ctx, async () => undefined));
    await next();
  };
}

/**
 * co-body reads an encoded body through a decompression stream piped from the
 * request; when the client goes away, that stream never ends and the parse
 * never settles. Give up on the parse when the request closes unfinished.
 */
async function unlessAborted<T>(ctx: Context, parsing: Promise<T>): Promise<T> {
  let onClose: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onClose = () => {
      if (!ctx.req.complete) reject(new ValidationError('request aborted by the client'));
    };
    ctx.req.once('close', onClose);
  });
  try {
    return await Promise.race([parsing, aborted]);
  } finally {
    ctx.req.off('close', onClose!);
  }
}

/** The Content-Encoding header in lower case; `identity` when absent. */
function contentEncoding(ctx: Context): string {
  return (ctx.get('Content-Encoding') || 'identity').toLowerCase();
}

/** Content-Length as a number (exact up to 2^53, and large beyond); 0 when absent. */
function declaredLength(ctx: Context): number {
  const header = ctx.get('Content-Length');
  return /^\d+$/.test(header) ? Number(header) : 0;
}

/**
 * 413 that also closes the connection: otherwise Node reads and discards the
 * rest of an unread body (up to the announced length) to keep the connection.
 */
function tooLarge(maxBytes: number): PayloadTooLargeError {
  return Object.assign(new PayloadTooLargeError(`body larger than the limit of ${maxBytes} bytes`), { headers: { Connection: 'close' } });
}

export interface MultipartOptions {
  /** Where received files are written (the store's staging dir). */
  stagingDir: string;
  maxFileBytes: number;
  /** Uploads in progress at once; more are answered 503 with Retry-After. */
  maxConcurrent: number;
  /** Files one request may carry (default 1). */
  maxFiles?: number;
  /** Files up to this size are also kept in memory (`receivedFile` gives them), to be checked without reading them back (default 0). */
  memoryBytes?: number;
  /** fdatasync each file once received whole, for files that are to be kept (default false). */
  durable?: boolean;
}

/** What the sinks said of the files they wrote whole, by formidable file path (in ctx.state). */
const RECEIVED = 'receivedFiles';
/** Files the handler took away from the staging dir (in ctx.state): not removed at the end. */
const TAKEN = 'takenFiles';

/**
 * A file `multipartUpload` received whole: its size, and its bytes when it was small
 * enough to keep them in memory (`memoryBytes`). Its file is fdatasynced with `durable`.
 */
export function receivedFile(ctx: Context, file: File): ReceivedFile | undefined {
  return (ctx.state[RECEIVED] as Map<string, ReceivedFile> | undefined)?.get(file.filepath);
}

/** Tells `multipartUpload` that the handler moved this file away (it skips removing it). */
export function takeFile(ctx: Context, file: File): void {
  (ctx.state[TAKEN] as Set<string> | undefined)?.add(file.filepath);
}

/**
 * Streams a multipart upload to a file in the staging dir, hashing it on the
 * way (formidable), and stops with 413 as soon as the size limit is passed.
 * A file up to `memoryBytes` is kept in memory too (`receivedFile`), so that it
 * is checked without being read back; with `durable`, each file is fdatasynced once received.
 * Files of a failed upload are removed. Concurrent uploads are capped.
 */
export function multipartUpload({ stagingDir, maxFileBytes, maxConcurrent, maxFiles = 1, memoryBytes = 0, durable = false }: MultipartOptions): Middleware {
  let active = 0;
  return async function multipartUploadMiddleware(ctx, next) {
    if (!ctx.is('multipart/form-data')) {
      throw new UnsupportedMediaTypeError(`Expected Content-Type multipart/form-data but received ${JSON.stringify(ctx.get('Content-Type') || 'nothing')}`);
    }
    // formidable does not decode a Content-Encoding: it would store the encoded bytes, or fail on them.
    if (contentEncoding(ctx) !== 'identity') {
      throw new UnsupportedMediaTypeError(`multipart bodies are taken without Content-Encoding; received ${JSON.stringify(ctx.get('Content-Encoding').slice(0, 64))}`);
    }
    if (active >= maxConcurrent) throw new ServiceUnavailableError(`too many uploads in progress (limit ${maxConcurrent}); retry shortly`);
    active += 1;
    const written: string[] = [];
    const received = new Map<string, ReceivedFile>();
    const taken = new Set<string>();
    ctx.state[RECEIVED] = received;
    ctx.state[TAKEN] = taken;
    let writeError: unknown;
    const parse = koaBody({
      multipart: true, json: false, urlencoded: false, text: false,
      formidable: {
        uploadDir: stagingDir, maxFileSize: maxFileBytes, maxFiles, maxTotalFileSize: maxFileBytes * maxFiles, maxFields: MAX_FIELDS, maxFieldsSize: MAX_FIELDS_BYTES,
        hashAlgorithm: 'sha256', allowEmptyFiles: false, minFileSize: 1,
        // formidable's default names are cuid2 ids: a SHA-3 in JavaScript per file (~70 µs); a UUID is as unique.
        filename: () => `upload-${randomUUID()}`,
        fileWriteStreamHandler: (file) => {
          const { filepath } = file as unknown as File;
          return new UploadSink(filepath, { memoryBytes, durable }, (whole) => received.set(filepath, whole), (err) => (writeError ??= err));
        },
        // Runs before the file is created from the part: the file name is read from the header with escapes.
        filter: (part) => {
          const header = (part as typeof part & { headers?: Record<string, string> }).headers?.['content-disposition'];
          part.originalFilename = dispositionFilename(header) ?? part.originalFilename;
          return true;
        },
        onFileBegin: (_name, file) => {
          written.push(file.filepath);
          // formidable ignores a failed write once the body has ended, and skips the writes after one:
          // the staged file would be short and blamed on the client (415/422). It is the disk.
          (file as unknown as NodeJS.EventEmitter).on('error', (err: unknown) => (writeError ??= err));
        },
      },
      onError: (err) => {
        const error = err as BodyError;
        if (error.code === 1015 && maxFiles > 1) throw new ValidationError(`expected at most ${maxFiles} files`);
        throw mapBodyError(error, maxFileBytes, 'identity');
      },
    });
    try {
      await parse(ctx, async () => {
        await checkStaged(ctx.request.files, received, () => writeError);
        await next();
      });
    } finally {
      active -= 1;
      // What the handler did not take away (into the store) goes.
      await Promise.all(written.filter((file) => !taken.has(file)).map((file) => fs.rm(file, { force: true })));
    }
  };
}

/**
 * Makes sure each staged file holds every byte received; else throws the write error, which the
 * error handler maps (507 for a full disk).
 */
async function checkStaged(files: Record<string, File | File[]> | undefined, received: Map<string, ReceivedFile>, writeError: () => unknown): Promise<void> {
  for (const file of Object.values(files ?? {}).flat()) {
    if (writeError()) break;
    // A sink that finished wrote every byte it was given (each write checked); else look at the file.
    const size = received.get(file.filepath)?.size ?? (await fs.stat(file.filepath).then((s) => s.size, () => -1));
    if (size !== file.size) {
      await new Promise((resolve) => setImmediate(resolve)); // the stream's 'error' may be on its way
      throw writeError() ?? new Error(`staged upload has ${size} of ${file.size} bytes`);
    }
  }
  if (writeError()) throw writeError();
}

/** What the sink of a received file says once the file is written whole. */
export interface ReceivedFile {
  /** The bytes, for a file of at most `memoryBytes`. */
  bytes?: Buffer;
  /** Bytes written to the file. */
  size: number;
  /** The file's data is fdatasynced. */
  synced: boolean;
}

/**
 * Where formidable writes an uploaded file. A file of at most `memoryBytes` is gathered in
 * memory and written in one write at the end; a larger one is written as it arrives. The file
 * is made at the first bytes (a client sending them is visibly under way), and with `durable`
 * fdatasynced at the end, so the store needs no second pass over it. A failed write is told to `failed` at
 * once (formidable ignores it once the body has ended); destroyed (a failed upload), the sink
 * removes its file once any write under way has settled.
 *
 * The file is made, the gathered bytes written and the file closed on this thread: they only
 * touch the page cache, and each async call would cost a hand-off to the libuv pool and back,
 * more CPU than the call itself (see lib/durable.ts). What waits for the disk (the
 * fdatasync) and the writes of a large file as it arrives go to the pool.
 */
class UploadSink extends Writable {
  private chunks: Buffer[] | undefined = [];
  private size = 0;
  private fd: number | undefined;
  /** The file operation under way: the next one, or the clean-up, waits for it. */
  private busy: Promise<unknown> = Promise.resolve();
  /** Written whole: the stream's automatic destroy after 'finish' must not remove it. */
  private complete = false;

  constructor(
    private readonly filepath: string,
    private readonly options: { memoryBytes: number; durable: boolean },
    private readonly done: (file: ReceivedFile) => void,
    private readonly failed: (err: unknown) => void,
  ) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.size += chunk.length;
    let step: Promise<void>;
    if (this.chunks && this.size <= this.options.memoryBytes) {
      this.chunks.push(chunk);
      step = this.attempt(() => this.open());
    } else {
      const held = this.chunks ?? [];
      this.chunks = undefined;
      step = this.append(held.length > 0 ? Buffer.concat([...held, chunk]) : chunk);
    }
    this.settle(step, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    const bytes = this.chunks ? Buffer.concat(this.chunks, this.size) : undefined;
    this.chunks = undefined;
    const finish = async () => {
      if (bytes) this.writeHere(bytes);
      if (this.options.durable && this.fd !== undefined) await syncFd(this.fd, true);
      this.close();
      this.complete = true;
      this.done({ bytes, size: this.size, synced: this.options.durable });
    };
    this.settle(finish(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.chunks = undefined;
    callback(err);
    if (this.complete) return;
    void this.busy
      .then(async () => {
        this.close();
        await fs.rm(this.filepath, { force: true });
      })
      .catch(() => undefined);
  }

  private settle(step: Promise<void>, callback: (err?: Error | null) => void): void {
    this.busy = step.catch(() => undefined);
    step.then(
      () => callback(),
      (err: Error) => {
        this.failed(err);
        callback(err);
      },
    );
  }

  /** A synchronous step as a promise, so that its error takes the same way as an async one's. */
  private async attempt(step: () => void): Promise<void> {
    step();
  }

  private open(): number {
    this.fd ??= openSync(this.filepath, 'wx');
    return this.fd;
  }

  private close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    closeSync(fd);
  }

  /** Writes gathered bytes (at most `memoryBytes`) on this thread. */
  private writeHere(data: Buffer): void {
    const fd = this.open();
    for (let done = 0; done < data.length;) {
      const written = writeSync(fd, data, done, data.length - done);
      if (written === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      done += written;
    }
  }

  /** Writes the bytes of a large file as they arrive, on the libuv pool. */
  private async append(data: Buffer): Promise<void> {
    const fd = this.open();
    for (let done = 0; done < data.length;) {
      const written = await writeOnPool(fd, data, done, data.length - done);
      if (written === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      done += written;
    }
  }
}

function writeOnPool(fd: number, data: Buffer, offset: number, length: number): Promise<number> {
  return new Promise((resolve, reject) => write(fd, data, offset, length, null, (err, written) => (err ? reject(err) : resolve(written))));
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
  1012: 'malformed multipart body',
  1013: 'multipart body without boundary',
};

/**
 * Turns koa-body (co-body, formidable, zlib) errors into our error types.
 * @param encoding the body's Content-Encoding: a status-less error while decoding one means the bytes were not in it
 */
function mapBodyError(err: BodyError, maxBytes: number, encoding: string): Error {
  if (err instanceof AppError) return err;
  // formidable marks these 413 too; they are about the fields, not the body's size.
  if (err.code === 1007) return new PayloadTooLargeError(`too many form fields (limit ${MAX_FIELDS})`);
  if (err.code === 1006) return new PayloadTooLargeError(`form fields larger than the limit of ${MAX_FIELDS_BYTES} bytes`);
  const status = err.status ?? err.httpCode;
  if (err.type === 'entity.too.large' || err.code === 1009 || err.code === 1016 || (status === 413 && err.code !== 1015)) {
    return new PayloadTooLargeError(`body larger than the limit of ${maxBytes} bytes`);
  }
  if (typeof err.code === 'number' && FORMIDABLE_MESSAGES[err.code]) return new ValidationError(FORMIDABLE_MESSAGES[err.code]);
  if (err.type === 'entity.parse.failed' || err instanceof SyntaxError) return new ValidationError(`invalid JSON body: ${err.message}`);
  if (encoding !== 'identity' && status === undefined) return new ValidationError(`the body does not match its Content-Encoding ${encoding}: ${err.message}`);
  if (status !== undefined && status >= 400 && status < 500) return new ValidationError(err.message);
  return err;
}

import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CompleteMultipartUploadCommand, CopyObjectCommand, CreateBucketCommand, CreateMultipartUploadCommand, AbortMultipartUploadCommand,
  DeleteObjectCommand, DeleteObjectsCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, ListObjectsV2Command,
  PutObjectCommand, S3Client, UploadPartCopyCommand, type CompletedPart,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3Settings } from '../../config.js';
import { ConflictError, ServiceUnavailableError } from '../../errors.js';

/**
 * How "create only if absent" is done:
 * - `put`: `If-None-Match: *` on PutObject and on the multipart upload's completion
 *   (AWS S3 since 2024, MinIO, Ceph RGW, R2): atomic across nodes.
 * - `none`: the backend refuses conditional PUTs (OpenStack Swift's s3api answers
 *   501 NotImplemented), so HEAD then PUT: two nodes creating the same name within
 *   the time between one's HEAD and its PUT (one round trip) can both succeed, and
 *   the last write wins.
 */
export type ConditionalWrites = 'put' | 'none';

/** What a listing tells of an object's version: a rewrite changes at least one. */
export interface ObjectVersion {
  etag: string;
  /** Milliseconds since the epoch. */
  lastModified: number;
}

/** An object's size, version and user metadata (x-amz-meta-*, keys in lower case). */
export interface ObjectFacts extends ObjectVersion {
  size: number;
  metadata: Record<string, string>;
}

/** S3 allows at most 5 GiB in one CopyObject; larger objects are copied in parts. */
export const MAX_SINGLE_COPY_BYTES = 5 * 1024 ** 3;
/** Parts of streamed uploads: memory per upload is about partSize × (queueSize + 1), whatever the file's size. */
export const UPLOAD_PART_BYTES = 8 * 1024 * 1024;
const UPLOAD_QUEUE_SIZE = 2;
/** DeleteObjects takes at most 1000 keys. */
const DELETE_BATCH = 1000;

/**
 * Builds an S3 client for self-hosted servers as well as AWS: checksums only
 * where the API requires them (several S3-compatible servers reject the SDK's
 * default CRC32 trailers), bounded connection and idle timeouts, three attempts.
 */
export function createS3Client(settings: S3Settings): S3Client {
  const { endpoint, region, forcePathStyle, accessKeyId, secretAccessKey } = settings;
  const client = new S3Client({
    endpoint, region, forcePathStyle,
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 3,
    requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
  });
  // Outermost, so after the SDK's retries: an unreachable or failing backend is a 503 (with Retry-After), not a 500.
  client.middlewareStack.add(
    (next) => async (args) => {
      try {
        return await next(args);
      } catch (err) {
        throw isOutage(err) ? new ServiceUnavailableError(`object storage unavailable: ${(err as Error).message}`, 5) : err;
      }
    },
    { step: 'initialize', name: 'imagestoreOutageAs503', priority: 'high' },
  );
  return client;
}

/** Server errors (except 501, an answer about the request) and failures to get any answer. */
function isOutage(err: unknown): boolean {
  const status = s3Status(err);
  if (status !== undefined) return status >= 500 && status !== 501;
  const code = (err as NodeJS.ErrnoException)?.code ?? (err as Error)?.name;
  return ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE', 'TimeoutError', 'RequestTimeout'].includes(code ?? '');
}

/** HTTP status of an SDK error (undefined for network errors). */
export function s3Status(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

/** True for "no such key" (GET answers NoSuchKey, HEAD a bare 404). */
export function isNotFound(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === 'NoSuchKey' || name === 'NotFound' || s3Status(err) === 404;
}

function isPreconditionFailed(err: unknown): boolean {
  // 409 ConditionalRequestConflict: AWS's answer while another conditional write to the key is in flight.
  return s3Status(err) === 412 || (err as { name?: string })?.name === 'ConditionalRequestConflict';
}

function isNotImplemented(err: unknown): boolean {
  return s3Status(err) === 501 || (err as { name?: string })?.name === 'NotImplemented';
}

/**
 * One bucket, with the few operations the S3 store and the migration need,
 * written once: JSON objects, existence checks, conditional creation,
 * listings, batched deletes, copies of any size, streamed uploads and downloads.
 */
export class S3Bucket {
  /** Unknown until `detectConditionalWrites` (or the first conditional write) runs. */
  conditionalWrites: ConditionalWrites | undefined;
  /** Requests sent through the client (each attempt of the SDK's retries aside), for metrics. */
  requests = 0;

  constructor(
    readonly client: S3Client,
    readonly name: string,
    /** Objects above this are copied with UploadPartCopy in parts of this size (tests lower it). */
    readonly copyPartBytes = MAX_SINGLE_COPY_BYTES,
  ) {
    // One counter per client: a later S3Bucket over the same client takes it over.
    client.middlewareStack.add((next) => async (args) => {
      this.requests += 1;
      return next(args);
    }, { step: 'initialize', name: 'imagestoreRequestCount', override: true });
  }

  /** @throws {Error} naming the bucket when it is missing or not accessible */
  async checkExists(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.name }));
    } catch (err) {
      throw new Error(`S3 bucket ${JSON.stringify(this.name)} is not accessible (HTTP ${s3Status(err) ?? (err as Error).message})`, { cause: err });
    }
  }

  /** Creates the bucket unless it exists. */
  async ensureExists(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.name }));
    } catch (err) {
      if (s3Status(err) !== 404) throw err;
      await this.client.send(new CreateBucketCommand({ Bucket: this.name }));
    }
  }

  /** An object's content as UTF-8 text, or undefined when the key does not exist. */
  async getText(key: string): Promise<string | undefined> {
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key }));
      return await res.Body!.transformToString('utf8');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** The parsed JSON object, or undefined when the key does not exist or holds no JSON. */
  async getJson<T>(key: string): Promise<T | undefined> {
    const text = await this.getText(key);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text) as T;
    } catch {
      return undefined;
    }
  }

  async putJson(key: string, value: unknown): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }));
  }

  /** Size, ETag, last change and user metadata of an object, or undefined when it does not exist. */
  async head(key: string): Promise<ObjectFacts | undefined> {
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.name, Key: key }));
      return { size: res.ContentLength ?? 0, etag: res.ETag ?? '', lastModified: res.LastModified?.getTime() ?? 0, metadata: res.Metadata ?? {} };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /**
   * Finds out whether the backend honours `If-None-Match: *` on PutObject, with a
   * probe object under `probeKeyPrefix`: `put` if a second conditional PUT of the
   * probe is refused, `none` if conditional PUTs are answered 501 NotImplemented.
   */
  async detectConditionalWrites(probeKeyPrefix: string): Promise<ConditionalWrites> {
    const key = `${probeKeyPrefix}conditional-${randomUUID()}`;
    const put = () => this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: 'probe', IfNoneMatch: '*' }));
    try {
      await put();
      try {
        await put();
        this.conditionalWrites = 'none'; // accepted but not honoured
      } catch (err) {
        if (!isPreconditionFailed(err)) throw err;
        this.conditionalWrites = 'put';
      }
    } catch (err) {
      if (!isNotImplemented(err)) throw err;
      this.conditionalWrites = 'none';
    } finally {
      await this.delete(key).catch(() => undefined);
    }
    return this.conditionalWrites;
  }

  /**
   * Writes a small object only if the key is free (see ConditionalWrites for the guarantee).
   * @returns false when the key already exists (nothing written)
   */
  async createIfAbsent(key: string, body: string, contentType = 'application/json'): Promise<boolean> {
    if (this.conditionalWrites !== 'none') {
      try {
        await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentType: contentType, IfNoneMatch: '*' }));
        this.conditionalWrites = 'put';
        return true;
      } catch (err) {
        if (isPreconditionFailed(err)) return false;
        if (!isNotImplemented(err)) throw err;
        this.conditionalWrites = 'none';
      }
    }
    if (await this.head(key)) return false;
    await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentType: contentType }));
    return true;
  }

  /**
   * One page of keys under `prefix`, in S3 order (UTF-8 bytes), strictly after `startAfter`.
   * @param limit at most this many keys (any number: several requests of up to 1000)
   * @returns the keys, the objects' ETags and last changes (same order), and whether more follow
   */
  async listPage(prefix: string, startAfter: string | undefined, limit: number): Promise<{ keys: string[]; versions: ObjectVersion[]; more: boolean }> {
    const keys: string[] = [];
    const versions: ObjectVersion[] = [];
    let token: string | undefined;
    for (;;) {
      const res = await this.client.send(new ListObjectsV2Command({
        Bucket: this.name, Prefix: prefix, MaxKeys: Math.min(1000, limit - keys.length),
        ...(token ? { ContinuationToken: token } : startAfter !== undefined ? { StartAfter: startAfter } : {}),
      }));
      for (const item of res.Contents ?? []) {
        keys.push(item.Key!);
        versions.push({ etag: item.ETag ?? '', lastModified: item.LastModified?.getTime() ?? 0 });
      }
      if (!res.IsTruncated || !res.NextContinuationToken) return { keys, versions, more: false };
      if (keys.length >= limit) return { keys, versions, more: true };
      token = res.NextContinuationToken;
    }
  }

  /** Every key under `prefix`, page by page, in S3 order. */
  async *keys(prefix: string): AsyncGenerator<string[]> {
    for await (const objects of this.objects(prefix)) yield objects.map((o) => o.key);
  }

  /** Every object under `prefix` with its size, page by page, in S3 order. */
  async *objects(prefix: string): AsyncGenerator<Array<{ key: string; size: number }>> {
    let token: string | undefined;
    do {
      const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, ContinuationToken: token }));
      const objects = (res.Contents ?? []).map((item) => ({ key: item.Key!, size: item.Size ?? 0 }));
      if (objects.length > 0) yield objects;
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  /** Number of keys under `prefix` (lists them all). */
  async count(prefix: string): Promise<number> {
    let n = 0;
    for await (const keys of this.keys(prefix)) n += keys.length;
    return n;
  }

  /** True when at least one key starts with `prefix`. */
  async hasAny(prefix: string): Promise<boolean> {
    const res = await this.client.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, MaxKeys: 1 }));
    return (res.Contents ?? []).length > 0;
  }

  async delete(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: key }));
  }

  /**
   * Deletes keys with DeleteObjects, 1000 per request. Sends Content-MD5, which
   * the S3 API requires for this call and some servers (Swift) insist on, while
   * the SDK now sends a CRC32 checksum instead.
   * @throws {Error} listing the keys the server could not delete
   */
  async deleteKeys(keys: string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const command = new DeleteObjectsCommand({ Bucket: this.name, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } });
      command.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { body?: string | Uint8Array; headers: Record<string, string> };
          if (request.body !== undefined) request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
          return next(args);
        },
        { step: 'build', name: 'imagestoreContentMd5', priority: 'low' },
      );
      const res = await this.client.send(command);
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      if (failed.length > 0) throw new Error(`S3 could not delete ${failed.length} objects, e.g. ${failed[0].Key}: ${failed[0].Code} ${failed[0].Message}`);
    }
  }

  /** Deletes every key under `prefix`. */
  async deletePrefix(prefix: string): Promise<number> {
    let n = 0;
    for await (const keys of this.keys(prefix)) {
      await this.deleteKeys(keys);
      n += keys.length;
    }
    return n;
  }

  /**
   * Server-side copy; in parts (UploadPartCopy) above `copyPartBytes`, since
   * S3 copies at most 5 GiB at once. The bytes never pass through this process.
   * @param replace new user metadata and type for the copy (else the source's are kept)
   */
  async copy(from: string, to: string, size: number, replace?: { metadata: Record<string, string>; contentType: string }): Promise<void> {
    const CopySource = encodeURIComponent(`${this.name}/${from}`);
    const fields = replace ? { Metadata: replace.metadata, ContentType: replace.contentType } : {};
    if (size <= this.copyPartBytes) {
      await this.client.send(new CopyObjectCommand({ Bucket: this.name, Key: to, CopySource, MetadataDirective: replace ? 'REPLACE' : 'COPY', ...fields }));
      return;
    }
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.name, Key: to, ...fields }));
    try {
      const parts: CompletedPart[] = [];
      for (let start = 0, n = 1; start < size; start += this.copyPartBytes, n++) {
        const end = Math.min(size, start + this.copyPartBytes) - 1;
        const res = await this.client.send(new UploadPartCopyCommand({
          Bucket: this.name, Key: to, UploadId, PartNumber: n, CopySource, CopySourceRange: `bytes=${start}-${end}`,
        }));
        parts.push({ PartNumber: n, ETag: res.CopyPartResult!.ETag });
      }
      await this.client.send(new CompleteMultipartUploadCommand({ Bucket: this.name, Key: to, UploadId, MultipartUpload: { Parts: parts } }));
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.name, Key: to, UploadId })).catch(() => undefined);
      throw err;
    }
  }

  /**
   * Writes a local file into an object: bytes already in memory (a small upload) in one
   * PutObject, else streamed (multipart above 8 MiB, 2 parts in flight), so memory stays at
   * a few parts (about 24 MiB) whatever the file's size.
   * @param options.ifAbsent add `If-None-Match: *` (only when the backend honours it)
   * @param options.metadata user metadata (x-amz-meta-*)
   * @param options.bytes the file's content, when the caller holds it
   * @returns the new object's ETag
   * @throws {ConflictError} when `ifAbsent` and the key exists
   */
  async upload(key: string, file: string, contentType: string, options: { ifAbsent?: boolean; metadata?: Record<string, string>; bytes?: Buffer } = {}): Promise<string> {
    const { ifAbsent = false, metadata, bytes } = options;
    const params = { Bucket: this.name, Key: key, ContentType: contentType, Metadata: metadata, ...(ifAbsent ? { IfNoneMatch: '*' } : {}) };
    try {
      if (bytes !== undefined && bytes.length <= UPLOAD_PART_BYTES) {
        return (await this.client.send(new PutObjectCommand({ ...params, Body: bytes }))).ETag ?? '';
      }
      const upload = new Upload({ client: this.client, partSize: UPLOAD_PART_BYTES, queueSize: UPLOAD_QUEUE_SIZE, params: { ...params, Body: createReadStream(file) } });
      return (await upload.done()).ETag ?? '';
    } catch (err) {
      if (ifAbsent && isPreconditionFailed(err)) throw new ConflictError(`${key} already exists in the bucket`);
      throw err;
    }
  }

  /**
   * Opens an object for reading, with its facts (one GetObject).
   * @param range inclusive byte range
   * @param ifMatch ETag the object must still have (else HTTP 412)
   */
  async get(key: string, options: { range?: { start: number; end: number }; ifMatch?: string; signal?: AbortSignal } = {}): Promise<{ body: Readable } & ObjectFacts> {
    const { range, ifMatch, signal } = options;
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.name, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined, IfMatch: ifMatch }),
      { abortSignal: signal },
    );
    const size = range ? Number(/\/(\d+)$/.exec(res.ContentRange ?? '')?.[1] ?? res.ContentLength ?? 0) : (res.ContentLength ?? 0);
    return { body: res.Body as Readable, size, etag: res.ETag ?? '', lastModified: res.LastModified?.getTime() ?? 0, metadata: res.Metadata ?? {} };
  }

  /**
   * Opens an object for reading.
   * @param range inclusive byte range
   * @param ifMatch ETag the object must still have (else HTTP 412)
   */
  async getStream(key: string, options: { range?: { start: number; end: number }; ifMatch?: string; signal?: AbortSignal } = {}): Promise<Readable> {
    const { range, ifMatch, signal } = options;
    const res = await this.client.send(
      new GetObjectCommand({ Bucket: this.name, Key: key, Range: range ? `bytes=${range.start}-${range.end}` : undefined, IfMatch: ifMatch }),
      { abortSignal: signal },
    );
    return res.Body as Readable;
  }

  /** Downloads an object into a local file. */
  async download(key: string, file: string, ifMatch?: string): Promise<void> {
    await pipeline(await this.getStream(key, { ifMatch }), createWriteStream(file, { flags: 'wx' }));
  }
}

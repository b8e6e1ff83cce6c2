import { randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NotFoundError } from '../../errors.js';
import { isNotFound, s3Status, type S3Bucket } from './s3-bucket.js';
import type { ImageHandle, ImageInfo } from '../types.js';

/**
 * An image opened in a bucket. Opened with a GET (`body`: the whole object, its metadata
 * came with it), the first use of the whole image takes that body, so a download is one
 * request; a range, or a second use, is another GetObject. Opened from cached metadata, the
 * bytes are fetched only when asked for. Every later GET is pinned with `If-Match` to the
 * ETag seen at open, so a download never mixes two versions of a name: an image replaced or
 * deleted in between makes it fail instead (the filesystem store, which holds the file open,
 * would still send the old bytes). `localPath` writes a temporary copy into the staging
 * dir, removed on close.
 */
export class S3ImageHandle implements ImageHandle {
  readonly remote = true;
  private local?: Promise<string>;

  constructor(
    readonly info: ImageInfo,
    private readonly bucket: S3Bucket,
    private readonly key: string,
    private readonly etag: string,
    private readonly stagingDir: string,
    /** The object's body from the GET that opened it, until used or closed. */
    private body?: Readable,
  ) {}

  localPath(): Promise<string> {
    this.local ??= (async () => {
      const file = path.join(this.stagingDir, `s3-get-${randomUUID()}`);
      try {
        const body = this.take();
        if (body) await pipeline(body, createWriteStream(file, { flags: 'wx' }));
        else await this.bucket.download(this.key, file, this.etag);
      } catch (err) {
        await fs.rm(file, { force: true });
        throw this.storeError(err);
      }
      return file;
    })();
    return this.local;
  }

  stream(range?: { start: number; end: number }): Readable {
    const body = this.take(range);
    if (body) return body;
    const out = new PassThrough();
    const abort = new AbortController();
    out.once('close', () => abort.abort()); // the client went away before the object arrived
    this.bucket
      .getStream(this.key, { range, ifMatch: this.etag, signal: abort.signal })
      .then((got) => pipeline(got, out))
      .catch((err: unknown) => out.destroy(this.storeError(err)));
    return out;
  }

  async read(range?: { start: number; end: number }): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.stream(range)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async close(): Promise<void> {
    this.body?.destroy();
    this.body = undefined;
    const local = this.local;
    this.local = undefined;
    if (local) await local.then((file) => fs.rm(file, { force: true }), () => undefined);
  }

  /** The opening GET's body when it serves this use (the whole image), else undefined; either way it is used up. */
  private take(range?: { start: number; end: number }): Readable | undefined {
    const body = this.body;
    this.body = undefined;
    if (!body) return undefined;
    if (!range || (range.start === 0 && range.end === this.info.size - 1)) return body;
    body.destroy();
    return undefined;
  }

  private storeError(err: unknown): Error {
    return isNotFound(err) || s3Status(err) === 412 ? new NotFoundError(`${this.info.name} image was replaced or deleted meanwhile`) : (err as Error);
  }
}

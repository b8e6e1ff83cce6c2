import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { NotFoundError } from '../errors.js';
import { isNotFound, s3Status, type S3Bucket } from './s3-bucket.js';
import type { ImageHandle, ImageInfo } from './types.js';

/**
 * An image opened in a bucket. Nothing is held open: each `stream` is one
 * GetObject (ranged when asked), pinned with `If-Match` to the object's ETag
 * seen at open, so a download never mixes two versions of a name; an image
 * replaced or deleted in between makes the stream fail instead (the filesystem
 * store, which holds the file open, would still send the old bytes).
 * `localPath` downloads a temporary copy into the staging dir, removed on close.
 */
export class S3ImageHandle implements ImageHandle {
  private local?: Promise<string>;

  constructor(
    readonly info: ImageInfo,
    private readonly bucket: S3Bucket,
    private readonly key: string,
    private readonly etag: string,
    private readonly stagingDir: string,
  ) {}

  localPath(): Promise<string> {
    this.local ??= (async () => {
      const file = path.join(this.stagingDir, `s3-get-${randomUUID()}`);
      try {
        await this.bucket.download(this.key, file, this.etag);
      } catch (err) {
        await fs.rm(file, { force: true });
        throw this.storeError(err);
      }
      return file;
    })();
    return this.local;
  }

  stream(range?: { start: number; end: number }): Readable {
    const out = new PassThrough();
    const abort = new AbortController();
    out.once('close', () => abort.abort()); // the client went away before the object arrived
    this.bucket
      .getStream(this.key, { range, ifMatch: this.etag, signal: abort.signal })
      .then((body) => pipeline(body, out))
      .catch((err: unknown) => out.destroy(this.storeError(err)));
    return out;
  }

  async close(): Promise<void> {
    const local = this.local;
    this.local = undefined;
    if (local) await local.then((file) => fs.rm(file, { force: true }), () => undefined);
  }

  private storeError(err: unknown): Error {
    return isNotFound(err) || s3Status(err) === 412 ? new NotFoundError(`${this.info.name} image was replaced or deleted meanwhile`) : (err as Error);
  }
}

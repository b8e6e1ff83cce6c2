import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { ImageInfo } from './types.js';
import { isErrno } from '../lib/durable.js';
import { SNIFF_BYTES, sniffType } from './sniff.js';

/** What is stored in an image's metadata file (the album comes from the directory). */
export type StoredImageMeta = Omit<ImageInfo, 'album'>;

/** A new stable image id: 96 random bits, URL-safe. */
export function newImageId(): string {
  return randomBytes(12).toString('base64url');
}

/** Metadata files are a few hundred bytes: one read of this size takes them whole. */
const META_READ_BYTES = 16 * 1024;

/**
 * Reads and checks a metadata file; undefined when missing (ENOENT) or unreadable JSON.
 * Open, one read, close: every download reads one, and fs.readFile would add an
 * fstat (each file operation is a thread-pool round trip, bench/RESULTS.md).
 * @throws any other read error (EMFILE, EIO, ...): taken for "missing", it dropped images
 *   from listings and would make recovery adopt them again under new ids
 */
export async function readImageMeta(file: string): Promise<StoredImageMeta | undefined> {
  let text: string;
  try {
    const handle = await fs.open(file, 'r');
    try {
      const buffer = Buffer.allocUnsafe(META_READ_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, META_READ_BYTES, 0);
      // A positioned read leaves the file offset at 0, so a (rare) larger file is read whole from the start.
      text = bytesRead < META_READ_BYTES ? buffer.toString('utf8', 0, bytesRead) : await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  return parseImageMeta(text);
}

/** Parses and checks metadata JSON (a file's or an object's); undefined when unreadable or incomplete. */
export function parseImageMeta(text: string): StoredImageMeta | undefined {
  try {
    const meta = JSON.parse(text) as StoredImageMeta;
    const valid =
      typeof meta.id === 'string' && typeof meta.name === 'string' && Number.isSafeInteger(meta.size) &&
      typeof meta.sha256 === 'string' && typeof meta.type === 'string' && typeof meta.createdAt === 'string';
    return valid ? meta : undefined;
  } catch {
    return undefined;
  }
}

/** sha256 (hex), byte size and sniffed MIME type of a file, read once as a stream. */
export async function describeFile(file: string): Promise<{ sha256: string; size: number; type: string }> {
  const hash = createHash('sha256');
  let size = 0;
  let head = Buffer.alloc(0);
  await pipeline(createReadStream(file), async (source: AsyncIterable<Buffer>) => {
    for await (const chunk of source) {
      if (head.length < SNIFF_BYTES) head = Buffer.concat([head, chunk.subarray(0, SNIFF_BYTES - head.length)]);
      hash.update(chunk);
      size += chunk.length;
    }
  });
  return { sha256: hash.digest('hex'), size, type: sniffType(head) };
}

/** Builds metadata for a file found without any (adopted on recovery, or imported from the Go layout). */
export async function adoptFile(file: string, name: string): Promise<StoredImageMeta> {
  const [described, stat] = await Promise.all([describeFile(file), fs.stat(file)]);
  return {
    id: newImageId(),
    name,
    ...described,
    createdAt: stat.mtime.toISOString(),
    modifiedAt: stat.mtime.toISOString(),
  };
}

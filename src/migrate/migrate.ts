import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { StoredImageMeta } from '../albums/image-meta.js';
import { mapLimit } from '../lib/map-limit.js';
import type { AlbumInfo } from '../albums/types.js';

/** Where images are copied from. */
export interface MigrationSource {
  readonly description: string;
  /** Every album, in batches. */
  albums(): AsyncIterable<AlbumInfo[]>;
  /** Every image of an album with its stored metadata (id included), in batches. */
  images(album: string): AsyncIterable<StoredImageMeta[]>;
  /** A local file with the image's bytes, and how to let go of it. */
  fetch(album: string, meta: StoredImageMeta): Promise<{ file: string; release(): Promise<void> }>;
  close(): Promise<void>;
}

/** Where images are copied to. Writes keep the source's ids and times. */
export interface MigrationTarget {
  readonly description: string;
  hasAlbum(name: string): Promise<boolean>;
  putAlbum(info: AlbumInfo): Promise<void>;
  /** What the target holds under this name: its recorded sha256, and its byte size when the bytes are there. */
  existing(album: string, name: string): Promise<{ sha256: string; size?: number } | undefined>;
  put(album: string, meta: StoredImageMeta, file: string): Promise<void>;
  /** Reads the stored bytes back. */
  read(album: string, name: string): Promise<Readable>;
  close(): Promise<void>;
}

/** One image that did not make it. */
export interface MigrationFailure {
  album: string;
  image: string;
  problem: string;
}

/** What a run did. */
export interface MigrationSummary {
  albumsCreated: number;
  albumsExisting: number;
  imagesCopied: number;
  /** Already in the target with the same sha256 and size. */
  imagesSkipped: number;
  bytesCopied: number;
  failures: MigrationFailure[];
}

/** Progress, for the command's output. */
export type MigrationProgress =
  | { kind: 'album'; album: string; created: boolean }
  | { kind: 'image'; album: string; image: string; outcome: 'copied' | 'skipped' | 'failed'; done: number };

/**
 * Copies every album and image from `source` to `target`, keeping image ids and
 * times. Resumable: an image the target already holds with the same sha256 (and
 * size) is skipped, so a second run copies nothing. Verified: the source bytes
 * are hashed before copying and the target's bytes are read back and hashed
 * after; any difference is a failure. A name the target holds with other
 * content is reported, never overwritten. Images only in the target are left alone.
 */
export async function migrate(
  source: MigrationSource,
  target: MigrationTarget,
  options: { concurrency?: number; onProgress?: (progress: MigrationProgress) => void } = {},
): Promise<MigrationSummary> {
  const summary: MigrationSummary = { albumsCreated: 0, albumsExisting: 0, imagesCopied: 0, imagesSkipped: 0, bytesCopied: 0, failures: [] };
  const report = options.onProgress ?? (() => undefined);
  let done = 0;
  for await (const albums of source.albums()) {
    for (const album of albums) {
      const created = !(await target.hasAlbum(album.name));
      if (created) await target.putAlbum(album);
      summary[created ? 'albumsCreated' : 'albumsExisting'] += 1;
      report({ kind: 'album', album: album.name, created });
      for await (const metas of source.images(album.name)) {
        await mapLimit(metas, options.concurrency ?? 8, async (meta) => {
          let outcome: 'copied' | 'skipped' | 'failed';
          try {
            outcome = await copyImage(source, target, album.name, meta);
          } catch (err) {
            summary.failures.push({ album: album.name, image: meta.name, problem: (err as Error).message });
            outcome = 'failed';
          }
          if (outcome === 'copied') {
            summary.imagesCopied += 1;
            summary.bytesCopied += meta.size;
          } else if (outcome === 'skipped') {
            summary.imagesSkipped += 1;
          }
          report({ kind: 'image', album: album.name, image: meta.name, outcome, done: ++done });
        });
      }
    }
  }
  return summary;
}

async function copyImage(source: MigrationSource, target: MigrationTarget, album: string, meta: StoredImageMeta): Promise<'copied' | 'skipped'> {
  const existing = await target.existing(album, meta.name);
  if (existing?.sha256 === meta.sha256 && existing.size === meta.size) return 'skipped';
  if (existing?.size !== undefined) {
    throw new Error(`the target already has a different image under this name (sha256 ${existing.sha256}); not overwritten`);
  }
  const { file, release } = await source.fetch(album, meta);
  try {
    const read = await sha256Of(createReadStream(file));
    if (read !== meta.sha256) throw new Error(`source bytes have sha256 ${read}, their metadata says ${meta.sha256}; not copied`);
    await target.put(album, meta, file);
  } finally {
    await release();
  }
  const stored = await sha256Of(await target.read(album, meta.name));
  if (stored !== meta.sha256) throw new Error(`copied bytes read back with sha256 ${stored}, expected ${meta.sha256}`);
  return 'copied';
}

/** sha256 (hex) of a stream's bytes. */
export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

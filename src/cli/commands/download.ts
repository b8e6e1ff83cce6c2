import { createWriteStream, promises as fs } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { Command } from 'commander';
import { ImageStoreError, type ImageInfo } from '../../client/index.js';
import { action } from '../action.js';
import { ExitError, EXIT, formatBytes, intIn, type CliContext, type CliIo } from '../context.js';
import { sha256IfExists } from '../files.js';
import { mapLimit } from '../../lib/map-limit.js';
import { Progress, type BatchCounts } from '../progress.js';

interface DownloadOptions {
  album: string;
  concurrency: number;
}

/**
 * `download --album A DIR`: every image of the album into DIR (created if
 * needed), skipping files already there with the same sha256; each download
 * is checked against the stored sha256 and renamed into place only then.
 */
export function downloadCommand(program: Command, io: CliIo): void {
  program.command('download').description('download every image of an album into a directory, skipping files already there')
    .argument('<dir>', 'target directory (created if missing)')
    .requiredOption('-a, --album <album>', 'album to download')
    .option('-c, --concurrency <n>', 'downloads at once', intIn(1, 64), 4)
    .action(action(io, async (ctx, dir: string, opts: DownloadOptions) => {
      const images = await ctx.client.listAllImages(opts.album);
      await fs.mkdir(dir, { recursive: true });
      await downloadAll(ctx, opts, dir, images);
    }));
}

async function downloadAll(ctx: CliContext, opts: DownloadOptions, dir: string, images: ImageInfo[]): Promise<void> {
  const counts: BatchCounts = { total: images.length, done: 0, stored: 0, skipped: 0, failed: 0, bytes: 0 };
  const failures: Array<{ image: string; error: string; status?: number }> = [];
  const progress = new Progress(ctx.io, ctx.progressMode(), 'download', { unit: 'images', stored: 'downloaded', skipped: 'skipped' });
  progress.update(counts);
  await mapLimit(images, opts.concurrency, async (image) => {
    try {
      const target = path.join(dir, image.name);
      if ((await sha256IfExists(target)) === image.sha256) counts.skipped += 1;
      else {
        await downloadOne(ctx, opts.album, image, target);
        counts.stored += 1;
        counts.bytes += image.size;
      }
    } catch (err) {
      counts.failed += 1;
      failures.push({ image: image.name, error: (err as Error).message, status: err instanceof ImageStoreError ? err.status : undefined });
    } finally {
      counts.done += 1;
      progress.update(counts);
    }
  });
  progress.finish(counts);
  const seconds = (Date.now() - progress.started) / 1000;
  for (const f of failures) ctx.note(`failed: ${f.image}: ${f.error}`);
  ctx.result(
    { album: opts.album, dir, images: counts.total, downloaded: counts.stored, skipped: counts.skipped, failed: counts.failed, bytes: counts.bytes, seconds, failures },
    `${counts.total} images in ${seconds.toFixed(1)} s: ${counts.stored} downloaded, ${counts.skipped} skipped (already in ${dir}), ${counts.failed} failed; ${formatBytes(counts.bytes)}`,
  );
  if (counts.failed > 0) throw new ExitError(EXIT.failed);
}

/** Streams one image to `target.part`, checks its sha256, then renames it into place. */
async function downloadOne(ctx: CliContext, album: string, image: ImageInfo, target: string): Promise<void> {
  const download = await ctx.client.getImage(album, image.name);
  const hash = createHash('sha256');
  const part = `${target}.part`;
  try {
    const hashing = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        done(null, chunk);
      },
    });
    await pipeline(Readable.fromWeb(download.stream() as WebReadableStream), hashing, createWriteStream(part));
    const sha = hash.digest('hex');
    if (sha !== image.sha256) throw new Error(`content does not match the stored sha256 (got ${sha.slice(0, 12)}…, expected ${image.sha256.slice(0, 12)}…)`);
    await fs.rename(part, target);
  } catch (err) {
    await fs.rm(part, { force: true });
    throw err;
  }
}

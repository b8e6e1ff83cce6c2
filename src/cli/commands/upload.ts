import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import { ImageStoreError, type ImageInfo } from '../../client/index.js';
import { action } from '../action.js';
import { ExitError, EXIT, formatBytes, intIn, UsageError, type CliContext, type CliIo } from '../context.js';
import { sha256File, walkImages, type LocalFile } from '../files.js';
import { mapLimit } from '../../lib/map-limit.js';
import { Progress, type BatchCounts } from '../progress.js';

interface UploadOptions {
  album: string;
  concurrency: number;
  create: boolean;
}

/** One file that could not be uploaded. */
interface Failure {
  file: string;
  error: string;
  status?: number;
}

/**
 * `upload DIR --album A`: every image file below DIR (recursively) into the
 * album, `--concurrency` at a time, skipping files whose sha256 the album
 * already holds (under any name), with a progress line and a summary. Exits
 * 1 when a file failed.
 */
export function uploadCommand(program: Command, io: CliIo): void {
  program.command('upload').description('upload every image below a directory (recursively) into an album, skipping images already stored')
    .argument('<dir>', 'directory to upload')
    .requiredOption('-a, --album <album>', 'target album')
    .option('-c, --concurrency <n>', 'uploads at once', intIn(1, 64), 4)
    .option('--no-create', 'fail instead of creating a missing album')
    .action(action(io, async (ctx, dir: string, opts: UploadOptions) => {
      const stat = await fs.stat(dir).catch(() => undefined);
      if (!stat?.isDirectory()) throw new UsageError(`${dir} is not a directory`);
      const { images: files, others } = await walkImages(dir);
      if (others.length > 0) ctx.note(`ignoring ${others.length} file(s) that are not images by extension (first: ${others[0]})`);
      const { stored, created } = await albumContents(ctx, opts);
      await uploadFiles(ctx, opts, files, stored, created);
    }));
}

/** The album's images by sha256 (creating the album when missing and allowed). */
async function albumContents(ctx: CliContext, opts: UploadOptions): Promise<{ stored: Map<string, string>; created: boolean }> {
  let images: ImageInfo[] = [];
  let created = false;
  try {
    images = await ctx.client.listAllImages(opts.album);
  } catch (err) {
    if (!(err instanceof ImageStoreError && err.status === 404 && opts.create)) throw err;
    await ctx.client.createAlbum(opts.album);
    created = true;
  }
  return { stored: new Map(images.map((i) => [i.sha256, i.name])), created };
}

async function uploadFiles(ctx: CliContext, opts: UploadOptions, files: LocalFile[], stored: Map<string, string>, created: boolean): Promise<void> {
  const counts: BatchCounts = { total: files.length, done: 0, stored: 0, skipped: 0, failed: 0, bytes: 0 };
  const failures: Failure[] = [];
  const claimed = new Map<string, string>(); // name → sha256 of the local file that took it
  const progress = new Progress(ctx.io, ctx.progressMode(), 'upload');
  progress.update(counts);
  await mapLimit(files, opts.concurrency, async (file) => {
    try {
      const sha = await sha256File(file.path);
      const owner = claimed.get(file.name);
      if (stored.has(sha) || owner === sha) counts.skipped += 1;
      else if (owner !== undefined) throw new Error(`another file in the directory is also named ${file.name}`);
      else {
        claimed.set(file.name, sha);
        stored.set(sha, file.name);
        await ctx.client.uploadImage(opts.album, file.path);
        counts.stored += 1;
        counts.bytes += file.size;
      }
    } catch (err) {
      counts.failed += 1;
      failures.push({ file: file.relative, error: (err as Error).message, status: err instanceof ImageStoreError ? err.status : undefined });
    } finally {
      counts.done += 1;
      progress.update(counts);
    }
  });
  progress.finish(counts);
  const seconds = (Date.now() - progress.started) / 1000;
  for (const f of failures) ctx.note(`failed: ${f.file}: ${f.error}`);
  ctx.result(
    { album: opts.album, createdAlbum: created, files: counts.total, stored: counts.stored, skipped: counts.skipped, failed: counts.failed, bytes: counts.bytes, seconds, failures },
    `${counts.total} files in ${seconds.toFixed(1)} s: ${counts.stored} stored, ${counts.skipped} skipped (already in ${opts.album}), ${counts.failed} failed;`
      + ` ${formatBytes(counts.bytes)} at ${formatBytes(Math.round(counts.bytes / Math.max(seconds, 0.001)))}/s${created ? ` (album ${opts.album} created)` : ''}`,
  );
  if (counts.failed > 0) throw new ExitError(EXIT.failed);
}

import { createWriteStream, promises as fs } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { Option, type Command } from 'commander';
import type { ImageResult, TransformOptions } from '../../client/index.js';
import { action } from '../action.js';
import { formatBytes, intIn, UsageError, type CliIo } from '../context.js';

interface GetOptions {
  output?: string;
  width?: number; height?: number; fit?: TransformOptions['fit']; enlarge?: boolean; format?: TransformOptions['format'];
  quality?: number; rotate?: number; flip?: boolean; flop?: boolean; grayscale?: boolean; blur?: number; crop?: string;
}

/** `images ls|upload|get|rename|rm|meta`. */
export function imagesCommand(program: Command, io: CliIo): void {
  const images = program.command('images').description('list, upload, download, rename and delete images of an album');

  images.command('ls').description('list the images of an album').argument('<album>')
    .option('-l, --long', 'show size, dimensions and id')
    .action(action(io, async (ctx, album: string, opts: { long?: boolean }) => {
      const all = await ctx.client.listAllImages(album);
      ctx.result({ album, images: all }, all.map((i) => (opts.long
        ? `${String(i.size).padStart(10)}  ${`${i.width ?? '?'}x${i.height ?? '?'}`.padEnd(11)} ${i.type.padEnd(11)} ${i.id}  ${i.name}`
        : i.name)));
    }));

  images.command('upload').description('upload image files to an album (stored under their base names)')
    .argument('<album>').argument('<files...>')
    .option('--name <name>', 'store under this name (one file only)')
    .action(action(io, async (ctx, album: string, files: string[], opts: { name?: string }) => {
      if (opts.name !== undefined && files.length > 1) throw new UsageError('--name needs exactly one file');
      const results: ImageResult[] = [];
      for (const file of files) results.push(await ctx.client.uploadImage(album, file, { name: opts.name }));
      ctx.result(results.length === 1 ? results[0] : results, results.map((r) => `${r.message} (${r.image.id}, ${formatBytes(r.image.size)})`));
    }));

  images.command('get').description('download an image (or a transform of it) to a file, or to stdout with -o -')
    .argument('<album>').argument('<image>')
    .option('-o, --output <file>', 'where to write; "-" for stdout (default: the image name in the current directory)')
    .option('--width <px>', 'resize to this width', intIn(1, 8192))
    .option('--height <px>', 'resize to this height', intIn(1, 8192))
    .addOption(new Option('--fit <fit>', 'how to fit width×height').choices(['cover', 'contain', 'fill', 'inside', 'outside']))
    .option('--enlarge', 'allow upscaling')
    .addOption(new Option('--format <format>', 'output format').choices(['jpeg', 'jpg', 'png', 'webp', 'avif', 'gif', 'tiff', 'auto']))
    .option('--quality <q>', 'quality 1-100', intIn(1, 100))
    .option('--rotate <degrees>', 'rotate by a multiple of 90', intIn(-3600, 3600))
    .option('--flip', 'mirror vertically')
    .option('--flop', 'mirror horizontally')
    .option('--grayscale', 'grayscale')
    .option('--blur <sigma>', 'gaussian blur 0.3-100', Number)
    .option('--crop <x,y,w,h>', 'crop before resizing')
    .action(action(io, async (ctx, album: string, image: string, opts: GetOptions) => {
      const transform: TransformOptions = {
        w: opts.width, h: opts.height, fit: opts.fit, enlarge: opts.enlarge, format: opts.format, q: opts.quality, rotate: opts.rotate,
        flip: opts.flip, flop: opts.flop, grayscale: opts.grayscale, blur: opts.blur, crop: opts.crop,
      };
      const download = await ctx.client.getImage(album, image, transform);
      const target = opts.output ?? image;
      const body = Readable.fromWeb(download.stream() as WebReadableStream);
      if (target === '-') {
        await pipeline(body, io.stdout, { end: false });
        return;
      }
      // Written beside the target, then renamed: an interrupted download leaves no partial image.
      const part = `${target}.part`;
      try {
        await pipeline(body, createWriteStream(part));
        await fs.rename(part, target);
      } catch (err) {
        await fs.rm(part, { force: true });
        throw err;
      }
      const { size } = await fs.stat(target);
      ctx.result({ album, image, file: target, bytes: size, contentType: download.contentType }, `${image} → ${target} (${formatBytes(size)}, ${download.contentType})`);
    }));

  images.command('rename').description('rename an image').argument('<album>').argument('<from>').argument('<to>')
    .action(action(io, async (ctx, album: string, from: string, to: string) => {
      const res = await ctx.client.renameImage(album, from, to);
      ctx.result(res, res.message);
    }));

  images.command('rm').description('delete an image').argument('<album>').argument('<image>')
    .action(action(io, async (ctx, album: string, image: string) => {
      const res = await ctx.client.deleteImage(album, image);
      ctx.result(res, res.message);
    }));

  images.command('meta').description('show an image\'s metadata').argument('<album>').argument('<image>')
    .action(action(io, async (ctx, album: string, image: string) => {
      const meta = await ctx.client.getImageMetadata(album, image);
      ctx.result(meta, Object.entries(meta).map(([k, v]) => `${`${k}:`.padEnd(12)} ${v}`));
    }));
}

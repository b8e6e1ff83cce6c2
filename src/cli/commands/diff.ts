import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { DiffOptions } from '../../client/types.js';
import { action } from '../action.js';
import type { CliIo } from '../context.js';

interface DiffFlags {
  out?: string;
  sideBySide?: boolean;
  files?: boolean;
  threshold?: string;
  includeAa?: boolean;
  resizeFit?: boolean;
}

/** `diff A B [--out diff.png]`: compare two stored images (album/image or id), or two local files with --files. */
export function diffCommand(program: Command, io: CliIo): void {
  program.command('diff').description('compare two images: differing pixels, SSIM, region boxes; --out writes the diff picture')
    .argument('<a>', 'album/image or image id (a local file with --files)')
    .argument('<b>', 'album/image or image id (a local file with --files)')
    .option('-o, --out <file>', 'write the diff picture (PNG) to this file')
    .option('--side-by-side', 'with --out: a, b and the diff in one picture')
    .option('--files', 'a and b are local files, sent to the service')
    .option('--threshold <0..1>', 'per-pixel colour threshold (default 0.1)')
    .option('--include-aa', 'count anti-aliased pixels as differences')
    .option('--resize-fit', 'scale b to a\'s size instead of failing on different sizes')
    .action(action(io, async (ctx, a: string, b: string, flags: DiffFlags) => {
      const options: DiffOptions = {
        ...(flags.threshold !== undefined ? { threshold: Number(flags.threshold) } : {}),
        ...(flags.includeAa ? { includeAA: true } : {}),
        ...(flags.resizeFit ? { resize: 'fit' as const } : {}),
      };
      const { client } = ctx;
      const result = flags.files ? await client.diffUploaded(a, b, options) : await client.diffStored(a, b, options);
      if (flags.out) {
        const output = flags.sideBySide ? 'side-by-side' : 'png';
        const png = flags.files ? await client.diffUploadedPicture(a, b, output, options) : await client.diffStoredPicture(a, b, output, options);
        await writeFile(flags.out, png);
      }
      ctx.result(result, [
        `${result.differentPixels} of ${result.width * result.height} pixels differ (${(result.differentFraction * 100).toFixed(3)}%), SSIM ${result.ssim}`,
        ...result.boxes.map((box) => `  region ${box.x},${box.y} ${box.width}x${box.height} (${box.pixels} px)`),
        ...(flags.out ? [`diff picture written to ${flags.out}`] : []),
      ]);
    }));
}

import type { Command } from 'commander';
import { action } from '../action.js';
import { ExitError, EXIT, type CliIo } from '../context.js';

/** `fsck`: the service's read-only data dir check (admin role); exits 1 when it found problems. */
export function fsckCommand(program: Command, io: CliIo): void {
  program.command('fsck').description('check the service\'s data dir (read-only; admin role); exit 1 if problems are found')
    .option('--verify', 're-hash every image (reads every byte)')
    .action(action(io, async (ctx, opts: { verify?: boolean }) => {
      const report = await ctx.client.fsck({ verify: opts.verify });
      ctx.result(report, [
        `${report.albums} albums, ${report.images} images, ${report.problems.length} problem(s)`,
        ...report.problems.map((p) => `  ${p.kind}: ${p.path}: ${p.detail}`),
      ]);
      if (report.problems.length > 0) throw new ExitError(EXIT.failed);
    }));
}

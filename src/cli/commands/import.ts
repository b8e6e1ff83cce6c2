import type { Command } from 'commander';
import type { ImportJob, ImportJobSummary } from '../../client/index.js';
import { action } from '../action.js';
import { ExitError, EXIT, formatBytes, intIn, type CliContext, type CliIo } from '../context.js';
import { Progress, type BatchCounts } from '../progress.js';

interface ImportOptions {
  album: string;
  wait?: boolean;
  intervalMs: number;
  timeoutMs: number;
}

/**
 * `import URL… --album A [--wait]`: starts an import job; with --wait, shows
 * its progress until it ends and exits 1 unless every URL was stored.
 * `imports ls|show|cancel` look at and stop jobs.
 */
export function importCommand(program: Command, io: CliIo): void {
  program.command('import').description('import images from URLs into an album (a background job on the service)')
    .argument('<urls...>', 'image URLs')
    .requiredOption('-a, --album <album>', 'target album')
    .option('-w, --wait', 'wait for the job to end, showing progress')
    .option('--interval-ms <ms>', 'poll interval with --wait', intIn(50, 60_000), 500)
    .option('--timeout-ms <ms>', 'longest wait with --wait', intIn(1000, 86_400_000), 600_000)
    .action(action(io, async (ctx, urls: string[], opts: ImportOptions) => {
      const job = await ctx.client.createImport(opts.album, urls);
      if (!opts.wait) {
        ctx.result(job, `import job ${job.id} started: ${job.total} URL(s) into ${job.album}`);
        return;
      }
      ctx.note(`import job ${job.id}: ${job.total} URL(s) into ${job.album}`);
      await waitAndReport(ctx, job.id, opts);
    }));

  const imports = program.command('imports').description('list, show and cancel import jobs');
  imports.command('ls').description('recent import jobs')
    .action(action(io, async (ctx) => {
      const jobs = await ctx.client.listImports();
      ctx.result({ jobs }, jobs.map((j) => `${j.id}  ${j.state.padEnd(9)} ${j.album}  ${summary(j)}`));
    }));
  imports.command('show').description('one job with each URL\'s state').argument('<jobId>')
    .action(action(io, async (ctx, id: string) => {
      const job = await ctx.client.getImport(id);
      ctx.result(job, [`${job.id}  ${job.state}  ${job.album}  ${summary(job)}`, ...job.items.map(itemLine)]);
    }));
  imports.command('cancel').description('cancel a job\'s unfinished URLs').argument('<jobId>')
    .action(action(io, async (ctx, id: string) => {
      const job = await ctx.client.cancelImport(id);
      ctx.result(job, `import job ${job.id}: ${job.state} (${summary(job)})`);
    }));
}

async function waitAndReport(ctx: CliContext, id: string, opts: ImportOptions): Promise<void> {
  const progress = new Progress(ctx.io, ctx.progressMode(), 'import', { unit: 'URLs', stored: 'stored', skipped: 'cancelled' });
  const job = await ctx.client.waitForJob(id, {
    intervalMs: opts.intervalMs, timeoutMs: opts.timeoutMs,
    onProgress: (j) => progress.update(countsOf(j)),
  });
  progress.finish(countsOf(job));
  for (const item of job.items.filter((i) => i.state === 'failed')) ctx.note(`failed: ${item.url}: ${item.error ?? 'unknown error'}`);
  ctx.result(job, `import job ${job.id} ${job.state}: ${summary(job)}`);
  if (job.state !== 'done' || job.counts.failed > 0 || job.counts.cancelled > 0) throw new ExitError(EXIT.failed);
}

function countsOf(job: ImportJobSummary): BatchCounts {
  const { stored, failed, cancelled } = job.counts;
  return { total: job.total, done: stored + failed + cancelled, stored, skipped: cancelled, failed, bytes: job.bytes };
}

function summary(job: ImportJobSummary): string {
  const c = job.counts;
  return `${c.stored} stored, ${c.failed} failed, ${c.cancelled} cancelled, ${c.queued + c.downloading} pending of ${job.total}; ${formatBytes(job.bytes)}`;
}

function itemLine(item: ImportJob['items'][number]): string {
  const what = item.image ? `→ ${item.image.name} (${item.image.id})` : item.error ?? '';
  return `  ${item.state.padEnd(11)} ${formatBytes(item.bytes ?? 0).padStart(10)}  ${item.url} ${what}`.trimEnd();
}

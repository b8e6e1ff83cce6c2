import { parseArgs } from 'node:util';
import { loadS3Settings, loadToolConfig } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { FsSource, FsTarget } from './migrate/fs-side.js';
import { migrate, type MigrationProgress, type MigrationSource, type MigrationTarget } from './migrate/migrate.js';
import { S3Side } from './migrate/s3-side.js';

const USAGE = `Usage: npm run migrate -- --from fs:DIR --to s3
       npm run migrate -- --from s3 --to fs:DIR

Copies a store (albums, images, metadata, image ids) between a data dir and a
bucket. The bucket comes from the S3_* variables the service uses with
STORAGE=s3 (S3_BUCKET, S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID,
S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE, S3_PREFIX); it is created if missing.
Resumable: images already in the target with the same sha256 are skipped.
Verified: every copied image is read back and its sha256 compared.
  --concurrency N   images copied at once (default 8)
  --quiet           print the summary only
Exit status: 0 everything copied or already there, 1 some image failed or
differs, 2 usage or configuration error.`;

type Side = { kind: 'fs'; dir: string } | { kind: 's3' };

function parseSide(value: string | undefined, flag: string): Side {
  if (value === 's3') return { kind: 's3' };
  if (value?.startsWith('fs:') && value.length > 3) return { kind: 'fs', dir: value.slice(3) };
  throw new Error(`expected ${flag} fs:DIR or s3, got ${JSON.stringify(value ?? '')}`);
}

/** `npm run migrate`: copy a store between the filesystem and S3, resumably, verified by sha256. */
async function main(): Promise<number> {
  let from: Side;
  let to: Side;
  let concurrency: number;
  let quiet: boolean;
  let tool: ReturnType<typeof loadToolConfig>;
  try {
    const args = parseArgs({ options: { from: { type: 'string' }, to: { type: 'string' }, concurrency: { type: 'string' }, quiet: { type: 'boolean' }, help: { type: 'boolean' } } });
    if (args.values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    from = parseSide(args.values.from, '--from');
    to = parseSide(args.values.to, '--to');
    if (from.kind === 's3' && to.kind === 's3') throw new Error('--from and --to cannot both be s3 (one set of S3_* settings)');
    concurrency = Number(args.values.concurrency ?? 8);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) throw new Error(`expected --concurrency 1-256, got ${JSON.stringify(args.values.concurrency)}`);
    quiet = args.values.quiet ?? false;
    tool = loadToolConfig(process.env);
    if (from.kind === 's3' || to.kind === 's3') loadS3Settings(process.env); // report configuration problems before any work
  } catch (err) {
    process.stderr.write(`migrate: ${err instanceof ConfigError ? err.message : (err as Error).message}\n${USAGE}\n`);
    return 2;
  }

  const log = createLogger(tool.logLevel);
  let source: MigrationSource | undefined;
  let target: MigrationTarget | undefined;
  try {
    if (from.kind === 'fs') {
      const fsSource = await FsSource.open(from.dir);
      if (fsSource.problems > 0) process.stderr.write(`migrate: warning: fsck found ${fsSource.problems} problems in ${from.dir}; images without metadata are not copied (npm run fsck -- ${from.dir} --repair)\n`);
      source = fsSource;
    } else {
      source = await S3Side.open(loadS3Settings(process.env), log);
    }
    target = to.kind === 'fs' ? await FsTarget.open(to.dir) : await S3Side.open(loadS3Settings(process.env), log, true);
    process.stdout.write(`migrating ${source.description} -> ${target.description}\n`);
    const started = Date.now();
    const summary = await migrate(source, target, { concurrency, onProgress: quiet ? undefined : printProgress });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    for (const f of summary.failures) process.stdout.write(`FAILED ${f.album}/${f.image}: ${f.problem}\n`);
    process.stdout.write(
      `done in ${seconds} s: albums ${summary.albumsCreated} created, ${summary.albumsExisting} already there; ` +
        `images ${summary.imagesCopied} copied (${summary.bytesCopied} bytes), ${summary.imagesSkipped} already there, ${summary.failures.length} failed\n`,
    );
    return summary.failures.length === 0 ? 0 : 1;
  } finally {
    await source?.close();
    await target?.close();
  }
}

function printProgress(progress: MigrationProgress): void {
  if (progress.kind === 'album') {
    process.stdout.write(`album ${progress.album}${progress.created ? '' : ' (already there)'}\n`);
  } else if (progress.outcome === 'failed' || progress.done % 100 === 0) {
    process.stdout.write(`  ${progress.done} images processed (last: ${progress.album}/${progress.image} ${progress.outcome})\n`);
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`migrate: ${err.message}\n`);
    process.exit(2);
  },
);

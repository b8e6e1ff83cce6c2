import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { RedoRecord } from './albums/changes.js';
import { backfillFingerprints } from './albums/fs/backfill.js';
import { fsck } from './albums/fs/fsck.js';
import type { FsckProblem } from './contract/types.js';
import { DecodePool } from './images/decode-pool.js';
import { inspectImage } from './images/inspect.js';
import { redoChanges } from './albums/fs/fs-store.js';
import { Layout } from './albums/layout.js';
import { lockDataDir } from './albums/owner.js';
import type { StoreCheck } from './albums/types.js';
import { loadConfig, loadS3Settings, loadToolConfig } from './config.js';
import { silentLogger } from './logger.js';
import { changesToRedo, journalProblem, KEEP_ALL, Outbox, scanJournal } from './notifier/outbox.js';

const USAGE = `Usage: npm run fsck -- [DATA_DIR] [--repair] [--backfill] [--quick] [--json]
       npm run fsck -- --storage s3 [--repair] [--verify] [--json]

Checks an imagestore data dir (default: $IMAGE_DB_DIR or ./image-db), or with --storage s3 the
bucket the S3_* variables name (S3_BUCKET, S3_ENDPOINT, S3_PREFIX...), and reports every problem.
  --repair  fix what can be fixed. Data dir: needs the service stopped; first redoes the changes
            the event journal committed after its last checkpoint, as a start does. Bucket: safe
            beside running nodes, except for an album renamed or deleted meanwhile
  --backfill  data dir: give images stored before issue 18 their placeholders (ThumbHash, dominant
            colour), perceptual hash and capture metadata (needs the service stopped; redoes
            the journal first, as --repair does)
  --quick   data dir: skip re-hashing every image (names and metadata only)
  --verify  bucket: re-hash every image (reads every byte; a data dir is re-hashed unless --quick)
  --json    print the report as JSON
Exit status: 0 clean (or everything repaired), 1 problems remain, 2 usage error.`;

/** `npm run fsck`: check a data dir, and repair it with --repair. */
async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: {
        repair: { type: 'boolean' }, backfill: { type: 'boolean' }, quick: { type: 'boolean' }, verify: { type: 'boolean' }, json: { type: 'boolean' },
        help: { type: 'boolean' }, storage: { type: 'string' },
      },
    });
    if (args.values.storage !== undefined && args.values.storage !== 'fs' && args.values.storage !== 's3') throw new Error(`--storage: expected fs or s3, got ${args.values.storage}`);
    if (args.values.storage === 's3' && args.values.backfill) throw new Error('--backfill: for a data dir only (a bucket\'s images get their fingerprints at upload)');
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const repair = args.values.repair ?? false;
  if (args.values.storage === 's3') return printReport(await checkBucket(repair, args.values.verify ?? false), args.values.json ?? false);
  const root = args.positionals[0] !== undefined ? path.resolve(args.positionals[0]) : loadToolConfig(process.env).imageDbDir;
  const backfill = args.values.backfill ?? false;
  const layout = new Layout(root);
  const owner = repair || backfill ? await lockDataDir(layout.ownerFile) : undefined; // refuses while the service runs on this dir
  try {
    const scan = await scanJournal(layout.outboxDir, repair);
    const redo = await changesToRedo(layout.outboxDir, scan);
    const before = redo.length === 0 ? [] : repair || backfill ? await redoJournal(layout) : [toRedo(layout, redo)];
    const report = await fsck(root, { repair, verifyContent: !args.values.quick });
    if (backfill) {
      const filled = await runBackfill(layout);
      process.stderr.write(`backfill: ${filled.filled} images given placeholders and a perceptual hash, ${filled.skipped.length} not decodable\n`);
      for (const skipped of filled.skipped) process.stderr.write(`  skipped ${skipped.path}: ${skipped.reason}\n`);
    }
    report.problems.unshift(...before);
    report.problems.push(...scan.problems.map(journalProblem));
    return printReport({ root, ...report }, args.values.json ?? false);
  } finally {
    await owner?.release();
  }
}

/** --backfill, with the service's limits (MAX_INPUT_PIXELS, ALLOW_SVG) and HEIC decoder. */
async function runBackfill(layout: Layout) {
  const { maxInputPixels, allowSvg } = loadConfig(process.env).images;
  const decoders = new DecodePool();
  try {
    return await backfillFingerprints(layout, (file) => inspectImage(file, { maxInputPixels, allowSvg, decode: decoders.decode, fingerprints: true }));
  } finally {
    await decoders.close();
  }
}

/** Prints a report; the exit status: 0 when nothing is left to repair, else 1. */
function printReport(report: StoreCheck & { root: string }, json: boolean): number {
  const remaining = report.problems.filter((p) => !p.repaired);
  if (json) {
    process.stdout.write(`${JSON.stringify({ root: report.root, albums: report.albums, images: report.images, problems: report.problems }, null, 2)}\n`);
  } else {
    for (const p of report.problems) process.stdout.write(`${p.repaired ? 'REPAIRED' : 'PROBLEM '} ${p.kind}: ${p.path}: ${p.detail}\n`);
    process.stdout.write(`${report.root}: ${report.albums} albums, ${report.images} images, ${report.problems.length} problems, ${remaining.length} left\n`);
  }
  return remaining.length === 0 ? 0 : 1;
}

/** --storage s3: the store's own check of the bucket, from a throw-away staging dir (the nodes keep theirs). */
async function checkBucket(repair: boolean, verify: boolean): Promise<StoreCheck & { root: string }> {
  // Loaded only here: the AWS SDK would slow every check of a data dir.
  const { S3AlbumStore } = await import('./albums/s3/s3-store.js');
  const settings = loadS3Settings(process.env);
  const staging = await mkdtemp(path.join(os.tmpdir(), 'imagestore-fsck-'));
  try {
    const { store } = await S3AlbumStore.open(settings, staging, silentLogger());
    try {
      return { root: `s3://${settings.bucket}/${store.layout.prefix}`, ...(await store.check({ repair, verify })) };
    } finally {
      await store.close();
    }
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/** --repair: the changes committed after the last checkpoint are made first, as the service's start makes them. */
async function redoJournal(layout: Layout): Promise<FsckProblem[]> {
  // The service's retention decides what to prune, not fsck.
  const outbox = await Outbox.open(layout.outboxDir, { retention: KEEP_ALL });
  try {
    return await redoChanges(layout, outbox, silentLogger());
  } finally {
    await outbox.close();
  }
}

/** Without --repair: changes committed but maybe not all on disk yet (a crash), which a start or --repair redoes. */
function toRedo(layout: Layout, redo: RedoRecord[]): FsckProblem {
  return {
    kind: 'journal-changes-to-redo', path: layout.outboxDir, repaired: false,
    detail: `${redo.length} change${redo.length > 1 ? 's' : ''} committed after the last checkpoint (seq ${redo[0].seq}-${redo.at(-1)!.seq}), maybe not all on disk: a start of the service, or --repair, redoes them first; other problems listed may be theirs`,
  };
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    process.stderr.write(`fsck: ${err.message}\n`);
    process.exit(2);
  },
);

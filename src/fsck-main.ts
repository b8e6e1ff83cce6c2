import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { RedoRecord } from './albums/changes.js';
import { fsck, journalProblem, type FsckProblem } from './albums/fsck.js';
import { redoChanges } from './albums/fs-store.js';
import { Layout } from './albums/layout.js';
import { lockDataDir } from './albums/owner.js';
import type { StoreCheck } from './albums/types.js';
import { silentLogger } from './logger.js';
import { changesToRedo, Outbox, scanJournal } from './notifier/outbox.js';

const USAGE = `Usage: npm run fsck -- [DATA_DIR] [--repair] [--quick] [--json]
       npm run fsck -- --storage s3 [--repair] [--verify] [--json]

Checks an imagestore data dir (default: $IMAGE_DB_DIR or ./image-db), or with --storage s3 the
bucket the S3_* variables name (S3_BUCKET, S3_ENDPOINT, S3_PREFIX...), and reports every problem.
  --repair  fix what can be fixed. Data dir: needs the service stopped; first redoes the changes
            the event journal committed after its last checkpoint, as a start does. Bucket: safe
            beside running nodes, except for an album renamed or deleted meanwhile
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
        repair: { type: 'boolean' }, quick: { type: 'boolean' }, verify: { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean' },
        storage: { type: 'string' },
      },
    });
    if (args.values.storage !== undefined && args.values.storage !== 'fs' && args.values.storage !== 's3') throw new Error(`--storage: expected fs or s3, got ${args.values.storage}`);
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
  const root = path.resolve(args.positionals[0] ?? process.env.IMAGE_DB_DIR ?? './image-db');
  const layout = new Layout(root);
  const owner = repair ? await lockDataDir(layout.ownerFile) : undefined; // refuses while the service runs on this dir
  try {
    const scan = await scanJournal(layout.outboxDir, repair);
    const redo = await changesToRedo(layout.outboxDir, scan);
    const before = redo.length === 0 ? [] : repair ? await redoJournal(layout) : [toRedo(layout, redo)];
    const report = await fsck(root, { repair, verifyContent: !args.values.quick });
    report.problems.unshift(...before);
    report.problems.push(...scan.problems.map(journalProblem));
    return printReport({ root, ...report }, args.values.json ?? false);
  } finally {
    await owner?.release();
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
  const [{ S3AlbumStore }, { s3SettingsFromEnv }] = await Promise.all([import('./albums/s3-store.js'), import('./migrate/s3-env.js')]);
  const settings = s3SettingsFromEnv(process.env);
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
  const outbox = await Outbox.open(layout.outboxDir);
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

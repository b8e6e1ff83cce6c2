import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncDir, writeFileAtomic } from '../lib/durable.js';
import type { Logger } from '../logger.js';
import type { ImportItem, ImportJob, JobState } from './job.js';

/** Finished jobs kept for GET /api/v1/imports; older ones are deleted. */
export const KEPT_FINISHED_JOBS = 200;

/** The log is folded into a new snapshot once it is this many times the snapshot's size... */
export const COMPACT_FACTOR = 2;
/** ...and at least this big, so that small jobs are compacted only when they finish. */
export const MIN_COMPACT_BYTES = 64 * 1024;

/** One line of a job's log: an item's new state, and the job's state after the change. */
interface ItemRecord {
  /** Sequence number, per job; the snapshot names the last one folded into it. */
  n: number;
  at: string;
  state: JobState;
  i: number;
  item: ImportItem;
}

/** What the store knows of a job's files. Every write of a job runs in `chain`, in call order. */
interface JobFiles {
  seq: number;
  snapshotBytes: number;
  logBytes: number;
  chain: Promise<unknown>;
}

/**
 * Import jobs on disk, two files per job under `dir`:
 * - `<id>.json`, a snapshot of the whole job and the `seq` of the last change in it,
 *   always replaced atomically (temporary file, fsync, rename);
 * - `<id>.log`, the item changes since, one JSON line each, appended: a change
 *   writes O(1) bytes whatever the number of URLs.
 * Loading reads the snapshot and replays the log (a torn last line, from a crash
 * in the middle of an append, is dropped and logged); log lines already folded
 * into the snapshot (a crash between the new snapshot and the log's removal) are
 * recognised by their sequence number and skipped. The log is compacted into a
 * new snapshot when the job finishes, when it grows past COMPACT_FACTOR times the
 * snapshot, and after every load (so no append ever follows a torn line).
 *
 * Durability: every snapshot is fsynced, file and directory, before anything
 * else happens: at creation because the 202 promises the job, at compaction
 * because the snapshot is then the one copy of the job and the log goes.
 * Appends are not fsynced: after a crash the lost tail only puts items back to
 * an earlier state, so an item resumes as queued and is downloaded again, and
 * the import recognises it by its sha256 when it had already been stored. An
 * fsync per item would buy nothing but latency.
 */
export class JobStore {
  private readonly files = new Map<string, JobFiles>();

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Every job on disk, oldest first; logs are replayed and compacted. */
  async loadAll(): Promise<ImportJob[]> {
    await fs.mkdir(this.dir, { recursive: true });
    const names = new Set(await fs.readdir(this.dir));
    const jobs: ImportJob[] = [];
    for (const name of names) {
      const { name: id, ext } = path.parse(name);
      if (ext === '.json') {
        const job = await this.load(id, names.has(`${id}.log`));
        if (job) jobs.push(job);
      } else if (ext !== '.log' || !names.has(`${id}.json`)) {
        // A temporary file of an interrupted snapshot, or the log of a job whose snapshot was removed.
        await fs.rm(path.join(this.dir, name), { force: true });
      }
    }
    return jobs.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  /** Writes a new job durably: it is on disk when this resolves. */
  create(job: ImportJob): Promise<void> {
    return this.writeSnapshot(job);
  }

  /**
   * Journals a change of item `index` (its state, bytes, attempts, image or
   * error) and the job's state; compacts instead when the log has grown too big.
   */
  append(job: ImportJob, index: number): Promise<void> {
    const files = this.filesOf(job.id);
    files.seq += 1;
    const record: ItemRecord = { n: files.seq, at: job.updatedAt, state: job.state, i: index, item: job.items[index] };
    const line = `${JSON.stringify(record)}\n`;
    const bytes = Buffer.byteLength(line);
    if (files.logBytes + bytes > Math.max(MIN_COMPACT_BYTES, COMPACT_FACTOR * files.snapshotBytes)) return this.writeSnapshot(job);
    files.logBytes += bytes;
    return this.enqueue(files, () => fs.appendFile(this.logFile(job.id), line));
  }

  /** Replaces the job's snapshot with its current state and removes its log (a finished or cancelled job). */
  compact(job: ImportJob): Promise<void> {
    return this.writeSnapshot(job);
  }

  /** Deletes a job's files. */
  remove(id: string): Promise<void> {
    const files = this.filesOf(id);
    return this.enqueue(files, async () => {
      this.files.delete(id);
      await fs.rm(this.snapshotFile(id), { force: true });
      await fs.rm(this.logFile(id), { force: true });
    });
  }

  private async load(id: string, hasLog: boolean): Promise<ImportJob | undefined> {
    let text: string;
    let stored: ImportJob & { seq?: number };
    try {
      text = await fs.readFile(this.snapshotFile(id), 'utf8');
      stored = JSON.parse(text) as ImportJob & { seq?: number };
    } catch (err) {
      // Snapshots are replaced atomically, so only a disk fault does this; the file stays for a look.
      this.log.warn({ err, jobId: id }, 'unreadable import job skipped');
      return undefined;
    }
    const { seq = 0, ...job } = stored; // snapshots written before the log existed have no seq
    const files: JobFiles = { seq, snapshotBytes: Buffer.byteLength(text), logBytes: 0, chain: Promise.resolve() };
    this.files.set(id, files);
    if (!hasLog) return job;
    try {
      files.seq = this.replay(job, seq, await fs.readFile(this.logFile(id), 'utf8'));
    } catch (err) {
      // The changes are lost, not the job: its items resume from the snapshot's states.
      this.log.warn({ err, jobId: id }, 'unreadable import job log ignored');
    }
    await this.writeSnapshot(job);
    return job;
  }

  /** Applies the log's records after `seq` to `job`; returns the last sequence number. */
  private replay(job: ImportJob, seq: number, text: string): number {
    const lines = text.split('\n');
    let last = seq;
    lines.forEach((line, k) => {
      if (line === '') return;
      let record: ItemRecord;
      try {
        record = JSON.parse(line) as ItemRecord;
      } catch {
        // Every line but the last ends with a newline, written with it in one append: only the last can be torn.
        if (k === lines.length - 1) this.log.warn({ jobId: job.id, bytes: Buffer.byteLength(line) }, 'torn last line of an import job log dropped');
        else this.log.warn({ jobId: job.id, line: k + 1 }, 'unreadable line of an import job log skipped');
        return;
      }
      if (!isRecord(record, job.items.length)) {
        this.log.warn({ jobId: job.id, line: k + 1 }, 'malformed line of an import job log skipped');
        return;
      }
      if (record.n <= seq) return; // already in the snapshot
      job.items[record.i] = record.item;
      job.state = record.state;
      job.updatedAt = record.at;
      last = Math.max(last, record.n);
    });
    return last;
  }

  /** A durable new snapshot of `job` as it is now, then the log removed (never before the snapshot is on disk). */
  private writeSnapshot(job: ImportJob): Promise<void> {
    const files = this.filesOf(job.id);
    const data = JSON.stringify({ seq: files.seq, ...job });
    files.snapshotBytes = Buffer.byteLength(data);
    files.logBytes = 0;
    return this.enqueue(files, async () => {
      await writeFileAtomic(this.snapshotFile(job.id), data, this.dir);
      await fsyncDir(this.dir);
      await fs.rm(this.logFile(job.id), { force: true });
    });
  }

  /** Runs `write` after the job's earlier writes; its failure is the caller's, and does not stop later writes. */
  private enqueue(files: JobFiles, write: () => Promise<void>): Promise<void> {
    const done = files.chain.then(write);
    files.chain = done.catch(() => undefined);
    return done;
  }

  private filesOf(id: string): JobFiles {
    let files = this.files.get(id);
    if (!files) {
      files = { seq: 0, snapshotBytes: 0, logBytes: 0, chain: Promise.resolve() };
      this.files.set(id, files);
    }
    return files;
  }

  private snapshotFile(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  private logFile(id: string): string {
    return path.join(this.dir, `${id}.log`);
  }
}

function isRecord(value: unknown, items: number): value is ItemRecord {
  const r = value as Partial<ItemRecord> | null;
  return typeof r === 'object' && r !== null && Number.isInteger(r.n) && Number.isInteger(r.i) && r.i! >= 0 && r.i! < items
    && typeof r.item === 'object' && r.item !== null && typeof r.item.url === 'string' && typeof r.state === 'string' && typeof r.at === 'string';
}

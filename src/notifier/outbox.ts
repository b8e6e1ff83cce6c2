import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { StoreEvent } from './events.js';
import type { RedoRecord, StoreChange } from '../albums/changes.js';
import { fsyncDir, isErrno, TEMP_PREFIX, writeFileAtomic } from '../lib/durable.js';
import { InsufficientStorageError, isOutOfSpace, ServiceUnavailableError } from '../errors.js';
import { silentLogger, type Logger } from '../logger.js';
import { SeqFile } from './seq-file.js';
import type { FsckProblem } from '../contract/types.js';
import { formatSequence } from './events.js';
import { RecentRecords } from './recent-records.js';

/**
 * One journaled event and its position in the journal. A change's commit record
 * also describes the change (`change`), so that recovery can redo it.
 */
export interface JournalRecord {
  seq: number;
  event: StoreEvent;
  change?: StoreChange;
  /** The event's JSON as journaled (serialised once, for the journal and the broker); absent for records read back at start. */
  payload?: string;
}

/** A record as written: an event (with its change, for a commit record), or the abort of an earlier commit record. */
interface StoredRecord {
  seq: number;
  event?: StoreEvent;
  change?: StoreChange;
  /** The sequence number of a commit record whose change was undone: never redone, its event never published. */
  aborted?: number;
}

/** Damage found in the journal when it is opened (or checked by `npm run fsck`). */
export interface JournalProblem {
  /**
   * `torn-record`: the last record of the last segment was cut by a crash during an append (the one
   * expected damage; dropped). `corrupt-record`: bytes elsewhere that are not a whole record.
   * `missing-records`: sequence numbers missing between two records.
   */
  kind: 'torn-record' | 'corrupt-record' | 'missing-records';
  file: string;
  /** Byte offset in `file`. */
  offset: number;
  detail: string;
  /** The damage was cut off the file (torn-record, when repairing). */
  repaired: boolean;
}

/** Options of `Outbox.open`. */
export interface OutboxOptions {
  /** A segment is closed and a new one started past this size (default 1 MiB). */
  maxSegmentBytes?: number;
  /** Disk space kept in reserve for the events of changes under way when the disk fills (default 4 MiB). */
  reserveBytes?: number;
  /** Least time between two attempts to re-create a used reserve (default 1 s). */
  reserveRetryMs?: number;
  /**
   * How long delivered events are kept for replay (EVENT_RETENTION): a segment whose events are all
   * delivered is deleted once it is older than `maxAgeMs` or the journal is larger than `maxBytes`.
   * Default: deleted as soon as delivered (no replay).
   */
  retention?: Retention;
  /** Delivered segments are pruned this often by age (default 60 s); by size, at every rotation. */
  pruneIntervalMs?: number;
  /** Events kept in memory for the readers that follow the head of the journal (default 8192). */
  recentRecords?: number;
  log?: Logger;
}

/** How long delivered events are kept (both bounds apply; Infinity for none). */
export interface Retention {
  maxAgeMs: number;
  maxBytes: number;
}

/** Keeps every delivered event (fsck: it must not prune what the service keeps for replay). */
export const KEEP_ALL: Retention = { maxAgeMs: Infinity, maxBytes: Infinity };

/** One segment file: its first sequence number, and once closed its size and when it was closed. */
interface Segment {
  firstSeq: number;
  file: string;
  bytes?: number;
  closedAt?: number;
}

/** What `read` found: the events (in order) and the cursor to continue after. */
export interface JournalPage {
  records: JournalRecord[];
  /** Pass as `after` to continue: the last sequence number looked at (not only returned). */
  next: number;
}

interface QueuedWrite {
  event?: StoreEvent;
  change?: StoreChange;
  aborted?: number;
  durable: boolean;
  resolve: (seq: number | undefined) => void;
  reject: (err: Error) => void;
}

const SEGMENT_PREFIX = 'seg-';
const SEGMENT_SUFFIX = '.jsonl';
const WATERMARK_FILE = 'delivered';
const CHECKPOINT_FILE = 'checkpoint';
const RESERVE_FILE = 'reserve';
/** Every record starts so (JSON.stringify keeps the key order of JournalRecord). */
const RECORD_START = '{"seq":';
/** The reserve is filled with spaces: once it becomes a segment, what records do not overwrite reads as blank. */
const FILLER = 0x20;
/** A segment is closed and a new one started past this size; delivered segments are deleted. */
export const DEFAULT_SEGMENT_BYTES = 1024 * 1024;
/** Space kept for the events of changes under way when the disk fills: 256 changes of 8 KiB in half of it. */
export const DEFAULT_RESERVE_BYTES = 4 * 1024 * 1024;
/** Room in the reserve promised to each change under way: more than any event takes (names are at most 255 bytes). */
const ADMITTED_RECORD_BYTES = 8 * 1024;
/**
 * The delivered watermark is written at most this often, in place and without fsync: losing it
 * only redelivers, and one write per dispatched batch cost more than the events themselves.
 */
const WATERMARK_WRITE_MS = 100;
/** Dropped fetch events are logged at most once per this interval. */
const DROP_LOG_INTERVAL_MS = 60_000;
/**
 * Fetch events are written without fsync; readers see an event only once it is durable (a crash could
 * otherwise hand its sequence number to another event after a reader saw it). When a reader waits for
 * one, the journal is fsynced this long after (one fsync for all the fetches of the interval).
 */
const READER_SYNC_MS = 20;
/** Closed segments kept parsed for readers behind the ring (about 1 MiB of records each). */
const PARSED_SEGMENTS = 4;
/** Records a `read` parses from disk at most before it answers (with a cursor to continue). */
const READ_SCAN_RECORDS = 50_000;

/**
 * The durable event journal. Events are appended to segment files (JSON lines)
 * and fsynced in groups: concurrent appends share one fsync. The delivered
 * watermark (highest sequence number with every earlier event delivered) is
 * kept in `delivered`; segments wholly below it are deleted, so the journal
 * stays bounded while the broker keeps up. Losing the watermark only causes
 * redelivery (at least once), never loss.
 *
 * Full disk: records are written whole or not at all (a short write is cut
 * back), and a file of `reserveBytes` is kept in the journal's directory. When
 * an append finds the disk full, the reserve becomes the next segment and the
 * append is retried there, so the events of changes already made still land;
 * the outbox is then *degraded*: `admit()` refuses new changes (507) before they
 * touch the store, and fetch events are dropped (counted in `dropped`), until the
 * reserve can be written again (tried at most once per `reserveRetryMs`, when a
 * change or a fetch comes). Changes under way are limited so that their events
 * always fit in the reserve.
 *
 * Commit records: the event of a store change is appended together with the
 * change's description (`append(event, true, change)`); that fsync is the
 * change's commit point. The record stays *unapplied* until the store has
 * applied the change (`applied(seq)`): the dispatcher is given events only up
 * to the first unapplied record, so no event announces a change that is not
 * visible, and order is kept. A change the store could not apply is undone and
 * `abort(seq)` appends an abort record: it is never redone nor published. The
 * checkpoint (`checkpoint(seq)`, in the file `checkpoint`) says up to where
 * every applied change is durable in the store; at open, the commit records
 * after it (not aborted) are handed to recovery to redo (`redo`). A segment
 * is deleted only once its events are delivered and its changes checkpointed
 * (`deletableThrough`, the one place that rule lives).
 */
export class Outbox {
  private readonly queue: QueuedWrite[] = [];
  private flushing: Promise<void> | undefined;
  /** End of the last whole record in the current segment: where the next write goes. */
  private end = 0;
  private watermarkWrite: Promise<void> = Promise.resolve();
  private watermarkTimer: NodeJS.Timeout | undefined;
  private readonly listeners: Array<() => void> = [];
  private admitted = 0;
  private readonly maxAdmitted: number;
  private restoring: Promise<void> | undefined;
  private lastRestoreAttempt = 0;
  private droppedSinceLog = 0;
  private lastDropLog = -Infinity;
  /** Fetch events not journaled because the journal could not grow (or not be written). */
  dropped = 0;
  /** Commit records whose change is not applied (nor aborted) yet. */
  private readonly unapplied = new Set<number>();
  /** Sequence numbers of the commit records after the checkpoint, ascending (aborted ones left out). */
  private readonly uncheckpointed: number[];
  private readonly settleWaiters: Array<{ seq: number; resolve: () => void }> = [];
  /** Commit records the last start found after the checkpoint: recovery redoes them, then calls `applied` (or `abort`). */
  readonly redo: RedoRecord[];
  /** Every record up to this one is on disk for good (fsynced): readers are shown no later one. */
  private syncedSeq: number;
  private syncWanted = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private pruneTimer: NodeJS.Timeout | undefined;
  /** Commit records that were aborted (rare): readers skip them. */
  private readonly abortedSeqs: Set<number>;
  /** The latest events, so that readers following the head never read a file. */
  private readonly recent: RecentRecords;
  private readonly floors: Array<() => number> = [];
  /** The last closed segments parsed for readers (they never change): readers behind the ring share them. */
  private readonly parsedSegments = new Map<string, StoredRecord[]>();

  private constructor(
    private readonly dir: string,
    private readonly pendingRecords: JournalRecord[],
    private nextSeq: number,
    private watermark: number,
    private readonly segments: Segment[],
    private current: FileHandle,
    private reserveReady: boolean,
    private readonly options: Required<OutboxOptions>,
    /** What recovery found wrong when the journal was opened (torn tail cut off, corrupt or missing records). */
    readonly problems: JournalProblem[],
    private readonly checkpointFile: SeqFile,
    redo: RedoRecord[],
    private readonly deliveredFile: SeqFile,
    aborted: Set<number>,
    recent: JournalRecord[],
    /** Events up to here were not loaded at open: readers get them from the files. */
    notLoadedThrough: number,
  ) {
    this.maxAdmitted = Math.max(1, Math.floor(options.reserveBytes / 2 / ADMITTED_RECORD_BYTES));
    this.redo = redo;
    this.syncedSeq = nextSeq - 1;
    this.abortedSeqs = aborted;
    this.recent = new RecentRecords(options.recentRecords);
    for (const record of recent.slice(-this.recent.capacity)) this.recent.push(record);
    if (recent.length > this.recent.capacity) this.recent.startAfter(recent[recent.length - this.recent.capacity - 1].seq);
    this.recent.startAfter(notLoadedThrough);
    this.uncheckpointed = redo.map((r) => r.seq);
    for (const { seq } of redo) this.unapplied.add(seq);
  }

  /**
   * Opens (or creates) the journal in `dir` and loads the events not yet delivered. A torn last
   * record (crash during an append) is cut off and logged as a warning; any other damage is
   * logged as an error and listed in `problems`, never skipped silently.
   */
  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    const settings: Required<OutboxOptions> = {
      maxSegmentBytes: DEFAULT_SEGMENT_BYTES, reserveBytes: DEFAULT_RESERVE_BYTES, reserveRetryMs: 1000,
      retention: { maxAgeMs: 0, maxBytes: 0 }, pruneIntervalMs: 60_000, recentRecords: 8192, log: silentLogger(), ...options,
    };
    const { log } = settings;
    await fs.mkdir(dir, { recursive: true });
    const deliveredFile = await SeqFile.open(path.join(dir, WATERMARK_FILE));
    const watermark = deliveredFile.current;
    // Temporary files of watermark or reserve writes that a crash interrupted.
    for (const name of await fs.readdir(dir)) {
      if (name.startsWith(TEMP_PREFIX)) await fs.rm(path.join(dir, name), { force: true });
    }
    // Segments kept only for replay (delivered and checkpointed) are not parsed: a start must not read the whole retention.
    const scan = await scanJournal(dir, true, Math.min(watermark, (await SeqFile.read(path.join(dir, CHECKPOINT_FILE)))));
    for (const problem of scan.problems) {
      if (problem.kind === 'torn-record') log.warn(problem, 'event journal: dropped a record torn by a crash');
      else log.error(problem, 'event journal: damaged, events may be lost');
    }
    const checkpointFile = await SeqFile.open(path.join(dir, CHECKPOINT_FILE));
    const checkpoint = checkpointFile.current;
    const aborted = new Set(scan.records.flatMap((r) => (r.aborted === undefined ? [] : [r.aborted])));
    const live = scan.records.filter((r): r is JournalRecord => r.event !== undefined && !aborted.has(r.seq));
    // Journals written before events carried their sequence number.
    for (const r of live) r.event.sequence = formatSequence(r.seq);
    const pending = live.filter((r) => r.seq > watermark);
    const redo = live.filter((r) => r.change !== undefined && r.seq > checkpoint).map((r) => ({ seq: r.seq, change: r.change! }));
    const lastSeq = scan.records.reduce((max, r) => Math.max(max, r.seq), Math.max(watermark, checkpoint));
    const segments: Segment[] = scan.segments;
    await Promise.all(segments.map(async (segment) => {
      const stat = await fs.stat(segment.file);
      segment.bytes = stat.size;
      segment.closedAt = stat.mtimeMs;
    }));
    // Never append after a possibly torn last line: every start opens a fresh segment, or reuses the
    // last one if it holds nothing. A fresh one needs a name not taken yet: the last rotation (or start) may
    // have named a file lastSeq + 1 already, and two entries for one file made it look delivered.
    const last = segments.at(-1);
    let firstSeq: number;
    let file: string;
    if (last && scan.lastIsBlank) {
      firstSeq = Math.max(lastSeq + 1, last.firstSeq);
      file = last.file;
      last.bytes = undefined;
      last.closedAt = undefined;
    } else {
      firstSeq = Math.max(lastSeq, last?.firstSeq ?? 0) + 1;
      file = segmentPath(dir, firstSeq);
      segments.push({ firstSeq, file });
    }
    const current = await fs.open(file, 'w');
    const reserveReady = await createReserve(dir, settings.reserveBytes).then(
      () => true,
      (err: unknown) => {
        if (!isOutOfSpace(err)) throw err;
        log.error({ reserveBytes: settings.reserveBytes }, 'disk full at start: changes are refused (507) and fetch events dropped until the event journal reserve can be written');
        return false;
      },
    );
    const outbox = new Outbox(
      dir, pending, firstSeq, watermark, segments, current, reserveReady, settings, scan.problems, checkpointFile, redo, deliveredFile,
      aborted, live, scan.skippedThrough,
    );
    await fsyncDir(dir);
    await outbox.deleteDeliveredSegments();
    if (Number.isFinite(settings.retention.maxAgeMs) && settings.retention.maxAgeMs > 0) {
      outbox.pruneTimer = setInterval(() => outbox.prune(), settings.pruneIntervalMs);
      outbox.pruneTimer.unref();
    }
    return outbox;
  }

  /** Number of events not yet delivered. */
  get pendingCount(): number {
    return this.pendingRecords.length;
  }

  /** True while the disk is full: the reserve is used or missing, changes are refused, fetch events dropped. */
  get degraded(): boolean {
    return !this.reserveReady;
  }

  /**
   * The first `n` undelivered events, oldest first, up to the first whose change is not
   * applied yet (its event must wait, and so must every later one, to keep the order).
   */
  peek(n: number): JournalRecord[] {
    let end = 0;
    const limit = Math.min(n, this.pendingRecords.length);
    while (end < limit && !this.unapplied.has(this.pendingRecords[end].seq)) end += 1;
    return this.pendingRecords.slice(0, end);
  }

  /** Sequence number of the last record written (0 for none). */
  get lastSeq(): number {
    return this.nextSeq - 1;
  }

  /**
   * The last sequence number readers may see: every event up to it is durable and announces a
   * change already visible. Asks for an fsync when fetch events wait for one (readers are told
   * through `onAppend` when it moves).
   */
  readableThrough(): number {
    if (this.syncedSeq < this.nextSeq - 1) this.requestSync();
    return Math.min(this.syncedSeq, this.settledSeq);
  }

  /** The oldest sequence number still held: a reader may resume from `oldestSeq - 1` or later. */
  get oldestSeq(): number {
    return this.segments[0].firstSeq;
  }

  /**
   * Adds a reader whose progress holds events back from pruning (a webhook endpoint's cursor):
   * no event after `floor()` is deleted, even past the retention.
   */
  addFloor(floor: () => number): void {
    this.floors.push(floor);
  }

  /**
   * Events after `after`, oldest first, at most `limit` of those `filter` accepts, up to
   * `readableThrough()`. Recent events come from memory, older ones from the segment files (at
   * most READ_SCAN_RECORDS parsed per call: `next` then says where to continue).
   * @returns undefined when `after` is older than the journal holds (pruned): see `oldestSeq`
   */
  async read(after: number, limit: number, filter: (event: StoreEvent) => boolean = () => true): Promise<JournalPage | undefined> {
    const through = this.readableThrough();
    if (after < this.oldestSeq - 1) return undefined;
    const records: JournalRecord[] = [];
    let next = Math.max(after, 0);
    let full = false;
    const take = (record: JournalRecord): boolean => {
      if (record.seq > through) return false;
      if (records.length >= limit) {
        full = true;
        return false;
      }
      next = record.seq;
      if (!this.abortedSeqs.has(record.seq) && filter(record.event)) records.push(record);
      return true;
    };
    if (!this.recent.covers(next)) {
      const outcome = await this.readSegments(next, take);
      if (outcome === 'pruned') return after < this.oldestSeq - 1 ? undefined : { records, next };
      if (outcome === 'budget' || full) return { records, next };
      if (outcome === 'end' || !this.recent.covers(next)) return { records, next: Math.max(next, through) };
    }
    for (const record of this.recent.after(next)) if (!take(record)) break;
    // Every record up to the horizon was looked at: what is left below it (abort records) is passed.
    return { records, next: full ? next : Math.max(next, through) };
  }

  /**
   * Feeds the records of the segment files after `after` to `take` until it says stop.
   * @returns `stopped` by `take`; `end` of the journal; `handoff`: the rest is in memory (`recent`);
   *          `budget`: READ_SCAN_RECORDS parsed; `pruned`: a segment was deleted meanwhile
   */
  private async readSegments(after: number, take: (record: JournalRecord) => boolean): Promise<'stopped' | 'end' | 'handoff' | 'budget' | 'pruned'> {
    const segments = this.segments.slice();
    let i = segments.length - 1;
    while (i > 0 && segments[i].firstSeq > after + 1) i -= 1;
    let scanned = 0;
    for (; i < segments.length; i += 1) {
      const records = await this.segmentRecords(segments[i].file, i < segments.length - 1);
      if (records === undefined) return 'pruned';
      for (const record of records) {
        if (record.seq <= after || record.event === undefined) continue;
        record.event.sequence = formatSequence(record.seq);
        if (!take(record as JournalRecord)) return 'stopped';
        scanned += 1;
      }
      if (scanned >= READ_SCAN_RECORDS) return 'budget';
      if (i + 1 < segments.length && this.recent.covers(segments[i + 1].firstSeq - 1)) return 'handoff';
    }
    return 'end';
  }

  /** The records of a segment file; a closed one is parsed once for all readers (a few kept). undefined: pruned. */
  private async segmentRecords(file: string, closed: boolean): Promise<StoredRecord[] | undefined> {
    const cached = this.parsedSegments.get(file);
    if (cached) return cached;
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(file);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
    const records = parseSegment(bytes).records.map((r) => r.record);
    if (closed && this.segments.some((s) => s.file === file)) {
      this.parsedSegments.set(file, records);
      if (this.parsedSegments.size > PARSED_SEGMENTS) this.parsedSegments.delete(this.parsedSegments.keys().next().value!);
    }
    return records;
  }

  /** The highest sequence number up to which every change is applied (or aborted). */
  get settledSeq(): number {
    let lowest = Infinity;
    for (const seq of this.unapplied) lowest = Math.min(lowest, seq);
    return lowest === Infinity ? this.nextSeq - 1 : lowest - 1;
  }

  /** Resolves once every change up to `seq` is applied or aborted. */
  whenSettled(seq: number): Promise<void> {
    if (this.settledSeq >= seq) return Promise.resolve();
    return new Promise((resolve) => this.settleWaiters.push({ seq, resolve }));
  }

  /** The checkpoint: every change up to it is durable in the store. */
  get checkpointSeq(): number {
    return this.checkpointFile.current;
  }

  /** Commit records after the checkpoint (applied or not). */
  get uncheckpointedCount(): number {
    return this.uncheckpointed.length;
  }

  /** The first commit record after the checkpoint (undefined when none). */
  get firstUncheckpointed(): number | undefined {
    return this.uncheckpointed[0];
  }

  /** The change of commit record `seq` is applied: its event may be delivered. */
  applied(seq: number): void {
    if (!this.unapplied.delete(seq)) return;
    this.settled();
    this.notify();
  }

  /**
   * The change of commit record `seq` was undone: appends an abort record (durably; it fits in
   * the room `admit` promised), after which the change is never redone and its event never published.
   * @throws when the abort record could not be written: the change will be redone at the next start
   */
  async abort(seq: number): Promise<void> {
    await new Promise<number | undefined>((resolve, reject) => {
      this.queue.push({ aborted: seq, durable: true, resolve, reject });
      this.flushing ??= this.flush();
    });
    this.unapplied.delete(seq);
    this.abortedSeqs.add(seq);
    const i = this.pendingRecords.findIndex((r) => r.seq === seq);
    if (i !== -1) this.pendingRecords.splice(i, 1);
    const j = this.uncheckpointed.indexOf(seq);
    if (j !== -1) this.uncheckpointed.splice(j, 1);
    this.settled();
    this.notify();
  }

  /**
   * Records durably that every change up to `seq` is durable in the store (the caller flushed it),
   * then deletes the segments no longer needed. `seq` must not pass `settledSeq`.
   */
  async checkpoint(seq: number): Promise<void> {
    if (seq <= this.checkpointFile.current) return;
    await this.checkpointFile.write(seq, true);
    let done = 0;
    while (done < this.uncheckpointed.length && this.uncheckpointed[done] <= seq) done += 1;
    this.uncheckpointed.splice(0, done);
    this.watermarkWrite = this.watermarkWrite.then(() => this.deleteDeliveredSegments()).catch(() => undefined);
  }

  /** Calls `listener` after each append, and when a change is applied or aborted (the dispatcher wakes up). */
  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Lets one change go ahead: its event (appended with `durable`) is sure to fit in the journal,
   * even if the disk fills meanwhile. Call before the change touches the store, and call the
   * returned function once its event is appended (or the change failed).
   * @throws {InsufficientStorageError} the disk is full (degraded): make no change
   * @throws {ServiceUnavailableError} so many changes are under way that their events might not fit in the reserve
   */
  async admit(): Promise<() => void> {
    if (!this.reserveReady) await this.restoreReserve();
    if (!this.reserveReady) {
      throw new InsufficientStorageError('not enough storage space: the disk holding the store is full; changes are refused until space is freed');
    }
    if (this.admitted >= this.maxAdmitted) throw new ServiceUnavailableError(`too many changes in progress (limit ${this.maxAdmitted}); retry shortly`, 1);
    this.admitted += 1;
    let released = false;
    return () => {
      if (!released) this.admitted -= 1;
      released = true;
    };
  }

  /**
   * Appends an event. With `durable` (the event of a change, see `admit`), resolves with its
   * sequence number once it is fsynced. Otherwise (a fetch) it is best effort: resolves once it
   * is written (the next fsync carries it), or with undefined when it was dropped because the
   * journal could not take it; it never rejects.
   * @throws {InsufficientStorageError} (durable) not even the reserve could take the event
   */
  async append(event: StoreEvent, durable: boolean, change?: StoreChange): Promise<number | undefined> {
    if (!durable && !this.reserveReady) {
      this.drop(1);
      void this.restoreReserve();
      return undefined;
    }
    return new Promise<number | undefined>((resolve, reject) => {
      this.queue.push({ event, change, durable: durable || change !== undefined, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Marks every event up to and including `seq` as delivered. */
  acknowledge(seq: number): void {
    if (seq <= this.watermark) return;
    this.watermark = seq;
    let drop = 0;
    while (drop < this.pendingRecords.length && this.pendingRecords[drop].seq <= seq) drop += 1;
    this.pendingRecords.splice(0, drop);
    if (this.watermarkTimer) return;
    this.watermarkTimer = setTimeout(() => {
      this.watermarkTimer = undefined;
      this.persistWatermark(false);
    }, WATERMARK_WRITE_MS);
    this.watermarkTimer.unref();
  }

  /** Waits for queued writes, then closes the journal file. */
  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    clearTimeout(this.syncTimer);
    this.syncWanted = false;
    while (this.flushing) await this.flushing;
    clearTimeout(this.watermarkTimer);
    this.watermarkTimer = undefined;
    this.persistWatermark(true);
    await this.watermarkWrite;
    await this.restoring;
    await this.current.close();
    await this.checkpointFile.close();
    await this.deliveredFile.close();
  }

  /** Writes the delivered watermark if it moved, then deletes the segments no longer needed. */
  private persistWatermark(sync: boolean): void {
    this.watermarkWrite = this.watermarkWrite
      .then(() => (this.watermark > this.deliveredFile.current ? this.deliveredFile.write(this.watermark, sync) : undefined))
      .then(() => this.deleteDeliveredSegments())
      .catch(() => undefined);
  }

  private async flush(): Promise<void> {
    try {
      // Appends made in this turn of the event loop (requests answered together) join the first batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
      while (this.queue.length > 0 || this.syncWanted) {
        if (this.queue.length === 0) {
          await this.syncForReaders();
          continue;
        }
        await this.writeBatch(this.queue.splice(0, this.queue.length));
        // A failed rotation is retried after the next batch; appends keep going to the current segment.
        // Degraded, the current segment is the reserve: fill its preallocated space first.
        if (this.end >= this.options.maxSegmentBytes && this.reserveReady) await this.rotate().catch(() => undefined);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  /** Writes a batch whole, or cuts it back; on a full disk, retries it once in the reserve. */
  private async writeBatch(batch: QueuedWrite[]): Promise<void> {
    let writes = batch;
    for (let attempt = 1; ; attempt += 1) {
      // Each event is serialised once: the journal line is built around its JSON, which the broker gets too.
      const records: Array<StoredRecord & { payload?: string }> = writes.map((w, i) =>
        w.aborted === undefined
          ? { seq: this.nextSeq + i, event: w.event, change: w.change, payload: JSON.stringify(withSequence(w.event!, this.nextSeq + i)) }
          : { seq: this.nextSeq + i, aborted: w.aborted });
      const data = Buffer.from(records.map(recordLine).join(''));
      try {
        await writeAll(this.current, data, this.end);
        if (writes.some((w) => w.durable)) await this.current.datasync();
      } catch (caught) {
        let err = caught as Error;
        await this.cutBack();
        const fetches = writes.filter((w) => !w.durable);
        writes = writes.filter((w) => w.durable);
        this.drop(fetches.length);
        for (const w of fetches) w.resolve(undefined);
        if (isOutOfSpace(err) && attempt === 1 && this.reserveReady) {
          try {
            await this.useReserve();
            if (writes.length === 0) return;
            continue;
          } catch (reserveErr) {
            err = reserveErr as Error;
          }
        }
        if (writes.length > 0) this.options.log.error({ err, events: writes.length }, 'events of changes could not be journaled');
        const failure = isOutOfSpace(err) ? new InsufficientStorageError('not enough storage space: the event journal is full') : err;
        for (const w of writes) w.reject(failure);
        return;
      }
      this.nextSeq += records.length;
      this.end += data.length;
      if (writes.some((w) => w.durable)) this.syncedSeq = this.nextSeq - 1;
      // One writer, FIFO queue: pushing keeps the lists sorted by sequence number.
      for (const record of records) {
        if (record.event === undefined) continue;
        this.pendingRecords.push(record as JournalRecord);
        this.recent.push(record as JournalRecord);
        if (record.change === undefined) continue;
        this.unapplied.add(record.seq);
        this.uncheckpointed.push(record.seq);
      }
      writes.forEach((w, i) => w.resolve(records[i].seq));
      this.settled();
      this.notify();
      return;
    }
  }

  /** Fetch events wait for an fsync before readers see them: one, shortly, for all that come meanwhile. */
  private requestSync(): void {
    if (this.syncTimer || this.syncWanted) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.syncWanted = true;
      this.flushing ??= this.flush();
    }, READER_SYNC_MS);
    this.syncTimer.unref();
  }

  private async syncForReaders(): Promise<void> {
    this.syncWanted = false;
    const through = this.nextSeq - 1;
    if (through <= this.syncedSeq) return;
    try {
      await this.current.datasync();
    } catch (err) {
      this.options.log.error({ err }, 'event journal: fsync for readers failed; retried when a reader asks');
      return;
    }
    this.syncedSeq = Math.max(this.syncedSeq, through);
    this.notify();
  }

  /** Deletes the segments the retention no longer keeps (off the request path: a timer, or after a rotation). */
  prune(): void {
    this.watermarkWrite = this.watermarkWrite.then(() => this.deleteDeliveredSegments()).catch((err: unknown) => {
      this.options.log.error({ err }, 'event journal: pruning failed; retried at the next prune');
    });
  }

  /** Cuts a failed write off the current segment, so the next record never follows half of one. */
  private async cutBack(): Promise<void> {
    try {
      await this.current.truncate(this.end);
      await this.current.datasync();
    } catch (err) {
      // Writes go to explicit offsets: the next one overwrites what is left; recovery drops a torn tail.
      this.options.log.error({ err }, 'event journal: could not cut back a failed write');
    }
  }

  /** The reserve becomes the current segment: its space was set aside, so writing into it needs no more. */
  private async useReserve(): Promise<void> {
    const current = this.segments[this.segments.length - 1];
    // An empty current segment already has the name the reserve needs: replace it.
    const file = current.firstSeq === this.nextSeq ? current.file : segmentPath(this.dir, this.nextSeq);
    await fs.rename(path.join(this.dir, RESERVE_FILE), file);
    this.reserveReady = false;
    const previous = this.current;
    this.current = await fs.open(file, 'r+');
    if (file !== current.file) this.segments.push({ firstSeq: this.nextSeq, file });
    this.end = 0;
    await previous.close();
    await fsyncDir(this.dir);
    this.options.log.error(
      { reserveBytes: this.options.reserveBytes },
      'disk full: the event journal writes into its reserve; changes are refused (507) and fetch events dropped until space is freed',
    );
    this.prune();
  }

  /** Writes the reserve again if the disk has room (at most once per reserveRetryMs); changes are then admitted again. */
  private async restoreReserve(): Promise<void> {
    // An attempt under way may have started before space came back: wait for it, then judge.
    while (this.restoring) await this.restoring;
    if (this.reserveReady || Date.now() - this.lastRestoreAttempt < this.options.reserveRetryMs) return;
    this.lastRestoreAttempt = Date.now();
    this.restoring = createReserve(this.dir, this.options.reserveBytes)
      .then(
        () => {
          this.reserveReady = true;
          this.options.log.warn({ dropped: this.dropped }, 'disk space is back: event journal reserve restored; changes are accepted again');
        },
        (err: unknown) => {
          if (!isOutOfSpace(err)) this.options.log.error({ err }, 'could not write the event journal reserve');
        },
      )
      .finally(() => (this.restoring = undefined));
    await this.restoring;
  }

  /** Counts fetch events that were not journaled, and says so in the log at most once per interval. */
  private drop(count: number): void {
    if (count === 0) return;
    this.dropped += count;
    this.droppedSinceLog += count;
    if (Date.now() - this.lastDropLog >= DROP_LOG_INTERVAL_MS) {
      this.options.log.warn({ dropped: this.droppedSinceLog, droppedTotal: this.dropped }, 'fetch events dropped: the event journal cannot grow');
      this.lastDropLog = Date.now();
      this.droppedSinceLog = 0;
    }
  }

  private async rotate(): Promise<void> {
    // No sequence number taken since the current segment was opened (a batch queued before the last
    // rotation filled it): a new segment would reuse its file name. Rotate after the next append.
    if (this.segments[this.segments.length - 1].firstSeq === this.nextSeq) return;
    await this.current.datasync();
    this.syncedSeq = this.nextSeq - 1;
    const file = segmentPath(this.dir, this.nextSeq);
    const next = await fs.open(file, 'w');
    const previous = this.current;
    this.current = next;
    const closing = this.segments[this.segments.length - 1];
    closing.bytes = this.end;
    closing.closedAt = Date.now();
    this.segments.push({ firstSeq: this.nextSeq, file });
    this.end = 0;
    await previous.close();
    await fsyncDir(this.dir);
    if (Number.isFinite(this.options.retention.maxBytes)) this.prune();
  }

  /**
   * Records up to this sequence number are needed no more: their events are delivered, their
   * changes checkpointed, and every reader with a floor (webhook endpoints) is past them. Whether
   * they are deleted then is the retention's call (`deleteDeliveredSegments`).
   */
  private deletableThrough(): number {
    let through = Math.min(this.watermark, (this.uncheckpointed[0] ?? Infinity) - 1);
    for (const floor of this.floors) through = Math.min(through, floor());
    return through;
  }

  private notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Wakes the `whenSettled` callers whose sequence number is reached. */
  private settled(): void {
    if (this.settleWaiters.length === 0) return;
    const settled = this.settledSeq;
    for (let i = this.settleWaiters.length - 1; i >= 0; i -= 1) {
      const waiter = this.settleWaiters[i];
      if (waiter.seq > settled) continue;
      this.settleWaiters.splice(i, 1);
      waiter.resolve();
    }
  }

  /**
   * Deletes the oldest segments that are no longer needed and that the retention lets go: closed
   * longer ago than `maxAgeMs`, or while the journal is larger than `maxBytes`, or any while the disk is full.
   */
  private async deleteDeliveredSegments(): Promise<void> {
    // A segment holds seqs up to the next segment's first seq; the open one is never deleted.
    const through = this.deletableThrough();
    const { maxAgeMs, maxBytes } = this.options.retention;
    let total = this.end;
    for (const segment of this.segments) total += segment.bytes ?? 0;
    const now = Date.now();
    while (this.segments.length > 1 && this.segments[1].firstSeq - 1 <= through) {
      const oldest = this.segments[0];
      // A full disk comes before history: delivered events are let go to make room for changes.
      const expired = now - (oldest.closedAt ?? now) >= maxAgeMs || !this.reserveReady;
      if (!expired && total <= maxBytes) break;
      this.segments.splice(0, 1);
      this.parsedSegments.delete(oldest.file);
      total -= oldest.bytes ?? 0;
      await fs.rm(oldest.file, { force: true });
    }
  }
}

/** What `scanJournal` read. */
export interface JournalScan {
  segments: Segment[];
  /** Every whole record (events, commit records and abort records), in journal order. */
  records: StoredRecord[];
  problems: JournalProblem[];
  /** The last segment holds no record (nothing, or only reserve filler). */
  lastIsBlank: boolean;
  /** Records up to this sequence number were not read (segments below `skipThrough`, but for their abort records). */
  skippedThrough: number;
}

/**
 * Reads every segment of the journal in `dir` and reports its damage. A torn last record of the
 * last segment (a crash during an append) is expected: with `repair` it is cut off the file. A
 * record glued after a torn one (written by versions that ignored short writes) is recovered.
 */
export async function scanJournal(dir: string, repair: boolean, skipThrough = -Infinity): Promise<JournalScan> {
  const names = await fs.readdir(dir).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return [] as string[];
    throw err;
  });
  const segments = names
    .filter((name) => name.startsWith(SEGMENT_PREFIX) && name.endsWith(SEGMENT_SUFFIX))
    .sort()
    .map((name) => ({ firstSeq: Number(name.slice(SEGMENT_PREFIX.length, -SEGMENT_SUFFIX.length)), file: path.join(dir, name) }));
  const records: StoredRecord[] = [];
  const problems: JournalProblem[] = [];
  let lastIsBlank = false;
  let skippedThrough = 0;
  let previousSeq: number | undefined;
  for (const [i, { file }] of segments.entries()) {
    const isLast = i === segments.length - 1;
    const bytes = await fs.readFile(file);
    if (!isLast && segments[i + 1].firstSeq - 1 <= skipThrough) {
      // Kept for replay only (delivered and checkpointed): not parsed, but its abort records are needed by readers.
      for (const match of bytes.toString('latin1').matchAll(ABORT_RECORD)) records.push({ seq: Number(match[1]), aborted: Number(match[2]) });
      skippedThrough = segments[i + 1].firstSeq - 1;
      previousSeq = undefined;
      continue;
    }
    const parsed = parseSegment(bytes);
    for (const { record, offset } of parsed.records) {
      const previous = previousSeq;
      previousSeq = record.seq;
      if (previous !== undefined && record.seq > previous + 1) {
        const missing = record.seq - previous - 1;
        problems.push({
          kind: 'missing-records', file, offset, repaired: false,
          detail: `${missing} event${missing > 1 ? 's' : ''} (seq ${previous + 1}${missing > 1 ? `-${record.seq - 1}` : ''}) missing before seq ${record.seq}`,
        });
      }
      records.push(record);
    }
    for (const damage of parsed.damaged) {
      problems.push({
        kind: 'corrupt-record', file, offset: damage.offset, repaired: false,
        detail: damage.recovered === undefined
          ? `${damage.length} bytes are not a whole record; skipped`
          : damage.wholeBefore
            ? `two records glued together (a newline lost by a torn write); both recovered`
            : `${damage.length} bytes are not a whole record (a torn write with the next record glued on); the record after them (seq ${damage.recovered}) was recovered`,
      });
    }
    if (parsed.tail !== undefined) {
      const length = bytes.length - parsed.tail;
      if (isLast) {
        if (repair) await truncateFile(file, parsed.tail);
        problems.push({
          kind: 'torn-record', file, offset: parsed.tail, repaired: repair,
          detail: `the last record (${length} bytes) was cut short by a crash during an append; dropped`,
        });
      } else {
        problems.push({ kind: 'corrupt-record', file, offset: parsed.tail, repaired: false, detail: `${length} bytes at the end of a closed segment are not a whole record; skipped` });
      }
    }
    if (isLast) lastIsBlank = parsed.records.length === 0 && parsed.damaged.length === 0;
  }
  return { segments, records, problems, lastIsBlank, skippedThrough };
}

/** An abort record as `recordLine` writes it. */
const ABORT_RECORD = /\{"seq":(\d+),"aborted":(\d+)\}/g;

/**
 * The commit records after the checkpoint, not aborted: what the next start redoes. Read
 * only (for `npm run fsck` without --repair).
 */
export async function changesToRedo(dir: string, scan: JournalScan): Promise<RedoRecord[]> {
  const checkpoint = await SeqFile.read(path.join(dir, CHECKPOINT_FILE));
  const aborted = new Set(scan.records.flatMap((r) => (r.aborted === undefined ? [] : [r.aborted])));
  return scan.records
    .filter((r) => r.change !== undefined && r.seq > checkpoint && !aborted.has(r.seq))
    .map((r) => ({ seq: r.seq, change: r.change! }));
}

interface ParsedSegment {
  records: Array<{ record: StoredRecord; offset: number }>;
  /** Lines that are no record; `recovered`: the seq of a whole record found glued after the damage. */
  damaged: Array<{ offset: number; length: number; recovered?: number; wholeBefore?: boolean }>;
  /** Offset of bytes after the last newline that are not blank (a record cut short). */
  tail?: number;
}

/** Splits a segment into records, damaged lines and a torn tail; blank bytes (reserve filler) are skipped. */
function parseSegment(bytes: Buffer): ParsedSegment {
  const parsed: ParsedSegment = { records: [], damaged: [] };
  let start = 0;
  for (let newline = bytes.indexOf(0x0a); newline !== -1; newline = bytes.indexOf(0x0a, start)) {
    if (!isBlank(bytes, start, newline)) parseLine(bytes.toString('utf8', start, newline), start, parsed);
    start = newline + 1;
  }
  if (!isBlank(bytes, start, bytes.length)) parsed.tail = start;
  return parsed;
}

function parseLine(line: string, offset: number, parsed: ParsedSegment): void {
  const record = parseRecord(line);
  if (record) {
    parsed.records.push({ record, offset });
    return;
  }
  for (let at = line.indexOf(RECORD_START, 1); at !== -1; at = line.indexOf(RECORD_START, at + 1)) {
    const glued = parseRecord(line.slice(at));
    if (glued) {
      const length = Buffer.byteLength(line.slice(0, at));
      // The write before was cut short, at worst just before its newline: then it is whole too.
      const whole = parseRecord(line.slice(0, at));
      if (whole) parsed.records.push({ record: whole, offset });
      parsed.damaged.push({ offset, length, recovered: glued.seq, wholeBefore: whole !== undefined });
      parsed.records.push({ record: glued, offset: offset + length });
      return;
    }
  }
  parsed.damaged.push({ offset, length: Buffer.byteLength(line) });
}

function parseRecord(text: string): StoredRecord | undefined {
  try {
    const record = JSON.parse(text) as StoredRecord;
    if (!Number.isSafeInteger(record?.seq)) return undefined;
    if (record.aborted !== undefined) return Number.isSafeInteger(record.aborted) ? record : undefined;
    return typeof record.event === 'object' && record.event !== null ? record : undefined;
  } catch {
    return undefined;
  }
}

/** A record's journal line: what JSON.stringify(record) gives (seq first: RECORD_START), with the event's JSON reused. */
function recordLine(record: StoredRecord & { payload?: string }): string {
  if (record.payload === undefined) return `${JSON.stringify({ seq: record.seq, aborted: record.aborted })}\n`;
  const change = record.change === undefined ? '' : `,"change":${JSON.stringify(record.change)}`;
  return `{"seq":${record.seq},"event":${record.payload}${change}}\n`;
}

/** Only spaces, tabs, line ends or NULs (what a crash can leave where a write did not land). */
function isBlank(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i += 1) {
    const b = bytes[i];
    if (b !== FILLER && b !== 0x0a && b !== 0x0d && b !== 0x09 && b !== 0x00) return false;
  }
  return true;
}

/** Writes all of `data` at `position`, looping over short writes; a write that makes no progress is a full disk. */
async function writeAll(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten === 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    done += bytesWritten;
  }
}

async function truncateFile(file: string, length: number): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.truncate(length);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** Writes the reserve file (spaces) unless it is there with the right size. @throws ENOSPC when it does not fit */
async function createReserve(dir: string, bytes: number): Promise<void> {
  const file = path.join(dir, RESERVE_FILE);
  if ((await fs.stat(file).catch(() => undefined))?.size === bytes) return;
  // Not worth trying (and filling the disk to the last byte for a moment) when it cannot fit.
  const free = await fs.statfs(dir).then((s) => s.bavail * s.bsize, () => Infinity);
  if (free < bytes) throw Object.assign(new Error('ENOSPC: no room for the event journal reserve'), { code: 'ENOSPC' });
  await writeFileAtomic(file, Buffer.alloc(bytes, FILLER), dir);
  await fsyncDir(dir);
}

/** The event with its journal position as the CloudEvents `sequence` attribute (set on the object itself). */
function withSequence(event: StoreEvent, seq: number): StoreEvent {
  event.sequence = formatSequence(seq);
  return event;
}

function segmentPath(dir: string, firstSeq: number): string {
  return path.join(dir, `${SEGMENT_PREFIX}${String(firstSeq).padStart(16, '0')}${SEGMENT_SUFFIX}`);
}

/** The event journal's damage (found by notifier/outbox.ts `scanJournal`) as an fsck problem. */
export function journalProblem(problem: JournalProblem): FsckProblem {
  return { kind: `journal-${problem.kind}`, path: problem.file, detail: `at byte ${problem.offset}: ${problem.detail}`, repaired: problem.repaired };
}

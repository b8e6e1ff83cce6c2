import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { StoreEvent } from './events.js';
import { fsyncDir, writeFileAtomic } from '../albums/durable.js';

/** One journaled event and its position in the journal. */
export interface JournalRecord {
  seq: number;
  event: StoreEvent;
}

interface QueuedWrite {
  line: string;
  durable: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
}

const SEGMENT_PREFIX = 'seg-';
const WATERMARK_FILE = 'delivered';
/** A segment is closed and a new one started past this size; delivered segments are deleted. */
export const DEFAULT_SEGMENT_BYTES = 1024 * 1024;

/**
 * The durable event journal. Events are appended to segment files (JSON lines)
 * and fsynced in groups: concurrent appends share one fsync. The delivered
 * watermark (highest sequence number with every earlier event delivered) is
 * kept in `delivered`; segments wholly below it are deleted, so the journal
 * stays bounded while the broker keeps up. Losing the watermark only causes
 * redelivery (at least once), never loss.
 */
export class Outbox {
  private readonly queue: QueuedWrite[] = [];
  private flushing: Promise<void> | undefined;
  private segmentBytes = 0;
  private watermarkWrite: Promise<void> = Promise.resolve();
  private readonly listeners: Array<() => void> = [];

  private constructor(
    private readonly dir: string,
    private readonly pendingRecords: JournalRecord[],
    private nextSeq: number,
    private watermark: number,
    private readonly segments: Array<{ firstSeq: number; file: string }>,
    private current: FileHandle,
    private readonly maxSegmentBytes: number,
  ) {}

  /** Opens (or creates) the journal in `dir` and loads the events not yet delivered. */
  static async open(dir: string, maxSegmentBytes = DEFAULT_SEGMENT_BYTES): Promise<Outbox> {
    await fs.mkdir(dir, { recursive: true });
    const watermark = Number((await fs.readFile(path.join(dir, WATERMARK_FILE), 'utf8').catch(() => '0')).trim()) || 0;
    const segments = (await fs.readdir(dir))
      .filter((name) => name.startsWith(SEGMENT_PREFIX))
      .sort()
      .map((name) => ({ firstSeq: Number(name.slice(SEGMENT_PREFIX.length, -'.jsonl'.length)), file: path.join(dir, name) }));
    const pending: JournalRecord[] = [];
    let lastSeq = watermark;
    let lastText = '';
    for (const segment of segments) {
      lastText = await fs.readFile(segment.file, 'utf8');
      for (const record of parseSegment(lastText)) {
        lastSeq = Math.max(lastSeq, record.seq);
        if (record.seq > watermark) pending.push(record);
      }
    }
    // Never append after a possibly torn last line: every start opens a fresh segment, or reuses the
    // last one if it is empty. A fresh one needs a name not taken yet: the last rotation (or start) may
    // have named a file lastSeq + 1 already, and two entries for one file made it look delivered.
    const last = segments.at(-1);
    let firstSeq: number;
    let file: string;
    if (last && lastText === '') {
      firstSeq = Math.max(lastSeq + 1, last.firstSeq);
      file = last.file;
    } else {
      firstSeq = Math.max(lastSeq, last?.firstSeq ?? 0) + 1;
      file = segmentPath(dir, firstSeq);
      segments.push({ firstSeq, file });
    }
    const outbox = new Outbox(dir, pending, firstSeq, watermark, segments, await fs.open(file, 'a'), maxSegmentBytes);
    await fsyncDir(dir);
    await outbox.deleteDeliveredSegments();
    return outbox;
  }

  /** Number of events not yet delivered. */
  get pendingCount(): number {
    return this.pendingRecords.length;
  }

  /** The first `n` undelivered events, oldest first. */
  peek(n: number): JournalRecord[] {
    return this.pendingRecords.slice(0, n);
  }

  /** Calls `listener` after each append (the dispatcher wakes up). */
  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  /**
   * Appends an event. With `durable`, resolves once it is fsynced; otherwise
   * once it is written to the journal file (the next fsync carries it).
   */
  async append(event: StoreEvent, durable: boolean): Promise<number> {
    const seq = this.nextSeq++;
    const record: JournalRecord = { seq, event };
    await new Promise<void>((resolve, reject) => {
      this.queue.push({ line: `${JSON.stringify(record)}\n`, durable, resolve, reject });
      this.flushing ??= this.flush();
    });
    // Writes complete in sequence order (one writer, FIFO queue), so pushing keeps the list sorted.
    this.pendingRecords.push(record);
    for (const listener of this.listeners) listener();
    return seq;
  }

  /** Marks every event up to and including `seq` as delivered. */
  acknowledge(seq: number): void {
    if (seq <= this.watermark) return;
    this.watermark = seq;
    let drop = 0;
    while (drop < this.pendingRecords.length && this.pendingRecords[drop].seq <= seq) drop += 1;
    this.pendingRecords.splice(0, drop);
    const value = String(seq);
    this.watermarkWrite = this.watermarkWrite
      .then(() => (this.watermark === seq ? writeFileAtomic(path.join(this.dir, WATERMARK_FILE), value, this.dir) : undefined))
      .then(() => this.deleteDeliveredSegments())
      .catch(() => undefined);
  }

  /** Waits for queued writes, then closes the journal file. */
  async close(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.watermarkWrite;
    await this.current.close();
  }

  private async flush(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.queue.length);
        try {
          const text = batch.map((w) => w.line).join('');
          await this.current.write(text);
          if (batch.some((w) => w.durable)) await this.current.datasync();
          this.segmentBytes += Buffer.byteLength(text);
          for (const w of batch) w.resolve();
        } catch (err) {
          for (const w of batch) w.reject(err as Error);
        }
        // A failed rotation is retried after the next batch; appends keep going to the current segment.
        if (this.segmentBytes >= this.maxSegmentBytes) await this.rotate().catch(() => undefined);
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private async rotate(): Promise<void> {
    // No sequence number taken since the current segment was opened (a batch queued before the last
    // rotation filled it): a new segment would reuse its file name. Rotate after the next append.
    if (this.segments[this.segments.length - 1].firstSeq === this.nextSeq) return;
    await this.current.datasync();
    await this.current.close();
    const file = segmentPath(this.dir, this.nextSeq);
    this.current = await fs.open(file, 'a');
    this.segments.push({ firstSeq: this.nextSeq, file });
    this.segmentBytes = 0;
    await fsyncDir(this.dir);
  }

  private async deleteDeliveredSegments(): Promise<void> {
    // A segment holds seqs up to the next segment's first seq; the open one is never deleted.
    while (this.segments.length > 1 && this.segments[1].firstSeq - 1 <= this.watermark) {
      const [done] = this.segments.splice(0, 1);
      await fs.rm(done.file, { force: true });
    }
  }
}

function segmentPath(dir: string, firstSeq: number): string {
  return path.join(dir, `${SEGMENT_PREFIX}${String(firstSeq).padStart(16, '0')}.jsonl`);
}

/** Parses a segment; a torn last line (crash during append) is skipped. */
function parseSegment(text: string): JournalRecord[] {
  const records: JournalRecord[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      const record = JSON.parse(line) as JournalRecord;
      if (Number.isSafeInteger(record.seq) && record.event) records.push(record);
    } catch {
      // torn write
    }
  }
  return records;
}

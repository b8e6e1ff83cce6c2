import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import pino from 'pino';
import { ServiceUnavailableError } from '../../src/errors.js';
import { buildEvent, type StoreEvent } from '../../src/notifier/events.js';
import { Outbox } from '../../src/notifier/outbox.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/** A distinct image.created event; `n` shows in the image name. */
const event = (n: number, album = 'holidays'): StoreEvent =>
  buildEvent({ type: 'imagestore.image.created', album, image: `img-${n}.png`, size: n }, '/imagestore/test', `req-${n}`);

const images = (records: Array<{ event: StoreEvent }>) => records.map((r) => r.event.data.image);
const segments = async (dir: string) => (await fs.readdir(dir)).filter((f) => f.startsWith('seg-')).sort();

// The outbox is a file journal: these tests use a real temp dir (and nothing else of the system).
describe('Outbox (durable event journal)', () => {
  let dir: string;
  let outbox: Outbox | undefined;

  beforeEach(async () => {
    dir = path.join(await makeTmpDir(), 'outbox');
  });
  afterEach(async () => {
    await outbox?.close();
    outbox = undefined;
    await removeDir(path.dirname(dir));
  });

  /** Closes the current outbox and opens the journal again, as a restart does. */
  async function reopen(maxSegmentBytes?: number): Promise<Outbox> {
    await outbox?.close();
    outbox = await Outbox.open(dir, { maxSegmentBytes });
    return outbox;
  }

  it('starts empty, creating its directory', async () => {
    const ob = await reopen();
    expect(ob.pendingCount).to.equal(0);
    expect(ob.peek(10)).to.deep.equal([]);
    expect((await fs.stat(dir)).isDirectory()).to.equal(true);
  });

  it('appends durable and non-durable events with increasing sequence numbers; peek gives the oldest first', async () => {
    const ob = await reopen();
    const seqs = [await ob.append(event(1), true), await ob.append(event(2), false), await ob.append(event(3), true)];
    expect(seqs).to.deep.equal([1, 2, 3]);
    expect(ob.pendingCount).to.equal(3);
    expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    expect(images(ob.peek(2))).to.deep.equal(['img-1.png', 'img-2.png']);
  });

  it('keeps the order of concurrent appends (they share fsyncs)', async () => {
    const ob = await reopen();
    const seqs = await Promise.all(Array.from({ length: 50 }, (_, i) => ob.append(event(i), i % 3 === 0)));
    expect(seqs).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(images(ob.peek(50))).to.deep.equal(Array.from({ length: 50 }, (_, i) => `img-${i}.png`));
  });

  it('tells its listeners after each append, once the event is journaled', async () => {
    const ob = await reopen();
    const seen: number[] = [];
    ob.onAppend(() => seen.push(ob.pendingCount));
    await ob.append(event(1), true);
    await ob.append(event(2), false);
    expect(seen).to.deep.equal([1, 2]);
  });

  it('acknowledge drops every event up to the sequence number given, and ignores older ones', async () => {
    const ob = await reopen();
    for (let i = 1; i <= 5; i += 1) await ob.append(event(i), true);
    ob.acknowledge(3);
    expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([4, 5]);
    ob.acknowledge(2);
    expect(ob.pendingCount).to.equal(2);
    ob.acknowledge(5);
    expect(ob.pendingCount).to.equal(0);
  });

  it('after a restart, gives back exactly the undelivered events, in order, and continues the sequence', async () => {
    let ob = await reopen();
    const appended = [];
    for (let i = 1; i <= 6; i += 1) appended.push(event(i));
    for (const [i, e] of appended.entries()) await ob.append(e, i % 2 === 0);
    ob.acknowledge(2);

    ob = await reopen();
    expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([3, 4, 5, 6]);
    expect(ob.peek(10).map((r) => r.event)).to.deep.equal(appended.slice(2));
    expect(await ob.append(event(7), true)).to.equal(7);

    ob.acknowledge(5);
    ob = await reopen();
    expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([6, 7]);
  });

  it('after a restart with everything delivered, has nothing pending', async () => {
    let ob = await reopen();
    for (let i = 1; i <= 3; i += 1) await ob.append(event(i), true);
    ob.acknowledge(3);
    ob = await reopen();
    expect(ob.pendingCount).to.equal(0);
    expect(await ob.append(event(4), true)).to.equal(4);
  });

  // Regression: a start with nothing appended since the previous start named its segment like the
  // previous one, listed the file twice, and deleted it as delivered while appending to it.
  it('keeps events appended after restarts that appended nothing, and does not pile up empty segments', async () => {
    let ob = await reopen();
    await ob.append(event(1), true);
    ob.acknowledge(1);
    await reopen();
    ob = await reopen();
    await ob.append(event(2), true);
    ob = await reopen();
    expect(images(ob.peek(10))).to.deep.equal(['img-2.png']);
    expect((await segments(dir)).length).to.be.at.most(2);
  });

  it('redelivers everything when the delivered watermark is lost (at least once, never lost)', async () => {
    let ob = await reopen();
    for (let i = 1; i <= 3; i += 1) await ob.append(event(i), true);
    ob.acknowledge(2);
    await ob.close();
    outbox = undefined;
    await fs.rm(path.join(dir, 'delivered'));
    ob = await reopen();
    expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 3]);
  });

  describe('segments', () => {
    // One event line is about 400 bytes: with 1000-byte segments, a new one starts every 3 events.
    const SMALL = 1000;

    it('rotates to a new segment file past the size limit, and reads them all back in order', async () => {
      let ob = await reopen(SMALL);
      for (let i = 1; i <= 10; i += 1) await ob.append(event(i), true);
      expect((await segments(dir)).length).to.be.at.least(3);
      ob = await reopen(SMALL);
      expect(ob.peek(20).map((r) => r.seq)).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    });

    it('deletes the segments whose events are all delivered, and keeps the others', async () => {
      let ob = await reopen(SMALL);
      for (let i = 1; i <= 12; i += 1) await ob.append(event(i), true);
      const before = await segments(dir);
      expect(before.length).to.be.at.least(4);

      ob.acknowledge(7);
      await ob.close(); // waits for the watermark write and the deletions
      outbox = undefined;
      const after = await segments(dir);
      expect(after.length).to.be.below(before.length);
      expect(after[0] > before[0]).to.equal(true);
      ob = await reopen(SMALL);
      expect(ob.peek(20).map((r) => r.seq)).to.deep.equal([8, 9, 10, 11, 12]);

      ob.acknowledge(12);
      ob = await reopen(SMALL);
      expect(ob.pendingCount).to.equal(0);
      // Only the segment opened by this start is left.
      expect(await segments(dir)).to.have.length(1);
    });

    // Regression: the segment opened at start was named after the last sequence number + 1, the
    // name the last rotation had already used when nothing was appended after it. The outbox then
    // listed that file twice and deleted it as "delivered" while appending to it.
    it('does not reuse the last rotated segment\'s file at start (events appended after a restart survive the next one)', async () => {
      let ob = await reopen(1); // every batch rotates
      await ob.append(event(1), true);
      ob.acknowledge(1);
      ob = await reopen(1);
      await ob.append(event(2), true);
      ob = await reopen(1);
      expect(images(ob.peek(10))).to.deep.equal(['img-2.png']);
    });

    // Regression: a batch of appends queued before a rotation, and big enough to rotate again,
    // made the second rotation open the same file name; the next deletion removed the live segment.
    it('does not rotate twice into the same file when a queued batch fills a segment by itself', async () => {
      let ob = await reopen(1);
      await Promise.all([ob.append(event(1), true), ob.append(event(2), true), ob.append(event(3), true)]);
      // Appends resolve before the rotation that follows their batch; let it finish with no new
      // append in between (the case that reused the file name).
      await new Promise((resolve) => setTimeout(resolve, 50));
      await ob.append(event(4), true);
      ob.acknowledge(3);
      ob = await reopen(1);
      expect(images(ob.peek(10))).to.deep.equal(['img-4.png']);
    });

    it('loses nothing when concurrent appends straddle a rotation', async () => {
      let ob = await reopen(SMALL);
      // Appends keep arriving while batches are written and segments rotate.
      const appends: Array<Promise<number | undefined>> = [];
      for (let i = 1; i <= 40; i += 1) {
        appends.push(ob.append(event(i), i % 5 === 0));
        if (i % 3 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      expect(await Promise.all(appends)).to.deep.equal(Array.from({ length: 40 }, (_, i) => i + 1));
      ob.acknowledge(17);
      ob = await reopen(SMALL);
      expect(ob.peek(100).map((r) => r.seq)).to.deep.equal(Array.from({ length: 23 }, (_, i) => i + 18));
      expect(images(ob.peek(100))).to.deep.equal(Array.from({ length: 23 }, (_, i) => `img-${i + 18}.png`));
    });
  });

  it('skips a torn last line (a crash during an append) and keeps the events before it', async () => {
    let ob = await reopen();
    for (let i = 1; i <= 3; i += 1) await ob.append(event(i), true);
    await ob.close();
    outbox = undefined;
    const [last] = (await segments(dir)).slice(-1);
    const torn = JSON.stringify({ seq: 4, event: event(4) }).slice(0, 60);
    await fs.appendFile(path.join(dir, last), torn);

    ob = await reopen();
    expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    // New events go to a fresh segment, never after the torn bytes, and survive the next start.
    expect(await ob.append(event(5), true)).to.equal(4);
    ob = await reopen();
    expect(images(ob.peek(10))).to.deep.equal(['img-1.png', 'img-2.png', 'img-3.png', 'img-5.png']);
  });

  // Issue 12, item 3: recovery never skips a record silently.
  describe('recovery (issue 12)', () => {
    const line = (seq: number) => `${JSON.stringify({ seq, event: event(seq) })}\n`;
    /** Opens the outbox with a logger whose lines the test reads. */
    async function reopenLogged(): Promise<{ ob: Outbox; logs: Array<{ level: number; msg: string; offset?: number; kind?: string }> }> {
      await outbox?.close();
      const logs: Array<{ level: number; msg: string }> = [];
      const log = pino({ level: 'info' }, { write: (text: string) => void logs.push(JSON.parse(text)) });
      outbox = await Outbox.open(dir, { log });
      return { ob: outbox, logs };
    }
    /** Writes one segment file by hand, as an older version or a crash left it. */
    async function writeSegment(text: string): Promise<string> {
      await fs.mkdir(dir, { recursive: true });
      const file = path.join(dir, 'seg-0000000000000001.jsonl');
      await fs.writeFile(file, text);
      return file;
    }

    it('cuts a torn last record off the file, and logs it as a warning with its byte offset', async () => {
      const whole = line(1) + line(2);
      const file = await writeSegment(`${whole}${line(3).slice(0, 50)}`);
      const { ob, logs } = await reopenLogged();
      expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2]);
      expect(ob.problems).to.have.length(1);
      expect(ob.problems[0]).to.include({ kind: 'torn-record', file, offset: Buffer.byteLength(whole), repaired: true });
      expect((await fs.readFile(file, 'utf8'))).to.equal(whole);
      const warned = logs.filter((l) => l.level === 40);
      expect(warned).to.have.length(1);
      expect(warned[0]).to.include({ kind: 'torn-record', offset: Buffer.byteLength(whole) });
      expect(logs.filter((l) => l.level >= 50)).to.deep.equal([]);
    });

    it('recovers the record glued after a torn one (a short write on a full disk, before the fix) and reports both as errors', async () => {
      // Half of record 3 was written and fsynced, and record 4 appended right after it.
      const head = line(1) + line(2);
      await writeSegment(`${head}${line(3).slice(0, 80)}${line(4)}${line(5)}`);
      const { ob, logs } = await reopenLogged();
      expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 4, 5]);
      expect(images(ob.peek(10))).to.deep.equal(['img-1.png', 'img-2.png', 'img-4.png', 'img-5.png']);
      expect(ob.problems.map((p) => p.kind).sort()).to.deep.equal(['corrupt-record', 'missing-records']);
      const corrupt = ob.problems.find((p) => p.kind === 'corrupt-record')!;
      expect(corrupt.offset).to.equal(Buffer.byteLength(head));
      expect(corrupt.detail).to.match(/80 bytes .*seq 4\) was recovered/);
      expect(ob.problems.find((p) => p.kind === 'missing-records')!.detail).to.match(/seq 3\b/);
      expect(logs.filter((l) => l.level >= 50).map((l) => l.kind).sort()).to.deep.equal(['corrupt-record', 'missing-records']);
      // The journal goes on after them, and a restart finds the same events.
      expect(await ob.append(event(6), true)).to.equal(6);
      const again = await reopenLogged();
      expect(again.ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 4, 5, 6]);
    });

    it('recovers both records when a torn write lost only the newline between them', async () => {
      await writeSegment(`${line(1)}${line(2).trimEnd()}${line(3)}`);
      const { ob } = await reopenLogged();
      expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 3]);
      expect(ob.problems.map((p) => p.kind)).to.deep.equal(['corrupt-record']);
    });

    it('reports a damaged line in the middle as an error, with its offset, and keeps the records around it', async () => {
      const head = line(1);
      const file = await writeSegment(`${head}not a record at all\n${line(2)}`);
      const { ob, logs } = await reopenLogged();
      expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2]);
      expect(ob.problems).to.have.length(1);
      expect(ob.problems[0]).to.include({ kind: 'corrupt-record', file, offset: Buffer.byteLength(head), repaired: false });
      expect(logs.filter((l) => l.level >= 50)).to.have.length(1);
    });

    it('reads a segment made from the reserve: records followed by blank filler, even cut short by a crash', async () => {
      const head = line(1) + line(2);
      await writeSegment(head + line(3).slice(0, 40) + ' '.repeat(4096));
      const { ob } = await reopenLogged();
      expect(ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2]);
      expect(ob.problems.map((p) => [p.kind, p.offset])).to.deep.equal([['torn-record', Buffer.byteLength(head)]]);
      expect(await ob.append(event(3), true)).to.equal(3);
      const again = await reopenLogged();
      expect(again.ob.problems).to.deep.equal([]);
      expect(again.ob.peek(10).map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    });
  });

  describe('admission of changes (issue 12)', () => {
    it('keeps the events of the changes under way within half the reserve: more are refused with 503 until one finishes', async () => {
      await outbox?.close();
      // 64 KiB of reserve, 8 KiB promised per change: 4 changes at once.
      outbox = await Outbox.open(dir, { reserveBytes: 64 * 1024 });
      const releases = [await outbox.admit(), await outbox.admit(), await outbox.admit(), await outbox.admit()];
      let refused: unknown;
      await outbox.admit().catch((err: unknown) => (refused = err));
      expect(refused).to.be.instanceOf(ServiceUnavailableError);
      releases[0]();
      releases[0](); // twice is once
      releases.push(await outbox.admit());
      refused = undefined;
      await outbox.admit().catch((err: unknown) => (refused = err));
      expect(refused).to.be.instanceOf(ServiceUnavailableError);
      for (const release of releases) release();
      expect(outbox.degraded).to.equal(false);
      expect((await fs.stat(path.join(dir, 'reserve'))).size).to.equal(64 * 1024);
    });
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { buildEvent, type StoreEvent } from '../../src/notifier/events.js';
import { Outbox, scanJournal } from '../../src/notifier/outbox.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const event = (n: number, album = 'holidays'): StoreEvent =>
  buildEvent({ type: 'imagestore.image.created', album, image: `img-${n}.png`, size: n }, '/imagestore/test', `req-${n}`);

/** Bytes of the segment files on disk. */
async function journalBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await fs.readdir(dir)) if (name.startsWith('seg-')) total += (await fs.stat(path.join(dir, name))).size;
  return total;
}

/** Every event `read` gives after `after`, page by page. */
async function readAll(outbox: Outbox, after: number, limit = 50): Promise<StoreEvent[]> {
  const events: StoreEvent[] = [];
  for (let cursor = after; ;) {
    const page = await outbox.read(cursor, limit);
    if (!page) throw new Error(`cursor ${cursor} pruned`);
    events.push(...page.records.map((r) => r.event));
    if (page.next === cursor) return events;
    cursor = page.next;
  }
}

describe('Outbox: sequence, reading by cursor and retention (issue 16)', () => {
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

  it('stamps each event with its sequence, in the journal and in what readers get, from memory and from disk alike', async () => {
    outbox = await Outbox.open(dir, { maxSegmentBytes: 2000, retention: { maxAgeMs: Infinity, maxBytes: Infinity }, recentRecords: 10 });
    for (let i = 1; i <= 60; i += 1) await outbox.append(event(i), true);
    const all = await readAll(outbox, 0, 7);
    expect(all.map((e) => e.data.image)).to.deep.equal(Array.from({ length: 60 }, (_, i) => `img-${i + 1}.png`));
    expect(all.map((e) => e.sequence)).to.deep.equal(Array.from({ length: 60 }, (_, i) => String(i + 1).padStart(16, '0')));
    const text = await Promise.all((await fs.readdir(dir)).filter((f) => f.startsWith('seg-')).map((f) => fs.readFile(path.join(dir, f), 'utf8')));
    expect(text.join('')).to.include('"sequence":"0000000000000042"');
    // After a restart the ring holds the end of the journal; the beginning comes from the files.
    await outbox.close();
    outbox = await Outbox.open(dir, { maxSegmentBytes: 2000, retention: { maxAgeMs: Infinity, maxBytes: Infinity }, recentRecords: 10 });
    expect((await readAll(outbox, 25, 4)).map((e) => e.sequence)).to.deep.equal(all.slice(25).map((e) => e.sequence));
  });

  it('does not parse the retained history at a start, yet readers get all of it, aborted changes left out', async () => {
    const keep = { maxSegmentBytes: 1500, retention: { maxAgeMs: Infinity, maxBytes: Infinity }, recentRecords: 5 };
    outbox = await Outbox.open(dir, keep);
    const change = (album: string) => ({ kind: 'album-create', album }) as never;
    for (let i = 1; i <= 30; i += 1) await outbox.append(event(i), true);
    const undone = (await outbox.append(event(31), true, change('undone')))!;
    await outbox.abort(undone);
    for (let i = 32; i <= 50; i += 1) await outbox.append(event(i), true);
    const last = (await outbox.append(event(51), true, change('kept')))!;
    outbox.applied(last);
    await outbox.checkpoint(last);
    outbox.acknowledge(outbox.lastSeq);
    const expected = (await readAll(outbox, 0)).map((e) => e.data.image);
    expect(expected).to.have.length(50).and.not.include('img-31.png');
    await outbox.close();
    expect((await scanJournal(dir, false, last)).skippedThrough, 'segments left unparsed').to.be.greaterThan(40);
    outbox = await Outbox.open(dir, keep);
    expect((await readAll(outbox, 0, 8)).map((e) => e.data.image)).to.deep.equal(expected);
  });

  it('shows a fetch event only once it is fsynced, and never an event of a change not applied yet', async () => {
    outbox = await Outbox.open(dir);
    await outbox.append(event(1), true);
    const fetch = outbox.append(event(2), false);
    const seq = (await outbox.append(event(3), true, { kind: 'album-create', album: 'x' } as never))!;
    await fetch;
    expect((await outbox.read(0, 10))!.records.map((r) => r.seq)).to.deep.equal([1, 2]);
    outbox.applied(seq);
    expect((await outbox.read(0, 10))!.records.map((r) => r.seq)).to.deep.equal([1, 2, 3]);
    const lone = outbox.append(event(4), false);
    await lone;
    // Asked for by a reader, the fsync comes some 20 ms later.
    expect((await outbox.read(3, 10))!.records).to.have.length(0);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await outbox.read(3, 10))!.records.map((r) => r.seq)).to.deep.equal([4]);
  });

  it('keeps delivered events up to the byte bound under load, then prunes the oldest: older cursors are refused', async () => {
    const maxBytes = 20_000;
    outbox = await Outbox.open(dir, { maxSegmentBytes: 2000, retention: { maxAgeMs: Infinity, maxBytes } });
    let peak = 0;
    // Appends keep coming while the dispatcher acknowledges them and segments rotate and get pruned.
    // A batch (appends of one tick share a write) ends a segment: batches of 5 events make segments of about 2 KB.
    for (let round = 0; round < 100; round += 1) {
      await Promise.all(Array.from({ length: 5 }, (_, i) => outbox!.append(event(round * 5 + i), true)));
      outbox.acknowledge(outbox.lastSeq);
      await new Promise((resolve) => setImmediate(resolve));
      peak = Math.max(peak, await journalBytes(dir));
    }
    outbox.prune();
    await new Promise((resolve) => setTimeout(resolve, 50));
    // The bound is kept to a segment or two (the open one is never pruned, and pruning follows the rotation).
    expect(peak, 'journal bytes').to.be.below(maxBytes + 3 * 2500);
    expect(outbox.oldestSeq).to.be.greaterThan(100);
    expect(await outbox.read(1, 10)).to.equal(undefined);
    const held = await readAll(outbox, outbox.oldestSeq - 1);
    expect(held.length).to.be.greaterThan(30);
    expect(Number(held.at(-1)!.sequence)).to.equal(outbox.lastSeq);
  });

  it('prunes by age only what is delivered and past every reader floor', async () => {
    let floor = 0;
    outbox = await Outbox.open(dir, { maxSegmentBytes: 1500, retention: { maxAgeMs: 1, maxBytes: Infinity } });
    outbox.addFloor(() => floor);
    for (let i = 1; i <= 40; i += 1) await outbox.append(event(i), true);
    outbox.acknowledge(outbox.lastSeq);
    await new Promise((resolve) => setTimeout(resolve, 10));
    outbox.prune();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(outbox.oldestSeq, 'held back by the floor').to.equal(1);
    floor = 20;
    outbox.prune();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(outbox.oldestSeq).to.be.greaterThan(1).and.at.most(21);
    expect(await outbox.read(0, 1)).to.equal(undefined);
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type { StoreChange } from '../../src/albums/changes.js';
import { buildEvent, type StoreEvent } from '../../src/notifier/events.js';
import { Outbox } from '../../src/notifier/outbox.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const event = (n: number): StoreEvent => buildEvent({ type: 'imagestore.album.created', album: `a${n}` }, '/imagestore/test');
const change = (n: number): StoreChange => ({ op: 'album.create', album: `a${n}`, createdAt: '2026-01-01T00:00:00.000Z' });
const seqs = (ob: Outbox) => ob.peek(100).map((r) => r.seq);

// Commit records (issue 13 item 2): the journal as the commit point of store changes.
describe('Outbox: commit records, abort records and the checkpoint', () => {
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
  async function reopen(maxSegmentBytes?: number): Promise<Outbox> {
    await outbox?.close();
    outbox = await Outbox.open(dir, { maxSegmentBytes });
    return outbox;
  }

  it('gives the dispatcher no event past a commit record whose change is not applied yet, and all of them once it is', async () => {
    const ob = await reopen();
    await ob.append(event(1), true);
    const committed = (await ob.append(event(2), true, change(2)))!;
    await ob.append(event(3), false);
    expect(seqs(ob), 'held back behind the unapplied change').to.deep.equal([1]);
    expect(ob.pendingCount).to.equal(3);
    expect(ob.settledSeq).to.equal(1);
    let woken = 0;
    ob.onAppend(() => (woken += 1));
    ob.applied(committed);
    expect(woken, 'the dispatcher is woken').to.equal(1);
    expect(seqs(ob)).to.deep.equal([1, 2, 3]);
    expect(ob.settledSeq).to.equal(3);
  });

  it('an aborted change is never published, and neither redone nor published after a restart', async () => {
    let ob = await reopen();
    const aborted = (await ob.append(event(1), true, change(1)))!;
    const kept = (await ob.append(event(2), true, change(2)))!;
    await ob.abort(aborted);
    ob.applied(kept);
    expect(seqs(ob)).to.deep.equal([kept]);
    ob = await reopen();
    expect(ob.redo.map((r) => r.seq), 'redone: only the change that was not aborted').to.deep.equal([kept]);
    expect(ob.redo[0].change).to.deep.equal(change(2));
    expect(ob.pendingCount).to.equal(1);
    expect(seqs(ob), 'held back until recovery has redone it').to.deep.equal([]);
    ob.applied(kept);
    expect(seqs(ob)).to.deep.equal([kept]);
  });

  it('hands recovery only the changes after the checkpoint, and resolves whenSettled once earlier changes are applied', async () => {
    let ob = await reopen();
    for (let n = 1; n <= 4; n += 1) await ob.append(event(n), true, change(n));
    let settled = false;
    const waiting = ob.whenSettled(2).then(() => (settled = true));
    ob.applied(2);
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled, 'change 1 is not applied yet').to.equal(false);
    ob.applied(1);
    await waiting;
    expect(ob.settledSeq).to.equal(2);
    await ob.checkpoint(2);
    expect(ob.checkpointSeq).to.equal(2);
    ob = await reopen();
    expect(ob.checkpointSeq).to.equal(2);
    expect(ob.redo.map((r) => r.seq)).to.deep.equal([3, 4]);
  });

  it('keeps a segment until its events are delivered and its changes checkpointed', async () => {
    let ob = await reopen(1); // every batch rotates
    for (let n = 1; n <= 3; n += 1) ob.applied((await ob.append(event(n), true, change(n)))!);
    ob.acknowledge(3);
    ob = await reopen(1);
    const segments = async () => (await fs.readdir(dir)).filter((f) => f.startsWith('seg-')).length;
    expect(ob.redo.map((r) => r.seq), 'delivered but not checkpointed: still redone').to.deep.equal([1, 2, 3]);
    const before = await segments();
    expect(before).to.be.at.least(3);
    for (const { seq } of ob.redo) ob.applied(seq);
    await ob.checkpoint(3);
    ob = await reopen(1);
    expect(ob.redo).to.deep.equal([]);
    expect(await segments()).to.be.below(before);
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Outbox } from '../../src/notifier/outbox.js';
import { SeqFile } from '../../src/notifier/seq-file.js';
import { buildEvent } from '../../src/notifier/events.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

// The checkpoint and delivered watermark files: written in place, two slots, the higher valid one wins.
describe('SeqFile (checkpoint and delivered watermark, written in place)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await makeTmpDir();
  });
  afterEach(async () => removeDir(dir));

  it('holds 0 without a file, makes the file at the first write, and reads back the last value written', async () => {
    const file = path.join(dir, 'checkpoint');
    const seq = await SeqFile.open(file);
    expect(seq.current).to.equal(0);
    await fs.access(file).then(() => expect.fail('made before the first write'), () => undefined);
    for (const value of [5, 9, 12]) await seq.write(value, true);
    await seq.close();
    expect((await SeqFile.open(file)).current).to.equal(12);
    expect(await SeqFile.read(file)).to.equal(12);
    expect((await fs.stat(file)).size, 'overwritten in place, never grown').to.equal(64);
  });

  it('falls back to the previous value when the slot written last is torn', async () => {
    const file = path.join(dir, 'checkpoint');
    const seq = await SeqFile.open(file);
    await seq.write(7, true); // slot 0 (made with the file)
    await seq.write(8, true); // slot 1
    await seq.close();
    const bytes = await fs.readFile(file);
    bytes.write('9', 32); // half a write over slot 1: its checksum no longer matches
    await fs.writeFile(file, bytes);
    expect((await SeqFile.open(file)).current).to.equal(7);
  });

  it('reads a delivered watermark that an older version wrote as plain text', async () => {
    const outboxDir = path.join(dir, 'outbox');
    let outbox = await Outbox.open(outboxDir);
    const event = (n: number) => buildEvent({ type: 'imagestore.album.created', album: `a${n}` }, '/imagestore/test');
    for (let i = 1; i <= 3; i += 1) await outbox.append(event(i), true);
    await outbox.close();
    await fs.writeFile(path.join(outboxDir, 'delivered'), '2');
    outbox = await Outbox.open(outboxDir);
    try {
      expect(outbox.peek(10).map((r) => r.seq)).to.deep.equal([3]);
    } finally {
      await outbox.close();
    }
  });
});

import { expect } from 'chai';
import { SharedKeyedLock } from '../../src/lib/shared-keyed-lock.js';

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('SharedKeyedLock', function () {
  it('lets shared holders of a key run side by side', async function () {
    const lock = new SharedKeyedLock();
    const g = gate();
    let running = 0;
    let most = 0;
    const task = () => lock.with({ shared: ['album'] }, async () => {
      running++;
      most = Math.max(most, running);
      await g.opened;
      running--;
    });
    const all = Promise.all([task(), task(), task()]);
    await tick();
    g.open();
    await all;
    expect(most).to.equal(3);
  });

  it('makes an exclusive holder wait for the shared ones, and later shared ones wait for it (no overtaking)', async function () {
    const lock = new SharedKeyedLock();
    const order: string[] = [];
    const first = gate();
    const a = lock.with({ shared: ['album'] }, async () => {
      order.push('upload-1 start');
      await first.opened;
      order.push('upload-1 end');
    });
    await tick();
    const rename = lock.with({ exclusive: ['album'] }, async () => {
      order.push('rename');
    });
    const b = lock.with({ shared: ['album'] }, async () => {
      order.push('upload-2');
    });
    await tick();
    expect(order).to.deep.equal(['upload-1 start']);
    first.open();
    await Promise.all([a, rename, b]);
    expect(order).to.deep.equal(['upload-1 start', 'upload-1 end', 'rename', 'upload-2']);
  });

  it('runs changes to one image name one at a time, other names in parallel', async function () {
    const lock = new SharedKeyedLock();
    const g = gate();
    const order: string[] = [];
    const x1 = lock.with({ shared: ['a'], exclusive: ['a/x'] }, async () => {
      order.push('x1');
      await g.opened;
    });
    const x2 = lock.with({ shared: ['a'], exclusive: ['a/x'] }, async () => {
      order.push('x2');
    });
    const y = lock.with({ shared: ['a'], exclusive: ['a/y'] }, async () => {
      order.push('y');
    });
    await y;
    expect(order).to.deep.equal(['x1', 'y']);
    g.open();
    await Promise.all([x1, x2]);
    expect(order).to.deep.equal(['x1', 'y', 'x2']);
  });

  it('releases keys when the function throws, and forgets idle keys', async function () {
    const lock = new SharedKeyedLock();
    const failed = await lock.with({ exclusive: ['k'] }, async () => {
      throw new Error('boom');
    }).catch((e: Error) => e.message);
    expect(failed).to.equal('boom');
    expect(await lock.with({ exclusive: ['k'] }, async () => 'again')).to.equal('again');
    expect((lock as unknown as { keys: Map<string, unknown> }).keys.size).to.equal(0);
  });

  it('does not deadlock two callers taking the same two keys in opposite order', async function () {
    const lock = new SharedKeyedLock();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => lock.with({ exclusive: i % 2 ? ['a', 'b'] : ['b', 'a'] }, async () => {
        await tick();
        return i;
      })),
    );
    expect(results).to.have.length(20);
  });
});

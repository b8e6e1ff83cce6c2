import { expect } from 'chai';
import { KeyedLock } from '../../src/lib/keyed-lock.js';

/** A promise with its resolve function, to hold a lock for as long as a test wants. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

/** Lets every pending promise callback run (a few macrotask turns). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));

/** Rejects if `promise` has not settled within `ms`: a deadlock fails the test instead of hanging it. */
async function within<T>(ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not done within ${ms} ms (deadlock?)`)), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('KeyedLock', () => {
  it('runs callers of the same key one at a time, in arrival order', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const first = gate();
    const a = lock.with(['holidays'], async () => {
      log.push('a start');
      await first.promise;
      log.push('a end');
      return 'a';
    });
    const b = lock.with(['holidays'], async () => {
      log.push('b start');
      return 'b';
    });
    const c = lock.with(['holidays'], async () => {
      log.push('c start');
      return 'c';
    });
    await settle();
    expect(log).to.deep.equal(['a start']);
    first.open();
    expect(await within(1000, Promise.all([a, b, c]))).to.deep.equal(['a', 'b', 'c']);
    expect(log).to.deep.equal(['a start', 'a end', 'b start', 'c start']);
  });

  it('lets different keys proceed in parallel', async () => {
    const lock = new KeyedLock();
    const held = gate();
    const a = lock.with(['holidays'], () => held.promise);
    let ranB = false;
    await within(1000, lock.with(['work'], async () => {
      ranB = true;
    }));
    expect(ranB).to.equal(true);
    held.open();
    await a;
  });

  it('releases the key when the callback throws, and passes the error on', async () => {
    const lock = new KeyedLock();
    const failed = lock.with(['holidays'], async () => {
      throw new Error('disk full');
    });
    const next = lock.with(['holidays'], async () => 'next ran');
    let error: Error | undefined;
    await failed.catch((err: Error) => (error = err));
    expect(error?.message).to.equal('disk full');
    expect(await within(1000, next)).to.equal('next ran');
  });

  it('does not deadlock when two callers take the same two keys in opposite order', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const step = async (name: string) => {
      log.push(`${name} in`);
      await settle(); // give the other caller every chance to interleave
      log.push(`${name} out`);
    };
    // An album rename locks the old and the new name; two crossed renames must not wait on each other forever.
    const renames = Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? lock.with(['a', 'b'], () => step(`ab${i}`)) : lock.with(['b', 'a'], () => step(`ba${i}`))));
    await within(2000, Promise.all(renames));
    // They held the same pair, so they never overlapped.
    for (let i = 0; i < log.length; i += 2) expect(log[i].replace(' in', '')).to.equal(log[i + 1].replace(' out', ''));
  });

  it('makes a two-key caller wait for a holder of either key, and later callers wait for it', async () => {
    const lock = new KeyedLock();
    const log: string[] = [];
    const held = gate();
    const onB = lock.with(['b'], async () => {
      await held.promise;
      log.push('b');
    });
    const both = lock.with(['b', 'a'], async () => {
      log.push('a+b');
    });
    const laterA = lock.with(['a'], async () => {
      log.push('a');
    });
    await settle();
    expect(log).to.deep.equal([]); // `both` holds a while it waits for b, so `laterA` waits too
    held.open();
    await within(1000, Promise.all([onB, both, laterA]));
    expect(log).to.deep.equal(['b', 'a+b', 'a']);
  });

  it('treats a key given twice as one key (no self-deadlock)', async () => {
    const lock = new KeyedLock();
    expect(await within(1000, lock.with(['a', 'a'], async () => 'ok'))).to.equal('ok');
  });

  it('can take the same key again after it became idle', async () => {
    const lock = new KeyedLock();
    for (let i = 0; i < 3; i += 1) expect(await within(1000, lock.with(['a'], async () => i))).to.equal(i);
  });
});

type Mode = 'shared' | 'exclusive';

interface KeyState {
  holders: number;
  exclusive: boolean;
  waiting: Array<{ mode: Mode; grant: () => void }>;
}

/**
 * Readers/writer locks by key, first come first served. The S3 store holds an
 * album's key shared and the image's key exclusively while it uploads, so
 * uploads into one album run side by side (each can take minutes), while an
 * album rename or delete takes the album's key exclusively and waits for them.
 * Keys are released when idle, so the map does not grow with the albums touched.
 */
export class SharedKeyedLock {
  private readonly keys = new Map<string, KeyState>();

  /**
   * Runs `fn` holding `shared` keys with other sharers and `exclusive` keys alone
   * (a key in both is exclusive). Every caller takes its keys in sorted order, so
   * two callers cannot deadlock; a waiting exclusive request is not overtaken by
   * later shared ones.
   */
  async with<T>(locks: { shared?: string[]; exclusive?: string[] }, fn: () => Promise<T>): Promise<T> {
    const wanted = new Map<string, Mode>();
    for (const key of locks.shared ?? []) wanted.set(key, 'shared');
    for (const key of locks.exclusive ?? []) wanted.set(key, 'exclusive');
    const held: Array<[string, Mode]> = [];
    try {
      for (const key of [...wanted.keys()].sort()) {
        const mode = wanted.get(key)!;
        await this.acquire(key, mode);
        held.push([key, mode]);
      }
      return await fn();
    } finally {
      for (const [key] of held.reverse()) this.release(key);
    }
  }

  private acquire(key: string, mode: Mode): Promise<void> {
    let state = this.keys.get(key);
    if (!state) {
      state = { holders: 0, exclusive: false, waiting: [] };
      this.keys.set(key, state);
    }
    if (state.waiting.length === 0 && (state.holders === 0 || (mode === 'shared' && !state.exclusive))) {
      state.holders += 1;
      state.exclusive = mode === 'exclusive';
      return Promise.resolve();
    }
    const queue = state.waiting;
    return new Promise((grant) => queue.push({ mode, grant }));
  }

  private release(key: string): void {
    const state = this.keys.get(key)!;
    state.holders -= 1;
    if (state.holders === 0) state.exclusive = false;
    while (state.waiting.length > 0) {
      const next = state.waiting[0];
      if (next.mode === 'exclusive' ? state.holders > 0 : state.exclusive) break;
      state.waiting.shift();
      state.holders += 1;
      state.exclusive = next.mode === 'exclusive';
      next.grant();
      if (state.exclusive) break;
    }
    if (state.holders === 0 && state.waiting.length === 0) this.keys.delete(key);
  }
}

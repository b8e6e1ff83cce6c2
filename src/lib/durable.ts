import { randomUUID } from 'node:crypto';
import { closeSync, fdatasync, promises as fs, fsync, openSync } from 'node:fs';
import path from 'node:path';

/*
 * Why the flushes below open and close on the calling thread: each call of node's fs API is
 * a hand-off to the libuv pool and back, which costs ~100 µs of CPU on a busy machine (the
 * futex wake-ups of two threads), several times what an open or a close of an existing file
 * costs done directly. Only the flush itself, which waits for the disk, goes to the pool.
 */

/** fsync (or fdatasync, `dataOnly`) of an open descriptor, on the libuv pool: one hand-off. */
export function syncFd(fd: number, dataOnly = false): Promise<void> {
  return new Promise((resolve, reject) => (dataOnly ? fdatasync : fsync)(fd, (err) => (err ? reject(err) : resolve())));
}

/** Opens `file` (`flags`), flushes it (syncFd), closes it. */
export async function syncPath(file: string, { flags = 'r', dataOnly = false }: { flags?: string; dataOnly?: boolean } = {}): Promise<void> {
  const fd = openSync(file, flags);
  try {
    await syncFd(fd, dataOnly);
  } finally {
    closeSync(fd);
  }
}

/** Flushes a directory entry list to disk, so a rename or link in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  await syncPath(dir);
}

/** Flushes a file's content to disk. */
export async function fsyncFile(file: string): Promise<void> {
  await syncPath(file, { flags: 'r+' });
}

/**
 * Writes `data` to `target` atomically and durably: a temporary file in
 * `tmpDir` (same filesystem), fsync, rename over the target. The caller
 * fsyncs the target's directory (often once for several writes).
 */
export async function writeFileAtomic(target: string, data: string | Buffer, tmpDir: string): Promise<void> {
  const tmp = path.join(tmpDir, `${TEMP_PREFIX}${randomUUID()}`);
  const handle = await fs.open(tmp, 'w');
  try {
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, target);
  } catch (err) {
    // A full disk fails the write: the half-written file must not stay behind (and take more space).
    await fs.rm(tmp, { force: true });
    throw err;
  }
}

/** Name prefix of writeFileAtomic's temporary files; recovery removes those a crash left behind. */
export const TEMP_PREFIX = 'meta-';

/** True when the error is a Node system error with this code. */
export function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as NodeJS.ErrnoException).code === code;
}

/** Flushes a file's data (and the metadata needed to read it back, such as its size) to disk. */
export async function fdatasyncFile(file: string): Promise<void> {
  await syncPath(file, { dataOnly: true });
}

/**
 * Wraps `run` so that concurrent calls share runs, one at a time: a call waits for a run
 * that starts after it (calls made while one runs share the next). Group commit for
 * fsyncs: what a caller wrote before calling is covered, however many callers share it.
 */
export function sharedRuns(run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const current = run().finally(() => {
      if (running === current) running = undefined;
    });
    running = current;
    return current;
  };
  return () => {
    if (!running) return start();
    next ??= running.catch(() => undefined).then(() => {
      next = undefined;
      return start();
    });
    return next;
  };
}


import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';

/** Flushes a directory entry list to disk, so a rename or link in it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Flushes a file's content to disk. */
export async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
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
  const handle = await fs.open(file, 'r');
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
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


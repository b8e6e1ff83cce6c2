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

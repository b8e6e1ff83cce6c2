import { promises as fs } from 'node:fs';

/**
 * Records this process as the data dir's only writer. The store's locks are
 * in memory, so two processes on one data dir could overwrite each other;
 * a second one is refused while the first is alive. A pid file left by a
 * crashed process (pid no longer running) is taken over.
 * @throws {Error} when another live process owns the data dir
 */
export async function claimDataDir(ownerFile: string): Promise<void> {
  const previous = Number((await fs.readFile(ownerFile, 'utf8').catch(() => '')).trim());
  if (Number.isInteger(previous) && previous > 0 && previous !== process.pid && isAlive(previous)) {
    throw new Error(`data dir is in use by another imagestore process (pid ${previous}, see ${ownerFile})`);
  }
  await fs.writeFile(ownerFile, `${process.pid}\n`);
}

/** Removes the pid file if it is still ours. */
export async function releaseDataDir(ownerFile: string): Promise<void> {
  const owner = Number((await fs.readFile(ownerFile, 'utf8').catch(() => '')).trim());
  if (owner === process.pid) await fs.rm(ownerFile, { force: true });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

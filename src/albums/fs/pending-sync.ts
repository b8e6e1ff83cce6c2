import { closeSync, openSync } from 'node:fs';
import { isErrno, sharedRuns, syncFd } from '../../lib/durable.js';
import { mapLimit } from '../../lib/map-limit.js';


/**
 * What the filesystem store's applies wrote without fsync (metadata files, directories
 * whose entries changed), until the next checkpoint flushes it. The commit record in
 * the journal makes such a change durable meanwhile: recovery redoes it.
 */
export class PendingSync {
  private files = new Set<string>();
  /** Flushes share runs: a flush returns only once everything marked before it is on disk. */
  readonly flush: () => Promise<void> = sharedRuns(() => this.flushNow());

  /**
   * @param concurrency fsyncs at once during a flush. Each holds a libuv pool thread for the
   *   length of a disk flush: enough in flight lets the file system commit them together, and
   *   the other pool threads stay free for the requests of the moment (server.ts gives half the pool).
   */
  constructor(private readonly concurrency = 2) {}

  /** Marks a file or directory to fsync at the next flush. */
  mark(...paths: string[]): void {
    for (const p of paths) this.files.add(p);
  }

  /** True when something waits for a flush. */
  get dirty(): boolean {
    return this.files.size > 0;
  }

  private async flushNow(): Promise<void> {
    const paths = [...this.files];
    this.files = new Set();
    try {
      await mapLimit(paths, this.concurrency, fsyncPath);
    } catch (err) {
      // Nothing is known to be on disk: the next flush tries them all again.
      for (const p of paths) this.files.add(p);
      throw err;
    }
  }
}

/**
 * fsyncs a file or directory by path. Missing is fine: a later change removed it, and
 * that change is itself flushed (its directory is marked) or redone from the journal.
 */
async function fsyncPath(file: string): Promise<void> {
  let fd: number;
  try {
    fd = openSync(file, 'r'); // on this thread: see durable.ts
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return;
    throw err;
  }
  try {
    await syncFd(fd);
  } finally {
    closeSync(fd);
  }
}

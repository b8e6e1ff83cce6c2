import { promises as fs, renameSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { fdatasyncFile, fsyncDir, isErrno, sharedRuns } from '../lib/durable.js';

/** Staged files unlinked between two turns of the event loop when a checkpoint releases them. */
const UNLINKS_PER_TURN = 16;

/**
 * Uploads whose change is committed but not yet checkpointed. An upload's commit
 * record names its bytes by a path in `staged/`; the image file is a hard link to
 * them, made without fsync, so until the checkpoint only this name is sure to be on
 * disk, and recovery links the image again from it. So a staged file is made
 * durable (its data fdatasynced, the directory entry fsynced: one directory fsync
 * shared by the uploads of the moment) before the commit record is written, and
 * deleted once its change is checkpointed. Files here are never read by clients.
 */
export class StagedUploads {
  private readonly syncDir = sharedRuns(() => fsyncDir(this.dir));
  /** Kept files and the journal sequence number of their change. */
  private held: Array<{ seq: number; file: string }> = [];

  /**
   * @param root the data dir (staged paths in commit records are relative to it)
   * @param dir the staged dir, inside `root`
   */
  constructor(
    private readonly root: string,
    readonly dir: string,
  ) {}

  /**
   * Moves an upload here under `name` and makes it durable (its data, unless `synced` says
   * it already is, and its directory entry).
   * @returns its path relative to the data dir (for the commit record)
   * @throws the rename or fsync error; the file is then back where it was
   */
  async keep(file: string, name: string, synced = false): Promise<string> {
    const target = path.join(this.dir, name);
    renameSync(file, target); // a directory entry: done on this thread (durable.ts tells why)
    try {
      await Promise.all([synced ? undefined : fdatasyncFile(target), this.syncDir()]);
    } catch (err) {
      await fs.rename(target, file).catch(() => undefined);
      throw err;
    }
    return path.relative(this.root, target);
  }

  /** The absolute path of a staged file named in a commit record. */
  resolve(relative: string): string {
    return path.join(this.root, relative);
  }

  /** Keeps a file until the change `seq` is checkpointed. */
  hold(seq: number, relative: string): void {
    this.held.push({ seq, file: this.resolve(relative) });
  }

  /** Deletes a staged file now (its change is durable without it, or never happened). */
  async drop(relative: string): Promise<void> {
    await fs.rm(this.resolve(relative), { force: true });
  }

  /** Deletes the files of the changes up to `seq` (checkpointed). */
  async release(seq: number): Promise<void> {
    const done = this.held.filter((h) => h.seq <= seq);
    if (done.length === 0) return;
    this.held = this.held.filter((h) => h.seq > seq);
    // Unlinks of names whose image keeps the bytes (a hard link): on this thread, see durable.ts. A checkpoint can
    // release hundreds at once: a few per turn of the event loop, so requests are not held up behind them all.
    for (const [i, { file }] of done.entries()) {
      if (i > 0 && i % UNLINKS_PER_TURN === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        unlinkSync(file);
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err;
      }
    }
  }

  /** Deletes every staged file: at start, once recovery has redone and checkpointed every change. */
  async clear(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true });
    for (const name of await fs.readdir(this.dir)) await fs.rm(path.join(this.dir, name), { recursive: true, force: true });
  }
}

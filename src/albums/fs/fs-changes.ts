import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, linkSync, promises as fs, renameSync, rmSync, writeFileSync, type Stats } from 'node:fs';
import path from 'node:path';
import { ConflictError } from '../../errors.js';
import { NO_CRASH, UndoFailedError, type CrashPoint, type RedoOutcome, type StoreChange } from '../changes.js';
import { isErrno, TEMP_PREFIX } from '../../lib/durable.js';
import type { StoredImageMeta } from '../image-meta.js';
import type { Layout } from '../layout.js';
import type { PendingSync } from './pending-sync.js';
import type { StagedUploads } from '../staged-uploads.js';

/**
 * How the filesystem store makes each change on disk, in the steps the commit path
 * needs (fs-store.ts tells the order):
 *  - prepare, before the commit record: whatever needs new disk space (metadata files,
 *    a new album's tree) is written in the tmp dir, without fsync, so a full disk
 *    refuses the change (507) before anything is committed;
 *  - apply, after the commit record: renames, links and unlinks only, without fsync
 *    (what they touched is marked for the next checkpoint); a failure undoes what was
 *    done and throws (UndoFailedError when the undo fails too);
 *  - redo, at start, for the commit records after the checkpoint: makes the state the
 *    record describes whatever part of it (or of the changes after it) reached the disk.
 *
 * Why redo may act on the names alone (forced): the state at the checkpoint is on disk,
 * and every change since is in the journal and is redone in order after this one; so
 * whatever stands on this change's names now was put there by it or by a later change,
 * which will put it back. Changes of whole albums keep the rest simple: each one is
 * committed only after a checkpoint covering every change before it (outbox-notifier.ts),
 * so records to redo never hold an image change before an album change of its album,
 * and image changes always find their album where they were made.
 */
export class FsChanges {
  constructor(
    private readonly layout: Layout,
    private readonly pending: PendingSync,
    private readonly staged: StagedUploads,
    private readonly crash: CrashPoint = NO_CRASH,
  ) {}

  /**
   * Writes an image's metadata file in the tmp dir (prepare), on this thread: a few hundred
   * bytes into the page cache cost less than the three hand-offs to the libuv pool of an
   * async write (durable.ts). @returns its temporary path
   */
  async prepareMeta(meta: StoredImageMeta): Promise<string> {
    const tmp = path.join(this.layout.tmpDir, `${TEMP_PREFIX}${randomUUID()}`);
    try {
      writeFileSync(tmp, JSON.stringify(meta));
    } catch (err) {
      rmSync(tmp, { force: true }); // a full disk must not keep half a file
      throw err;
    }
    return tmp;
  }

  /** Builds a new album's tree in the tmp dir (prepare). @returns its temporary path */
  async prepareAlbum(createdAt: string): Promise<string> {
    const tmp = path.join(this.layout.tmpDir, `album-${randomUUID()}`);
    try {
      // One level at a time: a recursive mkdir reports a read-only file system as ENOENT.
      for (const dir of [tmp, path.join(tmp, '.imagestore'), path.join(tmp, '.imagestore', 'meta')]) await fs.mkdir(dir);
      await fs.writeFile(path.join(tmp, '.imagestore', 'album.json'), albumJson(createdAt));
    } catch (err) {
      await fs.rm(tmp, { recursive: true, force: true });
      throw err;
    }
    return tmp;
  }

  /** Removes what a prepare wrote, when the change is not made after all. */
  async discard(prepared: string | undefined): Promise<void> {
    if (prepared !== undefined) await fs.rm(prepared, { recursive: true, force: true });
  }

  /**
   * Apply: the image is a hard link to the staged bytes, or to `copy`, a stored image with the
   * same bytes (locked by the caller), so identical bytes are stored once; then its metadata
   * takes its place. Images are never written in place (a change replaces or unlinks a name),
   * so deleting one name of shared bytes never touches another. Two directory entries, made on
   * this thread (no flush: cheaper than two pool hand-offs).
   */
  async addImage(album: string, name: string, stagedFile: string, preparedMeta: string, copy?: string): Promise<void> {
    const file = this.layout.imageFile(album, name);
    try {
      // Never replaces a file, even one some other tool put there. A copy gone from its name (an operator) falls back to the staged bytes.
      if (copy === undefined) linkSync(stagedFile, file);
      else {
        try {
          linkSync(copy, file);
        } catch (err) {
          if (!isErrno(err, 'ENOENT')) throw err;
          linkSync(stagedFile, file);
        }
      }
    } catch (err) {
      if (isErrno(err, 'EEXIST')) throw new ConflictError(`${name} image already present`);
      throw err;
    }
    this.crash('upload:mid-apply');
    try {
      renameSync(preparedMeta, this.layout.imageMetaFile(album, name));
    } catch (err) {
      await this.undo(err, [this.layout.albumDir(album)], () => fs.unlink(file));
    }
    this.pending.mark(this.layout.imageMetaFile(album, name), this.layout.imageMetaDir(album), this.layout.albumDir(album));
  }

  /** Apply: the file moves, the new metadata takes its place, the old one goes. */
  async renameImage(album: string, from: string, to: string, preparedMeta: string): Promise<void> {
    const [fromFile, toFile] = [this.layout.imageFile(album, from), this.layout.imageFile(album, to)];
    const dirs = [this.layout.albumDir(album), this.layout.imageMetaDir(album)];
    await fs.rename(fromFile, toFile);
    this.crash('image-rename:mid-apply');
    try {
      await fs.rename(preparedMeta, this.layout.imageMetaFile(album, to));
    } catch (err) {
      await this.undo(err, dirs, () => fs.rename(toFile, fromFile));
    }
    try {
      await fs.rm(this.layout.imageMetaFile(album, from), { force: true });
    } catch (err) {
      await this.undo(err, dirs, async () => {
        await fs.unlink(this.layout.imageMetaFile(album, to));
        await fs.rename(toFile, fromFile);
      });
    }
    this.pending.mark(this.layout.imageMetaFile(album, to), ...dirs);
  }

  /** Apply: the file leaves the album (into the tmp dir, so this can be undone), then its metadata. */
  async deleteImage(album: string, name: string, id: string): Promise<void> {
    const file = this.layout.imageFile(album, name);
    const gone = path.join(this.layout.tmpDir, `deleted-${id}`);
    let moved = true;
    await fs.rename(file, gone).catch((err: unknown) => {
      if (!isErrno(err, 'ENOENT')) throw err;
      moved = false;
    });
    this.crash('image-delete:mid-apply');
    try {
      await fs.rm(this.layout.imageMetaFile(album, name), { force: true });
    } catch (err) {
      await this.undo(err, [this.layout.albumDir(album)], async () => {
        if (moved) await fs.rename(gone, file);
      });
    }
    this.pending.mark(this.layout.imageMetaDir(album), this.layout.albumDir(album));
    await fs.rm(gone, { force: true }).catch(() => undefined); // else the tmp dir is emptied at the next start
  }

  /** Apply: the album built by prepareAlbum moves into place. */
  async createAlbum(name: string, preparedAlbum: string): Promise<void> {
    const dir = this.layout.albumDir(name);
    try {
      await fs.rename(preparedAlbum, dir);
    } catch (err) {
      if (isErrno(err, 'EEXIST') || isErrno(err, 'ENOTEMPTY')) throw new ConflictError(`${name} album already present`);
      throw err;
    }
    this.markAlbum(name);
  }

  /** Apply: one directory rename. */
  async renameAlbum(from: string, to: string): Promise<void> {
    await fs.rename(this.layout.albumDir(from), this.layout.albumDir(to));
    this.pending.mark(this.layout.albumsDir);
  }

  /** Apply: one rename into the trash makes the deletion atomic; the trash is emptied afterwards (and at start). */
  async deleteAlbum(name: string): Promise<void> {
    const trashed = path.join(this.layout.trashDir, randomUUID());
    await fs.rename(this.layout.albumDir(name), trashed);
    this.pending.mark(this.layout.albumsDir);
    this.crash('album-delete:mid-apply');
    void fs.rm(trashed, { recursive: true, force: true }).catch(() => undefined);
  }

  /**
   * Redo (recovery): brings the disk to the state the change leaves, from whatever part of it
   * (and of later changes) is there. 'impossible' when it cannot be made (its album or its
   * staged bytes are gone, which the commit path never allows): the caller aborts it.
   */
  async redo(change: StoreChange): Promise<RedoOutcome> {
    const { layout } = this;
    switch (change.op) {
      case 'album.create': {
        await fs.mkdir(layout.imageMetaDir(change.album), { recursive: true });
        if ((await readText(layout.albumInfoFile(change.album))) !== albumJson(change.createdAt)) {
          await this.writeTmpThenRename(layout.albumInfoFile(change.album), albumJson(change.createdAt));
        }
        this.markAlbum(change.album);
        return 'applied';
      }
      case 'album.rename': {
        const [from, to] = await Promise.all([statOf(layout.albumDir(change.album)), statOf(layout.albumDir(change.to))]);
        if (to) return 'applied';
        if (!from) return 'impossible';
        await fs.rename(layout.albumDir(change.album), layout.albumDir(change.to));
        this.pending.mark(layout.albumsDir);
        return 'applied';
      }
      case 'album.delete': {
        if (await statOf(layout.albumDir(change.album))) {
          await fs.rename(layout.albumDir(change.album), path.join(layout.trashDir, randomUUID())); // the trash is emptied by fsck
          this.pending.mark(layout.albumsDir);
        }
        return 'applied';
      }
      case 'image.add': {
        if (!(await statOf(layout.albumDir(change.album)))) return 'impossible';
        const file = layout.imageFile(change.album, change.meta.name);
        const metaFile = layout.imageMetaFile(change.album, change.meta.name);
        const expected = JSON.stringify(change.meta);
        const [staged, present, metaText] = await Promise.all([statOf(this.staged.resolve(change.staged)), statOf(file), readText(metaFile)]);
        if (!staged) return present && metaText === expected ? 'applied' : 'impossible';
        // A file there that is not the staged one may be a shared copy (apply links identical bytes once): kept if its bytes are these.
        const same = present && ((present.ino === staged.ino && present.dev === staged.dev) || (present.size === change.meta.size && (await sha256Of(file)) === change.meta.sha256));
        if (!same) {
          if (present) await fs.rm(file, { force: true });
          await fs.link(this.staged.resolve(change.staged), file);
        }
        if (metaText !== expected) await this.writeTmpThenRename(metaFile, expected);
        this.pending.mark(metaFile, layout.imageMetaDir(change.album), layout.albumDir(change.album));
        return 'applied';
      }
      case 'image.rename': {
        if (!(await statOf(layout.albumDir(change.album)))) return 'impossible';
        const { album, from, meta } = change;
        const [fromFile, toFile] = [layout.imageFile(album, from), layout.imageFile(album, meta.name)];
        const [source, target] = await Promise.all([statOf(fromFile), statOf(toFile)]);
        // Gone from both names: a later change deleted or moved it, and is redone after this one.
        if (!target && source) await fs.rename(fromFile, toFile);
        else if (target && source) await fs.rm(fromFile, { force: true });
        const expected = JSON.stringify(meta);
        if ((await readText(layout.imageMetaFile(album, meta.name))) !== expected) await this.writeTmpThenRename(layout.imageMetaFile(album, meta.name), expected);
        await fs.rm(layout.imageMetaFile(album, from), { force: true });
        this.pending.mark(layout.imageMetaFile(album, meta.name), layout.imageMetaDir(album), layout.albumDir(album));
        return 'applied';
      }
      case 'image.delete': {
        if (!(await statOf(layout.albumDir(change.album)))) return 'impossible';
        await fs.rm(layout.imageFile(change.album, change.meta.name), { force: true });
        await fs.rm(layout.imageMetaFile(change.album, change.meta.name), { force: true });
        this.pending.mark(layout.imageMetaDir(change.album), layout.albumDir(change.album));
        return 'applied';
      }
    }
  }

  /** Runs `undo` after apply failed with `err`, then rethrows `err` (or UndoFailedError). The undo is flushed with the rest. */
  private async undo(err: unknown, dirs: string[], undo: () => Promise<void>): Promise<never> {
    this.pending.mark(...dirs);
    try {
      await undo();
    } catch (undoErr) {
      throw new UndoFailedError(err, undoErr);
    }
    throw err;
  }

  private markAlbum(name: string): void {
    const { layout } = this;
    this.pending.mark(layout.albumInfoFile(name), layout.albumMetaDir(name), layout.imageMetaDir(name), layout.albumDir(name), layout.albumsDir);
  }

  private async writeTmpThenRename(target: string, text: string): Promise<void> {
    const tmp = path.join(this.layout.tmpDir, `${TEMP_PREFIX}${randomUUID()}`);
    await fs.writeFile(tmp, text);
    await fs.rename(tmp, target);
  }
}

/** An album's metadata file, as prepareAlbum and redo write it. */
function albumJson(createdAt: string): string {
  return JSON.stringify({ createdAt });
}

/** sha256 (hex) of a file, read as a stream (recovery only). */
async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function statOf(file: string): Promise<Stats | undefined> {
  return fs.stat(file).catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  });
}

async function readText(file: string): Promise<string | undefined> {
  return fs.readFile(file, 'utf8').catch((err: unknown) => {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  });
}

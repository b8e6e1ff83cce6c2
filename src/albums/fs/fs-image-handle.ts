import { createReadStream, existsSync, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { NotFoundError } from '../../errors.js';
import { isErrno } from '../../lib/durable.js';
import { readRange } from '../../lib/read-range.js';
import type { ImageHandle, ImageInfo } from '../types.js';

/** On Linux, an open file can be read again by path through /proc, whatever renames happen meanwhile. */
const PROC_FD = existsSync('/proc/self/fd');

/**
 * An image of the filesystem store, opened lazily: its metadata comes from the
 * store's memory, and the file is opened only when bytes are wanted, so a 304,
 * a HEAD or an answer from the hot-file cache opens no file.
 *
 * Once open, the file is held: a rename or delete racing the download cannot cut
 * it. Opening checks that the name still holds this image (`current`): the store
 * changes its memory only after the disk, so a file opened while the memory still
 * names this image's id is this image's file, and a name deleted or given to
 * another image meanwhile is a NotFoundError, never another image's bytes under
 * this one's headers.
 */
export class FsImageHandle implements ImageHandle {
  private file?: Promise<FileHandle>;
  /** The file once open, for stream(), which must answer at once. */
  private openFile?: FileHandle;
  private closed = false;

  /**
   * @param path the image file
   * @param current the image the name holds now (from the store's memory)
   */
  constructor(
    readonly info: ImageInfo,
    private readonly path: string,
    private readonly current: () => ImageInfo | undefined,
  ) {}

  async open(): Promise<void> {
    await this.opened();
  }

  async localPath(): Promise<string> {
    const file = await this.opened();
    return PROC_FD ? `/proc/self/fd/${file.fd}` : this.path;
  }

  stream(range?: { start: number; end: number }): Readable {
    const file = this.openFile;
    // Not opened first (direct users of the store): the stream opens the file itself and reports a missing one as its error.
    if (file === undefined) return createReadStream(this.path, range ?? {});
    this.closed = true; // the stream closes the file when it ends
    return file.createReadStream(range ?? {});
  }

  async read(range?: { start: number; end: number }): Promise<Buffer> {
    const file = await this.opened();
    try {
      return await readRange(file, range?.start ?? 0, range ? range.end - range.start + 1 : this.info.size);
    } finally {
      await this.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const file = this.file;
    if (file) await file.then((f) => f.close(), () => undefined);
  }

  private opened(): Promise<FileHandle> {
    this.file ??= this.openChecked();
    return this.file;
  }

  private async openChecked(): Promise<FileHandle> {
    let file: FileHandle;
    try {
      file = await fs.open(this.path, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT')) throw this.gone();
      throw err;
    }
    if (this.current()?.id !== this.info.id) {
      await file.close();
      throw this.gone();
    }
    this.openFile = file;
    return file;
  }

  private gone(): NotFoundError {
    return new NotFoundError(`${this.info.name} image is not present`);
  }
}

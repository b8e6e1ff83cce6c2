import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

/**
 * Names starting with this (any case) are reserved by the service, so no album or image can use
 * them: the mirror keeps its own files under such names and they never clash with an album.
 */
export const RESERVED_PREFIX = '.imagestore';

/** Directory for downloads in progress, on the same filesystem as the mirror (renames are atomic). */
export const TMP_DIR_NAME = '.imagestore-mirror-tmp';

/** The mirror's state file (see state.ts). */
export const STATE_FILE_NAME = '.imagestore-mirror-state.json';

/** A local file as the mirror wrote it: what the state file remembers of it. */
export interface LocalCopy {
  sha256: string;
  size: number;
  /** Modification time after the write; a file replaced behind the mirror's back has another. */
  mtimeMs: number;
}

/** Thrown for an album or image name that could leave the mirror directory or hit its own files. */
export class UnsafeNameError extends Error {
  constructor(kind: string, name: string, reason: string) {
    super(`refusing ${kind} name ${JSON.stringify(name.length > 64 ? `${name.slice(0, 61)}...` : name)}: ${reason}`);
    this.name = 'UnsafeNameError';
  }
}

/** Thrown when the bytes received do not have the SHA-256 the service announced (ETag). */
export class ChecksumError extends Error {
  constructor(dest: string, expected: string, got: string) {
    super(`downloaded ${dest} has sha256 ${got}, the service announced ${expected}`);
    this.name = 'ChecksumError';
  }
}

/** Why `name` may not be one path component in the mirror, or undefined when it may. */
export function unsafeNameReason(name: string): string | undefined {
  if (name === '' || name === '.' || name === '..') return 'empty, "." or ".."';
  if (/[/\\\u0000]/.test(name)) return 'contains "/", "\\" or NUL';
  if (name.toLowerCase().startsWith(RESERVED_PREFIX)) return `starts with the reserved "${RESERVED_PREFIX}"`;
  return undefined;
}

/** What is in the mirror directory: album directories with their files, and anything else found. */
export interface LocalTree {
  albums: Map<string, Set<string>>;
  /** Paths (absolute) that are neither an album directory nor an image file in one. */
  strays: string[];
}

/**
 * Every file-system operation of the mirror, confined to its directory: names are checked
 * before they are joined to a path, and files are written to a temp file and renamed.
 */
export class MirrorFs {
  readonly tmpDir: string;
  readonly statePath: string;

  /** @param root absolute path of the mirror directory */
  constructor(readonly root: string) {
    this.tmpDir = path.join(root, TMP_DIR_NAME);
    this.statePath = path.join(root, STATE_FILE_NAME);
  }

  /** @throws {UnsafeNameError} */
  albumPath(album: string): string {
    const reason = unsafeNameReason(album);
    if (reason) throw new UnsafeNameError('album', album, reason);
    return path.join(this.root, album);
  }

  /** @throws {UnsafeNameError} */
  imagePath(album: string, image: string): string {
    const reason = unsafeNameReason(image);
    if (reason) throw new UnsafeNameError('image', image, reason);
    return path.join(this.albumPath(album), image);
  }

  /** Creates the directories and empties the temp dir (downloads cut short by a crash). */
  async prepare(): Promise<void> {
    await fs.mkdir(this.root, { recursive: true });
    await fs.rm(this.tmpDir, { recursive: true, force: true });
    await fs.mkdir(this.tmpDir);
  }

  /** True when `root` is missing or holds nothing but the mirror's own files. */
  async isEmpty(): Promise<boolean> {
    const entries = await fs.readdir(this.root).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    return entries.every((e) => e === TMP_DIR_NAME || e === STATE_FILE_NAME);
  }

  /** Makes sure the album is a real directory (not a file or a symlink leading elsewhere). */
  async ensureAlbum(album: string): Promise<void> {
    const dir = this.albumPath(album);
    const stat = await fs.lstat(dir).catch(() => undefined);
    if (stat?.isDirectory()) return;
    if (stat) await fs.rm(dir, { recursive: true, force: true });
    await fs.mkdir(dir, { recursive: true });
  }

  /**
   * Streams `body` into a temp file while hashing it, fsyncs it, and renames it to `dest`.
   * @param expectedSha256 when given, a mismatch throws before `dest` is touched
   * @throws {ChecksumError}
   */
  async writeAtomic(dest: string, body: Readable, expectedSha256?: string): Promise<LocalCopy> {
    const tmp = path.join(this.tmpDir, randomUUID());
    const hash = createHash('sha256');
    let size = 0;
    const measure = async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        hash.update(chunk);
        size += chunk.length;
        yield chunk;
      }
    };
    try {
      await pipeline(body, measure, createWriteStream(tmp, { flags: 'wx' }));
      const sha256 = hash.digest('hex');
      if (expectedSha256 !== undefined && expectedSha256 !== sha256) throw new ChecksumError(dest, expectedSha256, sha256);
      await fsync(tmp);
      await fs.rename(tmp, dest);
      const { mtimeMs } = await fs.stat(dest);
      return { sha256, size, mtimeMs };
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** Writes a small file atomically (temp file, fsync, rename). */
  async writeFileAtomic(dest: string, data: string): Promise<void> {
    const tmp = path.join(this.tmpDir, randomUUID());
    try {
      await fs.writeFile(tmp, data, { flag: 'wx' });
      await fsync(tmp);
      await fs.rename(tmp, dest);
    } finally {
      await fs.rm(tmp, { force: true });
    }
  }

  /** True when `file` is the copy the mirror wrote: a regular file of the same size and mtime. */
  async matches(file: string, copy: LocalCopy | undefined): Promise<boolean> {
    if (!copy) return false;
    const stat = await fs.lstat(file).catch(() => undefined);
    return stat !== undefined && stat.isFile() && stat.size === copy.size && stat.mtimeMs === copy.mtimeMs;
  }

  async exists(target: string): Promise<boolean> {
    return (await fs.lstat(target).catch(() => undefined)) !== undefined;
  }

  /** Renames `from` to `to`, replacing a file at `to`. */
  async rename(from: string, to: string): Promise<void> {
    await fs.rename(from, to);
  }

  /** Removes a file or a whole directory; nothing happens when it is already gone. */
  async remove(target: string): Promise<void> {
    await fs.rm(target, { recursive: true, force: true });
  }

  /** Lists album directories and their files; anything else (ours excepted) is a stray. */
  async listTree(): Promise<LocalTree> {
    const tree: LocalTree = { albums: new Map(), strays: [] };
    for (const entry of await fs.readdir(this.root, { withFileTypes: true })) {
      if (entry.name === TMP_DIR_NAME || entry.name === STATE_FILE_NAME) continue;
      const full = path.join(this.root, entry.name);
      if (!entry.isDirectory() || unsafeNameReason(entry.name)) {
        tree.strays.push(full);
        continue;
      }
      const images = new Set<string>();
      for (const file of await fs.readdir(full, { withFileTypes: true })) {
        if (file.isFile() && !unsafeNameReason(file.name)) images.add(file.name);
        else tree.strays.push(path.join(full, file.name));
      }
      tree.albums.set(entry.name, images);
    }
    return tree;
  }
}

async function fsync(file: string): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

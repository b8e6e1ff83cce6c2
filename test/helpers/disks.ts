import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTmpDir, removeDir } from './tmp-dir.js';

const run = promisify(execFile);

/** A small tmpfs mounted on a temp dir: a disk a test can really fill. */
export interface Tmpfs {
  /** The mount point. */
  dir: string;
  /** Writes a filler file until the disk says ENOSPC: from then on, no file can grow by a page. */
  fill(): Promise<void>;
  /** Removes the filler file: the space is back. */
  free(): Promise<void>;
  /** Free bytes (statfs). */
  available(): Promise<number>;
  /** Unmounts (lazily, if something still holds a file) and removes the mount point. */
  unmount(): Promise<void>;
}

/**
 * Mounts a tmpfs of `sizeBytes` (needs root: CI runs as root). Resolves undefined where mounting is
 * impossible, so the test can skip with `skipUnlessMounted`.
 * @example const disk = await mountTmpfs(32 << 20); if (!disk) skipUnlessMounted(this, 'a tmpfs');
 */
export async function mountTmpfs(sizeBytes: number): Promise<Tmpfs | undefined> {
  const dir = await makeTmpDir('imagestore-tmpfs-');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir]);
  } catch {
    await removeDir(dir);
    return undefined;
  }
  const filler = path.join(dir, 'filler');
  return {
    dir,
    async fill() {
      const handle = await fs.open(filler, 'a');
      try {
        // Big writes first, then page-sized ones: tmpfs allocates whole pages.
        for (const size of [1 << 20, 4096, 1]) {
          const chunk = Buffer.alloc(size, 0x61);
          for (let i = 0; i < 1 << 16; i += 1) {
            const written = await handle.write(chunk).then((r) => r.bytesWritten, () => 0);
            if (written < size) break;
          }
        }
      } finally {
        await handle.close();
      }
    },
    async free() {
      await fs.rm(filler, { force: true });
    },
    async available() {
      const stats = await fs.statfs(dir);
      return stats.bavail * stats.bsize;
    },
    async unmount() {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      await removeDir(dir);
    },
  };
}

/** A small ext4 file system on a loop device, mounted with errors=remount-ro. */
export interface Ext4 {
  dir: string;
  /** Makes the kernel remount it read-only, as it does on a disk error, even with files open for writing. */
  failReadOnly(): Promise<void>;
  unmount(): Promise<void>;
}

/**
 * Makes and mounts an ext4 image of `sizeBytes` (needs root, loop devices and mkfs.ext4). Resolves
 * undefined where that is impossible.
 */
export async function mountExt4(sizeBytes: number): Promise<Ext4 | undefined> {
  const base = await makeTmpDir('imagestore-ext4-');
  const image = path.join(base, 'disk.img');
  const dir = path.join(base, 'mnt');
  try {
    await fs.mkdir(dir);
    await fs.writeFile(image, '');
    await fs.truncate(image, sizeBytes);
    await run('/usr/sbin/mkfs.ext4', ['-q', '-F', image]);
    await run('mount', ['-o', 'loop,errors=remount-ro', image, dir]);
  } catch {
    await removeDir(base);
    return undefined;
  }
  return {
    dir,
    async failReadOnly() {
      const { stdout } = await run('findmnt', ['-n', '-o', 'SOURCE', dir]);
      // ext4's test hook: reports an error, and errors=remount-ro does the rest.
      await fs.writeFile(`/sys/fs/ext4/${path.basename(stdout.trim())}/trigger_fs_error`, '1');
    },
    async unmount() {
      await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
      await removeDir(base);
    },
  };
}

/**
 * Skips the test where the file system it needs cannot be mounted (not root), with a message saying
 * so. Under CI (CI=true, which runs as root) that fails the test instead: it must run there.
 */
export function skipUnlessMounted(context: Mocha.Context, what: string): never {
  if (process.env.CI) throw new Error(`could not mount ${what}: this test must run in CI, as root`);
  // eslint-disable-next-line no-console
  console.log(`      (skipped: mounting ${what} needs root; run as root to test a full or read-only disk)`);
  context.skip();
}

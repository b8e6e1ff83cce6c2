import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, constants, fstatSync, ftruncateSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';

/** The data dir's owner: release it when the store closes. */
export interface DataDirLock {
  /** How the data dir is held: a kernel `flock`, or (where none can be taken) a pid + start-time record. */
  readonly kind: 'flock' | 'pid';
  /** Gives the data dir up (removes the lock file). Idempotent. */
  release(): Promise<void>;
}

/** Options of `lockDataDir` (tests replace the flock command to exercise the fallback). */
export interface LockOptions {
  /** util-linux (or busybox) `flock(1)`; default `flock` from PATH. */
  flockCommand?: string;
}

/** Exit status we ask flock(1) to use when another process holds the lock. */
const CONFLICT = 75;

/**
 * Makes this process the data dir's only writer. The store's locks are in memory,
 * so two processes on one data dir could overwrite each other.
 *
 * Why flock(1) on our own descriptor: Node has no flock in core, and a lock must
 * be a kernel one, released when the process dies however it dies, so that a
 * pid reused by an unrelated process after a SIGKILL can never block a restart
 * (a pid check did). We open the lock file and let `flock --nonblock 3` lock it
 * through a copy of that descriptor: flock locks belong to the open file
 * description, which our descriptor keeps after the short-lived command exits,
 * so the lock is held by this process until it closes the file or dies. No
 * native addon, no helper process left running, and it works between
 * containers sharing a volume (unlike an abstract socket, which is per network
 * namespace). Where flock(1) is missing (e.g. macOS), the file records the pid
 * with its start time and boot id, and a record whose process is gone, or is
 * another process with the same pid, is taken over.
 *
 * @param file the lock file (`<data dir>/.imagestore/owner.pid`); it holds the owner's pid, for people
 * @throws {Error} when another live process holds the data dir
 */
export async function lockDataDir(file: string, options: LockOptions = {}): Promise<DataDirLock> {
  for (let attempt = 0; ; attempt += 1) {
    const fd = openSync(file, constants.O_RDWR | constants.O_CREAT, 0o644);
    let locked: boolean | undefined;
    try {
      locked = await flock(fd, options.flockCommand ?? 'flock');
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    if (locked === undefined) {
      closeSync(fd);
      return claimByPid(file);
    }
    if (!locked) {
      const holder = readFileSync(file, 'utf8').split('\n')[0].trim();
      closeSync(fd);
      throw new Error(`data dir is in use by another imagestore process (pid ${holder || 'unknown'}, lock held on ${file})`);
    }
    // A releasing owner removes the file before it unlocks: a lock on a removed file is worth nothing.
    if (!isSameFile(fd, file) && attempt < 10) {
      closeSync(fd);
      continue;
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`, 0);
    return {
      kind: 'flock',
      release: onlyOnce(async () => {
        try {
          if (isSameFile(fd, file)) unlinkSync(file);
        } catch {
          // A read-only disk keeps the file: harmless, what counts is the lock, which closing releases.
        }
        closeSync(fd);
      }),
    };
  }
}

/** Locks `fd` with flock(1): true when locked, false when held elsewhere, undefined when flock(1) cannot run. */
async function flock(fd: number, command: string): Promise<boolean | undefined> {
  const child = spawn(command, ['--nonblock', '--exclusive', '--conflict-exit-code', String(CONFLICT), '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  let code: number | null;
  try {
    [code] = (await once(child, 'close')) as [number | null];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  if (code === 0) return true;
  if (code === CONFLICT) return false;
  throw new Error(`flock(1) failed on the data dir lock (exit ${code}): ${stderr.trim()}`);
}

/** The fallback: a record of pid, start time and boot id; refused while that very process runs. */
async function claimByPid(file: string): Promise<DataDirLock> {
  const [pid, identity] = readFileSync(file, 'utf8').split('\n');
  const previous = Number(pid);
  if (Number.isInteger(previous) && previous > 0 && previous !== process.pid && processIdentity(previous) === (identity ?? '') && isAlive(previous)) {
    throw new Error(`data dir is in use by another imagestore process (pid ${previous}, see ${file})`);
  }
  const fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o644);
  try {
    writeSync(fd, `${process.pid}\n${processIdentity(process.pid)}\n`);
  } finally {
    closeSync(fd);
  }
  return {
    kind: 'pid',
    release: onlyOnce(async () => {
      if (Number(readFileSync(file, 'utf8').split('\n')[0]) === process.pid) unlinkSync(file);
    }),
  };
}

/**
 * What tells a process from a later one with the same pid: boot id and start time in clock
 * ticks (field 22 of /proc/<pid>/stat). Empty where /proc is missing: then only the pid counts.
 */
function processIdentity(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its ')'.
    const startTicks = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${startTicks}`;
  } catch {
    return '';
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function isSameFile(fd: number, file: string): boolean {
  try {
    const [held, named] = [fstatSync(fd), statSync(file)];
    return held.ino === named.ino && held.dev === named.dev;
  } catch {
    return false;
  }
}

/** Runs `fn` on the first call only. */
function onlyOnce(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  return () => (done ??= fn());
}

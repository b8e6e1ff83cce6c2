/**
 * Every thread's CPU time by activity, from `perf record -e cpu-clock -g -p PID`,
 * for bench/profile.ts: what the JavaScript profile cannot see (libvips decoding
 * on its own threads, fsync and file system work in the kernel on libuv's pool,
 * sha256 in OpenSSL, V8's garbage collector and compiler threads).
 *
 * Each sample is put in a thread group (main thread, libuv pool, libvips workers,
 * V8 helpers, by the frames at the root of their stacks) and an activity (the
 * system call it is in, else libvips, sha256, GC, compiler, malloc, JavaScript).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';

/** CPU ms by thread group and activity. */
export interface PerfSummary {
  totalMs: number;
  cells: Map<string, Map<string, number>>;
}

export const THREAD_GROUPS = ['main thread', 'libuv pool', 'libvips workers', 'V8 helpers', 'other threads'] as const;

interface Sample {
  tid: number;
  comm: string;
  periodNs: number;
  frames: Array<{ sym: string; dso: string }>;
}

const SYSCALL_GROUPS: Array<[RegExp, string]> = [
  [/^(fsync|fdatasync|sync_file_range)$/, 'kernel: fsync, fdatasync'],
  [/^(openat|openat2|open|close|newstat|stat|statx|newfstatat|newlstat|lstat|fstat|newfstat|lseek|access|faccessat2?|rename|renameat2?|link|linkat|unlink|unlinkat|mkdir|mkdirat|getdents64|readlink)$/, 'kernel: file metadata (open, close, stat, lseek, rename, link, unlink)'],
  [/^(read|pread64|readv|preadv2?)$/, 'kernel: read, pread'],
  [/^(write|pwrite64|writev|pwritev2?|sendmsg|sendto)$/, 'kernel: write, writev (sockets, files, log)'],
  [/^(recvfrom|recvmsg)$/, 'kernel: read, pread'],
  [/^futex$/, 'kernel: futex (thread hand-offs)'],
  [/^(epoll_pwait|epoll_wait|epoll_ctl)$/, 'kernel: epoll'],
  [/^(mmap|mmap_pgoff|munmap|madvise|mprotect|brk|mremap)$/, 'kernel: mmap, munmap, madvise (memory)'],
];

/** What a sample's CPU was doing. */
function activityOf(frames: Sample['frames']): string {
  // Leaf first: the handler is the nearest frame below do_syscall_64 named like one.
  const syscallAt = frames.findIndex((f) => f.sym === 'do_syscall_64');
  if (syscallAt > 0) {
    for (let i = syscallAt - 1; i >= 0; i--) {
      // Handlers are often inlined into do_<name> (do_writev) or ksys_<name> (ksys_read).
      const m = /^(?:__x64_sys_|__do_sys_|__se_sys_|ksys_|__ia32_sys_|do_sys_|do_)(\w+)$/.exec(frames[i].sym.replace(/\.(part|isra|constprop|cold)\.\d+$/, ''));
      if (!m) continue;
      for (const [re, group] of SYSCALL_GROUPS) if (re.test(m[1])) return group;
      if (process.env.PERF_PROFILE_DEBUG) process.stderr.write(`other system call: ${m[1]}\n`);
      return 'kernel: other system calls';
    }
    // On the way back to user space: rescheduling, signals, interrupts taken then.
    return 'kernel: interrupts, scheduling';
  }
  if (frames.some((f) => f.sym.startsWith('asm_exc_page_fault'))) return 'kernel: page faults';
  if (frames[0]?.dso.includes('kernel')) return 'kernel: interrupts, scheduling';
  if (frames.some((f) => /libvips|sharp-|libjpeg|libpng|libwebp|libheif|libspng|libgsf|libexif/.test(f.dso))) return 'libvips (sharp)';
  const leaf = frames[0]?.sym ?? '';
  if (/sha256/i.test(leaf)) return 'sha256 (OpenSSL)';
  if (frames.some((f) => /Heap::|Scaveng|MarkCompact|Sweeper|ConcurrentMarking|MinorM|GCTracer|MarkingVisitor|MemoryAllocator/.test(f.sym))) return 'V8 garbage collector';
  if (frames.some((f) => /compiler::|Compile|Maglev|Baseline/.test(f.sym))) return 'V8 compiler';
  if (frames[0]?.dso.includes('libc.so') && /alloc|free|_int_|malloc|unlink_chunk|tcache/.test(leaf)) return 'malloc, free';
  if (frames[0]?.dso.includes('libc.so') && /mem(cpy|move|set|cmp)/.test(leaf)) return 'memcpy, memset';
  return 'JavaScript, V8 and node runtime (see the CPU profile)';
}

function threadGroupOf(sample: Sample, pid: number): (typeof THREAD_GROUPS)[number] | undefined {
  if (sample.tid === pid) return 'main thread';
  if (sample.comm.startsWith('libvips')) return 'libvips workers';
  if (sample.frames.some((f) => f.sym === 'worker' && f.dso.endsWith('/node'))) return 'libuv pool';
  if (sample.frames.some((f) => f.sym.includes('PlatformWorkerThread'))) return 'V8 helpers';
  return undefined;
}

/** Starts `perf record` on every thread of `pid`; `stop()` ends it (SIGINT, our child only). */
export function startPerf(pid: number, file: string, hz = 999): { stop(): Promise<void> } {
  const perf = spawn('perf', ['record', '-e', 'cpu-clock', '-F', String(hz), '-g', '-p', String(pid), '-o', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = once(perf, 'exit');
  let stderr = '';
  perf.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return {
    async stop() {
      perf.kill('SIGINT');
      const [code] = await exited;
      if (code !== 0 && code !== null) throw new Error(`perf record exited ${code}: ${stderr}`);
    },
  };
}

/** Reads a perf.data file (`perf script`) and sums CPU time by thread group and activity. */
export async function summarisePerf(file: string, pid: number): Promise<PerfSummary> {
  const script = spawn('perf', ['script', '-i', file, '-F', 'tid,comm,period,ip,sym,dso'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const samples: Sample[] = [];
  let current: Sample | undefined;
  for await (const line of createInterface({ input: script.stdout! })) {
    const head = /^(.+?)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (head) {
      current = { comm: head[1].trim(), tid: Number(head[2]), periodNs: Number(head[3]), frames: [] };
      samples.push(current);
      continue;
    }
    const frame = /^\s+[0-9a-f]+\s+(.*)\s+\(([^()]*)\)\s*$/.exec(line);
    if (frame && current) current.frames.push({ sym: frame[1], dso: frame[2] });
  }
  await once(script, 'exit');
  // A thread whose stacks are cut short (libvips has no frame pointers) is known from its other samples.
  const groupOfTid = new Map<number, (typeof THREAD_GROUPS)[number]>();
  for (const s of samples) {
    const g = threadGroupOf(s, pid);
    if (g) groupOfTid.set(s.tid, g);
  }
  const summary: PerfSummary = { totalMs: 0, cells: new Map() };
  for (const s of samples) {
    const group = groupOfTid.get(s.tid) ?? 'other threads';
    const activity = activityOf(s.frames);
    const ms = s.periodNs / 1e6;
    summary.totalMs += ms;
    const row = summary.cells.get(activity) ?? new Map<string, number>();
    row.set(group, (row.get(group) ?? 0) + ms);
    summary.cells.set(activity, row);
  }
  return summary;
}

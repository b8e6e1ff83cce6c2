/**
 * System calls per upload, by kind, for one or more builds (issue 13, uploads). Counts do not
 * depend on the machine's load the way CPU time and rates do, so they show a change in the number
 * of file operations and thread hand-offs (futex) even on a busy shared machine.
 *
 *   npx tsx bench/upload-syscalls.ts [--count 300] [--concurrency 16] [LABEL=path/to/dist/src/main.js ...]
 *
 * Per build (default: this worktree's `dist/src/main.js`): a fresh service, 300 warm-up uploads of
 * the ~100 KiB JPEG into one album, then `strace -f -c` on the service during `count` more uploads
 * (bench/uploads.ts, `concurrency` at a time) and 1.5 s after them (the checkpoint). Prints one
 * line per build. strace slows the service down a lot: only the counts mean something.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { parseArgs } from 'node:util';
import { jpegOfAbout } from './fixtures.js';
import { createAlbum, makeTmpDir, sleep, startService } from './lib.js';
import { uploadBurst } from './uploads.js';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { count: { type: 'string', default: '300' }, concurrency: { type: 'string', default: '16' } },
});
const count = Number(args.count);
const concurrency = Number(args.concurrency);
const builds = (positionals.length > 0 ? positionals : ['this build=dist/src/main.js']).map((spec) => {
  const at = spec.indexOf('=');
  if (at < 1) throw new Error(`${spec}: expected LABEL=path/to/main.js`);
  return { label: spec.slice(0, at), main: spec.slice(at + 1) };
});

const { bytes } = await jpegOfAbout();
const dir = await makeTmpDir('imagestore-syscalls-');
try {
  for (const [i, { label, main }] of builds.entries()) {
    const svc = await startService({ main, logFile: `${dir}/service-${i}.log`, env: { LOG_LEVEL: 'info' } });
    try {
      await createAlbum(svc.api, 'a');
      const url = `${svc.api}/albums/a/images`;
      await uploadBurst({ url, file: bytes, prefix: 'warm', count: 300, concurrency, failFast: true });
      const out = `${dir}/strace-${i}.txt`;
      const strace = spawn('strace', ['-f', '-c', '-o', out, '-p', String(svc.pid)], { stdio: 'ignore' });
      await sleep(1000); // attached to every thread
      const burst = await uploadBurst({ url, file: bytes, prefix: 'm', count, concurrency });
      await sleep(1500);
      strace.kill('SIGINT');
      await new Promise((resolve) => strace.once('exit', resolve));
      const rows = (await fs.readFile(out, 'utf8'))
        .split('\n')
        .filter((line) => /^\s*[\d.]+\s+[\d.]+/.test(line))
        .map((line) => line.trim().split(/\s+/))
        .map((cols) => ({ calls: Number(cols[3]), name: cols[cols.length - 1] }))
        .filter((row) => row.name !== 'total')
        .sort((a, b) => b.calls - a.calls);
      const total = rows.reduce((sum, row) => sum + row.calls, 0);
      const top = rows.slice(0, 18).map((row) => `${row.name} ${(row.calls / count).toFixed(2)}`).join(', ');
      console.log(`${label}: ${JSON.stringify(burst.statuses)}; ${(total / count).toFixed(1)} system calls per upload: ${top}`);
    } finally {
      await svc.close();
    }
  }
} finally {
  await fs.rm(dir, { recursive: true, force: true });
}

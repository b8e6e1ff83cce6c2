import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { lockDataDir } from '../../src/albums/owner.js';
import { makePng } from '../helpers/images.js';
import { REPO_ROOT, spawnService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/** A process that has nothing to do with imagestore: it stands in for one that got a dead owner's pid. */
function unrelatedProcess(): ChildProcess {
  return spawn('sleep', ['60'], { stdio: 'ignore' });
}

async function endProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

const NO_FLOCK = 'imagestore-test-no-such-flock';

// Issue 12, item 11: a stale owner.pid whose pid belongs to an unrelated process blocked a restart.
describe('the data dir lock (issue 12, item 11)', function () {
  this.timeout(60_000);
  let dataDir: string;
  const children: ChildProcess[] = [];

  beforeEach(async () => {
    dataDir = await makeTmpDir();
  });
  afterEach(async () => {
    for (const child of children.splice(0)) await endProcess(child);
    await removeDir(dataDir);
  });

  const ownerFile = () => path.join(dataDir, '.imagestore', 'owner.pid');

  it('restarts at once after a SIGKILL although owner.pid names a live, unrelated process (a reused pid)', async () => {
    const first = await spawnService({ dataDir });
    await first.kill();
    expect((await fs.readFile(ownerFile(), 'utf8')).trim(), 'the crash left owner.pid behind').to.equal(String(first.pid));
    const unrelated = unrelatedProcess();
    children.push(unrelated);
    await fs.writeFile(ownerFile(), `${unrelated.pid}\n`);

    const second = await spawnService({ dataDir });
    try {
      expect((await fs.readFile(ownerFile(), 'utf8')).trim()).to.equal(String(second.pid));
      const res = await fetch(`${second.http}/api/v1/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"albumName":"after-crash"}' });
      expect(res.status).to.equal(201);
    } finally {
      expect(await second.stop()).to.deep.equal({ code: 0, signal: null });
    }
    await fs.access(ownerFile()).then(() => expect.fail('owner.pid kept after a clean stop'), () => undefined);
    expect(unrelated.exitCode, 'the unrelated process was left alone').to.equal(null);
  });

  it('refuses a second live service on the same data dir, even when owner.pid was overwritten', async () => {
    /** Starts a second service on the data dir: its error message, or 'started' (then stops it). */
    const second = () => spawnService({ dataDir }).then(
      async (svc) => {
        await svc.stop();
        return 'started';
      },
      (err: Error) => err.message,
    );
    const first = await spawnService({ dataDir });
    try {
      const refused = await second();
      expect(refused).to.match(/exited before it was ready \(code 1/);
      expect(refused).to.include(`data dir is in use by another imagestore process (pid ${first.pid}`);

      // The file's content is for people: the lock is the kernel's, held by the first process.
      await fs.writeFile(ownerFile(), '0\n');
      expect(await second()).to.match(/data dir is in use by another imagestore process/);

      const form = new FormData();
      form.append('file', new Blob([await makePng()], { type: 'image/png' }), 'still-mine.png');
      await fetch(`${first.http}/api/v1/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"albumName":"a"}' });
      expect((await fetch(`${first.http}/api/v1/albums/a/images`, { method: 'POST', body: form })).status).to.equal(201);
    } finally {
      expect(await first.stop()).to.deep.equal({ code: 0, signal: null });
    }
  });

  describe('without flock(1) (fallback: pid, start time and boot id)', () => {
    /** Runs a process that takes the data dir with the fallback and holds it; resolves once it has it. */
    async function holdWithFallback(file: string): Promise<ChildProcess> {
      const owner = pathToFileURL(path.join(REPO_ROOT, 'src/albums/owner.ts')).href;
      const script = `const { lockDataDir } = await import(${JSON.stringify(owner)});
        await lockDataDir(${JSON.stringify(file)}, { flockCommand: ${JSON.stringify(NO_FLOCK)} });
        console.log('locked'); setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(child);
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
      expect(line).to.equal('locked');
      return child;
    }

    it('refuses while the recorded process runs, and takes over once it is gone or its pid is another process\'s', async () => {
      await fs.mkdir(path.dirname(ownerFile()), { recursive: true });
      const holder = await holdWithFallback(ownerFile());
      let refused: Error | undefined;
      await lockDataDir(ownerFile(), { flockCommand: NO_FLOCK }).catch((err: Error) => (refused = err));
      expect(refused?.message).to.include(`in use by another imagestore process (pid ${holder.pid}`);

      await endProcess(holder);
      const lock = await lockDataDir(ownerFile(), { flockCommand: NO_FLOCK });
      expect(lock.kind).to.equal('pid');
      await lock.release();

      // The pid now belongs to an unrelated process: its start time differs from the recorded one.
      const unrelated = unrelatedProcess();
      children.push(unrelated);
      await fs.writeFile(ownerFile(), `${unrelated.pid}\n00000000-0000-0000-0000-000000000000:1\n`);
      const again = await lockDataDir(ownerFile(), { flockCommand: NO_FLOCK });
      expect((await fs.readFile(ownerFile(), 'utf8')).split('\n')[0]).to.equal(String(process.pid));
      await again.release();
      await fs.access(ownerFile()).then(() => expect.fail('owner.pid kept after release'), () => undefined);
    });
  });
});

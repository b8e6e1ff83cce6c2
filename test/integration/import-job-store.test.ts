import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { COMPACT_FACTOR, JobStore, MIN_COMPACT_BYTES } from '../../src/imports/job-store.js';
import type { ImportJob } from '../../src/imports/job.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/** A pino logger whose lines are kept, parsed. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

function newJob(id: string, count: number): ImportJob {
  const at = new Date().toISOString();
  return {
    id, album: 'a', state: 'queued', createdAt: at, updatedAt: at, duplicatesIgnored: 0,
    items: Array.from({ length: count }, (_, i) => ({ url: `http://127.0.0.1:9/some/longer/path/to/image-${i}.png`, state: 'queued' as const, bytes: 0, attempts: 0 })),
  };
}

/** Item `i` stored, as the import service records it. */
function store(job: ImportJob, i: number): void {
  job.items[i] = { ...job.items[i], state: 'stored', bytes: 1234, attempts: 1, image: { name: `image-${i}.png`, id: `id${i}` } };
  job.state = job.items.every((item) => item.state === 'stored') ? 'done' : 'running';
  job.updatedAt = new Date().toISOString();
}

const size = (file: string) => fs.stat(file).then((s) => s.size, () => 0);

describe('import job store: snapshot plus append-only log (gh-12 item 14)', () => {
  let dir: string;
  const snapshot = (id: string) => path.join(dir, `${id}.json`);
  const logOf = (id: string) => path.join(dir, `${id}.log`);
  beforeEach(async () => {
    dir = await makeTmpDir();
  });
  afterEach(async () => removeDir(dir));

  it('writes one short line per item change of a 1,000-URL job and leaves the snapshot alone', async () => {
    const jobs = new JobStore(dir, pino({ level: 'silent' }));
    const job = newJob('imp_big', 1000);
    await jobs.create(job);
    const before = await fs.stat(snapshot(job.id));
    expect(before.size).to.be.above(50_000);
    let logged = 0;
    for (let i = 0; i < 100; i++) {
      store(job, i);
      await jobs.append(job, i);
      const grown = (await size(logOf(job.id))) - logged;
      expect(grown, `bytes written for change ${i}`).to.be.within(1, 400);
      logged += grown;
    }
    const after = await fs.stat(snapshot(job.id));
    expect([after.ino, after.size, after.mtimeMs]).to.deep.equal([before.ino, before.size, before.mtimeMs]);

    const [loaded] = await new JobStore(dir, pino({ level: 'silent' })).loadAll();
    expect(loaded).to.deep.equal(job);
  });

  it('drops and logs a torn last line, then folds the log into a new snapshot', async () => {
    const jobs = new JobStore(dir, pino({ level: 'silent' }));
    const job = newJob('imp_torn', 3);
    await jobs.create(job);
    store(job, 0);
    await jobs.append(job, 0);
    await fs.appendFile(logOf(job.id), '{"n":2,"at":"2026-01-01T00:00:00.000Z","state":"done","i":1,"item":{"url":"http://127.0.0.1:9/so');

    const { log, lines } = recordingLogger();
    const [loaded] = await new JobStore(dir, log).loadAll();
    expect(loaded).to.deep.equal(job);
    expect(loaded.items.map((i) => i.state)).to.deep.equal(['stored', 'queued', 'queued']);
    expect(lines.filter((l) => l.level === 40).map((l) => [l.msg, l.jobId])).to.deep.equal([['torn last line of an import job log dropped', job.id]]);
    expect(await fs.readdir(dir)).to.deep.equal([`${job.id}.json`]);

    // Appends after the load start on a line of their own.
    const again = new JobStore(dir, pino({ level: 'silent' }));
    const [resumed] = await again.loadAll();
    store(resumed, 1);
    await again.append(resumed, 1);
    expect((await new JobStore(dir, pino({ level: 'silent' })).loadAll())[0].items.map((i) => i.state)).to.deep.equal(['stored', 'stored', 'queued']);
  });

  it('ignores log lines already in the snapshot (a crash between the new snapshot and the log removal)', async () => {
    const jobs = new JobStore(dir, pino({ level: 'silent' }));
    const job = newJob('imp_stale', 2);
    await jobs.create(job);
    store(job, 0);
    await jobs.append(job, 0);
    const staleLog = await fs.readFile(logOf(job.id));
    store(job, 1);
    await jobs.compact(job); // the job has finished
    expect(job.state).to.equal('done');
    await fs.writeFile(logOf(job.id), staleLog); // its line says the job is still running

    const [loaded] = await new JobStore(dir, pino({ level: 'silent' })).loadAll();
    expect(loaded.state).to.equal('done');
    expect(loaded).to.deep.equal(job);
  });

  it(`compacts the log once it passes ${COMPACT_FACTOR} times the snapshot (at least ${MIN_COMPACT_BYTES / 1024} KiB)`, async () => {
    const jobs = new JobStore(dir, pino({ level: 'silent' }));
    const job = newJob('imp_churn', 2000);
    await jobs.create(job);
    let compactions = 0;
    let inode = (await fs.stat(snapshot(job.id))).ino;
    for (let i = 0; i < job.items.length; i++) {
      store(job, i);
      await jobs.append(job, i);
      const snap = await fs.stat(snapshot(job.id));
      if (snap.ino !== inode) {
        compactions += 1;
        inode = snap.ino;
      }
      expect(await size(logOf(job.id))).to.be.at.most(Math.max(MIN_COMPACT_BYTES, COMPACT_FACTOR * snap.size));
    }
    expect(compactions).to.be.within(1, 3);
    expect((await new JobStore(dir, pino({ level: 'silent' })).loadAll())[0]).to.deep.equal(job);
  });

  it('removes temporary files and logs without a snapshot at load; remove() deletes both files', async () => {
    const jobs = new JobStore(dir, pino({ level: 'silent' }));
    const job = newJob('imp_kept', 1);
    await jobs.create(job);
    store(job, 0);
    await jobs.append(job, 0);
    await fs.writeFile(path.join(dir, 'meta-0123'), 'half a snapshot');
    await fs.writeFile(logOf('imp_gone'), '{}\n');
    const again = new JobStore(dir, pino({ level: 'silent' }));
    expect((await again.loadAll()).map((j) => j.id)).to.deep.equal([job.id]);
    expect(await fs.readdir(dir)).to.deep.equal([`${job.id}.json`]);
    store(job, 0);
    await again.append(job, 0);
    await again.remove(job.id);
    expect(await fs.readdir(dir)).to.deep.equal([]);
  });
});

import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import supertest from 'supertest';
import { albumPath, createAlbum } from '../helpers/api.js';
import { createImportJob, startImageServer, waitForImportJob, type ImageServer } from '../helpers/image-server.js';
import { recordEvents, type EventRecorder } from '../helpers/mqtt.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

type Http = ReturnType<typeof supertest>;

const CONCURRENCY = 8;
const ENV = { MAX_JSON_BYTES: String(1024 * 1024), IMPORT_ALLOW_HOSTS: '127.0.0.1', IMPORT_CONCURRENCY: String(CONCURRENCY), IMPORT_TIMEOUT_MS: '20000', IMPORT_RETRY_BASE_DELAY_MS: '10', LOG_LEVEL: 'info' };

/** Bytes the process has passed to write(2) so far: files, sockets and pipes alike. */
async function writtenBytes(pid: number): Promise<number> {
  const io = await fs.readFile(`/proc/${pid}/io`, 'utf8');
  return Number(/^wchar: (\d+)$/m.exec(io)![1]);
}

/** Waits (bounded) for the event that says the job has ended; the service publishes it after saving the job. */
async function jobEnded(recorder: EventRecorder, jobId: string, timeoutMs: number): Promise<void> {
  await waitFor(`the end of import job ${jobId}`, () =>
    recorder.events.some((e) => e.data.jobId === jobId && (e.type === 'imagestore.import.completed' || e.type === 'imagestore.import.failed')), timeoutMs, 50);
}

async function imageNames(http: Http, album: string): Promise<string[]> {
  return ((await http.get(`${albumPath(album)}/images`).expect(200)).body as { imageList: string[] }).imageList.sort();
}

/** `u0001.png`… */
const nameOf = (i: number) => `u${String(i).padStart(4, '0')}.png`;

describe('import jobs journal item changes instead of rewriting the job (gh-12 item 14)', () => {
  let images: ImageServer;
  let dataDir: string;
  let child: SpawnedService | undefined;
  before(async () => {
    images = await startImageServer();
  });
  after(async () => images?.close());
  beforeEach(async () => {
    dataDir = await makeTmpDir();
  });
  afterEach(async () => {
    await child?.kill();
    child = undefined;
    await removeDir(dataDir);
  });

  it('writes about as many bytes per URL for a 1,000-URL job as for a 100-URL job', async function () {
    this.timeout(240_000); // 1,100 imports, each stored durably, on a shared 2-core machine
    child = await spawnService({ dataDir, env: ENV });
    const http = supertest(child.http);
    await createAlbum(http, 'bytes');
    const recorder = await recordEvents(child.mqtt);
    try {
      // What the service writes for one imported URL (image, metadata, events, MQTT, job store), measured for two job sizes.
      const perUrl = async (count: number): Promise<number> => {
        const before = await writtenBytes(child!.pid);
        const urls = Array.from({ length: count }, (_, i) => `${images.url}/red/bytes-${count}/${nameOf(i)}`);
        const { job } = await createImportJob(http, 'bytes', urls);
        await jobEnded(recorder, job.id, 200_000);
        return ((await writtenBytes(child!.pid)) - before) / count;
      };
      const small = await perUrl(100);
      const big = await perUrl(1000);
      // Rewriting the whole job on each item change makes a URL cost O(URLs): about 10 times more in the big job
      // (and over 250 KiB per URL there); journaling the change makes it O(1).
      expect(big, `bytes written per URL: ${Math.round(small)} (100 URLs), ${Math.round(big)} (1,000 URLs)`).to.be.below(1.5 * small);
      expect(big).to.be.below(32 * 1024);
    } finally {
      await recorder.close();
    }
    expect(await child.stop()).to.deep.equal({ code: 0, signal: null });
  });

  it('resumes after a SIGKILL from the snapshot and the log, drops a torn last line, and stores every URL once', async function () {
    this.timeout(120_000); // two cold starts of the real service
    child = await spawnService({ dataDir, env: ENV });
    let http = supertest(child.http);
    await createAlbum(http, 'crash');
    const fast = 300;
    const urls = [
      ...Array.from({ length: fast }, (_, i) => `${images.url}/red/crash/${nameOf(i)}`),
      // Taken last (items start in URL order), held until released: they occupy every slot at the kill.
      ...Array.from({ length: CONCURRENCY }, (_, i) => `${images.url}/hang/crash/${nameOf(fast + i)}`),
    ];
    const recorder = await recordEvents(child.mqtt);
    const { job } = await createImportJob(http, 'crash', urls);
    try {
      // A progress event is published after its item's change was written: these 300 are on disk (in the page cache).
      await waitFor('300 stored items', () =>
        recorder.events.filter((e) => e.data.jobId === job.id && e.type === 'imagestore.import.progress' && e.data.state === 'stored').length === fast, 100_000, 50);
      await images.waitForHits('/hang/crash/', CONCURRENCY);
    } finally {
      await recorder.close();
    }
    expect(await child.kill()).to.deep.equal({ code: null, signal: 'SIGKILL' });

    // A crash in the middle of an append leaves the start of a line.
    const log = path.join(dataDir, '.imagestore', 'imports', `${job.id}.log`);
    await fs.appendFile(log, '{"n":999999,"at":"2026-01-01T00:00:00.000Z","state":"running","i":0,"item":{"url":"http://127.0');

    child = await spawnService({ dataDir, env: ENV });
    http = supertest(child.http);
    expect(child.logs('torn last line of an import job log dropped').map((l) => l.jobId)).to.deep.equal([job.id]);
    expect(child.logs('resuming import job').map((l) => [l.jobId, l.queued])).to.deep.equal([[job.id, CONCURRENCY]]);
    await images.waitForHits('/hang/crash/', 2 * CONCURRENCY);
    images.release('crash');
    const done = await waitForImportJob(http, job.id, undefined, 30_000);
    expect(done.state).to.equal('done');
    expect(done.counts).to.deep.equal({ queued: 0, downloading: 0, stored: urls.length, failed: 0, cancelled: 0 });
    expect(done.items.map((i) => i.image?.name)).to.deep.equal(urls.map((_, i) => nameOf(i)));
    expect(images.hits('/red/crash/'), 'no stored item was downloaded again').to.equal(fast);
    expect(await imageNames(http, 'crash')).to.deep.equal(urls.map((_, i) => nameOf(i)));
    // The log was folded into the snapshot at the start, and the finished job is one file.
    expect((await fs.readdir(path.dirname(log))).filter((f) => f.startsWith(job.id))).to.deep.equal([`${job.id}.json`]);
    expect(await child.stop()).to.deep.equal({ code: 0, signal: null });
  });
});

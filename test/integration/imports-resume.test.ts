import { expect } from 'chai';
import path from 'node:path';
import supertest from 'supertest';
import { defaultConfig, type Config } from '../../src/config.js';
import type { ImportJob } from '../../src/imports/job.js';
import { JobStore } from '../../src/imports/job-store.js';
import { silentLogger } from '../../src/logger.js';
import { albumPath, createAlbum } from '../helpers/api.js';
import { createImportJob, getImportJob, startImageServer, waitForImportJob, type ImageServer } from '../helpers/image-server.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

type Http = ReturnType<typeof supertest>;

async function imageNames(http: Http, album: string): Promise<string[]> {
  return ((await http.get(`${albumPath(album)}/images`).expect(200)).body as { imageList: string[] }).imageList.sort();
}

/** The job store of a stopped service's data dir. */
function jobStore(dataDir: string): JobStore {
  return new JobStore(path.join(dataDir, '.imagestore', 'imports'), silentLogger());
}

/** The job as its files on disk say (read only while the service is stopped). */
async function jobOnDisk(dataDir: string, jobId: string): Promise<ImportJob> {
  return (await jobStore(dataDir).loadAll()).find((j) => j.id === jobId)!;
}

/** Two URLs that answer at once and two held at the image server until `release(gate)`. */
function resumeUrls(images: ImageServer, gate: string): string[] {
  return [`${images.url}/red/${gate}/one.png`, `${images.url}/blue/${gate}/two.jpg`, `${images.url}/hang/${gate}/three.png`, `${images.url}/hang/${gate}/four.png`];
}

const EXPECTED_NAMES = ['four.png', 'one.png', 'three.png', 'two.jpg'];

describe('import jobs survive a restart', () => {
  let images: ImageServer;
  before(async () => {
    images = await startImageServer();
  });
  after(async () => images?.close());

  describe('in process: stop mid-job, start again on the same data dir', () => {
    let svc: TestService | undefined;
    let dataDir: string;
    let config: Config;
    before(async () => {
      const imports = { ...defaultConfig().imports, concurrency: 4, timeoutMs: 10_000, retries: 1, retryBaseDelayMs: 10, allowHosts: ['127.0.0.1'] };
      svc = await startTestService({ config: { imports } });
      ({ dataDir, config } = svc); // config.imageDbDir is the temp data dir
    });
    after(async () => svc?.close());

    it('resumes the unfinished items, does not store any image twice, and completes the job', async () => {
      await createAlbum(svc!.http, 'resumed');
      const { job } = await createImportJob(svc!.http, 'resumed', resumeUrls(images, 'inproc'));
      await images.waitForHits('/hang/inproc/', 2);
      const midway = await waitForImportJob(svc!.http, job.id, (j) => j.counts.stored === 2);
      expect(midway.items.map((i) => i.state)).to.deep.equal(['stored', 'stored', 'downloading', 'downloading']);

      await svc!.stop();
      const held = images.requests.filter((r) => r.path.startsWith('/hang/inproc/'));
      expect(held.every((r) => r.aborted), 'downloads in flight are aborted at shutdown').to.equal(true);
      const saved = await jobOnDisk(dataDir, job.id);
      // stop() waited for the aborted downloads to put their items back in the queue on disk.
      expect(saved.items.map((i) => i.state)).to.deep.equal(['stored', 'stored', 'queued', 'queued']);

      // Nothing writes the job after stop(), so this edit stays. The crash window the sha256 check covers: two.jpg was stored, but its progress was not saved.
      const storedTwo = saved.items[1].image!;
      saved.items[1] = { ...saved.items[1], state: 'downloading', image: undefined };
      await jobStore(dataDir).compact(saved);

      svc = await startTestService({ dataDir, config });
      const recorder = await recordEvents(svc.service.mqttUrl);
      try {
        await images.waitForHits('/hang/inproc/', 4); // both held items asked again
        const resumed = await getImportJob(svc.http, job.id);
        expect(resumed.state).to.equal('running');
        expect(resumed.items[0].image?.name).to.equal('one.png');
        expect(resumed.items.slice(2).map((i) => i.state)).to.deep.equal(['downloading', 'downloading']);
        images.release('inproc');
        const done = await waitForImportJob(svc.http, job.id);
        expect(done.state).to.equal('done');
        expect(done.items.map((i) => [i.state, i.image?.name])).to.deep.equal([
          ['stored', 'one.png'], ['stored', 'two.jpg'], ['stored', 'three.png'], ['stored', 'four.png'],
        ]);
        expect(await imageNames(svc.http, 'resumed')).to.deep.equal(EXPECTED_NAMES);
        expect(images.hits('/red/inproc/')).to.equal(1);
        expect(images.hits('/blue/inproc/')).to.equal(2); // downloaded again, recognised as the image already stored
        expect(done.items[1].image).to.deep.equal(storedTwo);
        const completed = await waitFor('the completed event', () =>
          recorder.events.find((e) => e.type === 'imagestore.import.completed' && e.data.jobId === job.id));
        expect(completed.data.counts).to.deep.equal({ queued: 0, downloading: 0, stored: 4, failed: 0, cancelled: 0 });
      } finally {
        await recorder.close();
      }
    });
  });

  describe('in process: stop during a retry backoff', () => {
    let svc: TestService | undefined;
    before(async () => {
      const imports = { ...defaultConfig().imports, timeoutMs: 5000, retries: 2, retryBaseDelayMs: 20_000, allowHosts: ['127.0.0.1'] };
      svc = await startTestService({ config: { imports } });
    });
    after(async () => svc?.close());

    it('does not wait out the backoff at shutdown, and retries the item after the restart', async () => {
      await createAlbum(svc!.http, 'backoff');
      const { job } = await createImportJob(svc!.http, 'backoff', [`${images.url}/flaky/backoff/1/later.png`]);
      await waitFor('the first 500 to be sent', () => images.requests.some((r) => r.path.startsWith('/flaky/backoff/') && r.finished));
      await new Promise((resolve) => setTimeout(resolve, 100)); // the importer reads the 500 and starts its backoff
      const started = Date.now();
      await svc!.stop();
      expect(Date.now() - started, 'stop() waited out the 20 s backoff').to.be.below(3000);
      expect((await jobOnDisk(svc!.dataDir, job.id)).items[0]).to.include({ state: 'queued', attempts: 1 });

      svc = await startTestService({ dataDir: svc!.dataDir, config: svc!.config });
      const done = await waitForImportJob(svc.http, job.id);
      expect(done.items[0]).to.include({ state: 'stored', attempts: 2 });
      expect(images.hits('/flaky/backoff/')).to.equal(2);
    });
  });

  describe('real process: SIGKILL mid-job, start again on the same data dir', () => {
    let dataDir: string;
    let child: SpawnedService | undefined;
    const env = { IMPORT_ALLOW_HOSTS: '127.0.0.1', IMPORT_TIMEOUT_MS: '10000', IMPORT_RETRY_BASE_DELAY_MS: '10', LOG_LEVEL: 'info' };
    before(async () => {
      dataDir = await makeTmpDir();
    });
    after(async () => {
      await child?.kill();
      await removeDir(dataDir);
    });

    it('resumes after a crash, with no image stored twice', async function () {
      this.timeout(60_000); // two cold starts of the real service (tsx) take several seconds each on a busy machine
      child = await spawnService({ dataDir, env });
      let http = supertest(child.http);
      await createAlbum(http, 'crashed');
      const { job } = await createImportJob(http, 'crashed', resumeUrls(images, 'killed'));
      await images.waitForHits('/hang/killed/', 2);
      await waitForImportJob(http, job.id, (j) => j.counts.stored === 2);
      expect(await child.kill()).to.deep.equal({ code: null, signal: 'SIGKILL' });

      child = await spawnService({ dataDir, env });
      http = supertest(child.http);
      expect(child.logs('resuming import job').map((l) => l.jobId)).to.deep.equal([job.id]);
      await images.waitForHits('/hang/killed/', 4);
      images.release('killed');
      const done = await waitForImportJob(http, job.id);
      expect(done.items.map((i) => [i.state, i.image?.name])).to.deep.equal([
        ['stored', 'one.png'], ['stored', 'two.jpg'], ['stored', 'three.png'], ['stored', 'four.png'],
      ]);
      expect(await imageNames(http, 'crashed')).to.deep.equal(EXPECTED_NAMES);
      expect(images.hits('/red/killed/') + images.hits('/blue/killed/')).to.equal(2);
      expect(await child.stop()).to.deep.equal({ code: 0, signal: null });
    });
  });
});


import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { MemoryAlbumStore } from '../../src/albums/memory-store.js';
import { NotFoundError, UnsupportedMediaTypeError, ValidationError } from '../../src/errors.js';
import { ImportService } from '../../src/imports/import-service.js';
import { JobStore } from '../../src/imports/job-store.js';
import { silentLogger } from '../../src/logger.js';
import { AlbumService, type ImageInspector } from '../../src/services/album-service.js';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { RecordingNotifier } from '../helpers/recording-notifier.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** PNG and JPEG by their signatures; anything else 415, as inspectImage would. */
const inspect: ImageInspector = async (file) => {
  const bytes = typeof file === 'string' ? await fs.readFile(file) : file;
  if (bytes.subarray(1, 4).toString('latin1') === 'PNG') return { type: 'image/png', format: 'png' };
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return { type: 'image/jpeg', format: 'jpeg' };
  throw new UnsupportedMediaTypeError('not an image this service accepts');
};

// Issue 14: the import job states on the in-memory store and a recording notifier (downloads from a local HTTP server).
describe('ImportService job states (memory store, recording notifier; issue 14)', () => {
  let dir: string;
  let server: ImageServer;
  let notifier: RecordingNotifier;
  let store: MemoryAlbumStore;
  let imports: ImportService;

  before(async () => {
    server = await startImageServer();
  });
  after(async () => server.close());
  beforeEach(async () => {
    dir = await makeTmpDir();
    await fs.mkdir(path.join(dir, 'staging'));
    store = new MemoryAlbumStore(path.join(dir, 'staging'));
    notifier = new RecordingNotifier();
    const albums = new AlbumService(store, notifier, inspect);
    imports = new ImportService(albums, new JobStore(path.join(dir, 'imports'), silentLogger()), notifier, {
      stagingDir: store.stagingDir, concurrency: 2, timeoutMs: 5000, retries: 1, retryBaseDelayMs: 10, maxBytes: 1024 * 1024, maxUrls: 10,
      allowHosts: new Set(['127.0.0.1']),
    }, silentLogger());
    await imports.start();
    await albums.createAlbum('a');
  });
  afterEach(async () => {
    await imports.close();
    await removeDir(dir);
  });

  const finished = (id: string) => waitFor(`job ${id} finished`, () => {
    const job = imports.get(id);
    return ['done', 'failed', 'cancelled'].includes(job.state) && job;
  });

  it('running, then done: every URL stored once, item states and counts, created and completed events', async () => {
    const urls = [`${server.url}/red/one.png`, `${server.url}/blue/two.jpg`, `${server.url}/red/one.png`];
    const created = await imports.create('a', urls, 'req');
    expect(created.album).to.equal('a');
    expect(created.state).to.be.oneOf(['queued', 'running']); // the first downloads start at once
    const job = await finished(created.id);
    expect(job.state).to.equal('done');
    expect(job.counts).to.include({ stored: 2, failed: 0, queued: 0 });
    expect(job.items.map((i) => i.state)).to.deep.equal(['stored', 'stored']);
    expect((await store.listImages('a')).items).to.deep.equal(['one.png', 'two.jpg']);
    await waitFor('the completed event', () => notifier.types.includes('imagestore.import.completed'));
    const types = notifier.types.filter((t) => t !== 'imagestore.import.progress');
    expect(types).to.deep.equal(['imagestore.album.created', 'imagestore.import.created', 'imagestore.image.created', 'imagestore.image.created', 'imagestore.import.completed']);
  });

  it('failed when no item could be stored (not an image, 404); done when some could', async () => {
    const bad = await finished((await imports.create('a', [`${server.url}/text/x.png`, `${server.url}/missing/y.png`])).id);
    expect(bad.state).to.equal('failed');
    expect(bad.counts).to.include({ stored: 0, failed: 2 });
    await waitFor('the failed event', () => notifier.types.includes('imagestore.import.failed'));
    const mixed = await finished((await imports.create('a', [`${server.url}/text/z.png`, `${server.url}/green/g.png`])).id);
    expect(mixed.state).to.equal('done');
    expect(mixed.counts).to.include({ stored: 1, failed: 1 });
  });

  it('cancelled: items not finished are cancelled, and the job says so once', async () => {
    const job = await imports.create('a', [`${server.url}/hang/gate-cancel/h.png`]);
    await server.waitForHits('/hang/gate-cancel', 1);
    const cancelled = await imports.cancel(job.id);
    expect(cancelled.state).to.equal('cancelled');
    expect(cancelled.counts).to.include({ cancelled: 1, stored: 0 });
    expect(notifier.types.filter((t) => t === 'imagestore.import.cancelled')).to.have.length(1);
    server.release('gate-cancel');
    expect((await imports.cancel(job.id)).state).to.equal('cancelled');
  });

  it('refuses a job for an unknown album (404) or a bad URL list (400) before creating it', async () => {
    expect(await rejection(imports.create('nope', [`${server.url}/red/r.png`]))).to.be.instanceOf(NotFoundError);
    expect(await rejection(imports.create('a', ['ftp://x/y.png']))).to.be.instanceOf(ValidationError);
    expect(await rejection(imports.create('a', []))).to.be.instanceOf(ValidationError);
    expect(imports.list()).to.deep.equal([]);
  });
});

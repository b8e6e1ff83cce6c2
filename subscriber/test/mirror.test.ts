import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config.js';
import { buildEvent, NOTIFIER_TOPIC } from '../../src/notifier/events.js';
import { startTestService, type TestService } from '../../test/helpers/service.js';
import { makeTmpDir, removeDir } from '../../test/helpers/tmp-dir.js';
import { STATE_FILE_NAME } from '../src/mirror/fs-ops.js';
import { waitFor } from '../../test/helpers/wait-for.js';
import { publish, startTestBroker, type TestBroker } from './helpers.js';
import {
  distinctPng as png, downloadedSnapshot, mirrorSnapshot, startMirror, storeApi, waitForConvergence, type RunningMirror,
} from './mirror-helpers.js';

describe('subscriber mirror mode (service and mirror in-process, real broker, real files)', function () {
  let svc: TestService | undefined;
  let dir: string;
  let running: RunningMirror[] = [];
  let broker: TestBroker | undefined;

  /** Starts a mirror of `svc` into `dir` (plus extra flags), stopped by afterEach. */
  async function mirrorOf(service: TestService, ...flags: string[]): Promise<RunningMirror> {
    const m = await startMirror(['--url', service.service.mqttUrl, '--api', service.service.httpUrl, '--mirror', dir, ...flags]);
    running.push(m);
    return m;
  }
  const converged = (service: TestService) => waitForConvergence(dir, service.service.httpUrl);

  beforeEach(async () => {
    dir = path.join(await makeTmpDir('imagestore-mirror-'), 'copy');
  });
  afterEach(async () => {
    await Promise.all(running.map((m) => m.close()));
    running = [];
    await svc?.close();
    svc = undefined;
    await broker?.close();
    broker = undefined;
    await removeDir(path.dirname(dir));
  });

  it('mirrors creates, renames and deletes of images and albums as events arrive, renaming locally', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    const m = await mirrorOf(svc);
    await api.createAlbum('holidays');
    for (let i = 0; i < 3; i++) await api.upload('holidays', `img-${i}.png`, await png(i));
    expect(await converged(svc)).to.have.length(4);

    await api.renameImage('holidays', 'img-0.png', 'beach.png');
    await api.renameAlbum('holidays', 'trips');
    await api.createAlbum('work');
    await api.upload('work', 'desk.png', await png(3));
    await api.deleteImage('trips', 'img-1.png');
    const snapshot = await converged(svc);
    expect(snapshot.filter((l) => !l.endsWith('/')).map((l) => l.split(' ')[0])).to.deep.equal(['trips/beach.png', 'trips/img-2.png', 'work/desk.png']);

    await api.deleteAlbum('trips');
    expect(await converged(svc)).to.have.length(2);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
    // Renames moved local files: each image was downloaded once, by its created event.
    await m.idle();
    expect(m.mirror.stats.downloads).to.equal(4);
    expect(m.mirror.stats.events.failed).to.equal(0);
    expect(m.lines.some((l) => /image\.renamed album=trips image=beach\.png from=img-0\.png|image\.renamed album=holidays image=beach\.png/.test(l))).to.equal(true);
  });

  it('keeps names with spaces, wildcards, percent signs and non-ASCII characters, and "__proto__"', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    await mirrorOf(svc);
    const albums = ['a b#+%?ü', '__proto__', '...'];
    for (const [i, album] of albums.entries()) {
      await api.createAlbum(album);
      await api.upload(album, 'x.png', await png(10 + i));
      await api.renameImage(album, 'x.png', `${album} é€ #?&%2F.png`);
    }
    const snapshot = await converged(svc);
    expect(snapshot).to.include('__proto__/');
    expect(snapshot.some((l) => l.startsWith('a b#+%?ü/a b#+%?ü é€ #?&%2F.png '))).to.equal(true);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
  });

  it('converges after being stopped while the store changed, and downloads nothing more when nothing changed', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    let m = await mirrorOf(svc);
    for (const album of ['keep', 'renamed', 'deleted']) {
      await api.createAlbum(album);
      for (let i = 0; i < 2; i++) await api.upload(album, `${i}.png`, await png(album.length * 10 + i));
    }
    await converged(svc);
    await m.close();

    await api.renameAlbum('renamed', 'moved');
    await api.deleteAlbum('deleted');
    await api.renameImage('keep', '0.png', 'zero.png');
    await api.deleteImage('keep', '1.png');
    await api.upload('keep', '1.png', await png(99)); // same name, other bytes
    await api.createAlbum('new');
    await api.upload('new', 'n.png', await png(98));

    m = await mirrorOf(svc);
    await converged(svc);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
    await m.close();

    // Its state survived: a restart with nothing changed downloads nothing.
    m = await mirrorOf(svc);
    await m.waitForLog('reconciled', 2);
    await m.idle();
    expect(m.mirror.stats.downloads).to.equal(0);
    expect(m.logs.filter((l) => l.msg === 'reconciled').map((l) => l.downloaded)).to.deep.equal([0, 0]);
  });

  it('converges by reconciling alone when no event reaches it (new session), repairing local tampering', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    let m = await mirrorOf(svc, '--client-id', 'mirror-a');
    await api.createAlbum('holidays');
    await api.upload('holidays', 'a.png', await png(1));
    await api.upload('holidays', 'b.png', await png(2));
    await converged(svc);
    await m.close();

    await api.deleteImage('holidays', 'a.png');
    await api.createAlbum('work');
    await api.upload('work', 'c.png', await png(3));
    await fs.writeFile(path.join(dir, 'holidays', 'b.png'), 'changed behind the mirror\'s back');
    await fs.writeFile(path.join(dir, 'stray.txt'), 'not an album');
    await fs.mkdir(path.join(dir, 'holidays', 'nested'));

    m = await mirrorOf(svc, '--client-id', 'mirror-b'); // a fresh session: the broker has queued nothing for it
    await converged(svc);
    await m.idle();
    expect(m.mirror.stats.events.applied + m.mirror.stats.events.downloaded).to.equal(0);
    expect(m.mirror.stats.downloads).to.equal(2); // b.png (tampered) and c.png
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
  });

  it('drops duplicate events, settles stale ones by reconciling, and refuses names that would leave DIR', async () => {
    svc = await startTestService();
    // Only the service may publish on its own broker: these events come through a broker of their own.
    broker = await startTestBroker();
    const m = await startMirror(['--url', broker.url, '--api', svc.service.httpUrl, '--mirror', dir]);
    running.push(m);
    await storeApi(svc.http).createAlbum('holidays');
    const { body } = await storeApi(svc.http).upload('holidays', 'a.png', await png(50));
    const { id, size, type: contentType } = body.image as { id: string; size: number; type: string };
    const created = buildEvent({ type: 'imagestore.image.created', album: 'holidays', image: 'a.png', id, size, contentType }, '/imagestore/test');
    await publish(broker.url, NOTIFIER_TOPIC, created, created);
    await waitFor('the duplicate to be dropped', () => m.mirror.stats.events.duplicate === 1);
    await converged(svc);
    expect(m.mirror.stats.events.downloaded).to.equal(1);

    const reconciles = m.mirror.stats.reconciles;
    const ghost = { ...created, id: 'ghost-1', data: { ...created.data, image: 'never-uploaded.png' } };
    await publish(broker.url, NOTIFIER_TOPIC, ghost);
    await waitFor('a reconcile after the stale event', () => m.mirror.stats.events.stale === 1 && m.mirror.stats.reconciles > reconciles);

    const escapes = [
      { album: '..', image: 'evil.png' },
      { album: 'holidays', image: '../../evil.png' },
      { album: '.imagestore-mirror-tmp', image: 'x.png' },
    ].map((data, i) => ({ ...created, id: `evil-${i}`, data: { ...created.data, ...data } }));
    await publish(broker.url, NOTIFIER_TOPIC, ...escapes);
    await m.waitForLog('event refused', 3);
    expect(await fs.readdir(path.dirname(dir))).to.deep.equal(['copy']);
    expect(await converged(svc)).to.have.length(2);
  });

  it('with --album, mirrors only those albums, following renames into and out of them', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    await api.createAlbum('work');
    await api.upload('work', 'w.png', await png(60));
    const m = await mirrorOf(svc, '--album', 'holidays');
    await api.createAlbum('holidays');
    await api.upload('holidays', 'h.png', await png(61));
    await waitFor('holidays to be mirrored', async () => (await mirrorSnapshot(dir)).length === 2);
    await m.idle();
    expect((await mirrorSnapshot(dir)).map((l) => l.split(' ')[0])).to.deep.equal(['holidays/', 'holidays/h.png']);

    await api.renameAlbum('holidays', 'trips');
    await waitFor('holidays renamed away', async () => (await mirrorSnapshot(dir)).length === 0);
    await api.renameAlbum('work', 'holidays');
    await waitFor('work renamed into holidays', async () => (await mirrorSnapshot(dir)).length === 2);
    expect((await mirrorSnapshot(dir)).map((l) => l.split(' ')[0])).to.deep.equal(['holidays/', 'holidays/w.png']);
  });

  it('writes its state file atomically, with the sha256 of every local copy', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    const m = await mirrorOf(svc);
    await api.createAlbum('holidays');
    await api.upload('holidays', 'a.png', await png(70));
    const [line] = (await converged(svc)).filter((l) => l.includes(' '));
    await m.idle();
    const state = JSON.parse(await fs.readFile(path.join(dir, STATE_FILE_NAME), 'utf8'));
    expect(state.albums.holidays['a.png'].sha256).to.equal(line.split(' ')[1]);
    expect(state.recentEventIds.length).to.be.at.least(2);
    expect(await fs.readdir(path.join(dir, '.imagestore-mirror-tmp'))).to.deep.equal([]);
  });

  it('sends IMAGESTORE_API_KEY to a service that has keys; without one it keeps retrying, without crashing or logging keys', async () => {
    const [readKey, writeKey] = ['mirror-test-read-key-5f1c', 'mirror-test-write-key-9a7e'];
    const dataDir = await makeTmpDir();
    const env = { HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', LOG_LEVEL: 'silent', API_KEYS: `read:${readKey},write:${writeKey}` };
    svc = await startTestService({ dataDir, config: { ...loadConfig(env), imageDbDir: dataDir, shutdownTimeoutMs: 3000 } });
    const args = ['--url', svc.service.mqttUrl, '--api', svc.service.httpUrl, '--mirror', dir];
    const m = await startMirror(args, { env: { IMAGESTORE_API_KEY: readKey, MQTT_USERNAME: 'mirror', MQTT_PASSWORD: readKey } });
    running.push(m);
    await storeApi(svc.http, writeKey).createAlbum('holidays');
    await storeApi(svc.http, writeKey).upload('holidays', 'a.png', await png(90));
    await waitFor('the image to be mirrored', async () => (await mirrorSnapshot(dir)).length === 2);

    const keyless = await startMirror([...args.slice(0, -1), path.join(path.dirname(dir), 'keyless')], { waitSubscribed: false });
    running.push(keyless);
    const [failure] = await keyless.waitForLog('reconcile failed; will retry');
    expect(failure.err).to.match(/answered 401/);
    expect(JSON.stringify([...m.logs, ...keyless.logs])).to.not.include(readKey);
  });
});

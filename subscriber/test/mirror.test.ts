import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { NOTIFIER_TOPIC } from '../../src/notifier/events.js';
import { recordEvents } from '../../test/helpers/mqtt.js';
import { startTestService, type TestService } from '../../test/helpers/service.js';
import { makeTmpDir, removeDir } from '../../test/helpers/tmp-dir.js';
import { STATE_FILE_NAME } from '../src/mirror/fs-ops.js';
import { waitFor } from '../../test/helpers/wait-for.js';
import { publish } from './helpers.js';
import {
  distinctPng as png, downloadedSnapshot, mirrorSnapshot, startMirror, storeApi, waitForConvergence, type RunningMirror,
} from './mirror-helpers.js';

describe('subscriber mirror mode (service and mirror in-process, real broker, real files)', function () {
  let svc: TestService | undefined;
  let dir: string;
  let running: RunningMirror[] = [];

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
    await m.mirror.whenIdle();
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
    await m.mirror.whenIdle();
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
    await m.mirror.whenIdle();
    expect(m.mirror.stats.events.applied + m.mirror.stats.events.downloaded).to.equal(0);
    expect(m.mirror.stats.downloads).to.equal(2); // b.png (tampered) and c.png
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
  });

  it('drops duplicate events, settles stale ones by reconciling, and refuses names that would leave DIR', async () => {
    svc = await startTestService();
    const api = storeApi(svc.http);
    const recorder = await recordEvents(svc.service.mqttUrl);
    try {
      const m = await mirrorOf(svc);
      await api.createAlbum('holidays');
      await api.upload('holidays', 'a.png', await png(50));
      const [, created] = await recorder.waitForCount(2);
      await converged(svc);
      await m.mirror.whenIdle();
      const before = { ...m.mirror.stats, events: { ...m.mirror.stats.events } };

      await publish(svc.service.mqttUrl, NOTIFIER_TOPIC, { ...created, topic: undefined });
      await waitFor('the duplicate to be dropped', () => m.mirror.stats.events.duplicate > before.events.duplicate);
      expect(m.mirror.stats.downloads).to.equal(before.downloads);

      const ghost = { ...created, id: 'ghost-1', data: { ...created.data, image: 'never-uploaded.png' } };
      await publish(svc.service.mqttUrl, NOTIFIER_TOPIC, ghost);
      await waitFor('a reconcile after the stale event', () => m.mirror.stats.reconciles > before.reconciles && m.mirror.stats.events.stale > 0);

      const escapes = [
        { album: '..', image: 'evil.png' },
        { album: 'holidays', image: '../../evil.png' },
        { album: '.imagestore-mirror-tmp', image: 'x.png' },
      ].map((data, i) => ({ ...created, id: `evil-${i}`, data: { ...created.data, ...data } }));
      await publish(svc.service.mqttUrl, NOTIFIER_TOPIC, ...escapes);
      await m.waitForLog('event refused', 3);
      expect(await fs.readdir(path.dirname(dir))).to.deep.equal(['copy']);
      expect(await converged(svc)).to.have.length(2);
    } finally {
      await recorder.close();
    }
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
    await m.mirror.whenIdle();
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
    await m.mirror.whenIdle();
    const state = JSON.parse(await fs.readFile(path.join(dir, STATE_FILE_NAME), 'utf8'));
    expect(state.albums.holidays['a.png'].sha256).to.equal(line.split(' ')[1]);
    expect(state.recentEventIds.length).to.be.at.least(2);
    expect(await fs.readdir(path.join(dir, '.imagestore-mirror-tmp'))).to.deep.equal([]);
  });
});

import { expect } from 'chai';
import path from 'node:path';
import { buildEvent, NOTIFIER_TOPIC } from '../../src/notifier/events.js';
import { defaultConfig } from '../../src/config.js';
import { startTestService, type TestService } from '../../test/helpers/service.js';
import { waitFor } from '../../test/helpers/wait-for.js';
import { makeTmpDir, removeDir } from '../../test/helpers/tmp-dir.js';
import { publish, startTestBroker, type TestBroker } from './helpers.js';
import {
  distinctPng as png, downloadedSnapshot, fixedPorts, mirrorSnapshot, startMirror, storeApi, waitForConvergence, type RunningMirror,
} from './mirror-helpers.js';

describe('subscriber mirror mode through outages (service restarts, broker and API unreachable)', function () {
  this.timeout(60_000); // service restarts and reconnects (1 s period) add up on a loaded machine
  let svc: TestService | undefined;
  let dir: string;
  let running: RunningMirror[] = [];
  let broker: TestBroker | undefined;
  const extraDirs: string[] = [];

  /** Starts a mirror of `svc` into `dir`, stopped by afterEach. */
  async function mirrorOf(service: TestService): Promise<RunningMirror> {
    const m = await startMirror(['--url', service.service.mqttUrl, '--api', service.service.httpUrl, '--mirror', dir]);
    running.push(m);
    return m;
  }
  const converged = (service: TestService) => waitForConvergence(dir, service.service.httpUrl, 20_000);

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
    for (const d of extraDirs.splice(0)) await removeDir(d);
  });

  it('follows the service through restarts on the same data dir, including changes it could not see', async () => {
    const fixed = await fixedPorts();
    svc = await startTestService({ config: fixed });
    const dataDir = svc.dataDir;
    const api = () => storeApi(svc!.http);
    const m = await mirrorOf(svc);
    await api().createAlbum('holidays');
    for (let i = 0; i < 3; i++) await api().upload('holidays', `${i}.png`, await png(20 + i));
    await converged(svc);

    await svc.stop();
    await m.waitForLog('offline');
    // Meanwhile the store changes through a service the mirror cannot reach (other ports).
    const elsewhere = await startTestService({ dataDir });
    await storeApi(elsewhere.http).deleteImage('holidays', '0.png');
    await storeApi(elsewhere.http).renameAlbum('holidays', 'trips');
    await storeApi(elsewhere.http).upload('trips', 'new.png', await png(30));
    await elsewhere.stop();

    svc = await startTestService({ dataDir, config: fixed });
    await api().upload('trips', 'after.png', await png(31));
    await converged(svc);
    await m.waitForLog('subscribed', 2);

    // Once more, with changes right after the restart, before the mirror is back.
    await svc.stop();
    svc = await startTestService({ dataDir, config: fixed });
    await api().deleteImage('trips', '1.png');
    await api().createAlbum('work');
    await api().upload('work', 'w.png', await png(32));
    await converged(svc);
    await m.idle();
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
    // Once at start-up; after each outage it caught up by replay (or reconciled).
    expect((await m.waitForLog('reconciled')).length + m.logs.filter((l) => l.msg === 'caught up by replay').length).to.be.at.least(3);
  });

  it('catches up by replay after an outage (GET /events?after=), without a reconcile, while the journal covers its cursor', async () => {
    const fixed = await fixedPorts();
    svc = await startTestService({ config: fixed });
    const dataDir = svc.dataDir;
    const api = () => storeApi(svc!.http);
    const m = await mirrorOf(svc);
    await api().createAlbum('replayed');
    await api().upload('replayed', 'a.png', await png(40));
    await converged(svc);
    await m.idle();
    const reconciles = m.mirror.stats.reconciles;

    await svc.stop();
    await m.waitForLog('offline');
    const elsewhere = await startTestService({ dataDir });
    await storeApi(elsewhere.http).upload('replayed', 'b.png', await png(41));
    await storeApi(elsewhere.http).deleteImage('replayed', 'a.png');
    await elsewhere.stop();

    svc = await startTestService({ dataDir, config: fixed });
    await converged(svc);
    const [caughtUp] = await m.waitForLog('caught up by replay');
    expect(caughtUp.replayed).to.be.at.least(2);
    await m.idle();
    expect(m.mirror.stats.reconciles, 'no reconcile after the outage').to.equal(reconciles);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
  });

  it('reconciles when the journal no longer covers its cursor (410 past EVENT_RETENTION)', async () => {
    const base = await fixedPorts();
    const noRetention = { ...base, events: { ...defaultConfig().events, retention: { maxAgeMs: 0, maxBytes: 0 } } };
    svc = await startTestService({ config: noRetention });
    const dataDir = svc.dataDir;
    const m = await mirrorOf(svc);
    await storeApi(svc.http).createAlbum('pruned');
    await storeApi(svc.http).upload('pruned', 'a.png', await png(42));
    await converged(svc);
    await m.idle();

    await svc.stop();
    await m.waitForLog('offline');
    // Delivered to a broker nobody listens on, and kept for no time: pruned at the next start.
    const elsewhere = await startTestService({ dataDir, config: { events: noRetention.events } });
    await storeApi(elsewhere.http).upload('pruned', 'b.png', await png(43));
    await storeApi(elsewhere.http).deleteImage('pruned', 'a.png');
    await waitFor('delivered', () => elsewhere.service.pendingEvents() === 0);
    await elsewhere.stop();

    svc = await startTestService({ dataDir, config: noRetention });
    await m.waitForLog('catch-up by replay not possible; reconciling instead');
    await converged(svc);
    await m.idle();
    expect(m.mirror.stats.reconciles).to.be.at.least(2);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
  });

  it('keeps retrying while the service is unreachable at start, then converges', async () => {
    const fixed = await fixedPorts();
    const m = await startMirror(['--url', `mqtt://127.0.0.1:${fixed.mqtt.port}`, '--api', `http://127.0.0.1:${fixed.http.port}`, '--mirror', dir], {
      waitSubscribed: false,
    });
    running.push(m);
    await m.waitForLog('reconcile failed; will retry');
    const dataDir = await makeTmpDir();
    extraDirs.push(dataDir);
    const offline = await startTestService({ dataDir });
    await storeApi(offline.http).createAlbum('holidays');
    await storeApi(offline.http).upload('holidays', 'a.png', await png(40));
    await offline.stop();

    svc = await startTestService({ dataDir, config: fixed });
    await converged(svc);
    expect(m.mirror.stats.reconcileFailures).to.be.at.least(1);
  });

  it('defers events while the service is unreachable, and reconciles once it is back', async () => {
    const fixed = await fixedPorts();
    svc = await startTestService({ config: fixed });
    const dataDir = svc.dataDir;
    await storeApi(svc.http).createAlbum('holidays');
    await storeApi(svc.http).upload('holidays', 'a.png', await png(80));
    // Events come from a broker of their own, so that they keep coming while the service is down.
    broker = await startTestBroker();
    // Retry reconciles at most every second, so that the test does not wait out the 10 s default backoff.
    const m = await startMirror(['--url', broker.url, '--api', svc.service.httpUrl, '--mirror', dir], {
      mirror: { reconcileRetry: { firstDelayMs: 200, maxDelayMs: 1000 } },
    });
    running.push(m);
    await converged(svc);

    await svc.stop();
    const source = '/imagestore/test';
    await publish(
      broker.url,
      NOTIFIER_TOPIC,
      buildEvent({ type: 'imagestore.image.created', album: 'holidays', image: 'b.png' }, source),
      buildEvent({ type: 'imagestore.image.deleted', album: 'holidays', image: 'a.png' }, source),
    );
    // Four retries with backoff per event first; a loaded machine has taken more than 8 s.
    await m.waitForLog('service unreachable; events wait for a reconcile', 1, 25_000);
    const elsewhere = await startTestService({ dataDir });
    await storeApi(elsewhere.http).upload('holidays', 'b.png', await png(81));
    await storeApi(elsewhere.http).deleteImage('holidays', 'a.png');
    await elsewhere.stop();

    svc = await startTestService({ dataDir, config: fixed });
    await converged(svc);
    expect(m.mirror.stats.events.deferred).to.equal(2);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
  });
});

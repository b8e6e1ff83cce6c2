import { expect } from 'chai';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { makePng } from '../../test/helpers/images.js';
import { startTestService, type TestService } from '../../test/helpers/service.js';
import { makeTmpDir, removeDir } from '../../test/helpers/tmp-dir.js';
import { STATE_FILE_NAME } from '../src/mirror/fs-ops.js';
import { spawnSubscriber, type SpawnedSubscriber } from './helpers.js';
import { downloadedSnapshot, mirrorSnapshot, storeApi, waitForConvergence } from './mirror-helpers.js';

describe('subscriber --mirror as a process (real service, broker and files)', function () {
  let svc: TestService;
  let root: string;
  let running: SpawnedSubscriber[] = [];

  /** Spawns `imagestore-subscriber --mirror dir` against the test service. */
  function spawnMirror(dir: string, ...flags: string[]): SpawnedSubscriber {
    const sub = spawnSubscriber(['--url', svc.service.mqttUrl, '--mirror', dir, ...flags], { IMAGESTORE_URL: svc.service.httpUrl });
    running.push(sub);
    return sub;
  }

  beforeEach(async () => {
    svc = await startTestService();
    root = await makeTmpDir('imagestore-mirror-proc-');
  });
  afterEach(async () => {
    await Promise.all(running.map((sub) => sub.stop()));
    running = [];
    await svc.close();
    await removeDir(root);
  });

  it('mirrors the store into DIR, stops on SIGTERM, and resumes from its state file', async () => {
    const dir = path.join(root, 'copy');
    const api = storeApi(svc.http);
    await api.createAlbum('holidays');
    await api.upload('holidays', 'before.png', await makePng(9, 9));
    let sub = spawnMirror(dir);
    await sub.waitForLog('subscribed');
    await api.upload('holidays', 'during.png', await makePng(10, 10));
    await api.renameImage('holidays', 'before.png', 'first.png');
    await waitForConvergence(dir, svc.service.httpUrl);
    expect(await mirrorSnapshot(dir)).to.deep.equal(await downloadedSnapshot(svc.service.httpUrl));
    expect(sub.stdout.some((line) => / image\.created album=holidays image=during\.png /.test(line))).to.equal(true);
    expect(await sub.stop()).to.equal(0);

    const state = JSON.parse(await fs.readFile(path.join(dir, STATE_FILE_NAME), 'utf8'));
    expect(Object.keys(state.albums.holidays).sort()).to.deep.equal(['during.png', 'first.png']);

    await api.deleteImage('holidays', 'during.png');
    sub = spawnMirror(dir);
    const [first] = await sub.waitForLog('reconciled');
    expect(first).to.include({ reason: 'start-up', downloaded: 0 });
    await waitForConvergence(dir, svc.service.httpUrl);
    expect((await mirrorSnapshot(dir)).map((l) => l.split(' ')[0])).to.deep.equal(['holidays/', 'holidays/first.png']);
  });

  it('exits 1 without touching a directory that is not a mirror', async () => {
    const dir = path.join(root, 'photos');
    await fs.mkdir(dir);
    await fs.writeFile(path.join(dir, 'precious.jpg'), 'x');
    const sub = spawnMirror(dir);
    expect(await sub.exited).to.equal(1);
    expect(sub.stderr.join('\n')).to.match(/refusing to mirror into .*photos: it is not empty/);
    expect(await fs.readdir(dir)).to.deep.equal(['precious.jpg']);
  });
});

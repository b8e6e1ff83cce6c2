import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import mqtt from 'mqtt';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { startServiceWithEnv, type TestService } from '../helpers/service.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { waitFor } from '../helpers/wait-for.js';

/** The ```sh blocks of README's "Walk-through" section, in order. */
async function walkthroughBlocks(): Promise<{ script: string; exampleEvent: Record<string, unknown> }> {
  const readme = await fs.readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Walk-through\n'), readme.indexOf('\n## ', readme.indexOf('\n## Walk-through\n') + 5));
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  const json = /```json\nimagestore\/notifier (\{.*\})\n```/.exec(section);
  expect(blocks.length, 'sh blocks in the walk-through').to.be.at.least(2);
  expect(json, 'the example event').to.not.equal(null);
  // The example abbreviates ids with "…": only the key order and the values' kinds matter here.
  return { script: blocks.join('\n'), exampleEvent: JSON.parse(json![1]) };
}

/** Keys in order, at the top level and in `data`. */
const shape = (event: Record<string, unknown>) => ({ top: Object.keys(event), data: Object.keys(event.data as object) });

// Issue 15, item 3: a newcomer pastes the README's commands one block after the other.
describe('README walk-through, run top to bottom as written', function () {
  this.timeout(120_000);
  let svc: TestService;
  let images: ImageServer;

  before(async () => {
    images = await startImageServer();
    svc = await startServiceWithEnv({ IMPORT_ALLOW_HOSTS: '127.0.0.1' });
  });
  after(async () => {
    await svc?.close();
    await images?.close();
  });

  it('every command succeeds, nothing is left in the repository, and the example event has the real field order', async () => {
    const { script, exampleEvent } = await walkthroughBlocks();
    const http = new URL(svc.service.httpUrl);
    const broker = new URL(svc.service.mqttUrl);
    // The only changes: this service's ephemeral ports for 3333 and 1883, and a local image server for the
    // import's example URL (tests reach nothing beyond this machine).
    const runnable = script
      .replaceAll('127.0.0.1:3333', http.host)
      .replaceAll('-p 1883', `-p ${broker.port}`)
      .replaceAll('https://example.com/a.jpg', `${images.url}/blue/a.jpg`);
    expect(runnable).to.not.equal(script);

    const real: Record<string, unknown>[] = [];
    const watcher = await mqtt.connectAsync(svc.service.mqttUrl, { reconnectPeriod: 0 });
    watcher.on('message', (_topic, payload) => real.push(JSON.parse(payload.toString('utf8'))));
    await watcher.subscribeAsync('imagestore/notifier', { qos: 1 });

    const rootBefore = (await fs.readdir(REPO_ROOT)).sort();
    // -e: a failing command (cmp, a refused curl upload's file) stops the run; -x shows where in the output.
    const child = spawn('bash', ['-e', '-x', '-c', runnable], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 90_000);
    // 'exit', not 'close': the background mosquitto_sub keeps the output open until it is stopped below.
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    const lastEvent = /imagestore\/notifier \{"specversion":"1\.0"[^\n]*"type":"imagestore\.album\.deleted"/;
    try {
      if (code === 0) await waitFor('mosquitto_sub printing the last event', () => lastEvent.test(stdout), 10_000).catch(() => undefined);
    } finally {
      process.kill(-child.pid!, 'SIGKILL'); // mosquitto_sub, started in the background by the first block
      await watcher.endAsync();
    }

    expect(code, `exit code; stderr:\n${stderr}\nstdout:\n${stdout}`).to.equal(0);
    expect(stdout, 'an API error in the output').to.not.match(/\{"error":/);
    expect(stdout).to.include('{"albumList":[]}').and.include('{"imageList":["sample.png"]}');
    expect(stdout, 'mosquitto_sub printed the events').to.match(lastEvent);
    expect((await fs.readdir(REPO_ROOT)).sort(), 'files left in the repository root').to.deep.equal(rootBefore);

    const created = real.find((e) => e.type === 'imagestore.image.created');
    expect(created, 'the real image.created event').to.not.equal(undefined);
    expect(shape(exampleEvent)).to.deep.equal(shape(created!));
    expect(real.map((e) => e.type)).to.include.members(['imagestore.album.renamed', 'imagestore.image.deleted', 'imagestore.album.deleted']);
    await waitFor('the import job', async () => (await svc.http.get('/api/v1/imports')).body.jobs.length === 1, 5_000);
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import mqtt from 'mqtt';
import { fsck } from '../../src/albums/fs/fsck.js';
import { Layout } from '../../src/albums/layout.js';
import type { StoreEvent } from '../../src/notifier/events.js';
import { sha256 } from '../helpers/api.js';
import { pngOfSize } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

// Issue 13 item 2, uploads: concurrent uploads share their journal flushes (one fdatasync
// covers the commit records of a batch), and an upload of at most 1 MiB is written, renamed,
// linked and its metadata prepared directly on the main thread, with only its flushes on the
// libuv pool. Whatever the sharing and the thread, a 201 must mean the image, its metadata and
// its event are durable: here N uploads arrive at once, the service is killed the moment the
// last 201 arrives, before any checkpoint (so every image rests on its commit record and its
// staged bytes alone), and the next start must show all N, byte for byte, with N events.
// SIGKILL keeps the page cache: this proves the order of the steps, not the fsyncs.

const API = '/api/v1';
const UPLOADS = 24;
/** Two uploads above the 1 MiB kept in memory: they are written to disk as they arrive. */
const LARGE = new Set([5, 17]);

/** A persistent session (fixed client id, no clean start, QoS 1), recording events by id. */
async function subscribe(url: string, clientId: string, events: Map<string, StoreEvent>): Promise<mqtt.MqttClient> {
  const sub = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0 });
  sub.on('message', (_topic, payload) => {
    const event = JSON.parse(payload.toString()) as StoreEvent;
    events.set(event.id, event);
  });
  sub.on('error', () => undefined); // the broker dies with the service
  await new Promise<void>((resolve, reject) => sub.once('connect', () => resolve()).once('error', reject));
  await sub.subscribeAsync('imagestore/notifier', { qos: 1 });
  return sub;
}

describe('uploads: N concurrent 201s survive a SIGKILL right after the last one, before any checkpoint', function () {
  this.timeout(120_000);
  let parent: string;
  let crashed: SpawnedService | undefined;
  let restarted: TestService | undefined;
  const subs: mqtt.MqttClient[] = [];

  before(async () => {
    parent = await makeTmpDir('imagestore-group-commit-');
  });
  after(async () => {
    for (const sub of subs.splice(0)) await sub.endAsync(true).catch(() => undefined);
    await crashed?.kill();
    await restarted?.stop();
    await removeDir(parent);
  });

  it(`keeps all ${UPLOADS} images, their metadata and their events`, async () => {
    const dataDir = path.join(parent, 'data');
    const events = new Map<string, StoreEvent>();
    // No checkpoint during the test: each image's only durable trace is its commit record and staged file.
    crashed = await spawnService({ dataDir, env: { CHECKPOINT_INTERVAL_MS: '600000', CHECKPOINT_MAX_CHANGES: '1000000' }, readyTimeoutMs: 60_000 });
    subs.push(await subscribe(crashed.mqtt, 'group-commit', events));
    const created = await fetch(`${crashed.http}${API}/albums`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ albumName: 'g' }) });
    expect(created.status).to.equal(201);

    const files = await Promise.all(
      Array.from({ length: UPLOADS }, async (_, i) => ({ name: `g-${i}.png`, bytes: await pngOfSize(LARGE.has(i) ? 1536 * 1024 + i : 2000 + i * 997) })),
    );
    const answers = await Promise.all(
      files.map(async ({ name, bytes }) => {
        const form = new FormData();
        form.append('file', new Blob([bytes], { type: 'image/png' }), name);
        const res = await fetch(`${crashed!.http}${API}/albums/g/images`, { method: 'POST', body: form });
        return { status: res.status, body: await res.text() };
      }),
    );
    expect(await crashed.kill()).to.deep.equal({ code: null, signal: 'SIGKILL' });
    for (const [i, answer] of answers.entries()) expect(answer.status, `${files[i].name}: ${answer.body}`).to.equal(201);
    const layout = new Layout(dataDir);
    expect((await fs.readdir(layout.stagedDir)).length, 'staged uploads waiting for a checkpoint at the kill').to.equal(UPLOADS);

    restarted = await startTestService({ dataDir });
    subs.push(await subscribe(restarted.service.mqttUrl, 'group-commit', events));
    const listing = await restarted.http.get(`${API}/albums/g/images?details=true`).expect(200);
    expect(listing.body.imageList).to.deep.equal(files.map((f) => f.name).sort());
    const infos = new Map<string, { sha256: string; size: number }>(listing.body.images.map((i: { name: string; sha256: string; size: number }) => [i.name, i]));
    for (const { name, bytes } of files) {
      expect(infos.get(name), `${name} metadata`).to.include({ sha256: sha256(bytes), size: bytes.length });
      const got = await restarted.http.get(`${API}/albums/g/images/${name}`).buffer(true).parse((res, done) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => done(null, Buffer.concat(chunks)));
      });
      expect(got.status, name).to.equal(200);
      expect(sha256(got.body as Buffer), `${name} bytes`).to.equal(sha256(bytes));
    }
    const createdEvents = () => [...events.values()].filter((e) => e.type === 'imagestore.image.created');
    await waitFor(`${UPLOADS} image.created events`, () => createdEvents().length >= UPLOADS, 20_000);
    expect(createdEvents().map((e) => (e.data as { image: string }).image).sort()).to.deep.equal(files.map((f) => f.name).sort());

    for (const sub of subs.splice(0)) await sub.endAsync(true);
    await restarted.stop();
    restarted = undefined;
    const report = await fsck(dataDir, { repair: false, verifyContent: true });
    expect(report.problems, 'fsck after recovery and a clean stop').to.deep.equal([]);
    expect(await fs.readdir(layout.stagedDir), 'staged uploads left after a clean stop').to.deep.equal([]);
  });
});

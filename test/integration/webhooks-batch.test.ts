import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { defaultConfig, type Config } from '../../src/config.js';
import type { StoreEvent } from '../../src/notifier/events.js';
import { createAlbum, uploadImage } from '../helpers/api.js';
import { freePort } from '../helpers/free-port.js';
import { makePng } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { startReceiver, type ReceivedHook, type WebhookReceiver } from '../helpers/webhook-receiver.js';

/** Webhook settings for loopback receivers and quick retries. */
function hookConfig(): Partial<Config> {
  const base = defaultConfig().events;
  return { events: { ...base, webhooks: { ...base.webhooks, allowHosts: ['127.0.0.1'], timeoutMs: 2000, retryBaseDelayMs: 20, retryMaxDelayMs: 200 } } };
}

/** The events of a batched request, signature checked by the reference library. */
function verifiedBatch(secret: string, hook: ReceivedHook): StoreEvent[] {
  expect(hook.headers['content-type']).to.match(/^application\/cloudevents-batch\+json/);
  const events = new Webhook(secret).verify(hook.body, hook.headers) as StoreEvent[];
  expect(events).to.be.an('array').that.is.not.empty;
  expect(hook.headers['webhook-id']).to.equal(`${events[0].id}_${events[events.length - 1].id}`);
  return events;
}

type Delivery = { outcome: string; events: number; sequence?: string; lastSequence?: string; eventId: string; status?: number };

describe('webhook batches (issue 16 item 4: batched per endpoint only if the receiver opted in)', function () {
  this.timeout(60_000);
  let svc: TestService | undefined;
  let receivers: WebhookReceiver[] = [];
  let child: ChildProcess | undefined;
  let tmp: string | undefined;
  afterEach(async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((resolve) => child!.once('exit', resolve));
    }
    child = undefined;
    await svc?.close();
    svc = undefined;
    await Promise.all(receivers.map((r) => r.close()));
    receivers = [];
    if (tmp) await removeDir(tmp);
    tmp = undefined;
  });

  /** The endpoint's delivery log (newest first) once it has `lines` lines (a line is written after the receiver answered). */
  async function deliveries(id: string, lines: number): Promise<Delivery[]> {
    return waitFor(`${lines} delivery log lines`, async () => {
      const log = (await svc!.http.get(`/api/v1/webhooks/${id}/deliveries`).expect(200)).body.deliveries as Delivery[];
      return log.length >= lines && log;
    });
  }

  /** Registers a disabled endpoint, makes `changes` journaled events for it, then enables it: its backlog is there at once. */
  async function backlog(receiver: WebhookReceiver, batch: Record<string, number>, images: number): Promise<{ id: string; secret: string; expected: StoreEvent[] }> {
    const created = (await svc!.http.post('/api/v1/webhooks').send({ url: receiver.url, enabled: false, batch }).expect(201)).body as { secret: string; webhook: { id: string } };
    await createAlbum(svc!.http, 'batched');
    const png = await makePng();
    for (let i = 0; i < images; i += 1) await uploadImage(svc!.http, 'batched', `${i}.png`, png);
    const expected = (await svc!.http.get('/api/v1/events?album=batched&limit=1000').expect(200)).body.events as StoreEvent[];
    expect(expected).to.have.length(images + 1);
    await svc!.http.patch(`/api/v1/webhooks/${created.webhook.id}`).send({ enabled: true }).expect(200);
    return { id: created.webhook.id, secret: created.secret, expected };
  }

  it('sends every event in order, in fewer requests than events, at most maxEvents a request, each request signed', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    svc = await startTestService({ config: hookConfig() });
    const { id, secret, expected } = await backlog(receiver, { maxEvents: 4 }, 9);
    const got = () => receiver.accepted.flatMap((h) => verifiedBatch(secret, h));
    await waitFor('10 events delivered', () => got().length >= 10, 20_000);
    expect(got().map((e) => e.id)).to.deep.equal(expected.map((e) => e.id));
    expect(receiver.received.map((h) => verifiedBatch(secret, h).length)).to.deep.equal([4, 4, 2]);

    const endpoint = async () => (await svc!.http.get(`/api/v1/webhooks/${id}`).expect(200)).body.webhook;
    expect((await endpoint()).batch).to.deep.equal({ maxEvents: 4, maxDelayMs: 0 });
    await waitFor('cursor past the last batch', async () => (await endpoint()).cursor === expected[9].sequence);
    const log = await deliveries(id, 3);
    expect(log.map((l) => [l.outcome, l.events, l.sequence, l.lastSequence])).to.deep.equal([
      ['delivered', 2, expected[8].sequence, expected[9].sequence],
      ['delivered', 4, expected[4].sequence, expected[7].sequence],
      ['delivered', 4, expected[0].sequence, expected[3].sequence],
    ]);

    // Live: an event that comes alone is a batch of one, at once (maxDelayMs 0 never waits).
    await createAlbum(svc.http, 'alone');
    await waitFor('live event', () => receiver.accepted.length === 4);
    expect(verifiedBatch(secret, receiver.accepted[3]).map((e) => e.data.album)).to.deep.equal(['alone']);
  });

  it('sends a failed batch again as it was: same webhook-id, same events, even when more events came meanwhile', async () => {
    const receiver = await startReceiver((n) => (n === 1 ? { status: 503, headers: { 'Retry-After': '1' } } : n === 2 ? { status: 500 } : {}));
    receivers.push(receiver);
    svc = await startTestService({ config: hookConfig() });
    const { id, secret, expected } = await backlog(receiver, { maxEvents: 100 }, 4);
    await waitFor('first attempt', () => receiver.received.length >= 1);
    await createAlbum(svc.http, 'meanwhile');
    await waitFor('every event accepted', () => receiver.accepted.flatMap((h) => verifiedBatch(secret, h)).some((e) => e.data.album === 'meanwhile'), 20_000);

    const [first, second, third] = receiver.received;
    for (const again of [second, third]) {
      expect(again.headers['webhook-id']).to.equal(first.headers['webhook-id']);
      expect(again.body).to.equal(first.body);
    }
    expect(verifiedBatch(secret, first).map((e) => e.id)).to.deep.equal(expected.map((e) => e.id));
    expect(receiver.accepted[0]).to.equal(third);
    expect(receiver.accepted.slice(1).flatMap((h) => verifiedBatch(secret, h)).map((e) => e.data.album)).to.deep.equal(['meanwhile']);
    const log = await deliveries(id, 4);
    expect(log.slice(-3).map((l) => [l.outcome, l.status, l.events, l.eventId])).to.deep.equal([
      ['delivered', 204, 5, first.headers['webhook-id']],
      ['retrying', 500, 5, first.headers['webhook-id']],
      ['retrying', 503, 5, first.headers['webhook-id']],
    ]);
  });

  it('waits up to maxDelayMs to fill a batch, checks the batch options, and opts out with batch: null', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    svc = await startTestService({ config: hookConfig() });
    for (const batch of [{ maxEvents: 0 }, { maxEvents: 1001 }, { maxEvents: 1.5 }, { maxDelayMs: 5001 }, { maxDelayMs: -1 }, { size: 3 }, 'yes']) {
      const res = await svc.http.post('/api/v1/webhooks').send({ url: receiver.url, batch }).expect(400);
      expect(res.body.error).to.match(/^batch/);
    }
    const { secret, webhook } = (await svc.http.post('/api/v1/webhooks').send({ url: receiver.url, batch: { maxDelayMs: 5000 } }).expect(201)).body;
    expect(webhook.batch).to.deep.equal({ maxEvents: 100, maxDelayMs: 5000 });
    for (const album of ['w1', 'w2', 'w3']) await createAlbum(svc.http, album);
    await waitFor('3 events', () => receiver.accepted.flatMap((h) => verifiedBatch(secret, h)).length === 3, 20_000);
    expect(receiver.received.length, 'three changes within the 5 s a batch may wait').to.be.below(3);

    const changed = (await svc.http.patch(`/api/v1/webhooks/${webhook.id}`).send({ batch: null }).expect(200)).body.webhook;
    expect(changed).not.to.have.property('batch');
    const before = receiver.received.length;
    await createAlbum(svc.http, 'single');
    await waitFor('single event', () => receiver.received.length === before + 1);
    const hook = receiver.received[before];
    expect(hook.headers['content-type']).to.match(/^application\/cloudevents\+json/);
    const event = new Webhook(secret).verify(hook.body, hook.headers) as StoreEvent;
    expect([event.id, event.data.album]).to.deep.equal([hook.headers['webhook-id'], 'single']);
  });

  it('the receiver example of docs/events.md (10 lines) verifies single events and batches', async () => {
    const doc = await fs.readFile(new URL('../../docs/events.md', import.meta.url), 'utf8');
    const code = /A receiver \(Node[^\n]*\n\n```js\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(code, 'the receiver example').to.be.a('string');
    expect(code!.trimEnd().split('\n')).to.have.length.of.at.most(10);
    const port = await freePort();
    tmp = await makeTmpDir();
    const file = path.join(tmp, 'receiver.mjs');
    await fs.writeFile(file, code!
      .replace(`from 'standardwebhooks'`, `from ${JSON.stringify(pathToFileURL(createRequire(import.meta.url).resolve('standardwebhooks')).href)}`)
      .replace('.listen(8080)', `.listen(${port}, '127.0.0.1')`));

    svc = await startTestService({ config: hookConfig() });
    const url = `http://127.0.0.1:${port}/hook`;
    const { secret, webhook } = (await svc.http.post('/api/v1/webhooks').send({ url, enabled: false }).expect(201)).body;
    const out: string[] = [];
    child = spawn(process.execPath, [file], { env: { ...process.env, WEBHOOK_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout!.on('data', (chunk: Buffer) => out.push(chunk.toString()));
    await waitFor('example listening', () => fetch(url, { method: 'POST', body: '{}' }).then((r) => r.status === 400, () => false));

    await svc.http.patch(`/api/v1/webhooks/${webhook.id}`).send({ enabled: true }).expect(200);
    await createAlbum(svc.http, 'one-by-one');
    await deliveries(webhook.id, 1);
    await svc.http.patch(`/api/v1/webhooks/${webhook.id}`).send({ enabled: false, batch: { maxEvents: 10 } }).expect(200);
    for (const album of ['b1', 'b2', 'b3']) await createAlbum(svc.http, album);
    await svc.http.patch(`/api/v1/webhooks/${webhook.id}`).send({ enabled: true }).expect(200);
    const expected = ((await svc.http.get('/api/v1/events').expect(200)).body.events as StoreEvent[]).map((e) => `${e.sequence} ${e.type}`);
    expect(expected).to.have.length(4);
    await waitFor('the example printed every event', () => expected.every((line) => out.join('').includes(line)), 20_000);
    const log = await deliveries(webhook.id, 2);
    expect(log.map((l) => [l.outcome, l.events])).to.deep.equal([['delivered', 3], ['delivered', 1]]);
  });
});

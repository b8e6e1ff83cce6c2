import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import { defaultConfig, type Config } from '../../src/config.js';
import type { StoreEvent } from '../../src/notifier/events.js';
import { albumPath, createAlbum, uploadImage } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { startServiceWithEnv, startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait-for.js';
import { startReceiver, type ReceivedHook, type WebhookReceiver } from '../helpers/webhook-receiver.js';

/** Webhook settings for loopback receivers and quick retries. */
function hookConfig(webhooks: Partial<Config['events']['webhooks']> = {}): Partial<Config> {
  const base = defaultConfig().events;
  return {
    events: {
      ...base,
      webhooks: { ...base.webhooks, allowHosts: ['127.0.0.1'], timeoutMs: 400, retryBaseDelayMs: 20, retryMaxDelayMs: 200, ...webhooks },
    },
  };
}

/** Each webhook-id once, in the order first received (a redelivery of the same event is folded). */
function firstReceipts(hooks: ReceivedHook[]): string[] {
  const seen = new Set<string>();
  return hooks.map((h) => h.headers['webhook-id']).filter((id) => !seen.has(id) && seen.add(id));
}

/** Every event the journal holds, by replay. */
async function journal(svc: TestService): Promise<StoreEvent[]> {
  return (await svc.http.get('/api/v1/events?limit=1000').expect(200)).body.events as StoreEvent[];
}

describe('webhooks (issue 16): real receivers on 127.0.0.1, signatures checked with the standardwebhooks library', function () {
  this.timeout(60_000);
  let svc: TestService | undefined;
  let receivers: WebhookReceiver[] = [];
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
    await Promise.all(receivers.map((r) => r.close()));
    receivers = [];
  });

  it('delivers every event in order through failures, a Retry-After, a slow answer and a timeout, each signed', async () => {
    const receiver = await startReceiver((n) => {
      if (n <= 3) return { status: 500 };
      if (n === 4) return { status: 503, headers: { 'Retry-After': '1' } };
      if (n === 5) return { status: 200, delayMs: 150 };
      if (n === 6) return { status: 200, delayMs: 2000 }; // longer than WEBHOOK_TIMEOUT_MS: a failure, sent again
      return { status: 204 };
    });
    receivers.push(receiver);
    svc = await startTestService({ config: hookConfig() });
    const created = await svc.http.post('/api/v1/webhooks').send({ url: receiver.url }).expect(201);
    const { secret, webhook } = created.body as { secret: string; webhook: { id: string } };
    expect(secret).to.match(/^whsec_[A-Za-z0-9+/=]{40,}$/);
    await createAlbum(svc.http, 'hooked');
    const png = await makePng();
    for (let i = 0; i < 8; i += 1) await uploadImage(svc.http, 'hooked', `${i}.png`, png);
    await svc.http.delete(albumPath('hooked', '0.png')).expect(200);
    const expected = (await journal(svc)).map((e) => e.id);
    expect(expected).to.have.length(10);
    await waitFor('every event accepted', () => new Set(receiver.accepted.map((h) => h.headers['webhook-id'])).size === 10, 30_000);
    expect(firstReceipts(receiver.received)).to.deep.equal(expected);
    expect(receiver.received.length).to.be.greaterThan(10);
    const verifier = new Webhook(secret);
    for (const hook of receiver.received) {
      const event = verifier.verify(hook.body, hook.headers) as StoreEvent;
      expect(event.id).to.equal(hook.headers['webhook-id']);
      expect(hook.headers['content-type']).to.match(/^application\/cloudevents\+json/);
    }
    const sequences = receiver.accepted.map((h) => Number((JSON.parse(h.body) as StoreEvent).sequence));
    expect(sequences).to.deep.equal([...sequences].sort((a, b) => a - b));

    const log = (await svc.http.get(`/api/v1/webhooks/${webhook.id}/deliveries`).expect(200)).body.deliveries as Array<Record<string, unknown>>;
    expect(log.filter((l) => l.outcome === 'delivered')).to.have.length.of.at.least(10);
    const retries = log.filter((l) => l.outcome === 'retrying');
    expect(retries.map((l) => l.status)).to.include.members([500, 503]);
    expect(retries.some((l) => /no answer within 400 ms/.test(String(l.error)))).to.equal(true);
    expect(log.every((l) => typeof l.latencyMs === 'number' && typeof l.attempts === 'number')).to.equal(true);
  });

  it('keeps the old secret valid for the grace period after a rotation, and never shows a secret again', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    svc = await startTestService({ config: hookConfig() });
    const { secret, webhook } = (await svc.http.post('/api/v1/webhooks').send({ url: receiver.url, types: ['imagestore.album.created'] }).expect(201)).body;
    const rotated = (await svc.http.post(`/api/v1/webhooks/${webhook.id}/rotate-secret`).expect(200)).body as { secret: string; previousValidUntil: string };
    expect(rotated.secret).to.match(/^whsec_/).and.not.equal(secret);
    await createAlbum(svc.http, 'rot');
    await createAlbum(svc.http, 'ignored-by-type').then(() => svc!.http.delete(albumPath('ignored-by-type')).expect(200));
    await waitFor('delivered', () => receiver.accepted.length >= 2);
    for (const hook of receiver.accepted) {
      new Webhook(secret).verify(hook.body, hook.headers);
      new Webhook(rotated.secret).verify(hook.body, hook.headers);
    }
    expect(receiver.accepted.map((h) => (JSON.parse(h.body) as StoreEvent).type)).to.deep.equal(['imagestore.album.created', 'imagestore.album.created']);
    const answers = [
      await svc.http.get('/api/v1/webhooks').expect(200), await svc.http.get(`/api/v1/webhooks/${webhook.id}`).expect(200),
      await svc.http.get(`/api/v1/webhooks/${webhook.id}/deliveries`).expect(200),
      await svc.http.patch(`/api/v1/webhooks/${webhook.id}`).send({ albums: ['rot'] }).expect(200),
    ];
    for (const res of answers) expect(res.text).not.to.include('whsec_').and.not.include(secret.slice(6, 20));
  });

  it('answers a test ping and redelivers an event on demand', async () => {
    const receiver = await startReceiver();
    receivers.push(receiver);
    svc = await startTestService({ config: hookConfig() });
    const { secret, webhook } = (await svc.http.post('/api/v1/webhooks').send({ url: receiver.url }).expect(201)).body;
    const ping = (await svc.http.post(`/api/v1/webhooks/${webhook.id}/ping`).expect(200)).body.result;
    expect(ping.status).to.equal(204);
    expect((new Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers) as { type: string }).type).to.equal('imagestore.webhook.test');
    await createAlbum(svc.http, 'again');
    await waitFor('delivered', () => receiver.accepted.length === 2);
    const event = JSON.parse(receiver.accepted[1].body) as StoreEvent;
    await svc.http.post(`/api/v1/webhooks/${webhook.id}/redeliver`).send({ sequence: event.sequence }).expect(200);
    expect(receiver.received[2].headers['webhook-id']).to.equal(event.id);
    await svc.http.post(`/api/v1/webhooks/${webhook.id}/redeliver`).send({ sequence: '999999' }).expect(404);
    await svc.http.post('/api/v1/webhooks/nope/ping').expect(404);
  });

  it('disables an endpoint whose receiver answers 410, and one that fails for longer than WEBHOOK_DISABLE_AFTER', async () => {
    const gone = await startReceiver(() => ({ status: 410 }));
    const failing = await startReceiver(() => ({ status: 500 }));
    receivers.push(gone, failing);
    svc = await startTestService({ config: hookConfig({ disableAfterMs: 1000 }) });
    const a = (await svc.http.post('/api/v1/webhooks').send({ url: gone.url }).expect(201)).body.webhook.id as string;
    const b = (await svc.http.post('/api/v1/webhooks').send({ url: failing.url }).expect(201)).body.webhook.id as string;
    await createAlbum(svc.http, 'dis');
    const disabled = async (id: string) => (await svc!.http.get(`/api/v1/webhooks/${id}`).expect(200)).body.webhook as { enabled: boolean; disabledReason?: string };
    await waitFor('410 disables', async () => !(await disabled(a)).enabled);
    expect((await disabled(a)).disabledReason).to.match(/410/);
    expect(gone.received).to.have.length(1);
    await waitFor('failing disables', async () => !(await disabled(b)).enabled, 10_000);
    expect((await disabled(b)).disabledReason).to.match(/WEBHOOK_DISABLE_AFTER.*500/);
    // Enabled again, it resumes from its cursor: the event it never got comes first.
    const recovered = await startReceiver();
    receivers.push(recovered);
    await svc.http.patch(`/api/v1/webhooks/${b}`).send({ url: recovered.url, enabled: true }).expect(200);
    await waitFor('resumed', () => recovered.accepted.length === 1);
    expect((JSON.parse(recovered.accepted[0].body) as StoreEvent).data.album).to.equal('dis');
  });

  describe('SSRF guard (as for imports; WEBHOOK_ALLOW_HOSTS)', () => {
    it('refuses loopback and private targets unless allowed, at registration and at connect time, and never follows a redirect', async () => {
      const inside = await startReceiver();
      receivers.push(inside);
      const redirecting = await startReceiver(() => ({ status: 307, headers: { Location: `http://localhost:${inside.port}/hook` } }));
      receivers.push(redirecting);
      svc = await startTestService();
      for (const url of [inside.url, 'http://10.0.0.1/x', 'http://[::1]/x', 'http://169.254.169.254/latest', 'ftp://example.com/x']) {
        const res = await svc.http.post('/api/v1/webhooks').send({ url }).expect(400);
        expect(res.body.error).to.match(/^url: /);
      }
      // A name is only known to be internal once resolved: refused at connect time.
      const byName = (await svc.http.post('/api/v1/webhooks').send({ url: `http://localhost:${inside.port}/hook` }).expect(201)).body.webhook.id;
      await createAlbum(svc.http, 'ssrf');
      await waitFor('refused delivery logged', async () =>
        ((await svc!.http.get(`/api/v1/webhooks/${byName}/deliveries`)).body.deliveries as Array<{ error?: string }>).some((d) => /resolves to .*loopback/.test(d.error ?? '')));
      await svc.close();

      svc = await startTestService({ config: hookConfig() });
      const id = (await svc.http.post('/api/v1/webhooks').send({ url: redirecting.url }).expect(201)).body.webhook.id;
      await createAlbum(svc.http, 'redirected');
      await waitFor('redirect answered', () => redirecting.received.length >= 2);
      const log = (await svc.http.get(`/api/v1/webhooks/${id}/deliveries`)).body.deliveries as Array<{ status?: number; outcome: string }>;
      expect(log[0]).to.include({ status: 307, outcome: 'retrying' });
      expect(inside.received).to.deep.equal([]);
    });
  });

  it('lets only admin keys manage webhooks', async () => {
    const keys = { read: 'hooks-read-key-5a1f9e22c3', write: 'hooks-write-key-8d3b7c10f4', admin: 'hooks-admin-key-1e6a4d98b7' };
    svc = await startServiceWithEnv({ API_KEYS: Object.entries(keys).map(([r, k]) => `${r}:${k}`).join(','), AUTH_FAILURE_LIMIT: '0' });
    for (const role of ['read', 'write'] as const) {
      const auth = `Bearer ${keys[role]}`;
      await svc.http.get('/api/v1/webhooks').set('Authorization', auth).expect(403);
      await svc.http.post('/api/v1/webhooks').set('Authorization', auth).send({ url: 'https://example.com/h' }).expect(403);
      await svc.http.delete('/api/v1/webhooks/x').set('Authorization', auth).expect(403);
    }
    await svc.http.get('/api/v1/webhooks').expect(401);
    await svc.http.get('/api/v1/webhooks').set('Authorization', `Bearer ${keys.admin}`).expect(200);
    // Reading events needs only the read role.
    await svc.http.get('/api/v1/events').set('Authorization', `Bearer ${keys.read}`).expect(200);
  });
});

import { expect } from 'chai';
import { Webhook } from 'standardwebhooks';
import type { StoreEvent } from '../../src/notifier/events.js';
import { freePort } from '../helpers/free-port.js';
import { makePng } from '../helpers/images.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { startReceiver, type WebhookReceiver } from '../helpers/webhook-receiver.js';

const CHANGES = 500;

describe('webhooks across a crash (issue 16): receiver down, 500 changes acknowledged, SIGKILL, restart', function () {
  this.timeout(180_000);
  let dataDir: string;
  let services: SpawnedService[] = [];
  let receiver: WebhookReceiver | undefined;
  before(async () => {
    dataDir = await makeTmpDir();
  });
  after(async () => {
    for (const svc of services) await svc.stop();
    await receiver?.close();
    await removeDir(dataDir);
  });

  it('delivers all of them after the restart, in order; a duplicate only ever with the same webhook-id', async () => {
    const port = await freePort(); // nothing listens there until after the crash
    const env = { WEBHOOK_ALLOW_HOSTS: '127.0.0.1', WEBHOOK_RETRY_BASE_DELAY_MS: '50', WEBHOOK_RETRY_MAX_DELAY: '300ms' };
    const first = await spawnService({ dataDir, env });
    services.push(first);
    const created = await fetch(`${first.http}/api/v1/webhooks`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ url: `http://127.0.0.1:${port}/hook` }),
    });
    expect(created.status).to.equal(201);
    const { secret } = (await created.json()) as { secret: string };
    const album = await fetch(`${first.http}/api/v1/albums`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ albumName: 'crash' }) });
    expect(album.status).to.equal(201);
    const png = new Blob([await makePng()], { type: 'image/png' });
    for (let i = 0; i < CHANGES; i += 20) {
      const answers = await Promise.all(Array.from({ length: 20 }, (_, j) => {
        const form = new FormData();
        form.append('file', png, `${i + j}.png`);
        return fetch(`${first.http}/api/v1/albums/crash/images`, { method: 'POST', body: form }).then((r) => r.status);
      }));
      expect(answers.every((s) => s === 201), `uploads ${i}..${i + 19}: ${answers.join(',')}`).to.equal(true);
    }
    await first.kill();
    services = [];

    receiver = await startReceiver(undefined, port);
    const second = await spawnService({ dataDir, env });
    services.push(second);
    const distinct = () => new Set(receiver!.accepted.map((h) => h.headers['webhook-id'])).size;
    await waitFor(`${CHANGES + 1} events delivered`, () => distinct() >= CHANGES + 1, 120_000);

    const replay = await (await fetch(`${second.http}/api/v1/events?album=crash&limit=1000`)).json() as { events: StoreEvent[] };
    const expected = replay.events.map((e) => e.id);
    expect(expected).to.have.length(CHANGES + 1);
    const seen = new Set<string>();
    const firstReceipts = receiver.accepted.map((h) => h.headers['webhook-id']).filter((id) => !seen.has(id) && seen.add(id));
    expect(firstReceipts).to.deep.equal(expected);
    const verifier = new Webhook(secret);
    for (const hook of receiver.received) {
      const event = verifier.verify(hook.body, hook.headers) as StoreEvent;
      expect(event.id, 'a redelivery carries the same webhook-id').to.equal(hook.headers['webhook-id']);
    }
    for (const svc of [first, second]) expect([...svc.stdout, ...svc.stderr].join('\n')).not.to.include('whsec_');
  });
});

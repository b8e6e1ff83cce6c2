import { expect } from 'chai';
import mqtt from 'mqtt';
import { defaultConfig } from '../../src/config.js';
import type { StoreEvent } from '../../src/notifier/events.js';
import { makePng } from '../helpers/images.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { startTestService } from '../helpers/service.js';
import { spawnService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/** A persistent-session subscriber (clean session off, fixed client id, QoS 1) that records events by id. */
async function persistentSubscriber(url: string, clientId: string, topic: string, protocolVersion: 4 | 5 = 4) {
  const events = new Map<string, StoreEvent>();
  const packets: mqtt.IPublishPacket[] = [];
  const client = mqtt.connect(url, { clientId, clean: false, protocolVersion, reconnectPeriod: 200 });
  client.on('message', (_topic, payload, packet) => {
    const event = JSON.parse(payload.toString()) as StoreEvent;
    events.set(event.id, event);
    packets.push(packet);
  });
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  await client.subscribeAsync(topic, { qos: 1 });
  return { client, events, packets, close: () => client.endAsync(true) };
}

/** Uploads `count` small PNGs into `album`, `concurrency` at a time; resolves with the acknowledged names. */
async function uploadMany(url: string, album: string, count: number, concurrency: number): Promise<string[]> {
  const png = await makePng(8, 8);
  const acked: string[] = [];
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count) {
      const name = `img-${String(next++).padStart(5, '0')}.png`;
      const form = new FormData();
      form.append('file', new Blob([png], { type: 'image/png' }), name);
      const res = await fetch(`${url}/api/v1/albums/${album}/images`, { method: 'POST', body: form });
      if (res.status === 201) acked.push(name);
      else throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
    }
  }));
  return acked;
}

describe('events that are never lost (issue 4)', function () {
  this.timeout(90_000);

  it('a persistent session offline during 1,000 uploads and a service restart gets all 1,000 (embedded broker, sessions on disk)', async () => {
    const svc = await startTestService();
    const { dataDir } = svc;
    const topic = 'imagestore/v1/albums/bulk/images/+/created';
    const first = await persistentSubscriber(svc.service.mqttUrl, 'offline-consumer', topic);
    await first.close(); // offline from here on
    await svc.http.post('/api/v1/albums').send({ albumName: 'bulk' }).expect(201);
    const acked = await uploadMany(svc.service.httpUrl, 'bulk', 1000, 16);
    expect(acked).to.have.length(1000);
    await svc.stop();
    const again = await startTestService({ dataDir });
    const back = await persistentSubscriber(again.service.mqttUrl, 'offline-consumer', topic);
    try {
      await waitFor('1,000 queued events', () => back.events.size >= 1000, 30_000);
      const names = new Set([...back.events.values()].map((e) => e.data.image));
      expect(names.size).to.equal(1000);
      for (const name of acked) expect(names.has(name), name).to.equal(true);
    } finally {
      await back.close();
      await again.close();
      await removeDir(dataDir);
    }
  });

  describe('with Debian mosquitto as the external broker', () => {
    let broker: Mosquitto;
    beforeEach(async () => {
      broker = await startMosquitto({ persistence: true });
    });
    afterEach(async () => broker.close());

    it('publishes over MQTT 5 with the CloudEvents content type and attributes as user properties', async () => {
      const svc = await startTestService({ config: { mqtt: { ...defaultConfig().mqtt, url: broker.url } } });
      const sub = await persistentSubscriber(broker.url, 'v5-consumer', 'imagestore/v1/albums/#', 5);
      try {
        await waitFor('the service connected', async () => (await svc.http.get('/readyz')).status === 200);
        await svc.http.post('/api/v1/albums').send({ albumName: 'v5 album' }).expect(201);
        await waitFor('the event', () => sub.packets.length >= 1);
        const [packet] = sub.packets;
        const [event] = [...sub.events.values()];
        expect(packet.topic).to.equal('imagestore/v1/albums/v5%20album/created');
        expect(packet.properties?.contentType).to.equal('application/cloudevents+json; charset=utf-8');
        expect(packet.properties?.userProperties).to.deep.include({
          specversion: '1.0', id: event.id, source: event.source, type: 'imagestore.album.created', time: event.time, subject: event.subject,
        });
      } finally {
        await sub.close();
        await svc.close();
      }
    });

    it('delivers the events of acknowledged uploads after a SIGKILL between answering and publishing (broker down meanwhile)', async () => {
      const dataDir = await makeTmpDir();
      const sub = await persistentSubscriber(broker.url, 'crash-consumer', 'imagestore/notifier');
      await sub.close();
      await broker.stop(); // the service can answer but not publish
      const env = { MQTT_URL: broker.url, MQTT_PROTOCOL_VERSION: '4' };
      const first = await spawnService({ dataDir, env });
      let acked: string[] = [];
      try {
        const created = await fetch(`${first.http}/api/v1/albums`, {
          method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ albumName: 'crash' }),
        });
        expect(created.status).to.equal(201);
        acked = await uploadMany(first.http, 'crash', 25, 5);
        const ready = await fetch(`${first.http}/readyz`).then((r) => r.json() as Promise<{ pendingEvents: number }>);
        expect(ready.pendingEvents).to.equal(26);
      } finally {
        await first.kill(); // SIGKILL: nothing of the shutdown path runs
      }
      await broker.restart();
      const second = await spawnService({ dataDir, env });
      const back = await persistentSubscriber(broker.url, 'crash-consumer', 'imagestore/notifier');
      try {
        await waitFor('26 events', () => back.events.size >= 26, 20_000);
        const events = [...back.events.values()];
        expect(events[0].type).to.equal('imagestore.album.created');
        expect(events.slice(1).map((e) => e.data.image).sort()).to.deep.equal([...acked].sort());
      } finally {
        await back.close();
        await second.stop();
        await removeDir(dataDir);
      }
    });
  });
});

import { expect } from 'chai';
import mqtt, { type MqttClient } from 'mqtt';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { recordEvents, type EventRecorder } from '../helpers/mqtt.js';
import { connectPacket, rawConnect, subscribePacket, type RawClient } from '../helpers/raw-mqtt.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

const MiB = 1024 * 1024;
const SHUTDOWN_TIMEOUT_MS = 3000;

async function connect(url: string): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  return client;
}

/**
 * A QoS 1 subscriber to `imagestore/#` and `flood/#` that reads its CONNACK
 * and SUBACK, then never reads again (nor acknowledges anything).
 */
async function stuckSubscriber(port: number): Promise<RawClient> {
  const stuck = await rawConnect(port);
  stuck.socket.write(Buffer.concat([connectPacket({ clientId: 'stuck-reader' }), subscribePacket(1, ['imagestore/#', 'flood/#'], 1)]));
  await stuck.waitForBytes(4 + 6);
  stuck.stopReading();
  return stuck;
}

/**
 * Publishes `totalBytes` in 128 KiB QoS 0 messages on flood/big, for at most
 * `deadlineMs` (a broker that stalls stops reading from the publisher too).
 */
async function flood(url: string, totalBytes: number, deadlineMs = 10_000): Promise<void> {
  const client = await connect(url);
  const payload = Buffer.alloc(128 * 1024, 1);
  const deadline = Date.now() + deadlineMs;
  try {
    for (let sent = 0; sent < totalBytes && Date.now() < deadline; sent += payload.length) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        client.publishAsync('flood/big', payload, { qos: 0 }),
        new Promise((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    }
  } finally {
    client.end(true);
  }
}

/** Creates an album and returns how long its event took to reach `recorder` after the 201 (ms). */
async function eventLatency(svc: SpawnedService, recorder: EventRecorder, album: string, timeoutMs: number): Promise<number> {
  const res = await fetch(`${svc.http}/api/v1/albums`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ albumName: album }) });
  expect(res.status).to.equal(201);
  const answered = Date.now();
  await waitFor(`the event of ${album}`, () => recorder.events.some((e) => e.data.album === album), timeoutMs, 5);
  return Date.now() - answered;
}

async function metric(svc: SpawnedService, name: string): Promise<number> {
  const text = await (await fetch(`${svc.http}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

describe('a subscriber that never reads costs only itself (issue 12, item 4)', function () {
  this.timeout(90_000);

  describe('while it stays connected (large MQTT_MAX_CLIENT_BUFFER_BYTES)', () => {
    let dataDir: string;
    let svc: SpawnedService;
    let stuck: RawClient;
    let healthy: EventRecorder;
    before(async () => {
      dataDir = await makeTmpDir();
      svc = await spawnService({ dataDir, env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS), MQTT_MAX_CLIENT_BUFFER_BYTES: String(512 * MiB) } });
      stuck = await stuckSubscriber(Number(new URL(svc.mqtt).port));
      healthy = await recordEvents(svc.mqtt, 'imagestore/#', { reconnectPeriod: 0 });
      // Far more than the loopback socket buffers hold: the broker's writes to the stuck client back up.
      await flood(svc.mqtt, 48 * MiB);
    });
    after(async () => {
      stuck?.socket.destroy();
      await healthy?.close();
      await svc?.stop(1000);
      await removeDir(dataDir);
    });

    it('delivers to a healthy subscriber within 1 s of each answer', async () => {
      for (let i = 0; i < 3; i++) {
        const ms = await eventLatency(svc, healthy, `healthy-${i}`, 10_000);
        expect(ms, `event ${i + 1}`).to.be.below(1000);
      }
      expect(stuck.isClosed(), 'the stuck client is still connected (so this test proves no one waits on it)').to.equal(false);
    });

    it('stops within SHUTDOWN_TIMEOUT_MS on SIGTERM, with the stuck client, an idle pre-CONNECT socket and a WebSocket client connected', async () => {
      const idle = await rawConnect(Number(new URL(svc.mqtt).port));
      const ws = await connect(`${svc.http.replace(/^http/, 'ws')}/mqtt`);
      await ws.subscribeAsync('imagestore/#', { qos: 1 });
      try {
        const started = Date.now();
        const exit = await svc.stop(20_000);
        const elapsed = Date.now() - started;
        expect(exit).to.deep.equal({ code: 0, signal: null });
        expect(elapsed, 'SIGTERM to exit (ms)').to.be.below(SHUTDOWN_TIMEOUT_MS);
      } finally {
        idle.socket.destroy();
        ws.end(true);
      }
    });
  });

  describe('with the default MQTT_MAX_CLIENT_BUFFER_BYTES', () => {
    let dataDir: string;
    let svc: SpawnedService;
    let stuck: RawClient;
    let healthy: EventRecorder;
    before(async () => {
      dataDir = await makeTmpDir();
      svc = await spawnService({ dataDir, env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) } });
      stuck = await stuckSubscriber(Number(new URL(svc.mqtt).port));
      healthy = await recordEvents(svc.mqtt, 'imagestore/#', { reconnectPeriod: 0 });
    });
    after(async () => {
      stuck?.socket.destroy();
      await healthy?.close();
      await svc?.stop(1000);
      await removeDir(dataDir);
    });

    it('disconnects the stuck client once it is that far behind, counts it, and delivers to the others within 1 s', async () => {
      await flood(svc.mqtt, 48 * MiB);
      await waitFor('the stuck client disconnected', async () => (await metric(svc, 'imagestore_broker_slow_clients_disconnected_total')) >= 1, 10_000, 100);
      expect(await metric(svc, 'imagestore_broker_clients')).to.equal(1);
      const ms = await eventLatency(svc, healthy, 'after-slow-client', 10_000);
      expect(ms).to.be.below(1000);
      expect(svc.logs('MQTT client too slow: disconnected').length).to.equal(1);
    });
  });
});

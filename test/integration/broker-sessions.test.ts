import { expect } from 'chai';
import mqtt, { type IConnackPacket, type MqttClient } from 'mqtt';
import type { StoreEvent } from '../../src/notifier/events.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/** A clean=false (persistent session) client on imagestore/# at QoS 1, recording what it receives. */
interface Session {
  client: MqttClient;
  sessionPresent: boolean;
  events: Array<StoreEvent & { topic: string }>;
  /** Creates an album and waits for its event: every message queued before has arrived by then. */
  sync(svc: SpawnedService): Promise<void>;
  /** DISCONNECT: the session stays on the broker. */
  leave(): Promise<void>;
}

let syncs = 0;

async function openSession(url: string, clientId: string, subscribe: boolean): Promise<Session> {
  const client = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0, connectTimeout: 5000 });
  const events: Session['events'] = [];
  // Listen before the CONNACK: the queued messages come right after it.
  client.on('message', (topic, payload) => events.push({ ...(JSON.parse(payload.toString()) as StoreEvent), topic }));
  const connack = await new Promise<IConnackPacket>((resolve, reject) => client.once('connect', resolve).once('error', reject));
  if (subscribe) await client.subscribeAsync('imagestore/#', { qos: 1 });
  return {
    client, events, sessionPresent: connack.sessionPresent,
    async sync(svc) {
      const album = `sync-${clientId}-${(syncs += 1)}`;
      await createAlbum(svc, album);
      await waitFor(`${clientId} got ${album}`, () => events.some((e) => e.data.album === album), 5000);
      // Its second topic too, and anything still in flight.
      await new Promise((resolve) => setTimeout(resolve, 200));
    },
    leave: () => client.endAsync(),
  };
}

async function createAlbum(svc: SpawnedService, album: string): Promise<void> {
  const res = await fetch(`${svc.http}/api/v1/albums`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ albumName: album }) });
  expect(res.status, `create ${album}`).to.equal(201);
}

async function metric(svc: SpawnedService, name: string): Promise<number> {
  const text = await (await fetch(`${svc.http}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

/** Waits until the service has handed every journaled event to the broker (queued for offline sessions included). */
async function allDelivered(svc: SpawnedService): Promise<void> {
  await waitFor('the outbox empty', async () => (await metric(svc, 'imagestore_outbox_pending_events')) === 0, 10_000, 50);
}

/** The albums of the events other than the sync albums, in arrival order. */
const albumsOf = (s: Session) => s.events.filter((e) => !e.data.album.startsWith('sync-')).map((e) => e.data.album);

describe('persistent MQTT sessions are bounded on the data disk (issue 12, item 5)', function () {
  this.timeout(60_000);
  let dataDir: string;
  let svc: SpawnedService | undefined;
  beforeEach(async () => {
    dataDir = await makeTmpDir();
  });
  afterEach(async () => {
    await svc?.stop();
    svc = undefined;
    await removeDir(dataDir);
  });

  it('caps each offline session at MQTT_SESSION_MAX_QUEUE messages: the oldest are dropped, counted and logged', async () => {
    svc = await spawnService({ dataDir, env: { MQTT_SESSION_MAX_QUEUE: '10' } });
    for (const id of ['capped-1', 'capped-2', 'capped-3']) await (await openSession(svc.mqtt, id, true)).leave();
    // 30 events, each on two topics: 60 messages for each session.
    for (let i = 0; i < 30; i++) await createAlbum(svc, `album-${String(i).padStart(2, '0')}`);
    await allDelivered(svc);
    expect(await metric(svc, 'imagestore_broker_session_messages_dropped_total')).to.equal(3 * 50);

    const back = await openSession(svc.mqtt, 'capped-1', false);
    try {
      expect(back.sessionPresent).to.equal(true);
      await back.sync(svc);
      const got = albumsOf(back);
      expect(got, 'the 10 newest messages: the last 5 albums on both topics').to.have.length(10);
      expect([...new Set(got)].sort()).to.deep.equal(['album-25', 'album-26', 'album-27', 'album-28', 'album-29']);
    } finally {
      await back.client.endAsync(true);
    }
    const logged = svc.logs('MQTT session queue full: oldest messages dropped').map((l) => l.clientId);
    expect([...new Set(logged)].sort()).to.deep.equal(['capped-1', 'capped-2', 'capped-3']);
  });

  it('keeps the cap and the order across a restart: the oldest, from before it, are dropped first', async () => {
    const env = { MQTT_SESSION_MAX_QUEUE: '10' };
    svc = await spawnService({ dataDir, env });
    await (await openSession(svc.mqtt, 'across-restart', true)).leave();
    for (let i = 0; i < 4; i++) await createAlbum(svc, `before-${i}`);
    await allDelivered(svc);
    expect(await svc.stop()).to.deep.equal({ code: 0, signal: null });
    svc = await spawnService({ dataDir, env });
    for (let i = 0; i < 4; i++) await createAlbum(svc, `after-${i}`);
    await allDelivered(svc);

    const back = await openSession(svc.mqtt, 'across-restart', false);
    try {
      expect(back.sessionPresent).to.equal(true);
      await back.sync(svc);
      const got = albumsOf(back);
      expect(got).to.have.length(10);
      // Each album's two messages arrive together, albums in the order they were made.
      expect(got.filter((album, i) => got.indexOf(album) === i)).to.deep.equal(['before-3', 'after-0', 'after-1', 'after-2', 'after-3']);
    } finally {
      await back.client.endAsync(true);
    }
  });

  it('expires a session offline longer than MQTT_SESSION_EXPIRY: subscriptions and queue are gone', async () => {
    svc = await spawnService({ dataDir, env: { MQTT_SESSION_EXPIRY: '2s' } });
    await (await openSession(svc.mqtt, 'expiring', true)).leave();
    const kept = await openSession(svc.mqtt, 'kept-online', true);
    try {
      await createAlbum(svc, 'while-offline');
      await allDelivered(svc);
      await waitFor('the session expired', async () => (await metric(svc!, 'imagestore_broker_sessions_expired_total')) === 1, 10_000, 100);
      await createAlbum(svc, 'after-expiry');
      await allDelivered(svc);

      const back = await openSession(svc.mqtt, 'expiring', true);
      try {
        expect(back.sessionPresent, 'session present').to.equal(false);
        await back.sync(svc);
        expect(albumsOf(back)).to.deep.equal([]);
      } finally {
        await back.client.endAsync(true);
      }
      // A connected persistent session never expires.
      await kept.sync(svc);
      expect(new Set(albumsOf(kept))).to.deep.equal(new Set(['while-offline', 'after-expiry']));
      expect(svc.logs('MQTT session expired').map((l) => l.clientId)).to.deep.equal(['expiring']);
    } finally {
      await kept.client.endAsync(true);
    }
  });

  it('keeps the broker store within MQTT_STORE_MAX_BYTES by expiring the sessions offline longest first', async () => {
    svc = await spawnService({ dataDir, env: { MQTT_STORE_MAX_BYTES: String(64 * 1024), MQTT_SESSION_MAX_QUEUE: '100000' } });
    await (await openSession(svc.mqtt, 'offline-longest', true)).leave();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await (await openSession(svc.mqtt, 'offline-recently', true)).leave();
    for (let i = 0; i < 40; i++) await createAlbum(svc, `budget-${String(i).padStart(2, '0')}`);
    await allDelivered(svc);
    expect(await metric(svc, 'imagestore_broker_store_bytes')).to.be.within(1, 64 * 1024);

    const oldest = await openSession(svc.mqtt, 'offline-longest', false);
    try {
      expect(oldest.sessionPresent, 'the session offline longest').to.equal(false);
    } finally {
      await oldest.client.endAsync(true);
    }
    const recent = await openSession(svc.mqtt, 'offline-recently', false);
    try {
      expect(recent.sessionPresent, 'the session offline since more recently').to.equal(true);
      await recent.sync(svc);
      expect(albumsOf(recent)).to.have.length(80);
    } finally {
      await recent.client.endAsync(true);
    }
    expect(svc.logs('MQTT store over budget: session expired early').map((l) => l.clientId)).to.deep.equal(['offline-longest']);
  });
});

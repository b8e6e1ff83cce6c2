import { expect } from 'chai';
import type { IClientOptions, MqttClient } from 'mqtt';
import { loadConfig, type Config } from '../../src/config.js';
import { waitFor } from '../helpers/wait-for.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir } from '../helpers/tmp-dir.js';
import { connectMqtt } from '../helpers/mqtt.js';

const KEYS = {
  read: 'broker-test-read-key-5d1e8a',
  write: 'broker-test-write-key-93c0f4',
  admin: 'broker-test-admin-key-b7a26e',
};
const WRONG_KEY = 'broker-test-wrong-key-0f4d1c';
const WAIT_MS = 5000;

/** Starts the whole service with a configuration loaded from `env`, on a fresh temp data dir. */
async function startWithEnv(env: Record<string, string>): Promise<TestService> {
  const dataDir = await makeTmpDir();
  const config: Config = {
    ...loadConfig({ HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_MS: '3000', ...env }),
    imageDbDir: dataDir,
  };
  return startTestService({ dataDir, config });
}

/** MQTT credentials: any username, the API key as password. */
const withKey = (key: string): IClientOptions => ({ username: 'any-name', password: key });


/** The error of a connection attempt the broker refuses. */
async function refusal(url: string, options: IClientOptions): Promise<Error & { code?: number }> {
  try {
    const client = await connectMqtt(url, options);
    await client.endAsync(true);
  } catch (err) {
    return err as Error & { code?: number };
  }
  throw new Error('the broker accepted the connection');
}

/** A client subscribed to `filter` that keeps every message it receives. */
interface Watcher {
  messages: Array<{ topic: string; payload: string }>;
  /** Waits until a message whose payload contains `text` arrived. */
  waitFor(text: string): Promise<void>;
  client: MqttClient;
}

async function watch(url: string, options: IClientOptions, filter = '#'): Promise<Watcher> {
  const client = await connectMqtt(url, options);
  const messages: Watcher['messages'] = [];
  client.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString() }));
  await client.subscribeAsync(filter, { qos: 1 });
  return {
    client, messages,
    async waitFor(text) {
      await waitFor(`a message with ${text}`, () => messages.some((m) => m.payload.includes(text)), WAIT_MS);
    },
  };
}

/**
 * Publishes (QoS 1) from a fresh connection: 'accepted' when the broker
 * acknowledges, 'refused' when it drops the connection instead (aedes closes
 * a client whose publish is not authorized).
 */
async function tryPublish(url: string, options: IClientOptions, topic: string, payload: string): Promise<'accepted' | 'refused'> {
  const client = await connectMqtt(url, options);
  try {
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no PUBACK and no close within ${WAIT_MS} ms`)), WAIT_MS);
      client.once('close', () => {
        clearTimeout(timer);
        resolve('refused');
      });
      client.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) return;
        clearTimeout(timer);
        resolve('accepted');
      });
    });
  } finally {
    await client.endAsync(true);
  }
}

/** Connects with a will, then drops the connection without DISCONNECT, so the broker publishes the will if allowed. */
async function dieWithWill(url: string, options: IClientOptions, topic: string, payload: string): Promise<void> {
  const client = await connectMqtt(url, { ...options, will: { topic, payload: Buffer.from(payload), qos: 0, retain: false } });
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  client.stream.destroy();
  await closed;
  client.end(true);
}

/** The QoS the SUBACK grants each filter (128: refused; mqtt.js then rejects, with the SUBACK attached). */
async function grantedQos(client: MqttClient, filters: string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos: 0 })).map((g) => g.qos);
  } catch (err) {
    const suback = (err as { packet?: { granted?: number[] } }).packet;
    if (!suback?.granted) throw err;
    return suback.granted;
  }
}

let unique = 0;
/** A payload no other test sends. */
const mark = (what: string) => `${what}-${process.pid}-${(unique += 1)}`;

describe('broker access control', function () {
  this.timeout(20_000);

  describe('with API keys configured', () => {
    let svc: TestService;
    let admin: Watcher;
    before(async () => {
      svc = await startWithEnv({ API_KEYS: Object.entries(KEYS).map(([role, key]) => `${role}:${key}`).join(',') });
      admin = await watch(svc.service.mqttUrl, withKey(KEYS.admin));
    });
    after(async () => {
      await admin?.client.endAsync(true);
      await svc?.close();
    });

    /** Makes the service publish an event and waits until the admin watcher has it: what was refused earlier would have arrived by then. */
    async function serviceEventArrives(): Promise<void> {
      const albumName = mark('album');
      await svc.http.post('/api/v1/albums').set('Authorization', `Bearer ${KEYS.write}`).send({ albumName }).expect(201);
      await admin.waitFor(albumName);
    }

    it('refuses a client without a valid key (CONNACK "Bad username or password")', async () => {
      const url = svc.service.mqttUrl;
      for (const [what, options] of Object.entries<IClientOptions>({
        anonymous: {},
        'a username only': { username: 'reader' },
        'a wrong key': withKey(WRONG_KEY),
        'the key as username': { username: KEYS.admin },
        'a key with a typo': withKey(`${KEYS.admin.slice(0, -1)}x`),
      })) {
        const err = await refusal(url, options);
        expect(err.code, `${what}: ${err.message}`).to.equal(4);
        expect(err.message, what).to.match(/Connection refused: Bad username or password/);
      }
    });

    it('refuses an MQTT 5 client without a valid key too', async () => {
      const err = await refusal(svc.service.mqttUrl, { protocolVersion: 5, ...withKey(WRONG_KEY) });
      expect(err.message).to.match(/Connection refused/);
    });

    it('lets a read key subscribe and receive the service\'s events', async () => {
      const reader = await watch(svc.service.mqttUrl, withKey(KEYS.read), 'imagestore/notifier');
      try {
        const albumName = mark('for-reader');
        await svc.http.post('/api/v1/albums').set('Authorization', `Bearer ${KEYS.write}`).send({ albumName }).expect(201);
        await reader.waitFor(albumName);
        const event = JSON.parse(reader.messages.find((m) => m.payload.includes(albumName))!.payload);
        expect(event.type).to.equal('imagestore.album.created');
      } finally {
        await reader.client.endAsync(true);
      }
    });

    it('drops the connection of a read key that publishes, to any topic; nothing is delivered', async () => {
      const forged = [mark('read-forged'), mark('read-chat')];
      expect(await tryPublish(svc.service.mqttUrl, withKey(KEYS.read), 'imagestore/notifier', forged[0])).to.equal('refused');
      expect(await tryPublish(svc.service.mqttUrl, withKey(KEYS.read), 'chat/room', forged[1])).to.equal('refused');
      await serviceEventArrives();
      expect(admin.messages.filter((m) => forged.some((f) => m.payload.includes(f)))).to.deep.equal([]);
    });

    it('lets a write key publish outside imagestore/ (so the refusals above are real)', async () => {
      const payload = mark('chat');
      expect(await tryPublish(svc.service.mqttUrl, withKey(KEYS.write), 'chat/room', payload)).to.equal('accepted');
      await admin.waitFor(payload);
    });

    it('lets nobody, not even admin, publish under imagestore/ (no forged events)', async () => {
      const forged: string[] = [];
      for (const key of [KEYS.write, KEYS.admin]) {
        for (const topic of ['imagestore/notifier', 'imagestore/v1/albums/forged/created', 'imagestore']) {
          const payload = mark(`forged-${topic}`);
          forged.push(payload);
          expect(await tryPublish(svc.service.mqttUrl, withKey(key), topic, payload), `${topic} with the ${key === KEYS.admin ? 'admin' : 'write'} key`).to.equal('refused');
        }
      }
      await serviceEventArrives();
      expect(admin.messages.filter((m) => forged.some((f) => m.payload.includes(f)))).to.deep.equal([]);
    });

    it('applies the same rules to will messages', async () => {
      const allowed = mark('will-chat');
      const forged = [mark('will-forged'), mark('will-read')];
      await dieWithWill(svc.service.mqttUrl, withKey(KEYS.admin), 'imagestore/notifier', forged[0]);
      await dieWithWill(svc.service.mqttUrl, withKey(KEYS.read), 'chat/will', forged[1]);
      await dieWithWill(svc.service.mqttUrl, withKey(KEYS.write), 'chat/will', allowed);
      await admin.waitFor(allowed);
      await serviceEventArrives();
      expect(admin.messages.filter((m) => forged.some((f) => m.payload.includes(f)))).to.deep.equal([]);
    });

    it('refuses $SYS/ subscriptions to read and write keys (SUBACK failure), and gives them no $SYS message (issue 12)', async () => {
      for (const key of [KEYS.read, KEYS.write]) {
        const client = await connectMqtt(svc.service.mqttUrl, withKey(key));
        try {
          const sys: string[] = [];
          client.on('message', (topic) => sys.push(topic));
          expect(await grantedQos(client, ['$SYS/#', '$SYS/+/new/clients']), key === KEYS.read ? 'read key' : 'write key').to.deep.equal([128, 128]);
          // A new client makes the broker publish $SYS/<id>/new/clients with its id.
          const other = await connectMqtt(svc.service.mqttUrl, withKey(KEYS.read));
          await other.endAsync(true);
          await serviceEventArrives();
          expect(sys).to.deep.equal([]);
        } finally {
          await client.endAsync(true);
        }
      }
      const adminSys = await connectMqtt(svc.service.mqttUrl, withKey(KEYS.admin));
      try {
        expect(await grantedQos(adminSys, ['$SYS/#']), 'admin key').to.deep.equal([0]);
      } finally {
        await adminSys.endAsync(true);
      }
    });

    it('refuses $SYS/ publishes from every key: no forged broker messages (issue 12)', async () => {
      // aedes closes any client whose id comes in a $SYS/<other broker>/new/clients message: a forged one would kick the admin watcher off.
      const victim = admin.client.options.clientId!;
      for (const key of [KEYS.write, KEYS.admin]) {
        expect(await tryPublish(svc.service.mqttUrl, withKey(key), '$SYS/forged-broker/new/clients', victim), key === KEYS.admin ? 'admin' : 'write').to.equal('refused');
      }
      expect(admin.client.connected).to.equal(true);
      await serviceEventArrives();
    });

    it('checks keys on MQTT over WebSocket (/mqtt on the HTTP port) as well', async () => {
      const wsUrl = `${svc.service.httpUrl.replace(/^http/, 'ws')}/mqtt`;
      const err = await refusal(wsUrl, {});
      expect(err.code).to.equal(4);
      const reader = await watch(wsUrl, withKey(KEYS.read), 'imagestore/notifier');
      try {
        const albumName = mark('over-ws');
        await svc.http.post('/api/v1/albums').set('Authorization', `Bearer ${KEYS.write}`).send({ albumName }).expect(201);
        await reader.waitFor(albumName);
      } finally {
        await reader.client.endAsync(true);
      }
      expect(await tryPublish(wsUrl, withKey(KEYS.admin), 'imagestore/notifier', mark('ws-forged'))).to.equal('refused');
    });
  });

  describe('with no API keys (open)', () => {
    let svc: TestService;
    before(async () => {
      svc = await startWithEnv({});
    });
    after(async () => svc?.close());

    it('lets anonymous clients subscribe and receive events, and publish outside imagestore/ only', async () => {
      const anyone = await watch(svc.service.mqttUrl, {});
      try {
        const chat = mark('open-chat');
        expect(await tryPublish(svc.service.mqttUrl, {}, 'chat/room', chat)).to.equal('accepted');
        await anyone.waitFor(chat);
        const forged = mark('open-forged');
        expect(await tryPublish(svc.service.mqttUrl, {}, 'imagestore/notifier', forged)).to.equal('refused');
        expect(await tryPublish(svc.service.mqttUrl, { username: 'x', password: 'whatever' }, 'imagestore/v1/albums/a/created', forged)).to.equal('refused');
        const albumName = mark('open-album');
        await svc.http.post('/api/v1/albums').send({ albumName }).expect(201);
        await anyone.waitFor(albumName);
        expect(anyone.messages.filter((m) => m.payload.includes(forged))).to.deep.equal([]);
      } finally {
        await anyone.client.endAsync(true);
      }
    });
  });
});

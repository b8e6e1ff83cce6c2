import { expect } from 'chai';
import { once } from 'node:events';
import type { IClientOptions } from 'mqtt';
import WebSocket from 'ws';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { startServiceWithEnv, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';
import { connectMqtt } from '../helpers/mqtt.js';
import {
  connectPacket, fixedHeader, rawConnect, rssBytes, socketWriter, streamZeros, type RawClient,
} from '../helpers/raw-mqtt.js';

const MiB = 1024 * 1024;
const WAIT_MS = 5000;


function mqttPort(url: string): number {
  return Number(new URL(url).port);
}


/** The refusal of a connection attempt (the error mqtt.js reports), or 'accepted'. */
async function attempt(url: string, options: IClientOptions): Promise<'accepted' | (Error & { code?: number })> {
  try {
    const client = await connectMqtt(url, options);
    await client.endAsync(true);
    return 'accepted';
  } catch (err) {
    return err as Error & { code?: number };
  }
}

/** Sends CONNECT on a raw socket; true when the broker answers CONNACK 0 (accepted). */
async function rawHandshake(client: RawClient, clientId: string): Promise<boolean> {
  client.socket.write(connectPacket({ clientId }));
  try {
    const bytes = await client.waitForBytes(4, 3000);
    return bytes[0] === 0x20 && bytes[3] === 0;
  } catch {
    return false;
  }
}

describe('broker limits: packet sizes, connect timeout, connections, failed logins (issue 12)', function () {
  this.timeout(60_000);

  describe('oversized packets never get buffered (real service process, RSS from /proc)', () => {
    let dataDir: string;
    let svc: SpawnedService;
    before(async () => {
      dataDir = await makeTmpDir();
      svc = await spawnService({ dataDir, env: { MQTT_MAX_PACKET_BYTES: String(64 * 1024) } });
    });
    after(async () => {
      await svc?.stop();
      await removeDir(dataDir);
    });

    /** Lets the process settle (GC, lazy start-up allocations) and reads its RSS. */
    async function settledRss(): Promise<number> {
      await new Promise((resolve) => setTimeout(resolve, 500));
      return rssBytes(svc.pid);
    }

    it('closes TCP clients that declare a 250 MB CONNECT (or send anything else first) at the header; RSS stays flat', async () => {
      const client = await connectMqtt(svc.mqtt);
      await client.endAsync(true);
      const before = await settledRss();
      const port = mqttPort(svc.mqtt);
      const attackers = await Promise.all(Array.from({ length: 8 }, () => rawConnect(port)));
      const sent = await Promise.all(attackers.map(async (a, i) => {
        // One in four starts with a PUBLISH header instead: only CONNECT may come first [MQTT-3.1.0-1].
        a.socket.write(fixedHeader(i % 4 === 3 ? 0x30 : 0x10, 250_000_000));
        return streamZeros(socketWriter(a.socket), 32 * MiB);
      }));
      await waitFor('every attacker closed by the broker', () => attackers.every((a) => a.isClosed()), 3000)
        .catch(() => undefined);
      const after = rssBytes(svc.pid);
      for (const a of attackers) a.socket.destroy();
      expect(attackers.map((a) => a.isClosed()), 'closed by the broker').to.deep.equal(attackers.map(() => true));
      // The kernel's socket buffers take some bytes before the close is seen; the broker keeps none of them.
      for (const bytes of sent) expect(bytes).to.be.below(16 * MiB);
      expect(after - before, `RSS grew from ${before} to ${after}`).to.be.below(64 * MiB);
    });

    it('closes WebSocket clients on /mqtt that declare a 250 MB CONNECT; RSS stays flat', async () => {
      const before = await settledRss();
      const url = `${svc.http.replace(/^http/, 'ws')}/mqtt`;
      const sockets = await Promise.all(Array.from({ length: 8 }, async () => {
        const ws = new WebSocket(url, 'mqtt');
        ws.on('error', () => undefined);
        await once(ws, 'open');
        return ws;
      }));
      const closed = sockets.map(() => false);
      sockets.forEach((ws, i) => ws.once('close', () => (closed[i] = true)));
      await Promise.all(sockets.map(async (ws, i) => {
        ws.send(fixedHeader(0x10, 250_000_000));
        await streamZeros(async (chunk) => {
          while (ws.readyState === WebSocket.OPEN && ws.bufferedAmount > 4 * MiB) await new Promise((r) => setTimeout(r, 5));
          if (closed[i] || ws.readyState !== WebSocket.OPEN) return false;
          ws.send(chunk);
          return true;
        }, 32 * MiB);
      }));
      await waitFor('every WebSocket closed by the broker', () => closed.every(Boolean), 3000).catch(() => undefined);
      const after = rssBytes(svc.pid);
      for (const ws of sockets) ws.terminate();
      expect(closed, 'closed by the broker').to.deep.equal(sockets.map(() => true));
      expect(after - before, `RSS grew from ${before} to ${after}`).to.be.below(64 * MiB);
    });

    it('disconnects a client whose packet after CONNECT exceeds MQTT_MAX_PACKET_BYTES, and takes one within it', async () => {
      const client = await connectMqtt(svc.mqtt);
      try {
        await client.publishAsync('chat/fits', Buffer.alloc(60 * 1024), { qos: 1 });
        const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
        client.publish('chat/too-big', Buffer.alloc(65 * 1024), { qos: 1 });
        await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('still connected')), WAIT_MS))]);
      } finally {
        client.end(true);
      }
    });
  });

  describe('connect timeout and connection limits', () => {
    let svc: TestService;
    before(async () => {
      svc = await startServiceWithEnv({ MQTT_CONNECT_TIMEOUT_MS: '1000', MQTT_MAX_CONNECTIONS: '6', MQTT_MAX_CONNECTIONS_PER_IP: '4' });
    });
    after(async () => svc?.close());

    it('closes a connection that sends no CONNECT within MQTT_CONNECT_TIMEOUT_MS', async () => {
      const idle = await rawConnect(mqttPort(svc.service.mqttUrl));
      const started = Date.now();
      await waitFor('the idle connection closed', () => idle.isClosed(), WAIT_MS);
      expect(Date.now() - started).to.be.at.least(500);
    });

    it('refuses connections beyond MQTT_MAX_CONNECTIONS_PER_IP and MQTT_MAX_CONNECTIONS, TCP and WebSocket alike', async () => {
      const port = mqttPort(svc.service.mqttUrl);
      const open: RawClient[] = [];
      try {
        for (let i = 0; i < 4; i++) {
          const c = await rawConnect(port);
          open.push(c);
          expect(await rawHandshake(c, `local-${i}`), `connection ${i + 1} from 127.0.0.1`).to.equal(true);
        }
        const fifth = await rawConnect(port);
        expect(await rawHandshake(fifth, 'local-5'), 'a fifth from 127.0.0.1').to.equal(false);
        fifth.socket.destroy();
        for (let i = 0; i < 2; i++) {
          const c = await rawConnect(port, '127.0.0.2');
          open.push(c);
          expect(await rawHandshake(c, `other-${i}`), `connection ${i + 1} from 127.0.0.2`).to.equal(true);
        }
        const seventh = await rawConnect(port, '127.0.0.2');
        expect(await rawHandshake(seventh, 'other-3'), 'a seventh in total').to.equal(false);
        seventh.socket.destroy();
        const ws = await attempt(`${svc.service.httpUrl.replace(/^http/, 'ws')}/mqtt`, {});
        expect(ws, 'over WebSocket').not.to.equal('accepted');
      } finally {
        for (const c of open) c.socket.destroy();
      }
      // Closed connections give their places back.
      await waitFor('a new connection accepted', async () => {
        const c = await rawConnect(port);
        const ok = await rawHandshake(c, 'after');
        c.socket.destroy();
        return ok;
      }, WAIT_MS);
    });
  });

  describe('failed MQTT logins are limited per client address (issue 12, item 9)', () => {
    const READ_KEY = 'limits-test-read-key-6c2f9e1a';
    const ADMIN_KEY = 'limits-test-admin-key-0b7d3f58';
    let svc: TestService;
    before(async () => {
      svc = await startServiceWithEnv({ API_KEYS: `read:${READ_KEY},admin:${ADMIN_KEY}`, MQTT_AUTH_MAX_FAILURES: '5', MQTT_AUTH_BLOCK_MS: '1500' });
    });
    after(async () => svc?.close());

    it('refuses even the right key after MQTT_AUTH_MAX_FAILURES failures, on TCP and WebSocket, until MQTT_AUTH_BLOCK_MS passes', async () => {
      const url = svc.service.mqttUrl;
      const wsUrl = `${svc.service.httpUrl.replace(/^http/, 'ws')}/mqtt`;
      expect(await attempt(url, { username: 'u', password: READ_KEY })).to.equal('accepted');
      for (let i = 0; i < 5; i++) {
        const refused = await attempt(i % 2 ? wsUrl : url, { username: 'u', password: `wrong-key-${i}-0123456789` });
        expect(refused, `failure ${i + 1}`).not.to.equal('accepted');
        expect((refused as { code?: number }).code, `failure ${i + 1}`).to.equal(4);
      }
      const blocked = await attempt(url, { username: 'u', password: READ_KEY });
      expect(blocked, 'the right key while blocked').not.to.equal('accepted');
      expect((blocked as { code?: number }).code).to.equal(5);
      expect(await attempt(wsUrl, { username: 'u', password: READ_KEY }), 'over WebSocket while blocked').not.to.equal('accepted');
      const res = await svc.http.get('/metrics').set('Authorization', `Bearer ${ADMIN_KEY}`).expect(200);
      expect(res.text).to.match(/^imagestore_broker_refused_connections_total\{reason="auth_blocked"\} [1-9]/m);
      await waitFor('the block lifted', async () => (await attempt(url, { username: 'u', password: READ_KEY })) === 'accepted', WAIT_MS, 200);
    });
  });
});

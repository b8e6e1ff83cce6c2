import mqtt, { type MqttClient } from 'mqtt';
import type { StoreEvent } from '../../src/notifier/events.js';
import { waitFor } from './wait-for.js';

/** A real MQTT client that records every event it receives. */
export interface EventRecorder {
  client: MqttClient;
  events: Array<StoreEvent & { topic: string }>;
  /** Waits until at least `count` events arrived; returns them all. */
  waitForCount(count: number, timeoutMs?: number): Promise<Array<StoreEvent & { topic: string }>>;
  close(): Promise<void>;
}

/** Connects to `url`, subscribes to `topic` (QoS 1) and records JSON payloads. */
export async function recordEvents(url: string, topic = 'imagestore/notifier', options: mqtt.IClientOptions = {}): Promise<EventRecorder> {
  const client = mqtt.connect(url, { reconnectPeriod: 200, ...options });
  const events: Array<StoreEvent & { topic: string }> = [];
  // Listen before the CONNACK: a persistent session's queued messages come right after it.
  client.on('message', (t, payload) => events.push({ ...(JSON.parse(payload.toString()) as StoreEvent), topic: t }));
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve());
    client.once('error', reject);
  });
  await client.subscribeAsync(topic, { qos: 1 });
  return {
    client,
    events,
    waitForCount: (count, timeoutMs = 8000) =>
      waitFor(`${count} events (got ${events.length})`, () => events.length >= count && events, timeoutMs),
    async close() {
      await client.endAsync(true);
    },
  };
}

/** Connects without reconnecting; resolves on an accepted CONNACK, rejects on a refusal or a close before it (bounded by connectTimeout, default 5 s). */
export async function connectMqtt(url: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...options });
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', () => resolve());
      client.once('error', reject);
      client.once('close', () => reject(new Error('connection closed before CONNACK')));
    });
    return client;
  } catch (err) {
    client.end(true);
    throw err;
  }
}

import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from '../logger.js';
import type { StoreEvent } from './events.js';
import type { EventTransport } from './types.js';

export interface MqttTransportOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** Longest wait for a PUBACK before the delivery counts as failed and is retried. */
  ackTimeoutMs?: number;
}

/**
 * Delivers events to a broker over the network with mqtt.js. Connects in the
 * background and keeps reconnecting, so a broker that is down at start or goes
 * away later only delays delivery (the outbox keeps the events).
 */
export class MqttTransport implements EventTransport {
  private readonly client: MqttClient;
  private readonly ackTimeoutMs: number;

  constructor(options: MqttTransportOptions, log: Logger) {
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.client = mqtt.connect(options.url, {
      clientId: options.clientId,
      username: options.username,
      password: options.password,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
    });
    let wasConnected = false;
    this.client.on('connect', () => {
      wasConnected = true;
      log.info({ url: redact(options.url) }, 'connected to MQTT broker');
    });
    this.client.on('offline', () => {
      if (wasConnected) log.warn({ url: redact(options.url) }, 'MQTT broker unreachable; events wait in the outbox');
      wasConnected = false;
    });
    this.client.on('error', (err) => log.warn({ err: err.message }, 'MQTT client error'));
  }

  get connected(): boolean {
    return this.client.connected;
  }

  onConnect(listener: () => void): void {
    this.client.on('connect', listener);
  }

  async deliver(event: StoreEvent, topics: string[]): Promise<void> {
    const payload = JSON.stringify(event);
    await Promise.all(topics.map((topic) => this.publishOne(topic, payload)));
  }

  private async publishOne(topic: string, payload: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no PUBACK within ${this.ackTimeoutMs} ms`)), this.ackTimeoutMs);
    });
    try {
      await Promise.race([this.client.publishAsync(topic, payload, { qos: 1 }), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** The URL without its password, for logs. */
function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

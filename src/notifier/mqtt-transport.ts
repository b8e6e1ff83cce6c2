import { readFileSync } from 'node:fs';
import mqtt, { type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { Logger } from '../logger.js';
import type { StoreEvent } from './events.js';
import type { EventTransport } from './types.js';

export interface MqttTransportOptions {
  url: string;
  clientId: string;
  username?: string;
  password?: string;
  /** `auto` tries MQTT 5 and falls back to 3.1.1 when the broker refuses it (released aedes speaks only 3.1.1). */
  protocolVersion: 4 | 5 | 'auto';
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  rejectUnauthorized: boolean;
  /** Longest wait for a PUBACK before the delivery counts as failed and is retried. */
  ackTimeoutMs?: number;
}

/** Content type of a structured-mode CloudEvent (CloudEvents MQTT binding, 3.2). */
export const CLOUDEVENTS_JSON = 'application/cloudevents+json; charset=utf-8';

/**
 * Delivers events to an external broker with mqtt.js (mqtt, mqtts, ws, wss).
 * Connects in the background and keeps reconnecting, so a broker that is down
 * at start or goes away later only delays delivery (the outbox keeps the events).
 * Over MQTT 5 each message also carries the content type and the CloudEvents
 * attributes as user properties; over 3.1.1 the JSON payload carries everything.
 */
export class MqttTransport implements EventTransport {
  private readonly client: MqttClient;
  private readonly ackTimeoutMs: number;

  constructor(
    options: MqttTransportOptions,
    private readonly log: Logger,
  ) {
    this.ackTimeoutMs = options.ackTimeoutMs ?? 10_000;
    this.client = mqtt.connect(options.url, {
      clientId: options.clientId,
      username: options.username,
      password: options.password,
      protocolVersion: options.protocolVersion === 'auto' ? 5 : options.protocolVersion,
      reconnectOnConnackError: true,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 5000,
      ca: options.caFile ? readFileSync(options.caFile) : undefined,
      cert: options.certFile ? readFileSync(options.certFile) : undefined,
      key: options.keyFile ? readFileSync(options.keyFile) : undefined,
      rejectUnauthorized: options.rejectUnauthorized,
    });
    let wasConnected = false;
    this.client.on('connect', () => {
      wasConnected = true;
      log.info({ url: redact(options.url), protocolVersion: this.client.options.protocolVersion }, 'connected to MQTT broker');
    });
    this.client.on('offline', () => {
      if (wasConnected) log.warn({ url: redact(options.url) }, 'MQTT broker unreachable; events wait in the outbox');
      wasConnected = false;
    });
    this.client.on('error', (err) => {
      // CONNACK return code 1: "unacceptable protocol version" (MQTT 3.1.1, 3.2.2.3).
      if (options.protocolVersion === 'auto' && (err as { code?: number }).code === 1 && this.client.options.protocolVersion === 5) {
        log.info('broker refused MQTT 5; using MQTT 3.1.1');
        this.client.options.protocolVersion = 4;
        return;
      }
      log.warn({ err: err.message }, 'MQTT client error');
    });
  }

  get connected(): boolean {
    return this.client.connected;
  }

  onConnect(listener: () => void): void {
    this.client.on('connect', listener);
  }

  /** @param json the event's JSON when the journal has it already (serialised once) */
  async deliver(event: StoreEvent, topics: string[], json?: string): Promise<void> {
    const payload = json ?? JSON.stringify(event);
    const options: IClientPublishOptions = { qos: 1 };
    if (this.client.options.protocolVersion === 5) options.properties = { contentType: CLOUDEVENTS_JSON, userProperties: cloudEventProperties(event) };
    await Promise.all(topics.map((topic) => this.publishOne(topic, payload, options)));
  }

  private async publishOne(topic: string, payload: string, options: IClientPublishOptions): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no PUBACK within ${this.ackTimeoutMs} ms`)), this.ackTimeoutMs);
    });
    try {
      await Promise.race([this.client.publishAsync(topic, payload, options), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * QoS 1 on the same connection. The session is clean, so each (re)connection subscribes
   * again; messages published while disconnected are lost, hence `following(false)` then.
   */
  subscribe(topic: string, onMessage: (payload: Buffer) => void, following: (on: boolean) => void): void {
    const subscribe = () => {
      this.client.subscribe(topic, { qos: 1 }, (err, granted) => {
        const refused = err !== null && err !== undefined ? err.message : granted?.some((g) => g.qos === 128) ? 'refused by the broker' : undefined;
        if (refused) this.log.warn({ topic, err: refused }, 'could not subscribe to the event stream: the S3 cache is not trusted');
        else following(true);
      });
    };
    this.client.on('message', (received, payload) => {
      if (received === topic) onMessage(payload);
    });
    this.client.on('connect', subscribe);
    this.client.on('close', () => following(false));
    if (this.client.connected) subscribe();
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/** CloudEvents context attributes as MQTT 5 user properties (CloudEvents MQTT binding, 3.1.3.4). */
export function cloudEventProperties(event: StoreEvent): Record<string, string> {
  const props: Record<string, string> = {
    specversion: event.specversion, id: event.id, source: event.source, type: event.type, time: event.time, subject: event.subject,
  };
  if (event.reqid) props.reqid = event.reqid;
  return props;
}

/** The URL without its password, for logs. */
function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { SubscriberConfig } from './config.js';
import { handleMessage, type ReceivedEvent } from './handle-message.js';

/** Wait between two connection attempts while the broker is away. */
export const RECONNECT_PERIOD_MS = 1000;

/** How long one connection attempt may take before it counts as failed. */
export const CONNECT_TIMEOUT_MS = 5000;

/** What the subscriber hands events to besides the printed line: the mirror (mirror/mirror.ts). */
export interface EventSink {
  /**
   * Called each time the subscription is in place (SUBACK), after every (re)connection: every
   * change from then on comes as an event, so a listing read now misses nothing.
   */
  onSubscribed(): void;
  /** Called when the connection is lost: events may be missed until `onSubscribed`. */
  onDisconnected?(): void;
  /** Called with every event that passed the filters, in arrival order. */
  push(event: ReceivedEvent): void;
  close(): Promise<void>;
}

/** What `startSubscriber` needs; `connect` defaults to mqtt.js's own. */
export interface SubscriberDeps {
  config: Pick<SubscriberConfig, 'mqtt' | 'format' | 'filter'>;
  log: Logger;
  /** Receives each event line, without the newline (main writes it to stdout). */
  write: (line: string) => void;
  /** Mirror mode: receives the events too; closed with the subscriber. */
  sink?: EventSink;
  connect?: (url: string, options: IClientOptions) => MqttClient;
}

/** A running subscriber. */
export interface Subscriber {
  /** Disconnects from the broker and stops reconnecting, then closes the sink. */
  close(): Promise<void>;
}

/**
 * Connects to the broker, subscribes at QoS 1 and hands every message to `handleMessage`, then
 * the events that pass the filters to `sink` (mirror mode).
 * It keeps trying every RECONNECT_PERIOD_MS while the broker is down, and subscribes again on
 * each connect (a restarted broker may know nothing of us). With `config.mqtt.clean` false the
 * session is persistent: the broker queues QoS 1 events while we are away. Invalid payloads are
 * logged as warnings and skipped.
 * Returns at once: the first connection is made in the background, and logged as 'connected'.
 * @param deps config, logger, line writer and, for tests, the connect function
 * @example const sub = startSubscriber({ config, log, write: (l) => process.stdout.write(`${l}\n`) }); await sub.close();
 */
export function startSubscriber({ config, log, write, sink, connect = mqtt.connect }: SubscriberDeps): Subscriber {
  const { url, topic, clientId, username, password, clean } = config.mqtt;
  const client = connect(url, {
    clientId,
    username,
    password,
    clean,
    // We subscribe ourselves on every 'connect' below, so mqtt.js must not do it a second time.
    resubscribe: false,
    reconnectPeriod: RECONNECT_PERIOD_MS,
    connectTimeout: CONNECT_TIMEOUT_MS,
  });
  const where = { url: redact(url), topic };
  // Connection errors repeat on every attempt while the broker is away: log each distinct one once.
  let lastError: string | undefined;

  client.on('connect', (connack) => {
    lastError = undefined;
    log.info({ ...where, sessionPresent: connack.sessionPresent }, 'connected');
    void subscribe(client, topic, log).then((ok) => ok && sink?.onSubscribed());
  });
  client.on('reconnect', () => log.info(where, 'reconnecting'));
  client.on('offline', () => log.warn(where, 'offline'));
  client.on('close', () => sink?.onDisconnected?.());
  client.on('error', (err) => {
    if (err.message === lastError) return;
    lastError = err.message;
    log.warn({ ...where, err: err.message }, 'connection error');
  });
  client.on('message', (msgTopic, payload) => {
    const result = handleMessage(msgTopic, payload, config);
    if (result.kind === 'event') {
      write(result.line);
      sink?.push(result.event);
    } else if (result.kind === 'filtered') log.debug({ id: result.event.id, type: result.event.type }, 'event filtered out');
    else log.warn({ topic: msgTopic, reason: result.reason }, 'invalid event ignored');
  });

  return {
    async close() {
      await client.endAsync();
      await sink?.close();
      log.info(where, 'closed');
    },
  };
}

/** Subscribes at QoS 1; true when the broker granted it. */
async function subscribe(client: MqttClient, topic: string, log: Logger): Promise<boolean> {
  try {
    const granted = await client.subscribeAsync(topic, { qos: 1 });
    // 0x80 in SUBACK means the broker refused this subscription [MQTT-3.9.3].
    if (granted.some((g) => g.qos === 0x80)) {
      log.error({ topic }, 'subscription refused by the broker');
      return false;
    }
    log.info({ topic, qos: granted[0]?.qos }, 'subscribed');
    return true;
  } catch (err) {
    // Usually the connection dropped before SUBACK; the next 'connect' subscribes again.
    log.warn({ topic, err: (err as Error).message }, 'subscribe failed');
    return false;
  }
}

/** The URL without a password, for log lines. */
function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return url;
  }
}

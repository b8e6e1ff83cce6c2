import type { IClientOptions, MqttClient } from 'mqtt';
import type { StoreEvent } from '../contract/events.js';
import { ImageStoreError } from './errors.js';

export type { StoreEvent };

/** The topic every event is published on (src/contract/events.ts NOTIFIER_TOPIC; a test keeps them equal). */
export const EVENTS_TOPIC = 'imagestore/notifier';

/** Which events to keep. Every given field must match. */
export interface EventFilter {
  /** Event types, exact (`imagestore.image.created`) or with a trailing `*` (`imagestore.image.*`). */
  types?: string[];
  album?: string;
  image?: string;
}

/** Options of events(). */
export interface EventsOptions {
  /** The broker: `mqtt://host:1883`, `mqtts://…`, `ws://host:port/mqtt` (browsers need ws/wss). */
  mqttUrl: string;
  /** An API key, sent as the MQTT password, when the service has keys configured. */
  apiKey?: string;
  filter?: EventFilter | ((event: StoreEvent) => boolean);
  /** Default `imagestore/notifier` (every event). */
  topic?: string;
  /** With a clientId the session is persistent (clean: false, QoS 1): events published while away are delivered on reconnection. */
  clientId?: string;
  /** Wait for the broker's CONNACK; default 10 s. */
  connectTimeoutMs?: number;
  /** Events held while the consumer is busy; one more fails the iteration. Default 10,000. */
  maxQueue?: number;
  /** Anything else for mqtt.js. */
  mqtt?: IClientOptions;
}

/** A live subscription: iterate it with `for await`; leaving the loop closes it. */
export interface EventStream extends AsyncIterable<StoreEvent> {
  /** Resolves once subscribed (events published from then on are received); rejects when the broker cannot be reached. */
  readonly ready: Promise<void>;
  /** Disconnects; a pending iteration ends. */
  close(): Promise<void>;
}

/** True when `event` passes `filter`. */
export function matchesFilter(event: StoreEvent, filter: EventsOptions['filter']): boolean {
  if (filter === undefined) return true;
  if (typeof filter === 'function') return filter(event);
  if (filter.album !== undefined && event.data?.album !== filter.album) return false;
  if (filter.image !== undefined && event.data?.image !== filter.image) return false;
  if (filter.types && filter.types.length > 0) {
    return filter.types.some((t) => (t.endsWith('*') ? event.type.startsWith(t.slice(0, -1)) : event.type === t));
  }
  return true;
}

/**
 * Subscribes to the service's events over MQTT (mqtt.js, loaded on first use)
 * and yields them as typed CloudEvents.
 * @example
 * const stream = events({ mqttUrl: 'mqtt://127.0.0.1:1883', filter: { types: ['imagestore.image.*'] } });
 * for await (const event of stream) console.log(event.type, event.data.message);
 */
export function events(options: EventsOptions): EventStream {
  const queue: StoreEvent[] = [];
  const waiters: Array<{ resolve: (r: IteratorResult<StoreEvent>) => void; reject: (e: unknown) => void }> = [];
  let client: MqttClient | undefined;
  let failure: Error | undefined;
  let closed = false;

  const fail = (error: Error) => {
    failure ??= error;
    for (const w of waiters.splice(0)) w.reject(failure);
    void client?.endAsync(true).catch(() => undefined);
  };
  const onMessage = (_topic: string, payload: Buffer) => {
    let event: StoreEvent;
    try {
      event = JSON.parse(payload.toString('utf8')) as StoreEvent;
    } catch {
      return; // not JSON: not one of ours
    }
    if (typeof event?.type !== 'string' || typeof event.data !== 'object' || !matchesFilter(event, options.filter)) return;
    const waiter = waiters.shift();
    if (waiter) waiter.resolve({ value: event, done: false });
    else if (queue.length >= (options.maxQueue ?? 10_000)) fail(new Error(`more than ${options.maxQueue ?? 10_000} events waiting: the consumer is too slow`));
    else queue.push(event);
  };

  const ready = (async () => {
    const mqtt = await import('mqtt');
    const persistent = options.clientId !== undefined;
    try {
      client = await mqtt.connectAsync(options.mqttUrl, {
        reconnectPeriod: 1000, connectTimeout: options.connectTimeoutMs ?? 10_000,
        ...(options.apiKey ? { username: 'imagestore-client', password: options.apiKey } : {}),
        ...(persistent ? { clientId: options.clientId, clean: false } : {}),
        ...options.mqtt,
      }, false);
    } catch (err) {
      throw connectError(err, options.mqttUrl);
    }
    client.on('message', onMessage);
    // Socket errors (ECONNRESET, ECONNREFUSED while the broker restarts) are transient: mqtt.js
    // reconnects. A refused CONNACK (key revoked) is not, and ends the iteration.
    client.on('error', (err) => {
      if (isRefusal(err)) fail(connectError(err, options.mqttUrl));
    });
    await client.subscribeAsync(options.topic ?? EVENTS_TOPIC, { qos: persistent ? 1 : 0 });
    if (closed) await client.endAsync(true);
  })();
  ready.catch((err: Error) => fail(err));

  const close = async () => {
    closed = true;
    for (const w of waiters.splice(0)) w.resolve({ value: undefined, done: true });
    await ready.catch(() => undefined);
    await client?.endAsync(true).catch(() => undefined);
  };

  return {
    ready,
    close,
    [Symbol.asyncIterator](): AsyncIterator<StoreEvent> {
      return {
        async next() {
          await ready;
          const value = queue.shift();
          if (value) return { value, done: false };
          if (failure) throw failure;
          if (closed) return { value: undefined, done: true };
          return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
        },
        async return() {
          await close();
          return { value: undefined, done: true };
        },
      };
    },
  };
}

function connectError(err: unknown, url: string): ImageStoreError {
  const denied = isRefusal(err);
  return new ImageStoreError({
    status: 0, code: denied ? 'unauthorized' : 'network_error', method: 'CONNECT', url,
    message: `cannot subscribe to events at ${url}: ${(err as Error).message}`, cause: err,
  });
}

/** CONNACK 4/5 (MQTT 3.1.1) and 134/135 (MQTT 5): bad credentials, not authorized. */
function isRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 4 || code === 5 || code === 134 || code === 135;
}

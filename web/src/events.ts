/**
 * The page's live event source: the service's SSE stream (`/api/v1/events/stream`) when it
 * answers, else MQTT over WebSocket at `/mqtt` (topic imagestore/notifier). Both hand over
 * the same CloudEvents; the MQTT client (mqtt.js) is loaded only when needed.
 */

/** A CloudEvent of the service, as far as the page reads it. */
export interface StoreEvent {
  id: string;
  type: string;
  time: string;
  data: { album?: string; image?: string; previousName?: string; id?: string; message?: string };
}

/** How the page receives events: which transport, and whether it is connected. */
export type EventState = { transport: 'sse' | 'mqtt' | 'none'; connected: boolean };

export interface EventSourceOptions {
  onEvent(event: StoreEvent): void;
  onState(state: EventState): void;
  /** API key: the MQTT password for the embedded broker when keys are on (SSE uses the session cookie). */
  key?: string;
  /** Skip SSE (tests, or a service known to have none). */
  transport?: 'sse' | 'mqtt';
}

/** A running event subscription; `close()` ends it. */
export interface LiveEvents {
  close(): void;
}

const TOPIC = 'imagestore/notifier';
// Fetch events would flood the console while the grid loads thumbnails; the views ignore them anyway.
const IGNORED = 'imagestore.image.fetched';
/** The events the views follow (and the SSE stream is asked for). */
const LIVE_TYPES = ['album.created', 'album.renamed', 'album.deleted', 'image.created', 'image.renamed', 'image.deleted'].map((t) => `imagestore.${t}`);

/** Subscribes to the service's events: SSE first, MQTT over WebSocket when SSE does not open. */
export function connectEvents(options: EventSourceOptions): LiveEvents {
  let current: LiveEvents | undefined;
  let closed = false;
  const mqtt = () => {
    if (closed) return;
    void connectMqtt(options).then((live) => {
      if (closed) live.close();
      else current = live;
    });
  };
  if (options.transport === 'mqtt' || typeof EventSource === 'undefined') mqtt();
  else current = connectSse(options, mqtt);
  return {
    close() {
      closed = true;
      current?.close();
    },
  };
}

function connectSse({ onEvent, onState }: EventSourceOptions, fallback: () => void): LiveEvents {
  // Filtered by the service: the page's own thumbnail fetches would otherwise come back as a flood of fetch events.
  const source = new EventSource(`/api/v1/events/stream?type=${encodeURIComponent(LIVE_TYPES.join(','))}`, { withCredentials: true });
  let opened = false;
  const deliver = (message: MessageEvent) => {
    const event = parse(message.data);
    if (event && event.type !== IGNORED) onEvent(event);
  };
  source.onopen = () => {
    opened = true;
    onState({ transport: 'sse', connected: true });
  };
  source.onmessage = deliver;
  for (const type of LIVE_TYPES) source.addEventListener(type, deliver as EventListener);
  source.onerror = () => {
    if (!opened) {
      // No stream on this service: MQTT over WebSocket instead.
      source.close();
      fallback();
    } else onState({ transport: 'sse', connected: source.readyState === EventSource.OPEN });
  };
  return { close: () => source.close() };
}

async function connectMqtt({ onEvent, onState, key }: EventSourceOptions): Promise<LiveEvents> {
  const { default: mqtt } = await import('mqtt');
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/mqtt`;
  const client = mqtt.connect(url, {
    clientId: `gallery-${crypto.randomUUID().slice(0, 8)}`,
    clean: true,
    reconnectPeriod: 2000,
    // mqtt.js would run its keepalive timer in a Worker made from a blob: URL, which the CSP forbids.
    timerVariant: 'native',
    username: key ? 'gallery' : undefined,
    password: key,
  });
  client.on('connect', () => {
    client.subscribe(TOPIC, { qos: 0 });
    onState({ transport: 'mqtt', connected: true });
  });
  client.on('close', () => onState({ transport: 'mqtt', connected: false }));
  client.on('message', (_topic, payload) => {
    const event = parse(new TextDecoder().decode(payload));
    if (event && event.type !== IGNORED) onEvent(event);
  });
  return { close: () => void client.end(true) };
}

function parse(text: string): StoreEvent | undefined {
  try {
    const event = JSON.parse(text) as StoreEvent;
    return typeof event.type === 'string' && event.data ? event : undefined;
  } catch {
    return undefined;
  }
}

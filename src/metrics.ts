import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { BrokerStats } from './broker/broker.js';

/** Readings the metrics pull from the running parts at scrape time. */
export interface MetricSources {
  albums(): number | Promise<number>;
  images(): number | Promise<number>;
  outboxPending(): number;
  /** 1 while the disk is full and the journal runs on its reserve (changes refused, fetch events dropped). */
  outboxDegraded(): number;
  /** Damaged records (corrupt or missing, not a torn last one) the journal's recovery found at start. */
  outboxDamagedRecords(): number;
  eventsPublished(): number;
  /** Fetch events not journaled because the journal could not grow. */
  eventsDropped(): number;
  brokerClients(): number;
  /** The embedded broker's limits at work; undefined with an external broker. */
  broker(): BrokerStats | undefined;
  cache(): { hits: number; misses: number; transforms: number; evictions: number; bytes: number };
  /** The hot-file cache (HOT_CACHE_BYTES). */
  hotCache(): { hits: number; misses: number; evictions: number; bytes: number; entries: number };
  /** The S3 store's metadata cache (S3_CACHE_BYTES); undefined on the filesystem store. */
  s3Cache?(): { bytes: number; entries: number; events: number; following: boolean; requests: number } | undefined;
}

/** The Prometheus registry, and what feeds its HTTP figures. */
export interface Metrics {
  registry: Registry;
  /**
   * Counts one finished request by method, route pattern and status: latency and bytes.
   * @param route the route pattern, never the path (names must not become label values: unbounded cardinality)
   */
  record(method: string, route: string, status: number, seconds: number, bytesIn: number, bytesOut: number | undefined): void;
}

/**
 * Builds the metrics (prom-client): HTTP requests, latency and bytes by
 * route and status; albums, images, transforms, cache hits, events published,
 * events waiting in the outbox, broker clients; and the process defaults.
 */
export function createMetrics(sources: MetricSources): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({ name: 'imagestore_http_requests_total', help: 'HTTP requests', labelNames, registers: [registry] });
  const duration = new Histogram({
    name: 'imagestore_http_request_duration_seconds', help: 'HTTP request latency', labelNames, registers: [registry],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const bytesIn = new Counter({ name: 'imagestore_http_request_bytes_total', help: 'Request body bytes received', labelNames: ['route'], registers: [registry] });
  const bytesOut = new Counter({ name: 'imagestore_http_response_bytes_total', help: 'Response body bytes sent', labelNames: ['route'], registers: [registry] });

  gauge(registry, 'imagestore_albums', 'Albums stored', sources.albums);
  gauge(registry, 'imagestore_images', 'Images stored', sources.images);
  gauge(registry, 'imagestore_outbox_pending_events', 'Events waiting in the outbox for delivery', sources.outboxPending);
  gauge(registry, 'imagestore_outbox_degraded', '1 while the disk is full: changes refused (507), fetch events dropped', sources.outboxDegraded);
  gauge(registry, 'imagestore_outbox_damaged_records', 'Damaged or missing journal records found by recovery at start', sources.outboxDamagedRecords);
  gauge(registry, 'imagestore_broker_clients', 'Clients connected to the embedded broker', sources.brokerClients);
  gauge(registry, 'imagestore_derivative_cache_bytes', 'Bytes held by the derivative cache', () => sources.cache().bytes);
  const broker = () => sources.broker();
  gauge(registry, 'imagestore_broker_store_bytes', 'Queued and retained messages in the embedded broker store (approximate bytes)', () => broker()?.storeBytes ?? 0);
  counter(registry, 'imagestore_broker_slow_clients_disconnected_total', 'Broker clients disconnected for falling too far behind (MQTT_MAX_CLIENT_BUFFER_BYTES)', () => broker()?.slowClientsDisconnected ?? 0);
  counter(registry, 'imagestore_broker_session_messages_dropped_total', 'Oldest messages dropped from full persistent-session queues (MQTT_SESSION_MAX_QUEUE)', () => broker()?.sessionMessagesDropped ?? 0);
  counter(registry, 'imagestore_broker_sessions_expired_total', 'Persistent sessions deleted: offline too long (MQTT_SESSION_EXPIRY) or store over budget (MQTT_STORE_MAX_BYTES)', () => broker()?.sessionsExpired ?? 0);
  labelledCounter(registry, 'imagestore_broker_refused_connections_total', 'Broker connections refused or closed: reason is connection_limit, bad_key, auth_blocked, connect_expected, connect_too_large, packet_too_large or malformed_length', 'reason', () => broker()?.refusedConnections ?? {});
  counter(registry, 'imagestore_events_published_total', 'Events delivered to the broker (PUBACK received)', sources.eventsPublished);
  counter(registry, 'imagestore_events_dropped_total', 'Fetch events not journaled because the journal could not grow (disk full)', sources.eventsDropped);
  counter(registry, 'imagestore_transforms_total', 'Image transforms run', () => sources.cache().transforms);
  counter(registry, 'imagestore_derivative_cache_hits_total', 'Derivative cache hits', () => sources.cache().hits);
  counter(registry, 'imagestore_derivative_cache_misses_total', 'Derivative cache misses', () => sources.cache().misses);
  counter(registry, 'imagestore_derivative_cache_evictions_total', 'Derivatives evicted', () => sources.cache().evictions);
  gauge(registry, 'imagestore_hot_cache_bytes', 'Bytes of small files held in memory (at most HOT_CACHE_BYTES)', () => sources.hotCache().bytes);
  gauge(registry, 'imagestore_hot_cache_entries', 'Files held in memory by the hot-file cache', () => sources.hotCache().entries);
  counter(registry, 'imagestore_hot_cache_hits_total', 'Downloads answered from memory (hot-file cache)', () => sources.hotCache().hits);
  counter(registry, 'imagestore_hot_cache_misses_total', 'Hot-file cache lookups that had to read the disk', () => sources.hotCache().misses);
  counter(registry, 'imagestore_hot_cache_evictions_total', 'Files dropped from memory to stay within HOT_CACHE_BYTES', () => sources.hotCache().evictions);
  gauge(registry, 'imagestore_s3_cache_bytes', 'Bytes of S3 metadata held in memory (at most S3_CACHE_BYTES; 0 on the filesystem store)', () => sources.s3Cache?.()?.bytes ?? 0);
  gauge(registry, 'imagestore_s3_cache_entries', 'S3 metadata entries held in memory', () => sources.s3Cache?.()?.entries ?? 0);
  gauge(registry, 'imagestore_s3_cache_following', '1 while the S3 metadata cache follows the event stream (its entries are trusted), else 0', () => (sources.s3Cache?.()?.following ? 1 : 0));
  counter(registry, 'imagestore_s3_requests_total', 'Requests sent to the S3 backend (0 on the filesystem store)', () => sources.s3Cache?.()?.requests ?? 0);
  counter(registry, 'imagestore_s3_cache_events_total', 'Change events (any node\'s) the S3 metadata cache has applied', () => sources.s3Cache?.()?.events ?? 0);

  /** Label objects per series, made once: the few routes × methods × statuses a service answers. */
  const series = new Map<string, { labels: { method: string; route: string; status: string }; byRoute: { route: string } }>();
  return {
    registry,
    record(method, route, status, seconds, received, sent) {
      const key = `${method} ${status} ${route}`;
      let one = series.get(key);
      if (one === undefined) {
        one = { labels: { method, route, status: String(status) }, byRoute: { route } };
        series.set(key, one);
      }
      requests.inc(one.labels);
      duration.observe(one.labels, seconds);
      if (received > 0) bytesIn.inc(one.byRoute, received);
      if (sent) bytesOut.inc(one.byRoute, sent);
    },
  };
}

function gauge(registry: Registry, name: string, help: string, read: () => number | Promise<number>): void {
  new Gauge({ name, help, registers: [registry], async collect() { this.set(await read()); } });
}

/** A counter mirroring a monotonic reading taken at scrape time. */
function counter(registry: Registry, name: string, help: string, read: () => number): void {
  let last = 0;
  new Counter({
    name, help, registers: [registry],
    collect() {
      const now = read();
      if (now > last) this.inc(now - last);
      last = now;
    },
  });
}

/** A counter with one label, mirroring monotonic readings per label value taken at scrape time. */
function labelledCounter(registry: Registry, name: string, help: string, label: string, read: () => Partial<Record<string, number>>): void {
  const last = new Map<string, number>();
  new Counter({
    name, help, labelNames: [label], registers: [registry],
    collect() {
      for (const [value, now = 0] of Object.entries(read())) {
        const before = last.get(value) ?? 0;
        if (now > before) this.inc({ [label]: value }, now - before);
        last.set(value, now);
      }
    },
  });
}

import type { Middleware } from 'koa';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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
  cache(): { hits: number; misses: number; transforms: number; evictions: number; bytes: number };
}

/** The Prometheus registry and the HTTP middleware feeding it. */
export interface Metrics {
  registry: Registry;
  /** Counts requests, latency and bytes by method, route and status. */
  middleware(): Middleware;
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
  counter(registry, 'imagestore_events_published_total', 'Events delivered to the broker (PUBACK received)', sources.eventsPublished);
  counter(registry, 'imagestore_events_dropped_total', 'Fetch events not journaled because the journal could not grow (disk full)', sources.eventsDropped);
  counter(registry, 'imagestore_transforms_total', 'Image transforms run', () => sources.cache().transforms);
  counter(registry, 'imagestore_derivative_cache_hits_total', 'Derivative cache hits', () => sources.cache().hits);
  counter(registry, 'imagestore_derivative_cache_misses_total', 'Derivative cache misses', () => sources.cache().misses);
  counter(registry, 'imagestore_derivative_cache_evictions_total', 'Derivatives evicted', () => sources.cache().evictions);

  return {
    registry,
    middleware() {
      return async function metricsMiddleware(ctx, next) {
        const end = duration.startTimer();
        try {
          await next();
        } finally {
          // The route pattern, not the path: names must not become label values (unbounded cardinality).
          const route = (ctx as unknown as { _matchedRoute?: string })._matchedRoute ?? 'unmatched';
          const labels = { method: ctx.method, route, status: String(ctx.status) };
          requests.inc(labels);
          end(labels);
          const received = Number(ctx.get('Content-Length'));
          if (received > 0) bytesIn.inc({ route }, received);
          if (ctx.response.length) bytesOut.inc({ route }, ctx.response.length);
        }
      };
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

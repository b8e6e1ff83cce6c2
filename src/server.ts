import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.js';
import { type AppError, HeadersTooLargeError, RequestTimeoutError, toErrorBody, ValidationError } from './errors.js';
import { AlbumService } from './services/album-service.js';
import { FsAlbumStore } from './albums/fs/fs-store.js';
import { S3AlbumStore, type ChangeFeed } from './albums/s3/s3-store.js';
import { Layout } from './albums/layout.js';
import { lockDataDir, type DataDirLock } from './albums/owner.js';
import type { AlbumStore, RecoveryReport } from './albums/types.js';
import type { CrashPoint } from './albums/changes.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { startBroker, type EmbeddedBroker } from './broker/broker.js';
import { AedesTransport } from './notifier/aedes-transport.js';
import { Checkpointer } from './notifier/checkpointer.js';
import { Dispatcher } from './notifier/dispatcher.js';
import { MqttTransport } from './notifier/mqtt-transport.js';
import { NOTIFIER_TOPIC, type StoreEvent } from './notifier/events.js';
import { journalProblem, Outbox } from './notifier/outbox.js';
import { OutboxNotifier } from './notifier/outbox-notifier.js';
import { topicsFor } from './notifier/topics.js';
import type { EventTransport } from './notifier/types.js';
import { DerivativeCache } from './images/derivative-cache.js';
import { DecodePool } from './images/decode-pool.js';
import { DiffPool } from './images/diff-pool.js';
import { configureImageEngine } from './images/engine-settings.js';
import { HotCache } from './images/hot-cache.js';
import { ImageDelivery } from './images/image-delivery.js';
import { ImageEngine } from './images/image-engine.js';
import { createMetrics, type Metrics } from './metrics.js';
import { ImportService } from './imports/import-service.js';
import { JobStore } from './imports/job-store.js';
import { EventFeed } from './events/event-feed.js';
import { EventStreams } from './events/event-streams.js';
import { WebhookSender } from './events/webhooks/webhook-sender.js';
import { WebhookService } from './events/webhooks/webhook-service.js';
import { WebhookStore } from './events/webhooks/webhook-store.js';

/** A running service. */
export interface RunningService {
  httpUrl: string;
  /** The embedded broker's URL, or the external one given in MQTT_URL. */
  mqttUrl: string;
  httpServer: http.Server | https.Server;
  metrics: Metrics;
  broker?: EmbeddedBroker;
  recovery: RecoveryReport;
  derivatives: DerivativeCache;
  /** Small files' bytes in memory (HOT_CACHE_BYTES). */
  hot: HotCache;
  imports: ImportService;
  /** The live event streams (GET /api/v1/events/stream). */
  eventStreams: EventStreams;
  /** Events not yet delivered. */
  pendingEvents(): number;
  /** Stops taking requests, finishes those in flight, delivers pending events, then closes everything. */
  close(): Promise<void>;
}

/** What the process edge (main.ts) gives the service. */
export interface ServiceEdges {
  /**
   * A committed change could be neither applied nor undone: main.ts exits (non-zero), and the
   * next start redoes the change. By default the service only refuses further changes (503).
   */
  onFatal?: (err: unknown) => void;
  /** Test-only crash points (CRASH_POINT). */
  crash?: CrashPoint;
}

/** A service built but not yet listening: `listen()` opens its ports, `close()` releases what it holds. */
export interface BuiltService {
  /**
   * Connects to the broker (or starts the embedded one), starts delivering events and the
   * import jobs, then listens for HTTP. On failure, everything is closed before it throws.
   * @throws {Error} naming the variable to change (PORT, MQTT_PORT, MQTTS_PORT) when a port is taken
   */
  listen(): Promise<RunningService>;
  /** Closes everything built or started so far, each part even when another fails. @throws {AggregateError} every failure */
  close(): Promise<void>;
}

/** The parts of a service that are closed at the end, each set once it exists. */
interface Parts {
  outbox: Outbox;
  store: AlbumStore;
  checkpointer: Checkpointer;
  diffs: DiffPool;
  decoders: DecodePool;
  imports: ImportService;
  broker: EmbeddedBroker;
  transport: EventTransport;
  dispatcher: Dispatcher;
  streams: EventStreams;
  webhooks: WebhookService;
  httpServer: http.Server | https.Server;
}

/**
 * Builds and starts every part from the configuration (`buildService`, then `listen`): on
 * failure, what was taken (ports, the data dir lock) is released before it throws.
 */
export async function startService(config: Config, log: Logger, version = '0.0.0', edges: ServiceEdges = {}): Promise<RunningService> {
  return (await buildService(config, log, version, edges)).listen();
}

/**
 * Builds every part from the configuration without opening a port: data dir lock, event
 * journal, store (with crash recovery: the journal's committed changes redone first),
 * checkpointer, image engine and caches, services, the Koa app and its HTTP server. The
 * only place that does I/O set-up; on failure, what was built is closed before it throws.
 */
export async function buildService(config: Config, log: Logger, version = '0.0.0', edges: ServiceEdges = {}): Promise<BuiltService> {
  const parts: Partial<Parts> = {};
  let owner: DataDirLock | undefined;
  const close = (deadline: number) => closeParts(parts, owner, deadline, log);
  const failed = async (err: unknown): Promise<never> => {
    await close(Date.now()).catch((closeErr: unknown) => log.error({ err: closeErr }, 'could not release everything after a failed start'));
    throw err;
  };
  try {
    // First: crash recovery below may already decode images.
    configureImageEngine();
    const layout = new Layout(config.imageDbDir);
    // The journal is read before the store: recovery redoes its committed changes. So the data dir is claimed first.
    await fs.mkdir(layout.internalDir, { recursive: true });
    owner = await lockDataDir(layout.ownerFile);
    const outbox = (parts.outbox = await Outbox.open(layout.outboxDir, { log: log.child({ component: 'outbox' }), retention: config.events.retention }));
    // A checkpoint's fsyncs take at most half of libuv's pool: the rest serves the requests meanwhile.
    const options = { owner, journal: outbox, crash: edges.crash, flushConcurrency: Math.max(1, Math.floor(config.images.threadPoolSize / 2)) };
    const storeLog = log.child({ component: 'store' });
    const { store, recovery } = config.storage === 's3' && config.s3
      ? await S3AlbumStore.open(config.s3, config.imageDbDir, storeLog, { ...options, cache: config.s3Cache })
      : await FsAlbumStore.open(config.imageDbDir, storeLog, options);
    parts.store = store;
    if (outbox.pendingCount > 0) log.info({ pending: outbox.pendingCount }, 'undelivered events found in the outbox');
    recovery.problems.push(...outbox.problems.map(journalProblem));
    const checkpointer = (parts.checkpointer = new Checkpointer(outbox, store, { ...config.checkpoint, log: log.child({ component: 'checkpointer' }), crash: edges.crash }));
    checkpointer.start();
    const notifier = new OutboxNotifier(outbox, config.eventSource, {
      checkpoints: checkpointer,
      onFatal: edges.onFatal ?? ((err) => log.fatal({ err }, 'a committed change could be neither applied nor undone: changes are refused until a restart redoes it')),
    });

    const hot = new HotCache(config.images.hotCacheBytes, config.images.hotCacheMaxFileBytes);
    const derivatives = await DerivativeCache.open(layout.cacheDir, config.images.derivativeCacheBytes, hot);
    const { maxInputPixels, avifMaxPixels, gifMaxPixels } = config.images;
    const decoders = (parts.decoders = new DecodePool());
    const engine = new ImageEngine(config.images, decoders.decode);
    const albums = new AlbumService(
      store,
      notifier,
      (file) => engine.inspect(file),
      async (sha256) => {
        hot.delete(sha256);
        await derivatives.forget(sha256);
      },
      config.images.onDuplicate,
    );
    const delivery = new ImageDelivery(derivatives, maxInputPixels, engine.transforms, { avif: avifMaxPixels, gif: gifMaxPixels }, hot, decoders.decode, decoders.encodeJxl);
    const diffs = (parts.diffs = new DiffPool());
    const importsLog = log.child({ component: 'imports' });
    const imports = (parts.imports = new ImportService(
      albums,
      new JobStore(layout.importsDir, importsLog),
      notifier,
      {
        ...config.imports, stagingDir: store.stagingDir, maxBytes: config.limits.maxUploadBytes,
        allowHosts: new Set(config.imports.allowHosts),
      },
      importsLog,
    ));
    const readiness = {
      storeWritable: () => albums.checkWritable(),
      brokerReachable: () => parts.transport?.connected ?? false,
      pendingEvents: () => outbox.pendingCount,
    };
    const metrics = createMetrics({
      albums: async () => (await store.counts()).albums,
      images: async () => (await store.counts()).images,
      outboxPending: () => outbox.pendingCount,
      outboxDegraded: () => (outbox.degraded ? 1 : 0),
      outboxDamagedRecords: () => outbox.problems.filter((p) => p.kind !== 'torn-record').length,
      eventsPublished: () => parts.dispatcher?.delivered ?? 0,
      eventsDropped: () => outbox.dropped,
      brokerClients: () => parts.broker?.broker.connectedClients ?? 0,
      broker: () => parts.broker?.stats(),
      cache: () => derivatives.stats(),
      hotCache: () => hot.stats(),
      s3Cache: () => (store instanceof S3AlbumStore ? { ...store.cache.stats(), requests: store.bucket.requests } : undefined),
    });
    const feed = new EventFeed(outbox);
    const streams = (parts.streams = new EventStreams(feed, { heartbeatMs: config.events.heartbeatMs, maxLag: config.events.streamMaxLag }));
    const hooks = config.events.webhooks;
    const allowHosts = new Set(hooks.allowHosts);
    const webhooks = (parts.webhooks = new WebhookService(feed, await WebhookStore.open(layout.webhooksDir), new WebhookSender({ allowHosts, timeoutMs: hooks.timeoutMs }), {
      ...hooks, allowHosts, source: config.eventSource, log: log.child({ component: 'webhooks' }),
    }));
    const app = await buildApp({ config, log, albums, delivery, engine, diffs, imports, readiness, version, metrics, events: { feed, streams, webhooks } });
    const httpServer = (parts.httpServer = createHttpServer(config, app.callback()));

    const listen = async (): Promise<RunningService> => {
      try {
        const { broker, transport, mqttUrl } = await connectEvents(config, log, layout, parts);
        if (store instanceof S3AlbumStore) store.follow(changeFeed(transport, log));
        const dispatcher = (parts.dispatcher = new Dispatcher(outbox, transport, topicsFor, log.child({ component: 'dispatcher' })));
        dispatcher.start();
        await imports.start();
        webhooks.start();
        if (broker && config.mqtt.wsPath) broker.attachWebSocket(httpServer, config.mqtt.wsPath, config.security.corsOrigins);
        const port = await listenOn(httpServer, config.http.port, config.http.host, 'PORT');
        const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host;
        return {
          httpUrl: `${config.tls.certFile ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
          metrics, mqttUrl, httpServer, broker, recovery, derivatives, hot, imports, eventStreams: streams,
          pendingEvents: () => outbox.pendingCount,
          // One deadline for the whole shutdown, whatever clients do (SHUTDOWN_TIMEOUT_MS).
          close: () => close(Date.now() + config.shutdownTimeoutMs),
        };
      } catch (err) {
        return failed(err);
      }
    };
    return { listen, close: () => close(Date.now() + config.shutdownTimeoutMs) };
  } catch (err) {
    return failed(err);
  }
}

/** The HTTP(S) server of the app, not yet listening. */
function createHttpServer(config: Config, handler: http.RequestListener): http.Server | https.Server {
  const { headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } = config.http;
  const serverOptions = {
    headersTimeout: headersTimeoutMs,
    requestTimeout: requestTimeoutMs,
    keepAliveTimeout: keepAliveTimeoutMs,
    // Node enforces both timeouts only when it sweeps its connections (every 30 s by default),
    // which would let a slow client hold a connection up to 30 s past them; sweep often enough.
    connectionsCheckingInterval: Math.min(1000, headersTimeoutMs, requestTimeoutMs),
  };
  const { certFile, keyFile } = config.tls;
  const server = certFile && keyFile
    ? https.createServer({ ...serverOptions, cert: readFileSync(certFile), key: readFileSync(keyFile) }, handler)
    : http.createServer(serverOptions, handler);
  server.on('clientError', answerClientError);
  return server;
}

/** The events' way out: a connection to MQTT_URL, or the embedded broker (which listens on MQTT_PORT, and MQTTS_PORT with TLS). */
async function connectEvents(config: Config, log: Logger, layout: Layout, parts: Partial<Parts>): Promise<{ broker?: EmbeddedBroker; transport: EventTransport; mqttUrl: string }> {
  if (config.mqtt.url) {
    parts.transport = new MqttTransport({ ...config.mqtt, url: config.mqtt.url }, log.child({ component: 'mqtt' }));
    return { transport: parts.transport, mqttUrl: config.mqtt.url };
  }
  const { mqttCertFile, mqttKeyFile, mqttsPort } = config.tls;
  const tls = mqttCertFile && mqttKeyFile ? { port: mqttsPort, cert: readFileSync(mqttCertFile), key: readFileSync(mqttKeyFile) } : undefined;
  let broker: EmbeddedBroker;
  try {
    broker = parts.broker = await startBroker({
      host: config.mqtt.host, port: config.mqtt.port, log: log.child({ component: 'broker' }), persistenceDir: layout.brokerDir,
      keys: config.security.apiKeys, limits: config.broker, tls,
    });
  } catch (err) {
    throw portProblem(err, config.mqtt.host, [['MQTT_PORT', config.mqtt.port], ...(tls ? [['MQTTS_PORT', tls.port] as [string, number]] : [])]);
  }
  parts.transport = new AedesTransport(broker.broker);
  return { broker, transport: parts.transport, mqttUrl: broker.url };
}

/** Listens on `port` and `host`; resolves with the port bound (PORT=0 picks one). */
async function listenOn(server: http.Server | https.Server, port: number, host: string, variable: string): Promise<number> {
  try {
    server.listen(port, host);
    await once(server, 'listening');
  } catch (err) {
    throw portProblem(err, host, [[variable, port]]);
  }
  return (server.address() as AddressInfo).port;
}

/**
 * A port that cannot be listened on, as an error that names the variable to change
 * (Node's own says only `listen EADDRINUSE: address already in use 127.0.0.1:3333`).
 * Other errors are returned as they are.
 */
export function portProblem(err: unknown, host: string, ports: Array<[variable: string, port: number]>): unknown {
  const { code, port } = err as { code?: string; port?: number };
  const [variable] = ports.find(([, p]) => p === port) ?? [];
  if (variable === undefined || (code !== 'EADDRINUSE' && code !== 'EACCES')) return err;
  const why = code === 'EADDRINUSE' ? 'is already in use' : 'cannot be opened by this user (ports below 1024 need privileges)';
  return new Error(`${variable}=${port}: port ${port} on ${host} ${why}; set ${variable} to a free port (0 picks any)`, { cause: err });
}

/**
 * Closes what exists of a service, in order: HTTP (requests in flight finish, within the
 * deadline), import jobs, diff and decode workers, webhook deliveries, the last checkpoint, event delivery (pending events
 * delivered within the deadline), the broker connection and broker, the journal, then the
 * store and the data dir lock, last, so no other process takes the dir while this one writes.
 * Every part is closed even when one before it fails.
 * @throws {AggregateError} every failure, once all were tried
 */
async function closeParts(parts: Partial<Parts>, owner: DataDirLock | undefined, deadline: number, log: Logger): Promise<void> {
  const left = () => Math.max(0, deadline - Date.now());
  const errors: unknown[] = [];
  const step = async (what: string, fn: (() => Promise<unknown>) | undefined) => {
    if (fn === undefined) return;
    try {
      await fn();
    } catch (err) {
      errors.push(Object.assign(err instanceof Error ? err : new Error(String(err)), { step: what }));
    }
  };
  const { httpServer, imports, diffs, decoders, webhooks, streams, checkpointer, dispatcher, transport, broker, outbox, store } = parts;
  // Live streams never end by themselves: their clients reconnect (to another node, or after the restart).
  streams?.close();
  await step('HTTP server', httpServer?.listening ? () => closeHttp(httpServer, broker, left()) : undefined);
  await step('import jobs', imports && (() => imports.close()));
  await step('diff workers', diffs && (() => diffs.close()));
  await step('decode workers', decoders && (() => decoders.close()));
  await step('webhooks', webhooks && (() => webhooks.close()));
  await step('checkpointer', checkpointer && (() => checkpointer.close().catch((err: unknown) => log.error({ err }, 'last checkpoint failed; the next start redoes the changes since the one before'))));
  await step('event delivery', dispatcher && (async () => {
    const drained = await dispatcher.drain(left());
    if (!drained) log.warn({ pending: outbox?.pendingCount }, 'events still pending at shutdown; kept in the outbox for the next start');
    await dispatcher.stop();
  }));
  await step('MQTT connection', transport && (() => transport.close()));
  await step('broker', broker && (() => broker.close()));
  await step('event journal', outbox && (() => outbox.close()));
  await step('store', store && (() => store.close()));
  // The store releases the lock as it closes; without a store (a failed start), the lock is released here. Idempotent.
  await step('data dir lock', owner && (() => owner.release()));
  if (errors.length > 0) {
    const steps = errors.map((err) => (err as { step: string }).step);
    throw new AggregateError(errors, `closing the service failed: ${steps.join(', ')}`);
  }
}

/**
 * Stops taking requests and waits for those in flight, closing keep-alive connections as
 * they become idle; at `ms`, the connections left are cut.
 */
async function closeHttp(httpServer: http.Server | https.Server, broker: EmbeddedBroker | undefined, ms: number): Promise<void> {
  let sweep: NodeJS.Timeout | undefined;
  const closed = new Promise<void>((resolve) => {
    httpServer.close(() => resolve());
    sweep = setInterval(() => {
      // Keep-alive connections become idle as their last request finishes: close them as they do.
      httpServer.closeIdleConnections();
      // MQTT over WebSocket connections count as the HTTP server's until the broker closes them, after
      // the pending events are delivered: HTTP is done when only they are left.
      httpServer.getConnections((err, open) => {
        if (!err && open <= (broker?.webSocketConnections() ?? 0)) resolve();
      });
    }, 50);
  });
  httpServer.closeIdleConnections();
  const timer = setTimeout(() => httpServer.closeAllConnections(), ms);
  await closed;
  clearTimeout(timer);
  clearInterval(sweep);
}

/**
 * The broker's event stream as the S3 store's feed of changes (every node's, this one's too):
 * without a transport that can subscribe, the feed never starts and the store's cache is not trusted.
 */
function changeFeed(transport: EventTransport, log: Logger): ChangeFeed {
  return {
    follow(listener, following) {
      transport.subscribe?.(NOTIFIER_TOPIC, (payload) => {
        let event: StoreEvent;
        try {
          event = JSON.parse(payload.toString('utf8')) as StoreEvent;
        } catch {
          log.warn('an unreadable message on the event topic: the S3 cache starts again');
          following(false);
          following(true);
          return;
        }
        if (typeof event?.type === 'string' && typeof event.data?.album === 'string') listener(event);
      }, following);
    },
  };
}

/**
 * Requests Node's HTTP parser refuses (431 headers too large, 400 malformed)
 * never reach Koa: answer them in JSON too, like every other error.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: import('node:stream').Duplex): void {
  if (!socket.writable || (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  const error = clientError(err);
  const body = JSON.stringify(toErrorBody(error.message));
  const text = http.STATUS_CODES[error.status];
  socket.end(`HTTP/1.1 ${error.status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

/** The error hierarchy's answer to what Node's HTTP parser refused. */
function clientError(err: NodeJS.ErrnoException): AppError {
  if (err.code === 'HPE_HEADER_OVERFLOW') return new HeadersTooLargeError('Request Header Fields Too Large: the request could not be parsed');
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new RequestTimeoutError('Request Timeout: the request could not be parsed');
  return new ValidationError('Bad Request: the request could not be parsed');
}

import { promises as fs, readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { buildApp } from './app.js';
import { AlbumService } from './albums/album-service.js';
import { FsAlbumStore } from './albums/fs-store.js';
import { S3AlbumStore, type ChangeFeed } from './albums/s3-store.js';
import { Layout } from './albums/layout.js';
import { journalProblem, type RecoveryReport } from './albums/fsck.js';
import { lockDataDir } from './albums/owner.js';
import type { CrashPoint } from './albums/changes.js';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { startBroker, type EmbeddedBroker } from './broker/broker.js';
import { AedesTransport } from './notifier/aedes-transport.js';
import { Checkpointer } from './notifier/checkpointer.js';
import { Dispatcher } from './notifier/dispatcher.js';
import { MqttTransport } from './notifier/mqtt-transport.js';
import { NOTIFIER_TOPIC, type StoreEvent } from './notifier/events.js';
import { Outbox } from './notifier/outbox.js';
import { OutboxNotifier } from './notifier/outbox-notifier.js';
import { topicsFor } from './notifier/topics.js';
import type { EventTransport } from './notifier/types.js';
import { DerivativeCache } from './images/derivative-cache.js';
import { DiffPool } from './images/diff-pool.js';
import { configureImageEngine } from './images/engine-settings.js';
import { EngineSlots } from './images/engine-slots.js';
import { HotCache } from './images/hot-cache.js';
import { ImageDelivery } from './images/image-delivery.js';
import { inspectImage } from './images/inspect.js';
import { createMetrics, type Metrics } from './metrics.js';
import { ImportService } from './imports/import-service.js';
import { JobStore } from './imports/job-store.js';

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

/**
 * Builds and starts every part from the configuration: event journal, store (with crash
 * recovery: the journal's committed changes redone first), checkpointer, broker or broker
 * connection, dispatcher, HTTP server. The only place that does I/O set-up; `close()`
 * undoes it in reverse order.
 */
export async function startService(config: Config, log: Logger, version = '0.0.0', edges: ServiceEdges = {}): Promise<RunningService> {
  // First: crash recovery below may already decode images.
  configureImageEngine();
  const layout = new Layout(config.imageDbDir);
  const storeLog = log.child({ component: 'store' });
  // The journal is read before the store: recovery redoes its committed changes. So the data dir is claimed first.
  await fs.mkdir(layout.internalDir, { recursive: true });
  const owner = await lockDataDir(layout.ownerFile);
  let outbox: Outbox | undefined;
  let opened;
  try {
    outbox = await Outbox.open(layout.outboxDir, { log: log.child({ component: 'outbox' }) });
    // A checkpoint's fsyncs take at most half of libuv's pool: the rest serves the requests meanwhile.
    const options = { owner, journal: outbox, crash: edges.crash, flushConcurrency: Math.max(1, Math.floor(config.images.threadPoolSize / 2)) };
    opened = config.storage === 's3' && config.s3
      ? await S3AlbumStore.open(config.s3, config.imageDbDir, storeLog, { ...options, cache: config.s3Cache })
      : await FsAlbumStore.open(config.imageDbDir, storeLog, options);
  } catch (err) {
    await outbox?.close();
    await owner.release();
    throw err;
  }
  const { store, recovery } = opened;
  if (outbox.pendingCount > 0) log.info({ pending: outbox.pendingCount }, 'undelivered events found in the outbox');
  recovery.problems.push(...outbox.problems.map(journalProblem));
  const checkpointer = new Checkpointer(outbox, store, { ...config.checkpoint, log: log.child({ component: 'checkpointer' }), crash: edges.crash });
  checkpointer.start();
  const notifier = new OutboxNotifier(outbox, config.eventSource, {
    checkpoints: checkpointer,
    onFatal: edges.onFatal ?? ((err) => log.fatal({ err }, 'a committed change could be neither applied nor undone: changes are refused until a restart redoes it')),
  });

  let broker: EmbeddedBroker | undefined;
  let transport: EventTransport;
  let mqttUrl: string;
  if (config.mqtt.url) {
    transport = new MqttTransport({ ...config.mqtt, url: config.mqtt.url }, log.child({ component: 'mqtt' }));
    mqttUrl = config.mqtt.url;
  } else {
    const { mqttCertFile, mqttKeyFile, mqttsPort } = config.tls;
    broker = await startBroker({
      host: config.mqtt.host, port: config.mqtt.port, log: log.child({ component: 'broker' }), persistenceDir: layout.brokerDir,
      keys: config.security.apiKeys, limits: config.broker,
      tls: mqttCertFile && mqttKeyFile ? { port: mqttsPort, cert: readFileSync(mqttCertFile), key: readFileSync(mqttKeyFile) } : undefined,
    });
    transport = new AedesTransport(broker.broker);
    mqttUrl = broker.url;
  }
  if (store instanceof S3AlbumStore) store.follow(changeFeed(transport, log));
  const dispatcher = new Dispatcher(outbox, transport, topicsFor, log.child({ component: 'dispatcher' }));
  dispatcher.start();

  const hot = new HotCache(config.images.hotCacheBytes, config.images.hotCacheMaxFileBytes);
  const derivatives = await DerivativeCache.open(layout.cacheDir, config.images.derivativeCacheBytes, hot);
  const { maxInputPixels, allowSvg, avifMaxPixels, gifMaxPixels } = config.images;
  // Two lanes: an upload's check never waits behind a transform, and only transforms queue with a bound.
  const uploadChecks = new EngineSlots(config.images.uploadCheckConcurrency);
  const transforms = new EngineSlots(config.images.transformConcurrency, {
    maxQueue: config.images.transformMaxQueue, queueTimeoutMs: config.images.transformQueueTimeoutMs, what: 'image transforms',
  });
  const albums = new AlbumService(
    store,
    notifier,
    (file) => uploadChecks.run(() => inspectImage(file, { maxInputPixels, allowSvg })),
    async (sha256) => {
      hot.delete(sha256);
      await derivatives.forget(sha256);
    },
  );
  const delivery = new ImageDelivery(derivatives, maxInputPixels, transforms, { avif: avifMaxPixels, gif: gifMaxPixels }, hot);
  const diffs = new DiffPool();
  const importsLog = log.child({ component: 'imports' });
  const imports = new ImportService(
    albums,
    new JobStore(layout.importsDir, importsLog),
    notifier,
    {
      ...config.imports, stagingDir: store.stagingDir, maxBytes: config.limits.maxUploadBytes,
      allowHosts: new Set(config.imports.allowHosts),
    },
    importsLog,
  );
  await imports.start();
  const readiness = {
    storeWritable: () => albums.checkWritable(),
    brokerReachable: () => transport.connected,
    pendingEvents: () => outbox.pendingCount,
  };
  const metrics = createMetrics({
    albums: async () => (await store.counts()).albums,
    images: async () => (await store.counts()).images,
    outboxPending: () => outbox.pendingCount,
    outboxDegraded: () => (outbox.degraded ? 1 : 0),
    outboxDamagedRecords: () => outbox.problems.filter((p) => p.kind !== 'torn-record').length,
    eventsPublished: () => dispatcher.delivered,
    eventsDropped: () => outbox.dropped,
    brokerClients: () => broker?.broker.connectedClients ?? 0,
    broker: () => broker?.stats(),
    cache: () => derivatives.stats(),
    hotCache: () => hot.stats(),
    s3Cache: () => (store instanceof S3AlbumStore ? { ...store.cache.stats(), requests: store.bucket.requests } : undefined),
  });
  const app = await buildApp({ config, log, albums, delivery, diffs, imports, readiness, version, metrics });
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
  const httpServer = certFile && keyFile
    ? https.createServer({ ...serverOptions, cert: readFileSync(certFile), key: readFileSync(keyFile) }, app.callback())
    : http.createServer(serverOptions, app.callback());
  httpServer.on('clientError', answerClientError);
  if (broker && config.mqtt.wsPath) broker.attachWebSocket(httpServer, config.mqtt.wsPath, config.security.corsOrigins);
  httpServer.listen(config.http.port, config.http.host);
  await once(httpServer, 'listening');
  const { port } = httpServer.address() as AddressInfo;
  const host = config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host;

  return {
    httpUrl: `${certFile ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`,
    metrics,
    mqttUrl,
    httpServer,
    broker,
    recovery,
    derivatives,
    hot,
    imports,
    pendingEvents: () => outbox.pendingCount,
    async close() {
      // One deadline for the whole shutdown, whatever clients do (SHUTDOWN_TIMEOUT_MS).
      const deadline = Date.now() + config.shutdownTimeoutMs;
      const left = () => Math.max(0, deadline - Date.now());
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
      const timer = setTimeout(() => httpServer.closeAllConnections(), left());
      await closed;
      clearTimeout(timer);
      clearInterval(sweep);
      await imports.close();
      await diffs.close();
      await checkpointer.close().catch((err: unknown) => log.error({ err }, 'last checkpoint failed; the next start redoes the changes since the one before'));
      const drained = await dispatcher.drain(left());
      if (!drained) log.warn({ pending: outbox.pendingCount }, 'events still pending at shutdown; kept in the outbox for the next start');
      await dispatcher.stop();
      await transport.close();
      await broker?.close();
      await outbox.close();
      await store.close();
    },
  };
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
  const [status, text] =
    err.code === 'HPE_HEADER_OVERFLOW' ? [431, 'Request Header Fields Too Large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'Request Timeout']
        : [400, 'Bad Request'];
  const body = JSON.stringify({ error: `${text}: the request could not be parsed` });
  socket.end(`HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type https from 'node:https';
import type { Duplex } from 'node:stream';
import { once } from 'node:events';
import { randomUUID } from 'node:crypto';
import { Aedes, type Client } from 'aedes';
import aedesPersistenceLevel from 'aedes-persistence-level';
import { Level } from 'level';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { BrokerLimits } from '../config.js';
import type { Logger } from '../logger.js';
import type { ApiKeys } from '../security/api-keys.js';
import { brokerAccessControl } from './access-control.js';
import { ConnectionLimits } from './connection-limits.js';
import { AuthFailures } from '../security/auth-failures.js';
import { GuardError, PacketGuard, type GuardReason } from './packet-guard.js';
import { SessionStore } from './session-store.js';

/**
 * Bytes a client may send before its CONNACK, CONNECT included. A CONNECT
 * holds a client id, a key and maybe a will: small. aedes buffers a whole
 * packet before it reads it, so this is what an unauthenticated connection
 * can make the broker hold.
 */
export const MAX_CONNECT_BYTES = 16 * 1024;

/** Why the broker refused or closed a connection (the `reason` label of its metric). */
export type RefusalReason = Exclude<GuardReason, 'slow_client'> | 'connection_limit' | 'bad_key' | 'auth_blocked';

/** What the broker's limits did, for the metrics. */
export interface BrokerStats {
  refusedConnections: Partial<Record<RefusalReason, number>>;
  slowClientsDisconnected: number;
  sessionMessagesDropped: number;
  sessionsExpired: number;
  storeBytes: number;
}

/** A running embedded broker. */
export interface EmbeddedBroker {
  broker: Aedes;
  /** `mqtt://host:port` clients connect to. */
  url: string;
  port: number;
  /** The MQTTS listener's port, when TLS is configured. */
  tlsPort?: number;
  /** Serves MQTT over WebSocket on `path` of an HTTP(S) server (upgrade requests only): WS, or WSS on HTTPS. */
  attachWebSocket(server: http.Server | https.Server, path: string, allowedOrigins?: string[]): void;
  stats(): BrokerStats;
  /** MQTT over WebSocket connections open now (they count among the HTTP server's). */
  webSocketConnections(): number;
  /** Closes the listeners and every connection (whatever its client does), then the store. */
  close(): Promise<void>;
}

export interface BrokerOptions {
  host: string;
  port: number;
  log: Logger;
  /**
   * Directory for the broker's LevelDB persistence (sessions, subscriptions,
   * queued QoS 1 messages of offline clients), so persistent sessions survive
   * a restart.
   */
  persistenceDir: string;
  /** API keys for client authentication and access control (access-control.ts). */
  keys: ApiKeys;
  limits: BrokerLimits;
  /** An MQTTS listener too, with this certificate and key (PEM contents). */
  tls?: { port: number; cert: Buffer; key: Buffer };
}

/**
 * A broker id that sorts by start time: aedes-persistence-level keys queued
 * messages by broker id and counter, so after a restart the queue stays in
 * order (replay order, and "oldest" for the queue cap).
 */
function brokerId(): string {
  return `${Date.now().toString(36).padStart(9, '0')}-${randomUUID().slice(0, 8)}`;
}

/**
 * Starts the embedded aedes broker on a TCP port (0 picks a free one). Every
 * connection (TCP, TLS, WebSocket) is counted against the connection limits
 * and reaches aedes through a `PacketGuard` (packet sizes, unsent bytes).
 * @throws when the port cannot be bound (e.g. EADDRINUSE)
 */
export async function startBroker({ host, port, log, persistenceDir, keys, limits, tls: tlsOptions }: BrokerOptions): Promise<EmbeddedBroker> {
  const refused: BrokerStats['refusedConnections'] = {};
  let slowClients = 0;
  const countRefusal = (reason: RefusalReason) => (refused[reason] = (refused[reason] ?? 0) + 1);
  const failures = limits.authMaxFailures === 0 ? undefined : new AuthFailures({ limit: limits.authMaxFailures, windowMs: limits.authBlockMs });
  const db = new Level<string, Uint8Array>(persistenceDir, { valueEncoding: 'view' });
  const sessions = new SessionStore(aedesPersistenceLevel(db), db, {
    sessionExpiryMs: limits.sessionExpiryMs, maxQueuedPerSession: limits.sessionMaxQueue, storeMaxBytes: limits.storeMaxBytes,
  }, log);
  const broker = await Aedes.createBroker({
    id: brokerId(),
    connectTimeout: limits.connectTimeoutMs,
    persistence: sessions.persistence,
    ...brokerAccessControl(keys, {
      failures,
      addressOf: (client) => (client.conn as unknown as PacketGuard).remoteAddress,
      onRefused(client, why, address, blockStarted) {
        countRefusal(why === 'blocked' ? 'auth_blocked' : 'bad_key');
        if (blockStarted) log.warn({ address, blockMs: limits.authBlockMs }, 'too many failed MQTT logins: address blocked');
        log.debug({ clientId: client.id, address, why }, 'MQTT login refused');
      },
    }),
  });
  const connections = new ConnectionLimits({ maxConnections: limits.maxConnections, maxPerAddress: limits.maxConnectionsPerIp });
  /** Raw sockets of every admitted connection, destroyed at close whatever state they are in. */
  const sockets = new Set<Duplex>();
  /** Takes a place for `socket` until it closes; false when the limits are reached (the caller refuses it). */
  const admit = (socket: Duplex, address: string): boolean => {
    const release = connections.admit(address);
    if (!release) {
      countRefusal('connection_limit');
      log.debug({ address }, 'MQTT connection refused: too many connections');
      return false;
    }
    sockets.add(socket);
    socket.once('close', () => {
      release();
      sockets.delete(socket);
    });
    return true;
  };
  broker.on('client', (client) => sessions.connected(client));
  broker.on('clientDisconnect', (client) => sessions.disconnected(client));
  /** aedes closes the clients it knows (wills, session state); the other connections (before CONNECT, mid-handshake) are destroyed. */
  const closeBroker = async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    sessions.stop();
    await db.close();
  };
  const guardLimits = { maxConnectBytes: Math.min(MAX_CONNECT_BYTES, limits.maxPacketBytes), maxPacketBytes: limits.maxPacketBytes, maxBufferedBytes: limits.maxClientBufferBytes };
  /** Hands an admitted connection to aedes, behind its guard. */
  const serve = (stream: Duplex, address: string) => {
    const guard = new PacketGuard(stream, address, guardLimits);
    guard.on('error', (err) => {
      if (!(err instanceof GuardError)) return;
      const clientId = (guard as unknown as { client?: Client }).client?.id;
      if (err.reason === 'slow_client') {
        slowClients += 1;
        log.warn({ clientId, address, maxClientBufferBytes: limits.maxClientBufferBytes }, 'MQTT client too slow: disconnected');
      } else {
        countRefusal(err.reason);
        log.debug({ clientId, address, reason: err.reason, err: err.message }, 'MQTT connection closed: limit exceeded');
      }
    });
    broker.handle(guard as unknown as net.Socket);
  };

  const server = net.createServer((socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    if (admit(socket, address)) serve(socket, address);
    else socket.destroy();
  });
  const tlsServer = tlsOptions
    ? tls.createServer({ cert: tlsOptions.cert, key: tlsOptions.key, handshakeTimeout: limits.connectTimeoutMs }, (socket) => serve(socket, socket.remoteAddress ?? 'unknown'))
    : undefined;
  // Counted before the handshake, which costs too.
  tlsServer?.on('connection', (socket: net.Socket) => {
    if (!admit(socket, socket.remoteAddress ?? 'unknown')) socket.destroy();
  });
  try {
    server.listen(port, host);
    await once(server, 'listening');
    if (tlsServer && tlsOptions) {
      tlsServer.listen(tlsOptions.port, host);
      await once(tlsServer, 'listening');
    }
  } catch (err) {
    server.close();
    tlsServer?.close();
    await closeBroker();
    throw err;
  }
  const address = server.address() as net.AddressInfo;
  broker.on('clientError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'MQTT client error'));
  broker.on('connectionError', (_client, err) => log.debug({ err: err.message }, 'MQTT connection error'));
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const wsServers: WebSocketServer[] = [];
  let webSockets = 0;
  return {
    broker,
    port: address.port,
    url: `mqtt://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${address.port}`,
    tlsPort: tlsServer ? (tlsServer.address() as net.AddressInfo).port : undefined,
    attachWebSocket(httpServer, path, allowedOrigins = []) {
      // One WebSocket message carries one MQTT packet (or part of one): larger ones are refused before they are buffered.
      const wss = new WebSocketServer({ noServer: true, maxPayload: limits.maxPacketBytes });
      wsServers.push(wss);
      httpServer.on('upgrade', (req, socket, head) => {
        if (new URL(req.url ?? '/', 'http://x').pathname !== path) {
          socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
          return;
        }
        // Browsers send Origin: with an allow-list (CORS_ORIGINS), other sites' pages cannot subscribe through a visitor.
        // The service's own pages (the gallery) are same-origin and always allowed.
        const origin = req.headers.origin;
        if (origin && allowedOrigins.length > 0 && !allowedOrigins.includes('*') && !allowedOrigins.includes(origin) && !sameOrigin(origin, req.headers.host)) {
          socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
          return;
        }
        const clientAddress = req.socket.remoteAddress ?? 'unknown';
        if (!admit(socket, clientAddress)) {
          socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n');
          return;
        }
        webSockets += 1;
        socket.once('close', () => (webSockets -= 1));
        wss.handleUpgrade(req, socket, head, (ws) => serve(createWebSocketStream(ws), clientAddress));
      });
    },
    webSocketConnections: () => webSockets,
    stats: () => ({
      refusedConnections: { ...refused },
      slowClientsDisconnected: slowClients,
      sessionMessagesDropped: sessions.stats.messagesDropped,
      sessionsExpired: sessions.stats.sessionsExpired,
      storeBytes: sessions.stats.storeBytes,
    }),
    async close() {
      const closed = Promise.all([
        new Promise<void>((resolve) => server.close(() => resolve())),
        tlsServer ? new Promise<void>((resolve) => tlsServer.close(() => resolve())) : undefined,
      ]);
      for (const wss of wsServers) wss.close();
      await closeBroker();
      await closed;
    },
  };
}

/** True when a WebSocket's Origin is the HTTP server's own (same host and port as the request's Host). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

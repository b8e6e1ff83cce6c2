import net from 'node:net';
import tls from 'node:tls';
import type http from 'node:http';
import type https from 'node:https';
import { once } from 'node:events';
import { Aedes } from 'aedes';
import aedesPersistenceLevel from 'aedes-persistence-level';
import { Level } from 'level';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../logger.js';
import type { ApiKeys } from '../security/api-keys.js';
import { brokerAccessControl } from './access-control.js';

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
  close(): Promise<void>;
}

export interface BrokerOptions {
  host: string;
  port: number;
  log: Logger;
  /**
   * Directory for the broker's LevelDB persistence (sessions, subscriptions,
   * queued QoS 1 messages of offline clients), so persistent sessions survive
   * a restart. In memory when absent.
   */
  persistenceDir?: string;
  /** API keys for client authentication and access control (access-control.ts). */
  keys: ApiKeys;
  /** An MQTTS listener too, with this certificate and key (PEM contents). */
  tls?: { port: number; cert: Buffer; key: Buffer };
}

/**
 * Starts the embedded aedes broker on a TCP port (0 picks a free one).
 * @throws when the port cannot be bound (e.g. EADDRINUSE)
 */
export async function startBroker({ host, port, log, persistenceDir, keys, tls: tlsOptions }: BrokerOptions): Promise<EmbeddedBroker> {
  const db = persistenceDir ? new Level<string, Uint8Array>(persistenceDir, { valueEncoding: 'view' }) : undefined;
  const broker = await Aedes.createBroker({ ...brokerAccessControl(keys), ...(db ? { persistence: aedesPersistenceLevel(db) } : {}) });
  const closeBroker = async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await db?.close();
  };
  const server = net.createServer(broker.handle);
  const tlsServer = tlsOptions ? tls.createServer({ cert: tlsOptions.cert, key: tlsOptions.key }, broker.handle) : undefined;
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
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  const wsServers: WebSocketServer[] = [];
  return {
    broker,
    port: address.port,
    url: `mqtt://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${address.port}`,
    tlsPort: tlsServer ? (tlsServer.address() as net.AddressInfo).port : undefined,
    attachWebSocket(httpServer, path, allowedOrigins = []) {
      const wss = new WebSocketServer({ noServer: true });
      wsServers.push(wss);
      httpServer.on('upgrade', (req, socket, head) => {
        if (new URL(req.url ?? '/', 'http://x').pathname !== path) {
          socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
          return;
        }
        // Browsers send Origin: with an allow-list (CORS_ORIGINS), other sites' pages cannot subscribe through a visitor.
        const origin = req.headers.origin;
        if (origin && allowedOrigins.length > 0 && !allowedOrigins.includes('*') && !allowedOrigins.includes(origin)) {
          socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => broker.handle(createWebSocketStream(ws) as unknown as net.Socket));
      });
    },
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

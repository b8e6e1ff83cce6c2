import net from 'node:net';
import type http from 'node:http';
import { once } from 'node:events';
import { Aedes } from 'aedes';
import aedesPersistenceLevel from 'aedes-persistence-level';
import { Level } from 'level';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { Logger } from '../logger.js';

/** A running embedded broker. */
export interface EmbeddedBroker {
  broker: Aedes;
  /** `mqtt://host:port` clients connect to. */
  url: string;
  port: number;
  /** Serves MQTT over WebSocket on `path` of an HTTP server (upgrade requests only). */
  attachWebSocket(server: http.Server, path: string): void;
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
}

/**
 * Starts the embedded aedes broker on a TCP port (0 picks a free one).
 * @throws when the port cannot be bound (e.g. EADDRINUSE)
 */
export async function startBroker({ host, port, log, persistenceDir }: BrokerOptions): Promise<EmbeddedBroker> {
  const db = persistenceDir ? new Level<string, Uint8Array>(persistenceDir, { valueEncoding: 'view' }) : undefined;
  const broker = await Aedes.createBroker(db ? { persistence: aedesPersistenceLevel(db) } : {});
  const closeBroker = async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await db?.close();
  };
  const server = net.createServer(broker.handle);
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
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
    attachWebSocket(httpServer, path) {
      const wss = new WebSocketServer({ noServer: true });
      wsServers.push(wss);
      httpServer.on('upgrade', (req, socket, head) => {
        if (new URL(req.url ?? '/', 'http://x').pathname !== path) {
          socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => broker.handle(createWebSocketStream(ws) as unknown as net.Socket));
      });
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const wss of wsServers) wss.close();
      await closeBroker();
      await closed;
    },
  };
}

import net from 'node:net';
import { once } from 'node:events';
import { Aedes } from 'aedes';
import type { Logger } from '../logger.js';

/** A running embedded broker. */
export interface EmbeddedBroker {
  broker: Aedes;
  /** `mqtt://host:port` clients connect to. */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * Starts the embedded aedes broker on a TCP port (0 picks a free one).
 * @throws when the port cannot be bound (e.g. EADDRINUSE)
 */
export async function startBroker({ host, port, log }: { host: string; port: number; log: Logger }): Promise<EmbeddedBroker> {
  const broker = await Aedes.createBroker({});
  const server = net.createServer(broker.handle);
  server.listen(port, host);
  try {
    await once(server, 'listening');
  } catch (err) {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    throw err;
  }
  const address = server.address() as net.AddressInfo;
  broker.on('clientError', (client, err) => log.debug({ clientId: client?.id, err: err.message }, 'MQTT client error'));
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    broker,
    port: address.port,
    url: `mqtt://${urlHost.includes(':') ? `[${urlHost}]` : urlHost}:${address.port}`,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await closed;
    },
  };
}

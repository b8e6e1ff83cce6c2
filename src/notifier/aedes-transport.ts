import type { Aedes } from 'aedes';
import type { StoreEvent } from './events.js';
import type { EventTransport } from './types.js';

/**
 * Delivers events straight into the embedded aedes broker, in process: no
 * socket, no reconnects. `broker.publish` calls back once the message is
 * handed to every subscriber and stored for offline persistent sessions.
 */
export class AedesTransport implements EventTransport {
  constructor(private readonly broker: Aedes) {}

  get connected(): boolean {
    return !this.broker.closed;
  }

  onConnect(_listener: () => void): void {
    // Always connected while the broker runs.
  }

  async deliver(event: StoreEvent, topics: string[]): Promise<void> {
    const payload = Buffer.from(JSON.stringify(event));
    await Promise.all(
      topics.map(
        (topic) =>
          new Promise<void>((resolve, reject) =>
            this.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, (err?: Error | null) =>
              err ? reject(err) : resolve(),
            ),
          ),
      ),
    );
  }

  async close(): Promise<void> {
    // The broker is closed by its owner (broker.ts).
  }
}

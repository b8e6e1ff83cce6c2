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

  /** @param json the event's JSON when the journal has it already (serialised once) */
  deliver(event: StoreEvent, topics: string[], json?: string): Promise<void> {
    const payload = Buffer.from(json ?? JSON.stringify(event));
    // One promise for all topics, settled by a count of callbacks.
    return new Promise<void>((resolve, reject) => {
      let left = topics.length;
      if (left === 0) resolve();
      const done = (err?: Error | null) => {
        if (err) reject(err);
        else if (--left === 0) resolve();
      };
      for (const topic of topics) this.broker.publish({ cmd: 'publish', topic, payload, qos: 1, retain: false, dup: false }, done);
    });
  }

  /** In process: subscribed as soon as aedes calls back, and never disconnected while the broker runs. */
  subscribe(topic: string, onMessage: (payload: Buffer) => void, following: (on: boolean) => void): void {
    this.broker.subscribe(topic, (packet, done) => {
      onMessage(Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload));
      done();
    }, () => following(true));
    this.broker.once('closed', () => following(false));
  }

  async close(): Promise<void> {
    // The broker is closed by its owner (broker.ts).
  }
}

import type { EventInput, StoreEvent } from './events.js';

/** Options of one publication. */
export interface PublishOptions {
  /** Request id of the HTTP request that caused the event. */
  reqId?: string;
  /**
   * Wait until the event is on disk before resolving (changes). Fetch events
   * are journaled without waiting for the disk, so downloads stay fast.
   */
  durable: boolean;
}

/** Where the album service sends its events. */
export interface Notifier {
  /** Records the event; resolves once it is safe (journaled), not once delivered. */
  publish(input: EventInput, options: PublishOptions): Promise<StoreEvent>;
}

/** A connection that can deliver one event to the broker and resolves on PUBACK. */
export interface EventTransport {
  /** True while events can be delivered. */
  readonly connected: boolean;
  /** Delivers the event (QoS 1) on each topic; resolves when every PUBACK is in. */
  deliver(event: StoreEvent, topics: string[]): Promise<void>;
  /** Calls `listener` whenever the transport (re)connects. */
  onConnect(listener: () => void): void;
  close(): Promise<void>;
}

import type { ChangeJournal, StoreChange } from '../albums/changes.js';
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
  /**
   * Records the event; resolves once it is safe (journaled), not once delivered. Without
   * `durable` (a fetch) it is best effort: it never fails, and the event may be dropped
   * (and counted) when the journal cannot grow.
   * @throws {InsufficientStorageError} (durable) the disk is full: the event was not journaled
   */
  publish(input: EventInput, options: PublishOptions): Promise<StoreEvent>;
  /**
   * Makes a change outside the album store (an import job) and journals its event (`eventOf`
   * its result; undefined for none) once `make` is done, before resolving. Refuses before
   * `make` runs when the journal could not take the event: a client never gets a 2xx for a
   * change whose event is not fsynced, and a refused change leaves nothing behind.
   * @throws {InsufficientStorageError} the disk is full (507): `make` was not run
   */
  change<T>(make: () => Promise<T>, eventOf: (result: T) => EventInput | undefined, options?: { reqId?: string }): Promise<T>;
  /**
   * Makes an album store change with the event journal as its commit point: `make` runs the
   * store's change with the journal it is given, and the store commits its decided change
   * there (one record holds the change and its event, `eventOf(change)`) before applying it,
   * so no change is ever visible without its event, even across a crash. Refuses before
   * `make` runs when the journal could not take the record (a refused change leaves nothing
   * behind). The event is published once the change is applied, never before.
   * @throws {InsufficientStorageError} the disk is full (507): `make` was not run
   */
  storeChange<T>(make: (journal: ChangeJournal) => Promise<T>, eventOf: (change: StoreChange) => EventInput, options?: { reqId?: string }): Promise<T>;
}

/** A connection that can deliver one event to the broker and resolves on PUBACK. */
export interface EventTransport {
  /** True while events can be delivered. */
  readonly connected: boolean;
  /** Delivers the event (QoS 1) on each topic; resolves when every PUBACK is in. */
  deliver(event: StoreEvent, topics: string[], payload?: string): Promise<void>;
  /** Calls `listener` whenever the transport (re)connects. */
  onConnect(listener: () => void): void;
  /**
   * Optional: receives every message on `topic` (the other nodes' events too) with `onMessage`,
   * and tells with `following` when the subscription starts (true) and when messages may be
   * missed (false: disconnected; a reconnection subscribes again and says true).
   */
  subscribe?(topic: string, onMessage: (payload: Buffer) => void, following: (on: boolean) => void): void;
  close(): Promise<void>;
}

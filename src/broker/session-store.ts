import { createRequire } from 'node:module';
import type { Aedes, Client } from 'aedes';
import type { Level } from 'level';
import type { Logger } from '../logger.js';
import { OUTGOING, SUBSCRIPTIONS, clientOfKey, prefixRange, queuedMessageKeys, sessionRanges, type StoredPacket } from './level-layout.js';
import { SessionQueue } from './session-queue.js';

/** Bounds of the broker's persistent sessions. */
export interface SessionLimits {
  /** A session offline this long is deleted (subscriptions, queue, will). */
  sessionExpiryMs: number;
  /** Messages queued per session; beyond, the oldest are dropped. */
  maxQueuedPerSession: number;
  /** Bytes of queued and retained messages in the store; beyond, the sessions offline longest are deleted first. */
  storeMaxBytes: number;
}

/** Counters of what the bounds did. */
export interface SessionStats {
  messagesDropped: number;
  sessionsExpired: number;
  /** Queued and retained messages now, in (approximate) bytes. */
  storeBytes: number;
}

interface Session {
  queue: SessionQueue;
  online: boolean;
  offlineSince?: number;
}

/** aedes-persistence-level as aedes sees it: untyped (aedes types it `any` too). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Persistence = any;

/**
 * Runs tasks one after the other per key (a session's store operations); keys
 * run concurrently. Leaner than albums' KeyedLock: it runs for every message
 * of a full queue.
 */
class Lanes {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key);
    const result = previous === undefined ? task() : previous.then(task);
    const tail = result.then(noop, noop);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

function noop(): void {}

/** Bytes a stored message takes, roughly: its keys, topic, payload, other fields, and its entry in memory. */
function storedBytes(packet: { topic: string; payload: Buffer | string }): number {
  return Buffer.byteLength(packet.topic) + Buffer.byteLength(packet.payload) + 256;
}

/**
 * Wraps aedes-persistence-level so that persistent sessions cannot grow the
 * data disk without bound: each session's queue is capped (oldest dropped),
 * sessions offline longer than the expiry are deleted, and when queued plus
 * retained messages exceed the store budget, the sessions offline longest
 * are deleted first (a retained message that still does not fit is refused).
 *
 * Each session's queue is mirrored in memory (SessionQueue, rebuilt from the
 * store at start) and changed only under that client's lock, so trims,
 * acknowledgements and expiry never race. A session's "offline since" time is
 * kept in the same LevelDB (sublevel `imagestore-sessions`); sessions found
 * without one at start count as offline since then.
 */
// The persistence's own encoder and packet class, resolved from where it is installed: a batched write
// (outgoingEnqueueCombi below) must store exactly what its outgoingEnqueue stores.
const persistenceRequire = createRequire(createRequire(import.meta.url).resolve('aedes-persistence-level'));
const msgpack = persistenceRequire('msgpack-lite') as { encode(value: unknown): Uint8Array };
const AedesPacket = persistenceRequire('aedes-packet') as new (packet: StoredPacket) => unknown;

/** A queued message as aedes-persistence-level stores it (its outgoingEnqueue: `msgpack.encode(new Packet(packet))`). */
function encodePacket(packet: StoredPacket): Uint8Array {
  return msgpack.encode(new AedesPacket(packet));
}

export class SessionStore {
  readonly stats: SessionStats = { messagesDropped: 0, sessionsExpired: 0, storeBytes: 0 };
  /** What aedes gets as its `persistence`: the wrapped one with the bounded operations replaced. */
  readonly persistence: Persistence;
  private readonly sessions = new Map<string, Session>();
  private readonly retained = new Map<string, number>();
  /** Per client id: trims, sends, acknowledgements and expiry of a session, one at a time. */
  private readonly lanes = new Lanes();
  private readonly retainedLane = new Lanes();
  private readonly records;
  private readonly dropsLogged = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  private evicting: Promise<void> | undefined;
  /** The last enqueue to settle (inOrder). */
  private enqueued: Promise<void> = Promise.resolve();

  constructor(
    private readonly inner: Persistence,
    private readonly db: Level<string, Uint8Array>,
    private readonly limits: SessionLimits,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.records = db.sublevel<string, number>('imagestore-sessions', { valueEncoding: 'json' });
    const overrides: Record<string, unknown> = {
      // aedes checks that setup is an async function.
      setup: async (broker: Aedes) => this.setup(broker),
      outgoingEnqueue: (sub: { clientId: string }, packet: StoredPacket) => this.inOrder(() => this.store([sub.clientId], packet)),
      outgoingEnqueueCombi: (subs: Array<{ clientId: string }> | undefined, packet: StoredPacket) =>
        // One message per client even when several of its subscriptions match: the store keeps one copy too.
        this.inOrder(() => this.store([...new Set((subs ?? []).map((sub) => sub.clientId))], packet)),
      outgoingUpdate: (client: { id: string }, packet: StoredPacket) => this.lanes.run(client.id, () => this.update(client, packet)),
      outgoingClearMessageId: (client: { id: string }, packet: StoredPacket) => this.lanes.run(client.id, () => this.clear(client, packet)),
      storeRetained: (packet: StoredPacket) => this.retainedLane.run('retained', () => this.storeRetained(packet)),
      destroy: async () => {
        this.stop();
        await this.inner.destroy();
      },
    };
    this.persistence = new Proxy(inner, {
      get: (target, property, receiver) => (typeof property === 'string' && property in overrides ? overrides[property] : Reflect.get(target, property, receiver)),
    });
  }

  /** Stops the expiry sweep (before the database closes). */
  stop(): void {
    clearInterval(this.sweeper);
  }

  /** Call on aedes' 'client' event: a connected session never expires. */
  connected(client: Client): void {
    // A clean session (aedes wipes what the id had) is tracked only if it took over a stored one.
    const session = client.clean ? this.sessions.get(client.id) : this.session(client.id);
    if (!session) return;
    session.online = true;
    session.offlineSince = undefined;
    // In its lane: a takeover's disconnect and connect must reach the store in that order.
    this.lanes.run(client.id, () => this.records.del(client.id))
      .catch((err: Error) => this.log.debug({ err: err.message }, 'could not update a session record'));
  }

  /** Call on aedes' 'clientDisconnect' event: the session's expiry clock starts. */
  disconnected(client: Client): void {
    const session = this.sessions.get(client.id);
    // A clean session ends with its connection (aedes wipes it); nothing is left to expire.
    if (client.clean && (!session || session.queue.length === 0)) {
      this.sessions.delete(client.id);
      return;
    }
    this.markOffline(client.id, this.session(client.id)).catch((err: Error) => this.log.debug({ err: err.message }, 'could not update a session record'));
  }

  /**
   * Runs an enqueue at once but settles it in call order. aedes sends a QoS 1 message on (to every
   * subscriber, clean sessions too) when its enqueue settles, and each client drops a message whose
   * broker counter is below one it already got (aedes' dedupe): an enqueue that settled before the one
   * of the message published just before it made that message vanish for everyone. Concurrent
   * publishes (the dispatcher sends a window of events at once) made that happen to about 5 % of them.
   */
  private inOrder(work: () => Promise<void>): Promise<void> {
    const started = work();
    started.catch(() => undefined); // handled below, once the ones before have settled (not an unhandled rejection meanwhile)
    const settled = this.enqueued.then(() => started);
    this.enqueued = settled.catch(() => undefined);
    return settled;
  }

  private async setup(broker: Aedes): Promise<void> {
    await this.inner.setup(broker);
    for await (const [clientId, since] of this.records.iterator()) this.session(clientId).offlineSince = since;
    for await (const key of this.db.keys(prefixRange(SUBSCRIPTIONS))) this.session(clientOfKey(SUBSCRIPTIONS, key));
    const queued = new Set<string>();
    for await (const key of this.db.keys(prefixRange(OUTGOING))) queued.add(clientOfKey(OUTGOING, key));
    for (const clientId of queued) {
      const { queue } = this.session(clientId);
      for await (const packet of this.inner.outgoingStream({ id: clientId }) as AsyncIterable<StoredPacket>) {
        queue.push({ brokerId: packet.brokerId, brokerCounter: packet.brokerCounter, messageId: packet.messageId, bytes: storedBytes(packet) });
      }
      this.stats.storeBytes += queue.bytes;
    }
    for (const [clientId, session] of this.sessions) {
      if (session.offlineSince === undefined) await this.markOffline(clientId, session);
    }
    for await (const packet of this.inner.createRetainedStream('#') as AsyncIterable<StoredPacket>) {
      this.retained.set(packet.topic, storedBytes(packet));
      this.stats.storeBytes += storedBytes(packet);
    }
    // Often enough that a session outlives its expiry by at most a quarter of it (and a minute at most).
    const sweepMs = Math.min(60_000, Math.max(250, Math.floor(this.limits.sessionExpiryMs / 4)));
    this.sweeper = setInterval(() => void this.sweep(), sweepMs);
    this.sweeper.unref();
  }

  private session(clientId: string): Session {
    let session = this.sessions.get(clientId);
    if (!session) {
      session = { queue: new SessionQueue(), online: false };
      this.sessions.set(clientId, session);
    }
    return session;
  }

  /** Starts the session's expiry clock now; the record is written in its lane (a takeover's connect comes right after). */
  private markOffline(clientId: string, session: Session): Promise<void> {
    const since = this.now();
    session.online = false;
    session.offlineSince = since;
    return this.lanes.run(clientId, () => this.records.put(clientId, since));
  }

  /**
   * Queues a message for these sessions: one write for all of them, the packet encoded once (with
   * hundreds of offline sessions, a put and an encoding per session was most of the event loop's
   * time), then each queue over its cap trimmed, and the store kept within its budget. Outside the
   * sessions' lanes: a message is stored, then listed, so a trim never sees one not in the store yet.
   */
  private async store(clientIds: string[], packet: StoredPacket): Promise<void> {
    if (clientIds.length === 0) return;
    const value = encodePacket(packet);
    const key = (clientId: string) => queuedMessageKeys(clientId, { brokerId: packet.brokerId, brokerCounter: packet.brokerCounter })[0];
    await this.db.batch(clientIds.map((clientId) => ({ type: 'put' as const, key: key(clientId), value })));
    for (const clientId of clientIds) this.count(clientId, packet);
    await this.trim(clientIds);
    await this.keepWithinBudget(this.limits.storeMaxBytes);
  }

  /** Adds a message just stored to its session's queue (in memory) and to the store's size. */
  private count(clientId: string, packet: StoredPacket): Session {
    const session = this.session(clientId);
    // Queued for a client not connected (e.g. a session an older version left): its clock starts now.
    if (!session.online && session.offlineSince === undefined) session.offlineSince = this.now();
    const bytes = storedBytes(packet);
    session.queue.push({ brokerId: packet.brokerId, brokerCounter: packet.brokerCounter, bytes });
    this.stats.storeBytes += bytes;
    return session;
  }

  /**
   * Drops the oldest messages of sessions over their cap, with one write: each session's oldest are taken in its lane, then
   * deleted together (sessions at their cap otherwise cost a write each per event). A message taken
   * here that a reconnected client is being sent is simply dropped, as it would have been a moment later.
   */
  private async trim(clientIds: string[]): Promise<void> {
    const cap = this.limits.maxQueuedPerSession;
    const over = clientIds.filter((clientId) => (this.sessions.get(clientId)?.queue.length ?? 0) > cap);
    if (over.length === 0) return;
    const taken = await Promise.all(over.map((clientId) => this.lanes.run(clientId, async () => {
      const session = this.sessions.get(clientId);
      const excess = session ? session.queue.length - cap : 0;
      return { clientId, oldest: session && excess > 0 ? session.queue.takeOldest(excess) : [] };
    })));
    await this.db.batch(taken.flatMap(({ clientId, oldest }) => oldest.flatMap((m) => queuedMessageKeys(clientId, m))).map((key) => ({ type: 'del' as const, key })));
    for (const { clientId, oldest } of taken) this.dropped(clientId, oldest);
  }

  /** Counts and logs (once per session per sweep) messages dropped from a full queue. */
  private dropped(clientId: string, oldest: Array<{ bytes: number }>): void {
    if (oldest.length === 0) return;
    for (const message of oldest) this.stats.storeBytes -= message.bytes;
    this.stats.messagesDropped += oldest.length;
    if (!this.dropsLogged.has(clientId)) {
      this.dropsLogged.add(clientId);
      this.log.warn({ clientId, maxQueued: this.limits.maxQueuedPerSession }, 'MQTT session queue full: oldest messages dropped');
    }
  }

  private async update(client: { id: string }, packet: StoredPacket): Promise<void> {
    await this.inner.outgoingUpdate(client, packet);
    // The store now keeps it under its message id too (the store filled in brokerId and counter if they were missing).
    const message = this.sessions.get(client.id)?.queue.find(packet.brokerId, packet.brokerCounter, 'newest');
    if (message) message.messageId = packet.messageId;
  }

  private async clear(client: { id: string }, packet: StoredPacket): Promise<unknown> {
    const cleared = (await this.inner.outgoingClearMessageId(client, packet)) as StoredPacket | undefined;
    const queue = this.sessions.get(client.id)?.queue;
    // Not found: dropped from a full queue already (its keys are gone; the store found a stale id key).
    const message = cleared && queue?.find(cleared.brokerId, cleared.brokerCounter, 'oldest');
    if (message) {
      queue!.remove(message);
      this.stats.storeBytes -= message.bytes;
    }
    return cleared;
  }

  private async storeRetained(packet: StoredPacket): Promise<void> {
    const before = this.retained.get(packet.topic) ?? 0;
    const after = Buffer.byteLength(packet.payload) === 0 ? 0 : storedBytes(packet);
    if (after > before) {
      await this.keepWithinBudget(this.limits.storeMaxBytes - (after - before));
      if (this.stats.storeBytes + after - before > this.limits.storeMaxBytes) {
        this.log.warn({ topic: packet.topic, storeMaxBytes: this.limits.storeMaxBytes }, 'MQTT store full: retained message refused');
        throw new Error('the broker store is full');
      }
    }
    await this.inner.storeRetained(packet);
    if (after === 0) this.retained.delete(packet.topic);
    else this.retained.set(packet.topic, after);
    this.stats.storeBytes += after - before;
  }

  /** Deletes the sessions offline longest until the store holds at most `maxBytes`. */
  private async keepWithinBudget(maxBytes: number): Promise<void> {
    while (this.stats.storeBytes > maxBytes) {
      if (this.evicting) {
        await this.evicting;
        continue;
      }
      const victim = this.offlineLongest();
      if (victim === undefined) return;
      let expired = false;
      this.evicting = this.expire(victim, 'budget').then(
        (done) => void (expired = done),
        (err: Error) => this.log.warn({ clientId: victim, err: err.message }, 'could not expire an MQTT session'),
      );
      try {
        await this.evicting;
      } finally {
        this.evicting = undefined;
      }
      // Came back online meanwhile, or failed: the next enqueue tries again.
      if (!expired) return;
    }
  }

  private offlineLongest(): string | undefined {
    let found: string | undefined;
    let since = Infinity;
    for (const [clientId, session] of this.sessions) {
      if (!session.online && session.offlineSince !== undefined && session.offlineSince < since && session.queue.length > 0) {
        found = clientId;
        since = session.offlineSince;
      }
    }
    return found;
  }

  private async sweep(): Promise<void> {
    this.dropsLogged.clear();
    const now = this.now();
    for (const [clientId, session] of [...this.sessions]) {
      if (!session.online && session.offlineSince !== undefined && now - session.offlineSince >= this.limits.sessionExpiryMs) {
        await this.expire(clientId, 'expired').catch((err: Error) => this.log.warn({ clientId, err: err.message }, 'could not expire an MQTT session'));
      }
    }
  }

  /** Deletes an offline session: subscriptions (from the in-memory matcher too), queue, in-flight messages, will. */
  private async expire(clientId: string, why: 'expired' | 'budget'): Promise<boolean> {
    return this.lanes.run(clientId, async () => {
      const session = this.sessions.get(clientId);
      if (!session || session.online) return false;
      // Forgotten first: a message stored meanwhile starts a new session, tracked (and expired in its turn).
      this.sessions.delete(clientId);
      const queued = session.queue.takeOldest(session.queue.length);
      this.stats.storeBytes -= queued.reduce((sum, m) => sum + m.bytes, 0);
      await this.inner.cleanSubscriptions({ id: clientId });
      for (const range of sessionRanges(clientId)) await this.db.clear(range);
      await this.inner.delWill({ id: clientId });
      await this.records.del(clientId);
      this.stats.sessionsExpired += 1;
      const details = { clientId, queued: queued.length, offlineSince: new Date(session.offlineSince ?? 0).toISOString() };
      if (why === 'expired') this.log.info(details, 'MQTT session expired');
      else this.log.warn({ ...details, storeMaxBytes: this.limits.storeMaxBytes }, 'MQTT store over budget: session expired early');
      return true;
    });
  }
}

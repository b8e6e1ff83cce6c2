import type { Aedes, Client } from 'aedes';
import type { Level } from 'level';
import { KeyedLock } from '../albums/keyed-lock.js';
import type { Logger } from '../logger.js';
import { OUTGOING, SUBSCRIPTIONS, clientOfKey, prefixRange, queuedMessageKeys, sessionRanges } from './level-keys.js';

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

interface StoredPacket {
  topic: string;
  payload: Buffer | string;
  brokerId: string;
  brokerCounter: number;
  messageId?: number;
}

interface Session {
  queued: number;
  bytes: number;
  online: boolean;
  offlineSince?: number;
}

/** aedes-persistence-level as aedes sees it: untyped (aedes types it `any` too). */
type Persistence = any;

/** Bytes a stored message takes, roughly: topic, payload and the packet's other fields. */
function storedBytes(packet: StoredPacket): number {
  return Buffer.byteLength(packet.topic) + Buffer.byteLength(packet.payload) + 96;
}

/**
 * Wraps aedes-persistence-level so that persistent sessions cannot grow the
 * data disk without bound: each session's queue is capped (oldest dropped),
 * sessions offline longer than the expiry are deleted, and when queued plus
 * retained messages exceed the store budget, the sessions offline longest
 * are deleted first (a retained message that still does not fit is refused).
 *
 * Counts per session are kept in memory (rebuilt from the store at start) and
 * changed only in that session's lane, so trims, acknowledgements and
 * expiry never race. A session's "offline since" time is kept in the same
 * LevelDB (sublevel `imagestore-sessions`); sessions found without one at
 * start count as offline since then.
 */
export class SessionStore {
  readonly stats: SessionStats = { messagesDropped: 0, sessionsExpired: 0, storeBytes: 0 };
  /** What aedes gets as its `persistence`: the wrapped one with the bounded operations replaced. */
  readonly persistence: Persistence;
  private readonly sessions = new Map<string, Session>();
  private readonly retained = new Map<string, number>();
  /** Per client id: that session's store operations and counts change one at a time. */
  private readonly lanes = new KeyedLock();
  private readonly retainedLock = new KeyedLock();
  private readonly records;
  private readonly dropsLogged = new Set<string>();
  private sweeper: NodeJS.Timeout | undefined;
  private evicting: Promise<void> | undefined;

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
      outgoingEnqueue: async (sub: { clientId: string }, packet: StoredPacket) => {
        await this.enqueue(sub, packet);
        await this.keepWithinBudget(this.limits.storeMaxBytes);
      },
      outgoingEnqueueCombi: async (subs: Array<{ clientId: string }> | undefined, packet: StoredPacket) => {
        const perClient = new Map((subs ?? []).map((sub) => [sub.clientId, sub]));
        // One message per client even when several of its subscriptions match: the store keeps one copy too.
        await Promise.all([...perClient.values()].map((sub) => this.enqueue(sub, packet)));
        await this.keepWithinBudget(this.limits.storeMaxBytes);
      },
      outgoingUpdate: (client: { id: string }, packet: StoredPacket) => this.lanes.with([client.id], () => this.inner.outgoingUpdate(client, packet)),
      outgoingClearMessageId: (client: { id: string }, packet: StoredPacket) => this.lanes.with([client.id], () => this.clear(client, packet)),
      storeRetained: (packet: StoredPacket) => this.retainedLock.with(['retained'], () => this.storeRetained(packet)),
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

  private async setup(broker: Aedes): Promise<void> {
    await this.inner.setup(broker);
    for await (const [clientId, since] of this.records.iterator()) this.session(clientId).offlineSince = since;
    for await (const key of this.db.keys(prefixRange(SUBSCRIPTIONS))) this.session(clientOfKey(SUBSCRIPTIONS, key));
    for await (const key of this.db.keys(prefixRange(OUTGOING))) this.session(clientOfKey(OUTGOING, key)).queued += 1;
    for (const [clientId, session] of this.sessions) {
      if (session.queued > 0) {
        for await (const packet of this.inner.outgoingStream({ id: clientId })) session.bytes += storedBytes(packet as StoredPacket);
        this.stats.storeBytes += session.bytes;
      }
      if (session.offlineSince === undefined) await this.markOffline(clientId, session);
    }
    for await (const packet of this.inner.createRetainedStream('#')) {
      const bytes = storedBytes(packet as StoredPacket);
      this.retained.set((packet as StoredPacket).topic, bytes);
      this.stats.storeBytes += bytes;
    }
    // Often enough that a session outlives its expiry by at most a quarter of it (and a minute at most).
    const sweepMs = Math.min(60_000, Math.max(250, Math.floor(this.limits.sessionExpiryMs / 4)));
    this.sweeper = setInterval(() => void this.sweep(), sweepMs);
    this.sweeper.unref();
  }

  private session(clientId: string): Session {
    let session = this.sessions.get(clientId);
    if (!session) {
      session = { queued: 0, bytes: 0, online: false };
      this.sessions.set(clientId, session);
    }
    return session;
  }

  /** Starts the session's expiry clock now; the record is written in its lane (a takeover's connect comes right after). */
  private markOffline(clientId: string, session: Session): Promise<void> {
    const since = this.now();
    session.online = false;
    session.offlineSince = since;
    return this.lanes.with([clientId], () => this.records.put(clientId, since));
  }

  /** Call on aedes' 'client' event: a connected session never expires. */
  connected(client: Client): void {
    // A clean session (aedes wipes what the id had) is tracked only if it took over a stored one.
    const session = client.clean ? this.sessions.get(client.id) : this.session(client.id);
    if (!session) return;
    session.online = true;
    session.offlineSince = undefined;
    // In the lane: a takeover's disconnect and connect must reach the store in that order.
    this.lanes.with([client.id], () => this.records.del(client.id))
      .catch((err: Error) => this.log.debug({ err: err.message }, 'could not update a session record'));
  }

  /** Call on aedes' 'clientDisconnect' event: the session's expiry clock starts. */
  disconnected(client: Client): void {
    const session = this.sessions.get(client.id);
    // A clean session ends with its connection (aedes wipes it); nothing is left to expire.
    if (client.clean && (!session || session.queued === 0)) {
      this.sessions.delete(client.id);
      return;
    }
    this.markOffline(client.id, this.session(client.id)).catch((err: Error) => this.log.debug({ err: err.message }, 'could not update a session record'));
  }

  private async enqueue(sub: { clientId: string }, packet: StoredPacket): Promise<void> {
    await this.lanes.with([sub.clientId], async () => {
      await this.inner.outgoingEnqueue(sub, packet);
      const session = this.session(sub.clientId);
      const bytes = storedBytes(packet);
      session.queued += 1;
      session.bytes += bytes;
      this.stats.storeBytes += bytes;
      if (session.queued > this.limits.maxQueuedPerSession) await this.dropOldest(sub.clientId, session, session.queued - this.limits.maxQueuedPerSession);
    });
  }

  private async dropOldest(clientId: string, session: Session, count: number): Promise<void> {
    const oldest: StoredPacket[] = [];
    // The store's order is the broker id (time-prefixed, see broker.ts) and then its counter: oldest first.
    for await (const packet of this.inner.outgoingStream({ id: clientId })) {
      oldest.push(packet as StoredPacket);
      if (oldest.length >= count) break;
    }
    await this.db.batch(oldest.flatMap((p) => queuedMessageKeys(clientId, p)).map((key) => ({ type: 'del' as const, key })));
    for (const packet of oldest) this.forget(session, packet);
    this.stats.messagesDropped += oldest.length;
    if (!this.dropsLogged.has(clientId)) {
      this.dropsLogged.add(clientId);
      this.log.warn({ clientId, maxQueued: this.limits.maxQueuedPerSession }, 'MQTT session queue full: oldest messages dropped');
    }
  }

  private forget(session: Session, packet: StoredPacket): void {
    const bytes = storedBytes(packet);
    session.queued -= 1;
    session.bytes -= bytes;
    this.stats.storeBytes -= bytes;
  }

  private async clear(client: { id: string }, packet: StoredPacket): Promise<unknown> {
    const cleared = (await this.inner.outgoingClearMessageId(client, packet)) as StoredPacket | undefined;
    const session = this.sessions.get(client.id);
    if (cleared && session) this.forget(session, cleared);
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
      if (!session.online && session.offlineSince !== undefined && session.offlineSince < since && session.queued > 0) {
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
    return this.lanes.with([clientId], async () => {
      const session = this.sessions.get(clientId);
      if (!session || session.online) return false;
      await this.inner.cleanSubscriptions({ id: clientId });
      for (const range of sessionRanges(clientId)) await this.db.clear(range);
      await this.inner.delWill({ id: clientId });
      await this.records.del(clientId);
      this.sessions.delete(clientId);
      this.stats.storeBytes -= session.bytes;
      this.stats.sessionsExpired += 1;
      const details = { clientId, queued: session.queued, offlineSince: new Date(session.offlineSince ?? 0).toISOString() };
      if (why === 'expired') this.log.info(details, 'MQTT session expired');
      else this.log.warn({ ...details, storeMaxBytes: this.limits.storeMaxBytes }, 'MQTT store over budget: session expired early');
      return true;
    });
  }
}

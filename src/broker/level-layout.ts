/**
 * The key layout of aedes-persistence-level 9.x (asyncPersistence.js), which
 * has no API to delete one queued message or a whole session. Kept in this
 * one place; the session tests (test/integration/broker-sessions.test.ts,
 * test/contract/session-store.test.ts) fail if a new version changes it.
 */

/** A message as the store keeps it in a session's queue. */
export interface StoredPacket {
  topic: string;
  payload: Buffer | string;
  brokerId: string;
  brokerCounter: number;
  /** Set once the message was sent (it then waits for its PUBACK). */
  messageId?: number;
}

/** Padding of counters and message ids, so that keys sort in numeric order. */
const pad = (n: number | undefined) => String(n).padStart(16, '0');
const client = (clientId: string) => encodeURIComponent(clientId);

/** The range of every key starting with `prefix` (which ends with ':'; ';' is the next byte). */
export function prefixRange(prefix: string): { gte: string; lt: string } {
  return { gte: prefix, lt: `${prefix.slice(0, -1)};` };
}

/** Queued messages of all clients: `outgoing:<client>:<brokerId>:<brokerCounter>`. */
export const OUTGOING = 'outgoing:';
/** Subscriptions of persistent sessions: `subscriptions:<client>:<topic filter>`. */
export const SUBSCRIPTIONS = 'subscriptions:';

/** The ranges that hold a client's session state besides subscriptions and will. */
export function sessionRanges(clientId: string): Array<{ gte: string; lt: string }> {
  return ['outgoing:', 'outgoing-id:', 'incoming:'].map((kind) => prefixRange(`${kind}${client(clientId)}:`));
}

/** The client id in a key of the `outgoing:` or `subscriptions:` range (`kind`). */
export function clientOfKey(kind: string, key: string): string {
  return decodeURIComponent(key.slice(kind.length, key.indexOf(':', kind.length)));
}

/** Every key a queued message is stored under: its queue key and, once sent, its key by message id. */
export function queuedMessageKeys(clientId: string, message: { brokerId: string; brokerCounter: number; messageId?: number }): string[] {
  const queueKey = `${OUTGOING}${client(clientId)}:${message.brokerId}:${pad(message.brokerCounter)}`;
  return message.messageId ? [queueKey, `outgoing-id:${client(clientId)}:${pad(message.messageId)}`] : [queueKey];
}

/**
 * The key layout of aedes-persistence-level 9.x (asyncPersistence.js), which
 * has no API to delete one queued message or a whole session. Kept in this one
 * place; the session tests (test/integration/broker-sessions.test.ts) fail if
 * a new version changes it.
 */

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

/** A queued message's key, and its key by message id once it was sent. */
export function queuedMessageKeys(clientId: string, packet: { brokerId: string; brokerCounter: number; messageId?: number }): string[] {
  const keys = [`outgoing:${client(clientId)}:${packet.brokerId}:${pad(packet.brokerCounter)}`];
  if (packet.messageId) keys.push(`outgoing-id:${client(clientId)}:${pad(packet.messageId)}`);
  return keys;
}

/** The client id in a key of the `outgoing:` or `subscriptions:` range (`kind`). */
export function clientOfKey(kind: string, key: string): string {
  return decodeURIComponent(key.slice(kind.length, key.indexOf(':', kind.length)));
}

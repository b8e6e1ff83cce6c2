import type { AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import { roleAllows, type ApiKeys, type Role } from '../security/api-keys.js';
import type { AuthFailures } from '../security/auth-failures.js';

/** Topics under this prefix are published by the service only. */
export const SERVICE_TOPIC_PREFIX = 'imagestore/';

/** The broker's own topics (client ids, broker ids); aedes acts on some of them, e.g. `$SYS/+/new/clients`. */
const SYS_PREFIX = '$SYS';

/** What the hooks need besides the keys. */
export interface AccessControlOptions {
  /** Failed logins per client address. */
  /** Failed logins per address (shared rules with HTTP: security/auth-failures.ts); absent when MQTT_AUTH_MAX_FAILURES is 0. */
  failures?: AuthFailures;
  /** The address a client connected from. */
  addressOf(client: Client): string;
  /** Called for each refused login: `blocked` when the address was blocked, else the key was wrong. */
  onRefused(client: Client, why: 'blocked' | 'bad_key', address: string, blockStarted: boolean): void;
}

const roles = new WeakMap<Client, Role>();

function refusal(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

/**
 * aedes hooks for the embedded broker. When API keys are configured, a client
 * must give a valid key as its password (username: anything) or is refused
 * (CONNACK 4); its role is remembered; an address with too many failed logins
 * is refused (CONNACK 5) for a while, right key or not. Nobody may publish
 * under `imagestore/` (the service publishes in process, bypassing these
 * hooks) or on `$` topics (the broker's own, e.g. `$SYS/`); a `read` key may only subscribe; only
 * an `admin` key (or anyone, with no keys) may subscribe to `$SYS/`. With no
 * keys, anonymous clients connect and subscribe, as over HTTP.
 */
export function brokerAccessControl(keys: ApiKeys, options: AccessControlOptions) {
  return {
    authenticate(client: Client, _username: Readonly<string> | undefined, password: Readonly<Buffer> | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void) {
      if (!keys.enabled) return done(null, true);
      const address = options.addressOf(client);
      if (options.failures && options.failures.retryAfterSeconds(address) > 0) {
        options.onRefused(client, 'blocked', address, false);
        return done(refusal('too many failed logins from this address', 5), false);
      }
      const role = password ? keys.roleOf(password.toString('utf8')) : undefined;
      if (!role) {
        options.failures?.record(address);
        const startsBlock = options.failures !== undefined && options.failures.retryAfterSeconds(address) > 0;
        options.onRefused(client, 'bad_key', address, startsBlock);
        return done(refusal('bad API key', 4), false);
      }
      roles.set(client, role);
      return done(null, true);
    },
    authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void) {
      if (client === null) return done(null);
      // The bare root too: a subscription to `imagestore/#` matches `imagestore` itself (MQTT 3.1.1 4.7.1.2).
      if (packet.topic.startsWith(SERVICE_TOPIC_PREFIX) || packet.topic === SERVICE_TOPIC_PREFIX.slice(0, -1)) {
        return done(new Error(`only the service publishes under ${SERVICE_TOPIC_PREFIX}`));
      }
      // Topics starting with $ are the server's (MQTT 3.1.1 4.7.2); aedes' default hook refused $SYS, ours replaces it.
      if (packet.topic.startsWith('$')) return done(new Error('only the broker publishes on $ topics'));
      const role = roles.get(client);
      if (keys.enabled && (!role || !roleAllows(role, 'write'))) return done(new Error('a read key may only subscribe'));
      return done(null);
    },
    authorizeSubscribe(client: Client | null, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void) {
      if (client && keys.enabled && subscription.topic.startsWith(SYS_PREFIX)) {
        const role = roles.get(client);
        // null: refused in the SUBACK (0x80), the connection stays.
        if (!role || !roleAllows(role, 'admin')) return done(null, null);
      }
      done(null, subscription);
    },
  };
}

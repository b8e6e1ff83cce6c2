import type { AuthenticateError, Client, PublishPacket, Subscription } from 'aedes';
import { roleAllows, type ApiKeys, type Role } from '../security/api-keys.js';

/** Topics under this prefix are published by the service only. */
export const SERVICE_TOPIC_PREFIX = 'imagestore/';

const roles = new WeakMap<Client, Role>();

/**
 * aedes hooks for the embedded broker. When API keys are configured, a client
 * must give a valid key as its password (username: anything) or is refused
 * (CONNACK 4); its role is remembered. Nobody may publish under `imagestore/`
 * (the service publishes in process, bypassing these hooks); a `read` key may
 * only subscribe. With no keys, anonymous clients connect and subscribe, as
 * over HTTP, and still cannot publish under `imagestore/`.
 */
export function brokerAccessControl(keys: ApiKeys) {
  return {
    authenticate(client: Client, _username: Readonly<string> | undefined, password: Readonly<Buffer> | undefined, done: (error: AuthenticateError | null, success: boolean | null) => void) {
      if (!keys.enabled) return done(null, true);
      const role = password ? keys.roleOf(password.toString('utf8')) : undefined;
      if (!role) {
        const error = Object.assign(new Error('bad API key'), { returnCode: 4 }) as AuthenticateError;
        return done(error, false);
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
      const role = roles.get(client);
      if (keys.enabled && (!role || !roleAllows(role, 'write'))) return done(new Error('a read key may only subscribe'));
      return done(null);
    },
    authorizeSubscribe(_client: Client | null, subscription: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void) {
      done(null, subscription);
    },
  };
}

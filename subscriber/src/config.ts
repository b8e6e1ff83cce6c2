import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { brokerUrlFromEnv } from '../../src/client/broker-url.js';
import { EVENT_TYPES, NOTIFIER_TOPIC, type EventType } from '../../src/notifier/events.js';
import { parseFlags } from './flags.js';

/** Broker used when neither MQTT_URL nor --url is given. */
export const DEFAULT_MQTT_URL = 'mqtt://127.0.0.1:1883';

/** REST API used by the mirror when neither IMAGESTORE_URL nor --api is given. */
export const DEFAULT_API_URL = 'http://127.0.0.1:3333';

/** URL schemes mqtt.js can connect with that we accept. */
const MQTT_PROTOCOLS = ['mqtt:', 'mqtts:', 'ws:', 'wss:'];

/** How an event is printed: a readable line, or the event JSON on one line. */
export type OutputFormat = 'text' | 'json';

/** Which events are printed; an empty list lets every value through. */
export interface EventFilter {
  albums: string[];
  types: EventType[];
}

/** Mirror mode: where the copy lives and where the service's REST API is. */
export interface MirrorConfig {
  /** Absolute path of the mirror directory. */
  dir: string;
  /** Base URL of the service, without /api/v1. */
  apiUrl: string;
  /** API key sent as `Authorization: Bearer` when the service has keys (a read key is enough). */
  apiKey?: string;
}

/** The subscriber's whole configuration, checked. */
export interface SubscriberConfig {
  /** True when --help was given: print usage and exit, nothing else is read. */
  help: boolean;
  mqtt: {
    url: string;
    topic: string;
    clientId?: string;
    username?: string;
    password?: string;
    /** False for a persistent session (mirror mode): the broker queues QoS 1 events while we are away. */
    clean: boolean;
  };
  format: OutputFormat;
  filter: EventFilter;
  /** Present in mirror mode (--mirror DIR). */
  mirror?: MirrorConfig;
}

/** Thrown by `loadSubscriberConfig` with every problem found, one per line in the message. */
export class SubscriberConfigError extends Error {
  /** @param problems one message per bad variable or flag */
  constructor(readonly problems: string[]) {
    super(`invalid subscriber configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'SubscriberConfigError';
  }
}

/**
 * Builds the subscriber's configuration from its flags and environment. Flags win over variables
 * (`--url` over MQTT_URL, `--json` over LOG_FORMAT). Empty optional variables count as unset.
 * @param argv arguments after the script name
 * @param env environment, e.g. `process.env`
 * @throws {SubscriberConfigError} listing every problem, e.g.
 *   `invalid MQTT_URL: expected mqtt://, mqtts://, ws:// or wss:// URL, got "http://x"`
 * @example loadSubscriberConfig(['--type', 'image.created'], { MQTT_URL: 'mqtt://broker:1883' })
 */
export function loadSubscriberConfig(argv: string[], env: NodeJS.ProcessEnv): SubscriberConfig {
  const problems: string[] = [];
  const flags = parseFlags(argv, problems);
  const mirror = checkMirror(flags, env, problems);
  if (flags.clientId !== undefined && flags.clientId.trim() === '') problems.push('invalid --client-id: expected a client id, got ""');
  const config: SubscriberConfig = {
    help: flags.help,
    mqtt: {
      url: brokerUrl(flags.url, env, problems),
      topic: checkTopic(env.MQTT_TOPIC ?? NOTIFIER_TOPIC, problems),
      clientId: flags.clientId ?? optional(env.MQTT_CLIENT_ID) ?? (mirror ? mirrorClientId(mirror.dir) : undefined),
      username: optional(env.MQTT_USERNAME),
      password: optional(env.MQTT_PASSWORD),
      clean: mirror === undefined,
    },
    format: flags.json ? 'json' : checkFormat(env.LOG_FORMAT, problems),
    filter: { albums: checkAlbums(flags.albums, problems), types: checkTypes(flags.types, problems) },
  };
  if (mirror) config.mirror = mirror;
  if (config.mqtt.password !== undefined && config.mqtt.username === undefined) {
    problems.push('invalid MQTT_PASSWORD: expected MQTT_USERNAME to be set as well, got a password only');
  }
  if (mirror && flags.types.length > 0) {
    problems.push(`invalid --type: expected no --type with --mirror (the mirror needs every event type), got "${flags.types.join('", "')}"`);
  }
  if (problems.length > 0 && !config.help) throw new SubscriberConfigError(problems);
  return config;
}

/**
 * The MQTT client id of a mirror when none is given: stable for one directory on one host, so
 * that a restarted mirror resumes its persistent session (and the events queued for it).
 * @example mirrorClientId('/srv/mirror') // 'imagestore-mirror-3f2a9c0b1d4e5f60'
 */
export function mirrorClientId(dir: string): string {
  const digest = createHash('sha256').update(`${hostname()}\u0000${path.resolve(dir)}`).digest('hex');
  return `imagestore-mirror-${digest.slice(0, 16)}`;
}

function checkMirror(flags: ReturnType<typeof parseFlags>, env: NodeJS.ProcessEnv, problems: string[]): MirrorConfig | undefined {
  if (flags.mirror === undefined) {
    if (flags.api !== undefined) problems.push(`invalid --api: expected --mirror DIR as well (only the mirror uses the REST API), got "${flags.api}"`);
    return undefined;
  }
  if (flags.mirror.trim() === '') problems.push('invalid --mirror: expected a directory, got ""');
  const name = flags.api !== undefined ? '--api' : 'IMAGESTORE_URL';
  const apiUrl = flags.api ?? optional(env.IMAGESTORE_URL) ?? DEFAULT_API_URL;
  let protocol: string | undefined;
  try {
    protocol = new URL(apiUrl).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol !== 'http:' && protocol !== 'https:') problems.push(`invalid ${name}: expected an http:// or https:// URL, got "${apiUrl}"`);
  const apiKey = optional(env.IMAGESTORE_API_KEY);
  return { dir: path.resolve(flags.mirror), apiUrl: apiUrl.replace(/\/+$/, ''), ...(apiKey !== undefined ? { apiKey } : {}) };
}

function optional(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function checkUrl(name: string, value: string, problems: string[]): string {
  let protocol: string | undefined;
  try {
    protocol = new URL(value).protocol;
  } catch {
    protocol = undefined;
  }
  if (protocol === undefined || !MQTT_PROTOCOLS.includes(protocol)) {
    problems.push(`invalid ${name}: expected mqtt://, mqtts://, ws:// or wss:// URL, got "${value}"`);
  }
  return value;
}

/** --url, else the service's own variables (MQTT_URL, else MQTT_HOST/MQTT_PORT), else the default. */
function brokerUrl(flag: string | undefined, env: NodeJS.ProcessEnv, problems: string[]): string {
  if (flag !== undefined) return checkUrl('--url', flag, problems);
  let fromEnv: string | undefined;
  try {
    fromEnv = brokerUrlFromEnv(env, '127.0.0.1');
  } catch (err) {
    problems.push((err as Error).message);
    return DEFAULT_MQTT_URL;
  }
  return checkUrl(optional(env.MQTT_URL) ? 'MQTT_URL' : 'MQTT_HOST / MQTT_PORT', fromEnv ?? DEFAULT_MQTT_URL, problems);
}

/** Topic filter rules of MQTT 3.1.1 §4.7.1: '#' only alone and last, '+' only as a whole level. */
function checkTopic(value: string, problems: string[]): string {
  const levels = value.split('/');
  const bad =
    value === '' ||
    value.includes('\u0000') ||
    levels.some((level, i) => (level.includes('#') && (level !== '#' || i !== levels.length - 1)) || (level.includes('+') && level !== '+'));
  if (bad) problems.push(`invalid MQTT_TOPIC: expected an MQTT topic filter such as "imagestore/notifier", got "${value}"`);
  return value;
}

function checkFormat(value: string | undefined, problems: string[]): OutputFormat {
  if (value === undefined || value === 'text' || value === 'json') return value ?? 'text';
  problems.push(`invalid LOG_FORMAT: expected "text" or "json", got "${value}"`);
  return 'text';
}

function checkAlbums(albums: string[], problems: string[]): string[] {
  for (const album of albums) {
    if (album.trim() === '') problems.push(`invalid --album: expected an album name, got "${album}"`);
  }
  return albums;
}

/** Accepts the full CloudEvents type or the short form without the `imagestore.` prefix. */
function checkTypes(types: string[], problems: string[]): EventType[] {
  const found: EventType[] = [];
  for (const type of types) {
    const full = type.startsWith('imagestore.') ? type : `imagestore.${type}`;
    const known = EVENT_TYPES.find((t) => t === full);
    if (known) found.push(known);
    else problems.push(`invalid --type: expected one of ${EVENT_TYPES.map(shortType).join(', ')}, got "${type}"`);
  }
  return found;
}

/** The event type without its `imagestore.` prefix: `imagestore.image.created` -> `image.created`. */
export function shortType(type: string): string {
  return type.startsWith('imagestore.') ? type.slice('imagestore.'.length) : type;
}

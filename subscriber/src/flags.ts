import { parseArgs } from 'node:util';

/** The command-line flags of the subscriber, as given (not yet checked against their expected form). */
export interface SubscriberFlags {
  help: boolean;
  json: boolean;
  url?: string;
  albums: string[];
  types: string[];
  /** Directory of the mirror (mirror mode). */
  mirror?: string;
  /** Base URL of the imagestore REST API, for the mirror. */
  api?: string;
  clientId?: string;
}

/** Usage text printed by `--help`. */
export const USAGE = `Usage: imagestore-subscriber [options]

Prints every imagestore event received on MQTT as one line on stdout; logs go to stderr.
With --mirror DIR it also keeps a copy of the store in DIR/<album>/<image>.

Options:
  --url URL        broker URL (mqtt://, mqtts://, ws:// or wss://); overrides MQTT_URL
  --album NAME     only events of this album, including its renames (repeatable);
                   with --mirror, only these albums are mirrored
  --type TYPE      only events of this type, e.g. image.created or imagestore.image.created
                   (repeatable; not with --mirror, which needs every type)
  --json           print each event as one line of JSON (same as LOG_FORMAT=json)
  --mirror DIR     mirror mode: download new images into DIR, apply renames and deletes as
                   events arrive, and reconcile DIR with the service's listing at start-up and
                   after every reconnect to the broker. DIR must be empty, missing, or a mirror.
                   Uses a persistent MQTT session, so events sent while it is down are queued.
  --api URL        REST API of the service, for --mirror (overrides IMAGESTORE_URL)
  --client-id ID   MQTT client id (overrides MQTT_CLIENT_ID); with --mirror the default is
                   derived from the host name and DIR, so that the session survives restarts
  --help           print this help and exit

Environment:
  MQTT_URL         broker URL (default: mqtt://MQTT_HOST:MQTT_PORT, as the service's own variables)
  MQTT_HOST, MQTT_PORT
                   the service's embedded broker when MQTT_URL is not set (default 127.0.0.1, 1883)
  MQTT_TOPIC       topic filter to subscribe to (default imagestore/notifier)
  MQTT_CLIENT_ID   client id (default: one made up by mqtt.js, or derived from DIR with --mirror)
  MQTT_USERNAME    user name, optional
  MQTT_PASSWORD    password, optional (needs MQTT_USERNAME)
  LOG_FORMAT       text or json: the form of the event lines (default text)
  IMAGESTORE_URL   REST API of the service for --mirror (default http://127.0.0.1:3333)
  IMAGESTORE_API_KEY
                   API key of --mirror for the REST API when the service has keys (a read key
                   is enough); the embedded broker then wants it as MQTT_PASSWORD as well
`;

const OPTIONS = {
  help: { type: 'boolean' },
  json: { type: 'boolean' },
  url: { type: 'string' },
  album: { type: 'string', multiple: true },
  type: { type: 'string', multiple: true },
  mirror: { type: 'string' },
  api: { type: 'string' },
  'client-id': { type: 'string' },
} as const;

/**
 * Reads the subscriber's flags from `argv`, collecting problems instead of stopping at the first one
 * (node's strict `parseArgs` throws on the first unknown flag).
 * @param argv the arguments after the script name (`process.argv.slice(2)`)
 * @param problems receives one message per unknown flag, missing value or stray argument
 * @example parseFlags(['--album', 'holidays', '--json'], problems) // { json: true, albums: ['holidays'], ... }
 */
export function parseFlags(argv: string[], problems: string[]): SubscriberFlags {
  const flags: SubscriberFlags = { help: false, json: false, albums: [], types: [] };
  const { tokens } = parseArgs({ args: argv, options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
  for (const token of tokens) {
    if (token.kind === 'positional') {
      problems.push(`unexpected argument: expected only options (see --help), got "${token.value}"`);
      continue;
    }
    if (token.kind !== 'option') continue;
    const known = Object.hasOwn(OPTIONS, token.name) ? OPTIONS[token.name as keyof typeof OPTIONS] : undefined;
    if (!known) {
      problems.push(`unknown option ${token.rawName}: expected one of --url, --album, --type, --json, --mirror, --api, --client-id, --help`);
      continue;
    }
    if (known.type === 'boolean') {
      if (token.inlineValue) problems.push(`invalid ${token.rawName}: expected no value, got "${token.value}"`);
      else flags[token.name as 'help' | 'json'] = true;
      continue;
    }
    // Without strict mode, `--url --json` would take "--json" as the URL: call that a missing value.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('--'))) {
      const got = token.value === undefined ? 'nothing' : `option "${token.value}"`;
      problems.push(`invalid ${token.rawName}: expected a value after it, got ${got}`);
      continue;
    }
    if (token.name === 'album') flags.albums.push(token.value);
    else if (token.name === 'type') flags.types.push(token.value);
    else if (token.name === 'client-id') flags.clientId = token.value;
    else flags[token.name as 'url' | 'mirror' | 'api'] = token.value;
  }
  return flags;
}

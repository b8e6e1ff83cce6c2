/** What the server's command line asks for. */
export type ServerArgs = { action: 'run' } | { action: 'help' } | { action: 'version' } | { action: 'usage-error'; message: string };

/** `node dist/src/main.js --help` (or `npm start -- --help`). The service is configured by environment variables only. */
export const SERVER_HELP = `Usage: node dist/src/main.js [--help] [--version]      (or: npm start -- --help)

Runs the imagestore service: the REST API and Swagger UI on HTTP, and the MQTT broker for its events.
It is configured by environment variables only; the common ones:

  PORT / HOST              HTTP listener (default 3333 on 127.0.0.1: this machine only)
  MQTT_PORT / MQTT_HOST    embedded MQTT broker (default 1883, on HOST)
  MQTT_URL                 use this external broker instead of the embedded one
  IMAGE_DB_DIR             data dir (default ./image-db)
  API_KEYS / API_KEYS_FILE API keys; set them before HOST=0.0.0.0
  STORAGE=s3, S3_*         keep the images in an S3 bucket
  LOG_LEVEL                silent, error, warn, info (default), debug, trace

Every variable, with its default: the Configuration section of README.md.
Options:
  -h, --help               this text
  -v, --version            the version
`;

/**
 * Reads the server's arguments (without node and the script). Anything but --help or --version is a usage error:
 * the service takes its settings from the environment, so a stray flag is a mistake better reported than ignored.
 */
export function parseServerArgs(args: readonly string[]): ServerArgs {
  if (args.length === 0) return { action: 'run' };
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) return { action: 'help' };
  if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) return { action: 'version' };
  return { action: 'usage-error', message: `unexpected argument ${JSON.stringify(args.find((a) => !['--help', '-h', '--version', '-v'].includes(a)) ?? args[1])}: the service is configured by environment variables (see --help)` };
}

/** Where a started service answers, for the banner. */
export interface BannerInfo {
  version: string;
  httpUrl: string;
  mqttUrl: string;
  embeddedBroker: boolean;
  dataDir: string;
  /** Swagger UI's URL, or undefined in PRODMODE. */
  docsUrl?: string;
  /** The web gallery's URL, or undefined with UI_ENABLED=false. */
  galleryUrl?: string;
  /** Counted at start by the filesystem store's recovery; unknown on S3. */
  albums?: number;
  images?: number;
  /** A warning to repeat in the banner (e.g. open beyond loopback without keys). */
  warning?: string;
}

/**
 * The few lines printed on a terminal once the service is ready, so the URLs stand out from the JSON logs
 * (which go on as before; a pipe or a file gets only those).
 */
export function formatBanner(info: BannerInfo): string {
  const counts = info.albums === undefined || info.images === undefined ? '' : ` (${info.albums} albums, ${info.images} images)`;
  const rows: Array<[string, string]> = [
    ...(info.galleryUrl ? [['Gallery', info.galleryUrl] as [string, string]] : []),
    ['API', `${info.httpUrl}/api/v1`],
    ...(info.docsUrl ? [['Swagger UI', info.docsUrl] as [string, string]] : []),
    ['MQTT events', `${info.mqttUrl} (topic imagestore/notifier${info.embeddedBroker ? ', embedded broker' : ''})`],
    ['Data', `${info.dataDir}${counts}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = [`imagestore ${info.version} is ready`, ...rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`)];
  if (info.warning) lines.push(`  warning: ${info.warning}`);
  lines.push('  Ctrl-C stops it (pending events are delivered first).');
  return `\n${lines.join('\n')}\n\n`;
}

import { pino } from 'pino';
import { loadSubscriberConfig, SubscriberConfigError, type SubscriberConfig } from './config.js';
import { USAGE } from './flags.js';
import { Mirror, MirrorSetupError } from './mirror/mirror.js';
import { startSubscriber } from './subscriber.js';

/** Exit code for a configuration error (the message has already been printed). */
const EXIT_CONFIG_ERROR = 1;

/**
 * Process edge of the subscriber: reads the config, prints usage or config errors, logs to
 * stderr, prints event lines to stdout, and closes cleanly on SIGTERM/SIGINT (exit 0).
 * @param argv arguments after the script name
 * @param env the environment
 * @returns the exit code when the process should exit now; otherwise resolves after startup
 *   and the signal handlers end the process
 */
async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number | undefined> {
  let config: SubscriberConfig;
  try {
    config = loadSubscriberConfig(argv, env);
  } catch (err) {
    if (!(err instanceof SubscriberConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    return EXIT_CONFIG_ERROR;
  }
  if (config.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  // Synchronous stderr so that the last lines before exit are not lost.
  // ISO times, as the service logs them.
  const log = pino({ name: 'imagestore-subscriber', timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ dest: 2, sync: true }));
  let mirror: Mirror | undefined;
  if (config.mirror) {
    try {
      mirror = await Mirror.open({ ...config.mirror, albums: config.filter.albums, log: log.child({ component: 'mirror' }) });
    } catch (err) {
      if (!(err instanceof MirrorSetupError)) throw err;
      process.stderr.write(`imagestore-subscriber: ${err.message}\n`);
      return EXIT_CONFIG_ERROR;
    }
  }
  const subscriber = startSubscriber({ config, log, write: (line) => process.stdout.write(`${line}\n`), sink: mirror });

  let closing = false;
  const stop = async (reason: string, code: number): Promise<void> => {
    if (closing) return;
    closing = true;
    log.info({ reason }, 'stopping');
    try {
      await subscriber.close();
    } finally {
      process.exit(code);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM', 0));
  process.on('SIGINT', () => void stop('SIGINT', 0));
  // stdout gone (e.g. piped into `head`): nobody reads the events any more.
  process.stdout.on('error', (err) => void stop(`stdout: ${err.message}`, 1));
  return undefined;
}

try {
  const code = await main(process.argv.slice(2), process.env);
  if (code !== undefined) process.exitCode = code;
} catch (err) {
  process.stderr.write(`imagestore-subscriber: ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}

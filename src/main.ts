import { crashAt } from './albums/changes.js';
import { loadConfig, type Config } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { startService } from './server.js';
import { formatBanner, parseServerArgs, SERVER_HELP } from './server-args.js';
import { packageVersion } from './version.js';

/** Process edge: configuration, start, signals, exit codes. */
async function main(): Promise<void> {
  const started = performance.now();
  const args = parseServerArgs(process.argv.slice(2));
  if (args.action === 'help') return void process.stdout.write(SERVER_HELP);
  if (args.action === 'version') return void process.stdout.write(`${packageVersion()}\n`);
  if (args.action === 'usage-error') {
    process.stderr.write(`imagestore: ${args.message}\n`);
    process.exit(2);
  }
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`imagestore: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  let service;
  try {
    service = await startService(config, log, packageVersion(), {
      // The change will be redone at the next start (its client got no 2xx).
      onFatal: (err) => {
        log.fatal({ err }, 'a committed change could be neither applied nor undone: exiting, the next start redoes it');
        process.exit(70);
      },
      crash: config.crashPoint ? crashAt(config.crashPoint, () => process.kill(process.pid, 'SIGKILL')) : undefined,
    });
  } catch (err) {
    log.fatal({ err }, 'could not start');
    process.stderr.write(`imagestore: could not start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  log.info(
    {
      http: service.httpUrl, mqtt: service.mqttUrl, embeddedBroker: service.broker !== undefined, dataDir: config.imageDbDir,
      albums: service.recovery.albums, images: service.recovery.images, recoveryProblems: service.recovery.problems.length,
      docs: config.prodMode ? 'off (PRODMODE)' : `${service.httpUrl}/swagger`, startMs: Math.round(performance.now() - started),
    },
    'imagestore ready',
  );

  const openWarning = 'no API keys configured and listening beyond loopback: anyone who can reach this port can change the store (set API_KEYS or API_KEYS_FILE)';
  const exposed = !config.security.apiKeys.enabled && !isLoopback(config.http.host);
  if (exposed) log.warn({ host: config.http.host }, openWarning);
  if (process.stdout.isTTY) {
    // After the log lines of this turn, which are written at its end.
    const banner = formatBanner({
      version: packageVersion(), httpUrl: service.httpUrl, mqttUrl: service.mqttUrl, embeddedBroker: service.broker !== undefined,
      dataDir: config.imageDbDir, docsUrl: config.prodMode ? undefined : `${service.httpUrl}/swagger`, galleryUrl: config.uiEnabled ? `${service.httpUrl}/` : undefined,
      albums: service.recovery.albums, images: service.recovery.images, warning: exposed ? openWarning : undefined,
    });
    setImmediate(() => process.stdout.write(banner));
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: finishing requests and delivering pending events');
    try {
      await service.close();
      log.info('stopped');
      process.exit(0);
    } catch (err) {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

void main();

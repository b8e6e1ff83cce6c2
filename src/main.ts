import { crashAt } from './albums/changes.js';
import { loadConfig, type Config } from './config.js';
import { ConfigError } from './errors.js';
import { createLogger } from './logger.js';
import { startService } from './server.js';
import { packageVersion } from './version.js';

/** Process edge: configuration, start, signals, exit codes. */
async function main(): Promise<void> {
  const started = performance.now();
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

  if (!config.security.apiKeys.enabled && !isLoopback(config.http.host)) {
    log.warn({ host: config.http.host }, 'no API keys configured and listening beyond loopback: anyone who can reach this port can change the store (set API_KEYS or API_KEYS_FILE)');
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

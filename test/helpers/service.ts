import supertest from 'supertest';
import { defaultConfig, loadConfig, type Config } from '../../src/config.js';
import { silentLogger } from '../../src/logger.js';
import { startService, type RunningService } from '../../src/server.js';
import { makeTmpDir, removeDir } from './tmp-dir.js';

/** A service running in this process on ephemeral ports, on a temp data dir. */
export interface TestService {
  service: RunningService;
  dataDir: string;
  config: Config;
  /** supertest bound to the service's real HTTP socket. */
  http: ReturnType<typeof supertest>;
  /** Stops the service; the data dir is kept (for restart tests). */
  stop(): Promise<void>;
  /** Stops the service and removes the data dir. */
  close(): Promise<void>;
}

/**
 * Starts the whole service (store, outbox, embedded broker unless `mqtt.url` is given, HTTP).
 * @param options.dataDir reuse a data dir (restart tests); a new temp dir otherwise
 * @param options.config fields to override, e.g. `{ limits: {...} }`
 */
export async function startTestService(options: { dataDir?: string; config?: Partial<Config> } = {}): Promise<TestService> {
  const dataDir = options.dataDir ?? (await makeTmpDir());
  // imageDbDir last: a whole Config passed in (built from defaultConfig()) must never point the test at ./image-db.
  const config: Config = { ...defaultConfig(), shutdownTimeoutMs: 3000, ...options.config, imageDbDir: dataDir };
  const service = await startService(config, silentLogger(), 'test');
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await service.close();
  };
  return {
    service, dataDir, config, http: supertest(service.httpUrl), stop,
    async close() {
      await stop();
      await removeDir(dataDir);
    },
  };
}

/**
 * Starts the service in this process with a configuration loaded from `env` (as main.ts would),
 * on loopback, ephemeral ports and a fresh temp data dir.
 */
export async function startServiceWithEnv(env: Record<string, string>): Promise<TestService> {
  const dataDir = await makeTmpDir();
  const config: Config = {
    ...loadConfig({ HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_MS: '3000', ...env }),
    imageDbDir: dataDir,
  };
  return startTestService({ dataDir, config });
}

import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Creates the root logger: JSON lines on stdout. Parts get children
 * (`log.child({ component: 'notifier' })`).
 * @param level pino level name, `silent` in tests
 */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'imagestore' }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** A logger that writes nothing, for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/**
 * Creates the root logger: JSON lines on stdout. Parts get children
 * (`log.child({ component: 'notifier' })`).
 * @param level pino level name, `silent` in tests
 */
export function createLogger(level: string): Logger {
  return pino({ level, base: { service: 'imagestore' }, timestamp: isoTimePerMs() }, linesPerTurn(pino.destination({ dest: 1, sync: true })));
}

/** pino's isoTime, formatted once per millisecond: under load many lines share one (an access line per request). */
function isoTimePerMs(): () => string {
  let last = -1;
  let text = '';
  return () => {
    const now = Date.now();
    if (now !== last) {
      last = now;
      text = `,"time":"${new Date(now).toISOString()}"`;
    }
    return text;
  };
}

/** A logger that writes nothing, for tests. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * Gathers the lines logged during one turn of the event loop and writes them
 * together at its end (setImmediate), and at exit: one write system call per
 * turn instead of one per line (an access line per request). Lines are written
 * in order and before the process waits for anything; a process killed
 * (SIGKILL) loses at most the lines of the turn it was in.
 */
function linesPerTurn(out: DestinationStream): DestinationStream {
  let pending = '';
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending === '') return;
    const lines = pending;
    pending = '';
    out.write(lines);
  };
  process.on('exit', flush);
  return {
    write(line: string) {
      pending += line;
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
  };
}

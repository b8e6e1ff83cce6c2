import { formatBytes, type CliIo } from './context.js';

/** Counters of a batch (upload, download, import). */
export interface BatchCounts {
  total: number;
  /** Items done so far (stored + skipped + failed; for imports "skipped" counts cancelled URLs). */
  done: number;
  stored: number;
  skipped: number;
  failed: number;
  /** Bytes transferred (stored files only). */
  bytes: number;
}

/** How the line names things: `upload 3/9 files: 2 stored, 1 skipped, …`. */
export interface ProgressWords {
  unit: string;
  stored: string;
  skipped: string;
}

/** Milliseconds between two redraws of the TTY line. */
const TTY_REDRAW_MS = 100;
/** Plain mode prints at each tenth of the total, or after this long without a line. */
const PLAIN_EVERY_MS = 2000;

/**
 * Progress of a batch on stderr. On a TTY: one line, redrawn in place at most
 * every 100 ms. Otherwise (logs, pipes): a plain line at each tenth of the
 * work and at least every 2 s while it goes on. `none` prints nothing.
 * Line: `upload 120/200 files: 118 stored, 2 skipped, 0 failed | 1.2 MiB | 850.3 KiB/s`.
 */
export class Progress {
  readonly started = Date.now();
  private lastDraw = this.started;
  private lastTenth = 0;

  constructor(
    private readonly io: CliIo,
    private readonly mode: 'tty' | 'plain' | 'none',
    private readonly label: string,
    private readonly words: ProgressWords = { unit: 'files', stored: 'stored', skipped: 'skipped' },
  ) {}

  /** The progress line for `counts`. */
  line(counts: BatchCounts, now = Date.now()): string {
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    return `${this.label} ${counts.done}/${counts.total} ${this.words.unit}: ${counts.stored} ${this.words.stored}, ${counts.skipped} ${this.words.skipped}, ${counts.failed} failed`
      + ` | ${formatBytes(counts.bytes)} | ${formatBytes(Math.round(counts.bytes / seconds))}/s`;
  }

  /** Shows the new counts (throttled). */
  update(counts: BatchCounts): void {
    const now = Date.now();
    if (this.mode === 'tty') {
      if (now - this.lastDraw < TTY_REDRAW_MS) return;
      this.lastDraw = now;
      this.io.stderr.write(`\r\x1b[2K${this.fit(this.line(counts, now))}`);
    } else if (this.mode === 'plain') {
      const tenth = counts.total === 0 ? 10 : Math.floor((counts.done * 10) / counts.total);
      if (tenth <= this.lastTenth && now - this.lastDraw < PLAIN_EVERY_MS) return;
      this.lastTenth = Math.max(tenth, this.lastTenth);
      this.lastDraw = now;
      this.io.stderr.write(`${this.line(counts, now)}\n`);
    }
  }

  /** Prints the final state and ends the TTY line. */
  finish(counts: BatchCounts): void {
    if (this.mode === 'none') return;
    const line = this.line(counts);
    if (this.mode === 'tty') this.io.stderr.write(`\r\x1b[2K${this.fit(line)}\n`);
    else if (this.lastTenth < 10) this.io.stderr.write(`${line}\n`);
    this.lastTenth = 10;
  }

  /** Cuts the line to the terminal's width, so redraws do not wrap. */
  private fit(line: string): string {
    const columns = this.io.stderr.columns ?? 0;
    return columns > 10 && line.length >= columns ? `${line.slice(0, columns - 2)}…` : line;
  }
}

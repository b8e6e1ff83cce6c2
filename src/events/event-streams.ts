import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import { formatSequence, type StoreEvent } from '../notifier/events.js';
import type { JournalRecord } from '../notifier/outbox.js';
import type { EventFeed } from './event-feed.js';

/** Options of the live streams. */
export interface EventStreamsOptions {
  /** A comment line this often keeps idle streams open through proxies. */
  heartbeatMs: number;
  /** A client that was caught up and then falls this many events behind is told to reconnect. */
  maxLag: number;
  /** Events read from the journal at a time for one client. */
  pageSize?: number;
}

/** The SSE record of one event: `id` = sequence, `event` = type, `data` = the CloudEvent (one line). */
export function sseRecord(record: JournalRecord): string {
  return `id: ${formatSequence(record.seq)}\nevent: ${record.event.type}\ndata: ${record.payload ?? JSON.stringify(record.event)}\n\n`;
}

/**
 * The live event streams (Server-Sent Events). Each client has a cursor in the journal and reads
 * from it a page at a time, writing only while its socket takes more (memory per client: one
 * page and the socket's buffer, however slow it is). A client that was caught up and then falls
 * `maxLag` events behind gets an `event: reconnect` (data: its cursor) and the stream ends;
 * EventSource reconnects with Last-Event-ID and catches up from the journal.
 */
export class EventStreams {
  private readonly open = new Map<AbortController, ServerResponse>();

  constructor(
    private readonly feed: EventFeed,
    private readonly options: EventStreamsOptions,
  ) {}

  /** Streams open now. */
  get size(): number {
    return this.open.size;
  }

  /** Bytes written to the streams and not yet taken by their sockets (what slow clients cost). */
  bufferedBytes(): number {
    let total = 0;
    for (const res of this.open.values()) total += res.writableLength;
    return total;
  }

  /**
   * Serves one stream on `res` from `after` until the client goes away or `close()`. Headers are
   * sent by the caller. Resolves when the stream has ended.
   */
  async serve(res: ServerResponse, after: number, filter: (event: StoreEvent) => boolean): Promise<void> {
    const stop = new AbortController();
    this.open.set(stop, res);
    const end = () => stop.abort();
    res.on('close', end);
    const heartbeat = setInterval(() => {
      if (res.writableLength === 0) res.write(': heartbeat\n\n');
    }, this.options.heartbeatMs);
    const { journal } = this.feed;
    const pageSize = this.options.pageSize ?? 256;
    let cursor = after;
    let caughtUp = false;
    try {
      // The client's retry delay, and a first line so proxies and clients see the stream start at once.
      res.write(`retry: 1000\n: stream from ${formatSequence(cursor)}\n\n`);
      while (!stop.signal.aborted) {
        const page = await journal.read(cursor, pageSize, filter);
        if (page === undefined) {
          // Pruned under a client that had stopped reading: it must start over from what is held.
          res.write(`event: gone\ndata: ${JSON.stringify({ oldestSequence: formatSequence(journal.oldestSeq) })}\n\n`);
          break;
        }
        for (const record of page.records) {
          if (stop.signal.aborted) break;
          if (!res.write(sseRecord(record)) && !(await this.drained(res, stop.signal, () => journal.lastSeq - record.seq))) {
            // Too far behind and not reading: it cannot even be told. Its EventSource reconnects with its last id.
            res.destroy();
            stop.abort();
          }
        }
        cursor = page.next;
        if (stop.signal.aborted) break;
        if (page.records.length === 0 && cursor >= journal.readableThrough()) {
          caughtUp = true;
          await this.feed.next(this.options.heartbeatMs, stop.signal);
        } else if (caughtUp && journal.lastSeq - cursor > this.options.maxLag) {
          res.write(`event: reconnect\ndata: ${JSON.stringify({ after: formatSequence(cursor) })}\n\n`);
          break;
        }
      }
    } finally {
      clearInterval(heartbeat);
      res.off('close', end);
      this.open.delete(stop);
      res.end();
    }
  }

  /**
   * Waits until the socket takes more, looking at the client's lag while it does not.
   * @returns false when the lag passed the limit first
   */
  private async drained(res: ServerResponse, signal: AbortSignal, lag: () => number): Promise<boolean> {
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal.addEventListener('abort', onAbort, { once: true });
    const drain = once(res, 'drain', { signal: stop.signal }).then(() => true, () => true);
    try {
      for (;;) {
        const done = await Promise.race([drain, this.feed.next(this.options.heartbeatMs, stop.signal).then(() => false)]);
        if (done || signal.aborted) return true;
        if (lag() > this.options.maxLag) return false;
      }
    } finally {
      stop.abort();
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Ends every stream (shutdown): clients reconnect to another node or after the restart. */
  close(): void {
    for (const stop of this.open.keys()) stop.abort();
  }
}



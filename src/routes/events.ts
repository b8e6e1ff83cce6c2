import Router from '@koa/router';
import { z } from 'zod';
import { eventFilter, selectionFromQuery } from '../events/event-filter.js';
import type { EventFeed } from '../events/event-feed.js';
import type { EventStreams } from '../events/event-streams.js';
import { GoneError, ValidationError } from '../errors.js';
import { formatSequence, parseSequence } from '../notifier/events.js';

/** Largest page of GET /events. */
export const MAX_EVENTS_PAGE = 1000;

/** Query of GET /events and GET /events/stream (documentation; parsed below). */
export const EventsQuery = z.object({
  after: z.string().optional().describe('Cursor: events after this sequence (a `sequence`, or `next` of the last page). Default: from the oldest event held'),
  limit: z.string().optional().describe(`Events per page, 1-${MAX_EVENTS_PAGE} (default 100; GET /events only)`),
  type: z.string().optional().describe('Event types, comma-separated or repeated; `imagestore.image.*` for a family'),
  album: z.string().optional().describe('Albums, comma-separated or repeated (a rename matches by its old name too)'),
});

/**
 * Events over HTTP: GET /events (replay by cursor, a page at a time) and GET /events/stream
 * (Server-Sent Events, resumable with Last-Event-ID or `after`). Both take `type` and `album`
 * filters; a cursor older than the retention gets 410 with the oldest sequence still held.
 */
export function eventRoutes({ feed, streams }: { feed: EventFeed; streams: EventStreams }): Router {
  const router = new Router();
  const { journal } = feed;

  /** The cursor asked for; none: from the oldest event held. @throws {GoneError} when older than that */
  const cursorOf = (text: string | undefined, what: string): number => {
    const oldest = journal.oldestSeq - 1;
    if (text === undefined || text === '') return oldest;
    const after = parseSequence(text);
    if (after === undefined) throw new ValidationError(`Expected a sequence number for ${what} but received ${JSON.stringify(text)}`);
    if (after < oldest) throw gone(after, journal.oldestSeq);
    return after;
  };

  router.get('/events', async (ctx) => {
    const after = cursorOf(single(ctx.query.after), 'after');
    const limitText = single(ctx.query.limit);
    const limit = limitText === undefined ? 100 : Number(limitText);
    if (!/^\d+$/.test(limitText ?? '1') || limit < 1 || limit > MAX_EVENTS_PAGE) {
      throw new ValidationError(`Expected integer between 1 and ${MAX_EVENTS_PAGE} for limit but received ${JSON.stringify(limitText)}`);
    }
    const page = await journal.read(after, limit, eventFilter(selectionFromQuery(ctx.query)));
    if (page === undefined) throw gone(after, journal.oldestSeq);
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { events: page.records.map((r) => r.event), next: formatSequence(page.next), head: formatSequence(Math.max(page.next, journal.readableThrough())) };
  });

  router.get('/events/stream', async (ctx) => {
    const lastEventId = ctx.get('Last-Event-ID');
    const after = lastEventId ? cursorOf(lastEventId, 'Last-Event-ID') : cursorOf(single(ctx.query.after), 'after');
    const filter = eventFilter(selectionFromQuery(ctx.query));
    ctx.req.socket.setNoDelay(true);
    ctx.req.socket.setKeepAlive(true);
    ctx.respond = false;
    ctx.status = 200;
    ctx.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store, no-transform',
      'X-Accel-Buffering': 'no',
    });
    await streams.serve(ctx.res, after, filter);
  });
  return router;
}

function gone(after: number, oldest: number): GoneError {
  return new GoneError(
    `events after ${formatSequence(after)} are no longer held (EVENT_RETENTION); the oldest is ${formatSequence(oldest)}: resume from there or reconcile`,
    { oldestSequence: formatSequence(oldest) },
  );
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

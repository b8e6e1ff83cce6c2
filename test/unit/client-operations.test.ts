import { readdirSync, readFileSync } from 'node:fs';
import { expect } from 'chai';
import { OPERATIONS_TABLE as OPERATIONS } from '../../src/contract/operations.js';
import { NOTIFIER_TOPIC, type StoreEvent } from '../../src/notifier/events.js';
import { EVENTS_TOPIC, ImageStoreClient, codeForStatus, defaultMqttUrl, matchesFilter, parseRetryAfter, transformQuery } from '../../src/client/index.js';

/**
 * Operations the client deliberately has no method for:
 * - swaggerUi: an HTML page for people, not an API;
 * - healthz: an alias of /livez, which the client has (livez());
 * - streamEvents: Server-Sent Events are read with an EventSource (a browser's, or the eventsource package); the
 *   client's events() follows MQTT, and listEvents() pages the same journal.
 * - getEventsDoc: a Markdown page for people;
 * - gallery: the web gallery's page, for people;
 * - startSession, endSession: the gallery's cookie, for <img> tags that cannot send a key; a client sends its key.
 */
const NOT_IN_CLIENT = new Set(['swaggerUi', 'healthz', 'getEventsDoc', 'streamEvents', 'gallery', 'startSession', 'endSession']);

describe('client library: coverage of the OpenAPI operations', () => {
  const client = new ImageStoreClient('http://127.0.0.1:1');

  it('has a method named after every operationId of the operation table (but the documented exceptions)', () => {
    const missing = OPERATIONS.map((op) => op.operationId)
      .filter((id) => !NOT_IN_CLIENT.has(id))
      .filter((id) => typeof (client as unknown as Record<string, unknown>)[id] !== 'function');
    expect(missing).to.deep.equal([]);
  });

  it('lists only exceptions that still exist, so the list cannot go stale', () => {
    const ids = new Set<string>(OPERATIONS.map((op) => op.operationId));
    for (const id of NOT_IN_CLIENT) expect(ids.has(id), id).to.equal(true);
  });

  it('subscribes to the topic the notifier publishes on', () => {
    expect(EVENTS_TOPIC).to.equal(NOTIFIER_TOPIC);
  });
});

describe('client library: pure helpers', () => {
  it('turns typed transform options into query values, leaving out undefined ones', () => {
    expect(transformQuery({ w: 320, format: 'webp', grayscale: true, h: undefined })).to.deep.equal({ w: 320, format: 'webp', grayscale: true });
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('7', now)).to.equal(7);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now)).to.equal(30);
    expect(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now)).to.equal(0);
    expect(parseRetryAfter(null, now)).to.equal(undefined);
    expect(parseRetryAfter('soon', now)).to.equal(undefined);
  });

  it('names errors by status', () => {
    expect([400, 401, 403, 404, 409, 413, 415, 422, 429, 503, 418, 599].map(codeForStatus)).to.deep.equal([
      'validation_failed', 'unauthorized', 'forbidden', 'not_found', 'conflict', 'payload_too_large',
      'unsupported_media_type', 'unprocessable_image', 'rate_limited', 'unavailable', 'http_error', 'server_error',
    ]);
  });

  it('derives the broker URL from the service URL (same host, port 1883)', () => {
    expect(defaultMqttUrl('http://images.example:3333/base')).to.equal('mqtt://images.example:1883');
    expect(defaultMqttUrl('http://[::1]:3333')).to.equal('mqtt://[::1]:1883');
  });

  it('filters events by type (exact or prefix*), album and image', () => {
    const event = { type: 'imagestore.image.created', data: { album: 'a', image: 'x.png', message: '' } } as StoreEvent;
    expect(matchesFilter(event, { types: ['imagestore.image.*'] })).to.equal(true);
    expect(matchesFilter(event, { types: ['imagestore.image.deleted'] })).to.equal(false);
    expect(matchesFilter(event, { album: 'a', image: 'x.png' })).to.equal(true);
    expect(matchesFilter(event, { album: 'b' })).to.equal(false);
    expect(matchesFilter(event, (e) => e.data.image === 'x.png')).to.equal(true);
  });
});

describe('client library: runs in browsers', () => {
  const dir = new URL('../../src/client/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

  it('loads only its own modules statically (types, zod, mqtt and node:fs only as type imports or dynamic imports)', () => {
    expect(files).to.include.members(['index.ts', 'http.ts', 'upload-source.ts', 'events.ts']);
    const offending: string[] = [];
    for (const file of files) {
      const source = readFileSync(new URL(file, dir), 'utf8');
      for (const match of source.matchAll(/^(?:import|export)\s+(?!type\b)[^;]*?from\s+'([^']+)'/gms)) {
        if (!match[1].startsWith('./')) offending.push(`${file}: ${match[1]}`);
      }
    }
    expect(offending).to.deep.equal([]);
  });
});

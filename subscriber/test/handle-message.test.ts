import { expect } from 'chai';
import { buildEvent, type EventInput } from '../../src/notifier/events.js';
import { formatLine, handleMessage, type HandleOptions } from '../src/handle-message.js';

const TOPIC = 'imagestore/notifier';
const TIME = new Date('2026-11-23T07:00:00.000Z');
const TEXT: HandleOptions = { format: 'text', filter: { albums: [], types: [] } };

/** An event exactly as the service builds it. */
function event(input: EventInput = { type: 'imagestore.image.created', album: 'holidays', image: 'table.jpg', size: 1234 }) {
  return buildEvent(input, '/imagestore/host1', 'abc', TIME);
}
const payload = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

describe('subscriber handleMessage', () => {
  it('parses a service event and renders the text line', () => {
    const e = event();
    e.data.message = 'table.jpg image added to album holidays'; // the wording is the service's, not ours
    const result = handleMessage(TOPIC, payload(e), TEXT);
    expect(result.kind).to.equal('event');
    if (result.kind !== 'event') return;
    expect(result.event.data.album).to.equal('holidays');
    expect(result.line).to.equal(
      '2026-11-23T07:00:00.000Z image.created album=holidays image=table.jpg — table.jpg image added to album holidays',
    );
  });

  it('renders renames with from= and album events without image=', () => {
    const renamed = event({ type: 'imagestore.image.renamed', album: 'holidays', image: 'b.jpg', previousName: 'a.jpg' });
    expect(formatLine(renamed)).to.equal(
      `2026-11-23T07:00:00.000Z image.renamed album=holidays image=b.jpg from=a.jpg — ${renamed.data.message}`,
    );
    const album = event({ type: 'imagestore.album.renamed', album: 'trips', previousName: 'holidays' });
    expect(formatLine(album)).to.equal(`2026-11-23T07:00:00.000Z album.renamed album=trips from=holidays — ${album.data.message}`);
  });

  it('quotes values with spaces and escapes control characters, so the line stays one line', () => {
    const e = event({ type: 'imagestore.image.deleted', album: 'my trip', image: 'a=b.jpg' });
    e.data.message = 'two\nlines';
    expect(formatLine(e)).to.equal(
      '2026-11-23T07:00:00.000Z image.deleted album="my trip" image="a=b.jpg" — two\\u000alines',
    );
  });

  it('prints the whole event as one JSON line in json mode, keeping unknown attributes', () => {
    const e = { ...event(), traceparent: '00-abc' };
    const result = handleMessage(TOPIC, payload(e), { ...TEXT, format: 'json' });
    if (result.kind !== 'event') expect.fail(`expected an event, got ${result.kind}`);
    expect(result.line).to.not.include('\n');
    expect(JSON.parse(result.line)).to.deep.equal(e);
  });

  it('still prints event types it does not know (a newer service)', () => {
    const result = handleMessage(TOPIC, payload({ ...event(), type: 'imagestore.image.tagged' }), TEXT);
    if (result.kind !== 'event') expect.fail(`expected an event, got ${result.kind}`);
    expect(result.line).to.match(/^\S+ image\.tagged album=holidays /);
  });

  describe('filters', () => {
    const filtered = (filter: HandleOptions['filter'], e = event()) => handleMessage(TOPIC, payload(e), { ...TEXT, filter }).kind;

    it('keeps only the albums asked for', () => {
      expect(filtered({ albums: ['holidays', 'work'], types: [] })).to.equal('event');
      expect(filtered({ albums: ['work'], types: [] })).to.equal('filtered');
    });

    it('keeps only the types asked for', () => {
      expect(filtered({ albums: [], types: ['imagestore.image.created'] })).to.equal('event');
      expect(filtered({ albums: [], types: ['imagestore.album.created', 'imagestore.image.deleted'] })).to.equal('filtered');
    });

    it('counts an album rename as an event of both the old and the new album', () => {
      const renamed = event({ type: 'imagestore.album.renamed', album: 'trips', previousName: 'holidays' });
      expect(filtered({ albums: ['holidays'], types: [] }, renamed)).to.equal('event');
      expect(filtered({ albums: ['trips'], types: [] }, renamed)).to.equal('event');
      expect(filtered({ albums: ['work'], types: [] }, renamed)).to.equal('filtered');
      // An image rename's previousName is an image name, not an album.
      const image = event({ type: 'imagestore.image.renamed', album: 'trips', image: 'b.jpg', previousName: 'holidays' });
      expect(filtered({ albums: ['holidays'], types: [] }, image)).to.equal('filtered');
    });

    it('needs both album and type to match when both are given', () => {
      expect(filtered({ albums: ['holidays'], types: ['imagestore.image.deleted'] })).to.equal('filtered');
      expect(filtered({ albums: ['holidays'], types: ['imagestore.image.created'] })).to.equal('event');
    });
  });

  describe('invalid payloads', () => {
    const reasonFor = (value: unknown) => {
      const result = handleMessage(TOPIC, payload(value), TEXT);
      if (result.kind !== 'invalid') expect.fail(`expected invalid, got ${result.kind}`);
      return result.reason;
    };
    const without = (key: string) => Object.fromEntries(Object.entries(event()).filter(([k]) => k !== key));

    it('rejects what is not JSON, naming the topic', () => {
      expect(reasonFor('not json {')).to.match(/^payload on imagestore\/notifier is not JSON: /);
      expect(reasonFor('')).to.match(/is not JSON/);
    });

    it('rejects JSON that is not an object', () => {
      expect(reasonFor('[1,2]')).to.match(/expected a JSON object, got \[1,2\]/);
      expect(reasonFor('null')).to.match(/expected a JSON object, got null/);
    });

    it('rejects another specversion', () => {
      expect(reasonFor({ ...event(), specversion: '0.3' })).to.match(/expected specversion "1.0", got "0.3"/);
    });

    for (const key of ['id', 'source', 'type', 'time']) {
      it(`rejects a missing or non-string ${key}`, () => {
        expect(reasonFor(without(key))).to.match(new RegExp(`expected ${key} to be a non-empty string, got nothing`));
        expect(reasonFor({ ...event(), [key]: 42 })).to.match(new RegExp(`expected ${key} to be a non-empty string, got 42`));
      });
    }

    it('rejects a time that is not a timestamp', () => {
      expect(reasonFor({ ...event(), time: 'yesterday' })).to.match(/expected time to be an RFC 3339 timestamp, got "yesterday"/);
    });

    it('rejects missing data, a missing data.album and non-string data fields', () => {
      expect(reasonFor(without('data'))).to.match(/expected data to be an object, got nothing/);
      const e = event();
      expect(reasonFor({ ...e, data: { ...e.data, album: undefined } })).to.match(/expected data\.album to be a non-empty string/);
      expect(reasonFor({ ...e, data: { ...e.data, album: 7 } })).to.match(/data\.album .* got 7/);
      expect(reasonFor({ ...e, data: { ...e.data, image: ['x'] } })).to.match(/expected data\.image to be a string, got \["x"\]/);
    });

    it('cuts long values short in the reason', () => {
      expect(reasonFor({ ...event(), specversion: 'x'.repeat(500) }).length).to.be.below(200);
    });
  });
});

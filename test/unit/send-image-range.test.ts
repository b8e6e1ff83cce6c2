import { expect } from 'chai';
import { parseRange } from '../../src/routes/send-image.js';

const ETAG = '"abc123"';

/** parseRange for a 100-byte body, no If-Range. */
const range100 = (header: string) => parseRange(header, 100, '', ETAG);

describe('parseRange (single byte ranges, RFC 9110 14.2)', () => {
  it('sends the whole body when there is no Range header', () => {
    expect(range100('')).to.equal(undefined);
  });

  it('reads first-last, first- and -suffix ranges', () => {
    expect(range100('bytes=0-9')).to.deep.equal({ start: 0, end: 9 });
    expect(range100('bytes=10-10')).to.deep.equal({ start: 10, end: 10 });
    expect(range100('bytes=90-')).to.deep.equal({ start: 90, end: 99 });
    expect(range100('bytes=0-')).to.deep.equal({ start: 0, end: 99 });
    expect(range100('bytes=-10')).to.deep.equal({ start: 90, end: 99 });
    expect(range100(' bytes=5-6 ')).to.deep.equal({ start: 5, end: 6 });
  });

  it('clips a last byte or suffix past the end to the body', () => {
    expect(range100('bytes=50-1000')).to.deep.equal({ start: 50, end: 99 });
    expect(range100('bytes=-1000')).to.deep.equal({ start: 0, end: 99 });
    expect(range100('bytes=99-99')).to.deep.equal({ start: 99, end: 99 });
  });

  it('is unsatisfiable when the first byte is past the end, the suffix is empty, or the body is empty', () => {
    expect(range100('bytes=100-')).to.equal('unsatisfiable');
    expect(range100('bytes=100-200')).to.equal('unsatisfiable');
    expect(range100('bytes=-0')).to.equal('unsatisfiable');
    expect(parseRange('bytes=0-', 0, '', ETAG)).to.equal('unsatisfiable');
    expect(parseRange('bytes=-5', 0, '', ETAG)).to.equal('unsatisfiable');
  });

  it('ignores (whole body) what it does not take: several ranges, other units, malformed or reversed ranges', () => {
    for (const header of ['bytes=0-1,5-6', 'items=0-1', 'bytes=', 'bytes=-', 'bytes=a-b', 'bytes=5-2', 'bytes=1.5-2', 'bytes 0-1', 'bytes=--1']) {
      expect(range100(header), header).to.equal(undefined);
    }
  });

  it('honours If-Range: the range only when it carries the current strong ETag', () => {
    expect(parseRange('bytes=0-9', 100, ETAG, ETAG)).to.deep.equal({ start: 0, end: 9 });
    expect(parseRange('bytes=0-9', 100, '"old"', ETAG)).to.equal(undefined);
    expect(parseRange('bytes=0-9', 100, `W/${ETAG}`, ETAG)).to.equal(undefined);
    expect(parseRange('bytes=0-9', 100, 'Wed, 21 Oct 2015 07:28:00 GMT', ETAG)).to.equal(undefined);
    expect(parseRange('bytes=500-', 100, '"old"', ETAG), 'stale If-Range: whole body, not 416').to.equal(undefined);
  });
});

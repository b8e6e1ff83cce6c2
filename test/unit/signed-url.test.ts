import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import { checkSignature, SIGNED_IMAGE_ID, signPath } from '../../src/security/signed-url.js';

const SECRET = 'unit-test-signing-secret-0123456789abcdef';
const NOW = 1_800_000_000;
const PATH = '/api/v1/albums/holidays/images/beach.png';

/** Splits a signed `path?query` into the parts checkSignature takes. */
function parts(signed: string): { path: string; query: string } {
  const i = signed.indexOf('?');
  return { path: signed.slice(0, i), query: signed.slice(i + 1) };
}

/** Replaces one query parameter of a signed URL's query string. */
function withParam(query: string, name: string, value: string): string {
  const params = new URLSearchParams(query);
  params.set(name, value);
  return params.toString();
}

describe('signed URLs', () => {
  it('signs path, transform parameters and expiry; the URL checks as valid until it expires', () => {
    const signed = signPath(SECRET, PATH, { w: '64', format: 'webp' }, NOW + 60);
    const { path, query } = parts(signed);
    expect(path).to.equal(PATH);
    const params = new URLSearchParams(query);
    expect(Object.fromEntries(params)).to.include({ w: '64', format: 'webp', expires: String(NOW + 60) });
    expect(params.get('sig')).to.match(/^[A-Za-z0-9_-]{43}$/);
    expect(checkSignature(SECRET, path, query, NOW)).to.equal('valid');
    expect(checkSignature(SECRET, path, query, NOW + 60), 'valid through its last second').to.equal('valid');
    expect(checkSignature(SECRET, path, query, NOW + 61)).to.equal('expired');
  });

  it('is HMAC-SHA256 over "GET\\n<path>\\n<sorted query without sig>", base64url (documented format)', () => {
    const { query } = parts(signPath(SECRET, PATH, { w: '64' }, NOW));
    const expected = createHmac('sha256', SECRET).update(`GET\n${PATH}\nexpires=${NOW}&w=64`).digest('base64url');
    expect(new URLSearchParams(query).get('sig')).to.equal(expected);
  });

  it('does not depend on the order of the query parameters', () => {
    const { path, query } = parts(signPath(SECRET, PATH, { w: '64', h: '32' }, NOW + 60));
    const reversed = [...new URLSearchParams(query)].reverse().map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
    expect(checkSignature(SECRET, path, reversed, NOW)).to.equal('valid');
  });

  describe('tampering', () => {
    const { path, query } = parts(signPath(SECRET, PATH, { w: '64' }, NOW + 60));

    it('refuses another path', () => {
      expect(checkSignature(SECRET, '/api/v1/albums/holidays/images/other.png', query, NOW)).to.equal('invalid');
      expect(checkSignature(SECRET, `${PATH}/metadata`, query, NOW)).to.equal('invalid');
    });

    it('refuses a changed, added or removed parameter', () => {
      expect(checkSignature(SECRET, path, withParam(query, 'w', '65'), NOW)).to.equal('invalid');
      expect(checkSignature(SECRET, path, `${query}&h=10`, NOW)).to.equal('invalid');
      const without = new URLSearchParams(query);
      without.delete('w');
      expect(checkSignature(SECRET, path, without.toString(), NOW)).to.equal('invalid');
    });

    it('refuses a later expiry (it is signed too), even when the original has expired', () => {
      expect(checkSignature(SECRET, path, withParam(query, 'expires', String(NOW + 3600)), NOW + 120)).to.equal('invalid');
    });

    it('refuses a changed, truncated, repeated or missing signature, and another secret', () => {
      const sig = new URLSearchParams(query).get('sig') as string;
      const flipped = `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
      expect(checkSignature(SECRET, path, withParam(query, 'sig', flipped), NOW)).to.equal('invalid');
      expect(checkSignature(SECRET, path, withParam(query, 'sig', sig.slice(0, 20)), NOW)).to.equal('invalid');
      expect(checkSignature(SECRET, path, withParam(query, 'sig', ''), NOW)).to.equal('invalid');
      expect(checkSignature(SECRET, path, `${query}&sig=${sig}`, NOW)).to.equal('invalid');
      const unsigned = new URLSearchParams(query);
      unsigned.delete('sig');
      expect(checkSignature(SECRET, path, unsigned.toString(), NOW)).to.equal('invalid');
      expect(checkSignature(`${SECRET}x`, path, query, NOW)).to.equal('invalid');
    });

    it('refuses an expires that is not a plain number', () => {
      for (const expires of ['', '-1', '1e12', ' 1800000060', '0x6B49D23C']) {
        const forged = signPath(SECRET, PATH, {}, NOW).replace(`expires=${NOW}`, `expires=${encodeURIComponent(expires)}`);
        expect(checkSignature(SECRET, PATH, parts(forged).query, NOW), JSON.stringify(expires)).to.equal('invalid');
      }
    });
  });

  it('signs the image id a URL by name is bound to, so it cannot be changed or dropped (issue 12)', () => {
    expect(SIGNED_IMAGE_ID).to.equal('imageId');
    const { path, query } = parts(signPath(SECRET, PATH, { [SIGNED_IMAGE_ID]: 'AbCdEf0123456789', w: '64' }, NOW + 60));
    expect(checkSignature(SECRET, path, query, NOW)).to.equal('valid');
    expect(checkSignature(SECRET, path, withParam(query, SIGNED_IMAGE_ID, 'ZZZZZZ0123456789'), NOW)).to.equal('invalid');
    const dropped = new URLSearchParams(query);
    dropped.delete(SIGNED_IMAGE_ID);
    expect(checkSignature(SECRET, path, dropped.toString(), NOW)).to.equal('invalid');
  });

  it('reports "absent" for an ordinary request (no sig, no expires)', () => {
    expect(checkSignature(SECRET, PATH, '', NOW)).to.equal('absent');
    expect(checkSignature(SECRET, PATH, 'w=64', NOW)).to.equal('absent');
  });
});

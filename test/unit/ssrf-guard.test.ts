import { expect } from 'chai';
import type dns from 'node:dns';
import { checkTargetUrl, ForbiddenTargetError, guardedLookup, isBlockedAddress } from '../../src/imports/ssrf-guard.js';

const NONE: ReadonlySet<string> = new Set();

/** checkTargetUrl's outcome: 'ok' or the refusal message. */
function verdict(url: string, allow: ReadonlySet<string> = NONE): string {
  try {
    checkTargetUrl(new URL(url), allow);
    return 'ok';
  } catch (err) {
    expect(err).to.be.instanceOf(ForbiddenTargetError);
    return (err as Error).message;
  }
}

describe('SSRF guard: isBlockedAddress', () => {
  for (const address of [
    '127.0.0.1', '127.255.255.254', '10.0.0.1', '172.16.5.4', '172.31.255.255', '192.168.1.1', '169.254.169.254',
    '100.64.0.1', '0.0.0.0', '224.0.0.1', '255.255.255.255', '::1', '::', 'fe80::1', 'fc00::1', 'fd12:3456::1', 'ff02::1',
    '::ffff:127.0.0.1', '::ffff:7f00:1', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe', '::ffff:10.0.0.1', '64:ff9b::7f00:1',
    // issue 12: site-local fec0::/10 (deprecated, still routed inside some networks), local-use NAT64, IPv4-translated
    'fec0::1', 'fed0:1234::1', 'feff:ffff::1', '64:ff9b:1::a00:1', '::ffff:0:7f00:1', '::ffff:0:a9fe:a9fe',
  ]) {
    it(`blocks ${address}`, () => expect(isBlockedAddress(address)).to.equal(true));
  }
  for (const address of ['8.8.8.8', '1.1.1.1', '172.32.0.1', '192.169.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '::ffff:808:808']) {
    it(`lets ${address} through`, () => expect(isBlockedAddress(address)).to.equal(false));
  }
  it('treats something that is not an IP address as blocked', () => {
    expect(isBlockedAddress('localhost')).to.equal(true);
    expect(isBlockedAddress('')).to.equal(true);
  });
});

describe('SSRF guard: checkTargetUrl', () => {
  it('refuses literal loopback, private, link-local and metadata addresses', () => {
    expect(verdict('http://127.0.0.1:8080/x')).to.equal('refused: 127.0.0.1 is a loopback, private, link-local or reserved address');
    expect(verdict('http://169.254.169.254/latest/meta-data/')).to.match(/^refused: 169\.254\.169\.254 /);
    expect(verdict('http://10.0.0.1/')).to.match(/^refused: 10\.0\.0\.1 /);
    expect(verdict('http://[::1]/')).to.match(/^refused: ::1 /);
    expect(verdict('https://[fe80::1]/')).to.match(/^refused: fe80::1 /);
    expect(verdict('http://[fec0::1]/')).to.match(/^refused: fec0::1 /);
  });

  it('refuses IPv4-mapped IPv6 forms (new URL() writes them in hex)', () => {
    expect(new URL('http://[::ffff:127.0.0.1]/').hostname).to.equal('[::ffff:7f00:1]');
    expect(verdict('http://[::ffff:127.0.0.1]/')).to.match(/^refused: ::ffff:7f00:1 /);
    expect(verdict('http://[::ffff:169.254.169.254]/')).to.match(/^refused: ::ffff:a9fe:a9fe /);
  });

  it('refuses decimal, hex, octal and short IPv4 forms, which new URL() normalises to dotted quads', () => {
    for (const url of ['http://2130706433/', 'http://0x7f000001/', 'http://0177.0.0.1/', 'http://127.1/', 'http://0x7f.0.0.1/']) {
      expect(new URL(url).hostname, url).to.equal('127.0.0.1');
      expect(verdict(url), url).to.match(/^refused: 127\.0\.0\.1 /);
    }
    expect(new URL('http://0/').hostname).to.equal('0.0.0.0');
    expect(verdict('http://0/')).to.match(/^refused: 0\.0\.0\.0 /);
  });

  it('refuses schemes other than http(s) and URLs with credentials', () => {
    expect(verdict('file:///etc/passwd')).to.equal('only http and https URLs can be imported, not file:');
    expect(verdict('ftp://example.com/a.png')).to.equal('only http and https URLs can be imported, not ftp:');
    expect(verdict('http://user:pw@example.com/a.png')).to.equal('URLs with credentials are refused');
  });

  it('leaves public addresses and host names to the connect-time lookup', () => {
    expect(verdict('http://8.8.8.8/a.png')).to.equal('ok');
    expect(verdict('https://example.com/a.png')).to.equal('ok');
    expect(verdict('http://localhost:1234/a.png')).to.equal('ok'); // refused by guardedLookup instead
  });

  it('lets allow-listed hosts through, and only those', () => {
    const allow = new Set(['127.0.0.1', '::1']);
    expect(verdict('http://127.0.0.1:9/x', allow)).to.equal('ok');
    expect(verdict('http://[::1]:9/x', allow)).to.equal('ok');
    expect(verdict('http://127.0.0.2:9/x', allow)).to.match(/^refused: 127\.0\.0\.2 /);
    expect(verdict('http://169.254.169.254/', allow)).to.match(/^refused: /);
    expect(verdict('file:///etc/passwd', allow)).to.match(/^only http and https/);
  });
});

describe('SSRF guard: guardedLookup (resolves through /etc/hosts, no network)', () => {
  function lookup(host: string, allow: ReadonlySet<string>, options: dns.LookupOptions = {}): Promise<{ err: Error | null; address: unknown }> {
    return new Promise((resolve) => {
      guardedLookup(allow)(host, options, (err, address) => resolve({ err, address }));
    });
  }

  it('refuses a name that resolves to loopback', async () => {
    const { err } = await lookup('localhost', NONE);
    expect(err).to.be.instanceOf(ForbiddenTargetError);
    expect(err!.message).to.match(/^refused: localhost resolves to (127\.0\.0\.1|::1), a loopback/);
  });

  it('lets an allow-listed name resolve, in both callback forms', async () => {
    const allow = new Set(['localhost']);
    const one = await lookup('localhost', allow);
    expect(one.err).to.equal(null);
    expect(one.address).to.be.oneOf(['127.0.0.1', '::1']);
    const all = await lookup('localhost', allow, { all: true });
    expect(all.err).to.equal(null);
    expect((all.address as dns.LookupAddress[]).map((a) => a.address)).to.include.oneOf(['127.0.0.1', '::1']);
  });

  it('does not let an allow-listed IP exempt a name that resolves to it', async () => {
    const { err } = await lookup('localhost', new Set(['127.0.0.1', '::1']));
    expect(err).to.be.instanceOf(ForbiddenTargetError);
  });
});

import { expect } from 'chai';
import { AuthFailures, clientKey } from '../../src/security/auth-failures.js';

describe('AuthFailures (issue 12, item 9)', () => {
  let now = 1_000_000;
  const clock = () => now;
  beforeEach(() => {
    now = 1_000_000;
  });

  it('refuses an address after `limit` failures until its window ends, then forgets them', () => {
    const failures = new AuthFailures({ limit: 3, windowMs: 10_000, now: clock });
    for (let i = 0; i < 3; i += 1) {
      expect(failures.retryAfterSeconds('198.51.100.7')).to.equal(0);
      failures.record('198.51.100.7');
    }
    expect(failures.retryAfterSeconds('198.51.100.7')).to.equal(10);
    now += 4_500;
    expect(failures.retryAfterSeconds('198.51.100.7')).to.equal(6);
    expect(failures.retryAfterSeconds('198.51.100.8'), 'another address').to.equal(0);
    now += 5_500;
    expect(failures.retryAfterSeconds('198.51.100.7'), 'window over').to.equal(0);
    failures.record('198.51.100.7');
    expect(failures.retryAfterSeconds('198.51.100.7'), 'a new window starts at one').to.equal(0);
  });

  it('drops finished windows, and never tracks more than maxClients addresses', () => {
    const failures = new AuthFailures({ limit: 1, windowMs: 1000, maxClients: 100, now: clock });
    for (let i = 0; i < 1000; i += 1) failures.record(`10.0.${i >> 8}.${i & 255}`);
    expect(failures.size).to.equal(100);
    expect(failures.retryAfterSeconds('10.0.3.231'), 'the newest are kept').to.equal(1);
    now += 1000;
    failures.record('192.0.2.1');
    expect(failures.size).to.equal(1);
  });

  it('counts IPv4-mapped addresses as IPv4 and IPv6 addresses by their /64', () => {
    expect(clientKey('::ffff:192.0.2.1')).to.equal('192.0.2.1');
    expect(clientKey('192.0.2.1')).to.equal('192.0.2.1');
    expect(clientKey('2001:db8:1:2:aaaa::1')).to.equal('2001:db8:1:2::/64');
    expect(clientKey('2001:0db8:0001:0002:ffff:ffff:ffff:ffff')).to.equal('2001:db8:1:2::/64');
    expect(clientKey('2001:db8::1')).to.equal('2001:db8:0:0::/64');
    expect(clientKey('::1')).to.equal('0:0:0:0::/64');
    expect(clientKey('fe80::1%eth0')).to.equal('fe80:0:0:0::/64');
    expect(clientKey('64:ff9b::192.0.2.1')).to.equal('64:ff9b:0:0::/64');
    const failures = new AuthFailures({ limit: 2, windowMs: 60_000, now: clock });
    failures.record('2001:db8:1:2::a');
    failures.record('2001:db8:1:2::b');
    expect(failures.retryAfterSeconds('2001:db8:1:2::c'), 'same /64').to.equal(60);
    expect(failures.retryAfterSeconds('2001:db8:1:3::a'), 'next /64').to.equal(0);
  });
});

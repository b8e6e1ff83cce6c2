import dns from 'node:dns';
import net from 'node:net';
import type { LookupFunction } from 'node:net';

/** Why a URL may not be fetched. */
export class ForbiddenTargetError extends Error {}

/**
 * Address ranges an import must never reach unless its host is allow-listed:
 * loopback, private, link-local (incl. the 169.254.169.254 metadata service),
 * CGNAT, unspecified, multicast, reserved, and their IPv6 forms (incl. IPv4-mapped,
 * site-local and the NAT64 prefixes).
 */
const BLOCKED = new net.BlockList();
for (const [addr, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) BLOCKED.addSubnet(addr, prefix, 'ipv4');
for (const [addr, prefix] of [
  ['::', 96], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2001:db8::', 32],
  ['100::', 64], ['2002::', 16], // discard prefix; 6to4, which can embed any IPv4 address
  ['fec0::', 10], // site-local: deprecated (RFC 3879) but still routed inside some networks
  ['64:ff9b:1::', 48], ['::ffff:0:0:0', 96], // local-use NAT64 (RFC 8215) and IPv4-translated: both reach IPv4 addresses
] as const) BLOCKED.addSubnet(addr, prefix, 'ipv6');

/** True when an IP address is in a blocked range (IPv4-mapped IPv6 is checked as IPv4). */
export function isBlockedAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return BLOCKED.check(mapped[1], 'ipv4');
  const family = net.isIP(address);
  if (family === 0) return true;
  return BLOCKED.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * Checks a URL before a request: http(s) only, no credentials, and a literal
 * IP host must not be blocked (hosts in `allowHosts` are exempt).
 * @throws {ForbiddenTargetError}
 */
export function checkTargetUrl(url: URL, allowHosts: ReadonlySet<string>): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ForbiddenTargetError(`only http and https URLs can be imported, not ${url.protocol}`);
  if (url.username || url.password) throw new ForbiddenTargetError('URLs with credentials are refused');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (allowHosts.has(host.toLowerCase())) return;
  if (net.isIP(host) && isBlockedAddress(host)) throw new ForbiddenTargetError(`refused: ${host} is a loopback, private, link-local or reserved address`);
}

/**
 * A DNS lookup for the HTTP client that refuses blocked addresses at connect
 * time, so a name that resolves (or re-resolves: DNS rebinding) to an internal
 * address is refused too, on the first request and on every redirect.
 */
export function guardedLookup(allowHosts: ReadonlySet<string>): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const list = addresses as dns.LookupAddress[];
      if (!allowHosts.has(hostname.toLowerCase())) {
        const blocked = list.find((a) => isBlockedAddress(a.address));
        if (blocked) return callback(new ForbiddenTargetError(`refused: ${hostname} resolves to ${blocked.address}, a loopback, private, link-local or reserved address`), '', 0);
      }
      if ((options as dns.LookupOptions).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
      callback(null, list[0].address, list[0].family);
    });
  };
}

import net from 'node:net';

/** Options of AuthFailures. */
export interface AuthFailuresOptions {
  /** Failures per window per client before it is refused (≥ 1). */
  limit: number;
  windowMs: number;
  /** Clients tracked at once; past it the oldest is forgotten (default 100,000). Only failures add clients. */
  maxClients?: number;
  /** Clock, in ms (tests pass their own). */
  now?: () => number;
}

/**
 * Failed authentications per client address, in fixed windows that start
 * with a client's first failure: after `limit` failures the client is refused
 * until its window ends, whatever it presents, so keys and signatures cannot
 * be guessed faster than `limit` per window. Kept in memory, per process.
 */
export class AuthFailures {
  private readonly windows = new Map<string, { start: number; count: number }>();
  private readonly maxClients: number;
  private readonly now: () => number;
  private lastSweep: number;

  constructor(private readonly options: AuthFailuresOptions) {
    this.maxClients = options.maxClients ?? 100_000;
    this.now = options.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** Seconds until `address` may authenticate again; 0 when it may now. */
  retryAfterSeconds(address: string): number {
    const window = this.windows.get(clientKey(address));
    const now = this.now();
    if (!window || window.count < this.options.limit || now - window.start >= this.options.windowMs) return 0;
    return Math.max(1, Math.ceil((window.start + this.options.windowMs - now) / 1000));
  }

  /** Counts one failed authentication of `address`. */
  record(address: string): void {
    const key = clientKey(address);
    const now = this.now();
    this.sweep(now);
    let window = this.windows.get(key);
    if (!window || now - window.start >= this.options.windowMs) {
      this.windows.delete(key); // re-inserted last: the map stays in order of window start
      window = { start: now, count: 0 };
      this.windows.set(key, window);
    }
    window.count += 1;
    // Many addresses (an IPv6 block) must not grow the map without bound; forgetting the oldest is the least harm.
    if (this.windows.size > this.maxClients) this.windows.delete(this.windows.keys().next().value!);
  }

  /** Clients with a window still open. */
  get size(): number {
    return this.windows.size;
  }

  private sweep(now: number): void {
    if (now - this.lastSweep < this.options.windowMs) return;
    this.lastSweep = now;
    for (const [key, window] of this.windows) {
      if (now - window.start < this.options.windowMs) break; // in order of start: the rest are newer
      this.windows.delete(key);
    }
  }
}

/**
 * The unit failures are counted by: an IPv4 address (also when written
 * IPv4-mapped), or the /64 prefix of an IPv6 address, since one host
 * usually has a whole /64 to pick addresses from.
 */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1];
  if (!net.isIPv6(address)) return address;
  const [head, tail] = address.split('%')[0].toLowerCase().split('::');
  const groups = (part: string | undefined) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['v4', 'v4'] : [g])) : []);
  const left = groups(head);
  const right = groups(tail);
  const all = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  return `${all.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

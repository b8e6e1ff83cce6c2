/** Most addresses remembered at once; beyond, the oldest are forgotten (an attacker with many addresses cannot grow the map). */
const MAX_TRACKED = 10_000;

interface Entry {
  failures: number;
  /** When the first failure counted now happened. */
  since: number;
  blockedUntil: number;
}

/**
 * Counts failed logins per client address: after `maxFailures` within
 * `blockMs`, the address is refused, right key or not, for `blockMs`, so
 * keys cannot be guessed at connection speed.
 */
export class LoginThrottle {
  private readonly entries = new Map<string, Entry>();

  /**
   * @param maxFailures failures that start a block; 0 turns the throttle off
   * @param blockMs the counting window and the length of a block
   * @param now clock (tests)
   */
  constructor(private readonly maxFailures: number, private readonly blockMs: number, private readonly now: () => number = Date.now) {}

  /** True while `address` is refused. */
  blocked(address: string): boolean {
    const entry = this.entries.get(address);
    return entry !== undefined && entry.blockedUntil > this.now();
  }

  /**
   * Records a failed login from `address`.
   * @returns true when this failure starts a block
   */
  fail(address: string): boolean {
    if (this.maxFailures === 0) return false;
    const now = this.now();
    let entry = this.entries.get(address);
    if (!entry || (now - entry.since >= this.blockMs && entry.blockedUntil <= now)) {
      entry = { failures: 0, since: now, blockedUntil: 0 };
      this.entries.delete(address);
      this.entries.set(address, entry);
      this.forgetOld(now);
    }
    entry.failures += 1;
    if (entry.failures < this.maxFailures || entry.blockedUntil > now) return false;
    entry.blockedUntil = now + this.blockMs;
    return true;
  }

  private forgetOld(now: number): void {
    if (this.entries.size <= MAX_TRACKED) return;
    for (const [address, entry] of this.entries) {
      if (now - entry.since >= this.blockMs && entry.blockedUntil <= now) this.entries.delete(address);
    }
    // Still full of live entries: drop the oldest (insertion order).
    for (const address of this.entries.keys()) {
      if (this.entries.size <= MAX_TRACKED) break;
      this.entries.delete(address);
    }
  }
}

/**
 * Counts open connections, in total and per client address, and refuses
 * those beyond the limits: each takes memory (socket buffers, a parser, a
 * session) before it has proven anything.
 */
export class ConnectionLimits {
  private total = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(private readonly limits: { maxConnections: number; maxPerAddress: number }) {}

  /**
   * Takes a place for a connection from `address`.
   * @returns the function that gives it back (call it once the connection closes; later calls do nothing),
   *   or `undefined` when the total or the address is at its limit
   */
  admit(address: string): (() => void) | undefined {
    const fromAddress = this.perAddress.get(address) ?? 0;
    if (this.total >= this.limits.maxConnections || fromAddress >= this.limits.maxPerAddress) return undefined;
    this.total += 1;
    this.perAddress.set(address, fromAddress + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.total -= 1;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    };
  }

  /** Connections open now. */
  get open(): number {
    return this.total;
  }
}

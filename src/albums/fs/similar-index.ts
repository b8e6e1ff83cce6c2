/** An image near another one: its id and the Hamming distance between their perceptual hashes. */
export interface Near {
  id: string;
  distance: number;
}

// The largest distance `near` answers: four 16-bit chunks searched within radius 4 each (part of the wire contract).
export { MAX_SIMILAR_DISTANCE } from '../../contract/schemas.js';

/** For each radius 0-4, every 16-bit mask of at most that many bits (radius 2: 137 masks, 4: 2,517). */
const MASKS: Uint16Array[] = [0, 1, 2, 3, 4].map((radius) => {
  const masks: number[] = [];
  for (let mask = 0; mask < 0x10000; mask++) if (popcount(mask) <= radius) masks.push(mask);
  return Uint16Array.from(masks);
});

/**
 * Multi-index hashing of 64-bit perceptual hashes (Norouzi et al.), in memory: each
 * hash is filed under its four 16-bit chunks. Two hashes within distance d agree
 * within ⌊d/4⌋ bits on at least one chunk (pigeonhole), so a query looks up, for each
 * chunk, the values within that radius (137 of 65,536 at d = 8), and checks only
 * those candidates. Unlike a BK-tree, removing a hash is as cheap as adding one.
 * Hashes live in typed arrays by slot, and each chunk table is a plain array of
 * 65,536 slot lists: a query allocates nothing but its answer.
 */
export class SimilarIndex {
  private readonly slotOf = new Map<string, number>();
  private ids: string[] = [];
  private high = new Uint32Array(1024);
  private low = new Uint32Array(1024);
  /** Query number that last saw each slot (no Set per query). */
  private seen = new Uint32Array(1024);
  private query = 0;
  private readonly free: number[] = [];
  /** Per chunk (0-3): chunk value → slots. */
  private readonly tables: Array<Array<number[] | undefined>> = [0, 1, 2, 3].map(() => new Array<number[] | undefined>(0x10000));

  get size(): number {
    return this.slotOf.size;
  }

  /** Files an image's hash (16 hex digits); a malformed one is ignored. */
  add(id: string, phash: string | undefined): void {
    this.remove(id);
    const halves = parseHash(phash);
    if (!halves) return;
    const slot = this.free.pop() ?? this.ids.length;
    if (slot >= this.high.length) this.grow();
    this.ids[slot] = id;
    [this.high[slot], this.low[slot]] = halves;
    this.slotOf.set(id, slot);
    chunks(halves).forEach((value, i) => {
      const slots = this.tables[i][value];
      if (slots) slots.push(slot);
      else this.tables[i][value] = [slot];
    });
  }

  remove(id: string): void {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return;
    this.slotOf.delete(id);
    chunks([this.high[slot], this.low[slot]]).forEach((value, i) => {
      const slots = this.tables[i][value]!;
      slots.splice(slots.indexOf(slot), 1);
      if (slots.length === 0) this.tables[i][value] = undefined;
    });
    this.free.push(slot);
  }

  /** The hash filed for an image, as 16 hex digits. */
  hashOf(id: string): string | undefined {
    const slot = this.slotOf.get(id);
    return slot === undefined ? undefined : hex(this.high[slot]) + hex(this.low[slot]);
  }

  /**
   * Images whose hash is within `maxDistance` (≤ MAX_SIMILAR_DISTANCE) of `phash`, nearest
   * first (then by id), at most `limit`, without `exclude`.
   */
  near(phash: string, maxDistance: number, limit: number, exclude?: string): Near[] {
    const halves = parseHash(phash);
    if (!halves) return [];
    const [qHigh, qLow] = halves;
    const masks = MASKS[Math.min(4, Math.floor(maxDistance / 4))];
    const stamp = (this.query = (this.query + 1) >>> 0 || 1);
    const excluded = exclude === undefined ? -1 : this.slotOf.get(exclude) ?? -1;
    const found: Near[] = [];
    const values = chunks(halves);
    for (let i = 0; i < 4; i++) {
      const table = this.tables[i];
      const value = values[i];
      for (let m = 0; m < masks.length; m++) {
        const slots = table[value ^ masks[m]];
        if (slots === undefined) continue;
        for (const slot of slots) {
          if (this.seen[slot] === stamp || slot === excluded) continue;
          this.seen[slot] = stamp;
          const distance = popcount(this.high[slot] ^ qHigh) + popcount(this.low[slot] ^ qLow);
          if (distance <= maxDistance) found.push({ id: this.ids[slot], distance });
        }
      }
    }
    return found.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1)).slice(0, limit);
  }

  private grow(): void {
    const size = this.high.length * 2;
    for (const name of ['high', 'low', 'seen'] as const) {
      const bigger = new Uint32Array(size);
      bigger.set(this[name]);
      this[name] = bigger;
    }
  }
}

function parseHash(phash: string | undefined): [number, number] | undefined {
  if (!phash || !/^[0-9a-f]{16}$/.test(phash)) return undefined;
  return [parseInt(phash.slice(0, 8), 16), parseInt(phash.slice(8), 16)];
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function chunks([high, low]: [number, number]): [number, number, number, number] {
  return [high >>> 16, high & 0xffff, low >>> 16, low & 0xffff];
}

function popcount(n: number): number {
  let v = n >>> 0;
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

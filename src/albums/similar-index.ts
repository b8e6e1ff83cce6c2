/** An image near another one: its id and the Hamming distance between their perceptual hashes. */
export interface Near {
  id: string;
  distance: number;
}

/** The largest distance `near` answers: four 16-bit chunks searched within radius 4 each. */
export const MAX_SIMILAR_DISTANCE = 16;

/**
 * Multi-index hashing of 64-bit perceptual hashes (Norouzi et al.), in memory: each
 * hash is filed under its four 16-bit chunks. Two hashes within distance d agree
 * within ⌊d/4⌋ bits on at least one chunk (pigeonhole), so a query looks up, for each
 * chunk, the values within that radius (137 of 65,536 at d = 8), and checks only
 * those candidates. Unlike a BK-tree, removing a hash is as cheap as adding one.
 */
export class SimilarIndex {
  /** hash halves by id: [high 32 bits, low 32 bits]. */
  private readonly hashes = new Map<string, [number, number]>();
  /** Per chunk (0-3): chunk value → ids. */
  private readonly tables: Array<Map<number, Set<string>>> = [new Map(), new Map(), new Map(), new Map()];

  get size(): number {
    return this.hashes.size;
  }

  /** Files an image's hash (16 hex digits); a malformed one is ignored. */
  add(id: string, phash: string | undefined): void {
    this.remove(id);
    const halves = parseHash(phash);
    if (!halves) return;
    this.hashes.set(id, halves);
    chunks(halves).forEach((value, i) => {
      const ids = this.tables[i].get(value);
      if (ids) ids.add(id);
      else this.tables[i].set(value, new Set([id]));
    });
  }

  remove(id: string): void {
    const halves = this.hashes.get(id);
    if (!halves) return;
    this.hashes.delete(id);
    chunks(halves).forEach((value, i) => {
      const ids = this.tables[i].get(value)!;
      ids.delete(id);
      if (ids.size === 0) this.tables[i].delete(value);
    });
  }

  /** The hash filed for an image, as 16 hex digits. */
  hashOf(id: string): string | undefined {
    const halves = this.hashes.get(id);
    return halves && halves.map((h) => h.toString(16).padStart(8, '0')).join('');
  }

  /**
   * Images whose hash is within `maxDistance` (≤ MAX_SIMILAR_DISTANCE) of `phash`, nearest
   * first (then by id), at most `limit`, without `exclude`.
   */
  near(phash: string, maxDistance: number, limit: number, exclude?: string): Near[] {
    const query = parseHash(phash);
    if (!query) return [];
    const radius = Math.floor(maxDistance / 4);
    const seen = new Set<string>();
    const found: Near[] = [];
    chunks(query).forEach((value, i) => {
      for (const probe of withinRadius(value, radius)) {
        for (const id of this.tables[i].get(probe) ?? []) {
          if (seen.has(id) || id === exclude) continue;
          seen.add(id);
          const [high, low] = this.hashes.get(id)!;
          const distance = popcount(high ^ query[0]) + popcount(low ^ query[1]);
          if (distance <= maxDistance) found.push({ id, distance });
        }
      }
    });
    return found.sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1)).slice(0, limit);
  }
}

function parseHash(phash: string | undefined): [number, number] | undefined {
  if (!phash || !/^[0-9a-f]{16}$/.test(phash)) return undefined;
  return [parseInt(phash.slice(0, 8), 16), parseInt(phash.slice(8), 16)];
}

function chunks([high, low]: [number, number]): number[] {
  return [high >>> 16, high & 0xffff, low >>> 16, low & 0xffff];
}

/** Every 16-bit value within `radius` bits of `value` (radius ≤ 4: at most 2,517 values). */
function* withinRadius(value: number, radius: number, from = 0): Generator<number> {
  yield value;
  if (radius === 0) return;
  for (let bit = from; bit < 16; bit++) yield* withinRadius(value ^ (1 << bit), radius - 1, bit + 1);
}

function popcount(n: number): number {
  let v = n >>> 0;
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

import { expect } from 'chai';
import { MAX_SIMILAR_DISTANCE, SimilarIndex } from '../../src/albums/fs/similar-index.js';

/** A deterministic generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex32 = (n: number) => (n >>> 0).toString(16).padStart(8, '0');

function distance(a: string, b: string): number {
  let bits = 0;
  for (let i = 0; i < 16; i++) for (let x = parseInt(a[i], 16) ^ parseInt(b[i], 16); x; x >>= 1) bits += x & 1;
  return bits;
}

function flip(hash: string, bits: number[]): string {
  let [high, low] = [parseInt(hash.slice(0, 8), 16), parseInt(hash.slice(8), 16)];
  for (const bit of bits) {
    if (bit < 32) high ^= 1 << bit;
    else low ^= 1 << (bit - 32);
  }
  return hex32(high) + hex32(low);
}

describe('SimilarIndex (issue 18: near duplicates by multi-index hashing)', () => {
  it('answers exactly what a linear scan answers, at every distance up to 16, with near copies among random hashes', () => {
    const random = rng(7);
    const index = new SimilarIndex();
    const hashes = new Map<string, string>();
    for (let i = 0; i < 3000; i++) {
      const base = i % 3 === 2 ? [...hashes.values()][Math.floor(random() * hashes.size)] : hex32(random() * 2 ** 32) + hex32(random() * 2 ** 32);
      const hash = i % 3 === 2 ? flip(base, Array.from({ length: Math.floor(random() * 12) }, () => Math.floor(random() * 64))) : base;
      hashes.set(`id${i}`, hash);
      index.add(`id${i}`, hash);
    }
    for (const maxDistance of [0, 3, 4, 8, 12, MAX_SIMILAR_DISTANCE]) {
      for (let q = 0; q < 40; q++) {
        const id = `id${Math.floor(random() * 3000)}`;
        const expected = [...hashes].filter(([other, h]) => other !== id && distance(h, hashes.get(id)!) <= maxDistance)
          .map(([other, h]) => ({ id: other, distance: distance(h, hashes.get(id)!) }))
          .sort((a, b) => a.distance - b.distance || (a.id < b.id ? -1 : 1));
        expect(index.near(hashes.get(id)!, maxDistance, 10_000, id), `${id} within ${maxDistance}`).to.deep.equal(expected);
      }
    }
  });

  it('forgets removed images, replaces a re-added one, ignores malformed hashes, and honours limit', () => {
    const index = new SimilarIndex();
    const a = '0123456789abcdef';
    index.add('a', a);
    index.add('b', flip(a, [1]));
    index.add('c', flip(a, [1, 40]));
    index.add('bad', 'not a hash');
    expect(index.size).to.equal(3);
    expect(index.near(a, 8, 1, 'a')).to.deep.equal([{ id: 'b', distance: 1 }]);
    index.remove('b');
    expect(index.near(a, 8, 10, 'a')).to.deep.equal([{ id: 'c', distance: 2 }]);
    index.add('c', flip(a, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(index.near(a, 8, 10, 'a')).to.deep.equal([]);
    expect(index.hashOf('a')).to.equal(a);
    expect(index.hashOf('b')).to.equal(undefined);
  });
});

import { expect } from 'chai';
import { findRegions, type Box } from '../../src/images/diff-regions.js';

/** A mask as pixelmatch's diffMask writes it: RGBA, alpha 255 where the images differ. */
class Mask {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
  ) {
    this.data = new Uint8Array(width * height * 4);
  }

  set(x: number, y: number): this {
    this.data[(y * this.width + x) * 4 + 3] = 255;
    return this;
  }

  rect(x: number, y: number, width: number, height: number): this {
    for (let j = y; j < y + height; j++) for (let i = x; i < x + width; i++) this.set(i, j);
    return this;
  }

  isSet(x: number, y: number): boolean {
    return this.data[(y * this.width + x) * 4 + 3] !== 0;
  }

  regions(mergeDistance = 0, maxBoxes = 1000): Box[] {
    return findRegions(this.data, this.width, this.height, mergeDistance, maxBoxes);
  }
}

/** Deterministic PRNG (mulberry32), so a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reference: 8-connected components by flood fill, one pixel at a time. */
function floodFillRegions(mask: Mask): Box[] {
  const seen = new Uint8Array(mask.width * mask.height);
  const boxes: Box[] = [];
  for (let y0 = 0; y0 < mask.height; y0++) {
    for (let x0 = 0; x0 < mask.width; x0++) {
      if (!mask.isSet(x0, y0) || seen[y0 * mask.width + x0]) continue;
      let minX = x0, minY = y0, maxX = x0, maxY = y0, pixels = 0;
      const stack = [[x0, y0]];
      seen[y0 * mask.width + x0] = 1;
      while (stack.length > 0) {
        const [x, y] = stack.pop()!;
        pixels += 1;
        minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const nx = x + dx, ny = y + dy;
            if (nx < 0 || ny < 0 || nx >= mask.width || ny >= mask.height || seen[ny * mask.width + nx] || !mask.isSet(nx, ny)) continue;
            seen[ny * mask.width + nx] = 1;
            stack.push([nx, ny]);
          }
        }
      }
      boxes.push({ x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1, pixels });
    }
  }
  return boxes;
}

const canonical = (boxes: Box[]) => boxes.map((b) => `${b.x},${b.y},${b.width}x${b.height}:${b.pixels}`).sort();

describe('findRegions', () => {
  it('finds nothing in an empty mask', () => {
    expect(new Mask(10, 10).regions()).to.deep.equal([]);
  });

  it('boxes a single pixel, also in the corners of the mask', () => {
    expect(new Mask(10, 8).set(3, 5).regions()).to.deep.equal([{ x: 3, y: 5, width: 1, height: 1, pixels: 1 }]);
    expect(new Mask(10, 8).set(9, 7).regions()).to.deep.equal([{ x: 9, y: 7, width: 1, height: 1, pixels: 1 }]);
    expect(new Mask(1, 1).set(0, 0).regions()).to.deep.equal([{ x: 0, y: 0, width: 1, height: 1, pixels: 1 }]);
  });

  it('boxes a filled rectangle exactly, with its pixel count', () => {
    expect(new Mask(50, 40).rect(7, 9, 20, 13).regions()).to.deep.equal([{ x: 7, y: 9, width: 20, height: 13, pixels: 260 }]);
  });

  it('joins pixels that touch only diagonally (8-connectivity), in both diagonal directions', () => {
    expect(new Mask(10, 10).set(2, 2).set(3, 3).set(4, 4).regions()).to.deep.equal([{ x: 2, y: 2, width: 3, height: 3, pixels: 3 }]);
    expect(new Mask(10, 10).set(4, 2).set(3, 3).set(2, 4).regions()).to.deep.equal([{ x: 2, y: 2, width: 3, height: 3, pixels: 3 }]);
  });

  it('keeps pixels with one empty pixel between them apart when merging is off', () => {
    expect(new Mask(10, 10).set(2, 2).set(4, 2).regions()).to.have.length(2);
    expect(new Mask(10, 10).set(2, 2).set(2, 4).regions()).to.have.length(2);
    expect(new Mask(10, 10).set(2, 2).set(4, 4).regions()).to.have.length(2);
  });

  it('joins the arms of a U whose bottom comes rows after both arms started', () => {
    const mask = new Mask(12, 12).rect(1, 1, 2, 8).rect(8, 1, 2, 8).rect(1, 9, 9, 1);
    expect(mask.regions()).to.deep.equal([{ x: 1, y: 1, width: 9, height: 9, pixels: 16 + 16 + 9 }]);
  });

  it('agrees with a flood fill on random masks (no merging)', () => {
    const random = rng(8);
    for (let round = 0; round < 150; round++) {
      const mask = new Mask(1 + Math.floor(random() * 40), 1 + Math.floor(random() * 40));
      const density = random() * 0.6;
      for (let y = 0; y < mask.height; y++) for (let x = 0; x < mask.width; x++) if (random() < density) mask.set(x, y);
      expect(canonical(mask.regions()), `round ${round}`).to.deep.equal(canonical(floodFillRegions(mask)));
    }
  });

  describe('merging close regions (mergeDistance)', () => {
    it('merges two regions closer than mergeDistance into one box, summing their pixels', () => {
      // 3 empty columns between them, mergeDistance 4.
      const mask = new Mask(40, 20).rect(2, 2, 5, 5).rect(10, 4, 3, 3);
      expect(mask.regions(4)).to.deep.equal([{ x: 2, y: 2, width: 11, height: 5, pixels: 25 + 9 }]);
    });

    it('merges vertically and diagonally close regions too', () => {
      expect(new Mask(20, 40).rect(2, 2, 3, 3).rect(2, 8, 3, 3).regions(4)).to.have.length(1);
      expect(new Mask(40, 40).rect(2, 2, 3, 3).rect(8, 8, 3, 3).regions(4)).to.have.length(1);
    });

    it('keeps regions farther apart than twice mergeDistance separate', () => {
      // The merge works on a grid of mergeDistance-sized cells, so gaps between
      // mergeDistance and twice it may or may not merge; beyond that they never do.
      const mask = new Mask(60, 30).rect(2, 2, 5, 5).rect(16, 2, 5, 5).rect(2, 16, 5, 5);
      expect(canonical(mask.regions(4))).to.deep.equal(canonical([
        { x: 2, y: 2, width: 5, height: 5, pixels: 25 },
        { x: 16, y: 2, width: 5, height: 5, pixels: 25 },
        { x: 2, y: 16, width: 5, height: 5, pixels: 25 },
      ]));
    });

    it('merges a chain of regions, each close to the next, into one box', () => {
      const mask = new Mask(100, 10);
      for (let x = 2; x < 90; x += 6) mask.rect(x, 3, 3, 3);
      expect(mask.regions(4)).to.deep.equal([{ x: 2, y: 3, width: 87, height: 3, pixels: 15 * 9 }]);
      expect(mask.regions(0)).to.have.length(15);
    });

    it('merges a region lying inside another one\'s box, however far from its pixels', () => {
      // A large hollow square with a dot in the middle, 20 px from the border.
      const mask = new Mask(60, 60).rect(5, 5, 50, 1).rect(5, 54, 50, 1).rect(5, 5, 1, 50).rect(54, 5, 1, 50).set(30, 30);
      expect(mask.regions(2)).to.deep.equal([{ x: 5, y: 5, width: 50, height: 50, pixels: 196 + 1 }]);
    });
  });

  describe('order and cap', () => {
    it('sorts boxes by area, largest first, then top to bottom and left to right', () => {
      const mask = new Mask(100, 100).rect(80, 80, 4, 4).rect(5, 60, 10, 10).rect(50, 5, 2, 2).rect(30, 30, 6, 6).rect(5, 5, 2, 2);
      expect(mask.regions().map((b) => [b.x, b.y, b.width * b.height])).to.deep.equal([
        [5, 60, 100], [30, 30, 36], [80, 80, 16], [5, 5, 4], [50, 5, 4],
      ]);
    });

    it('returns at most maxBoxes boxes: the largest ones', () => {
      const mask = new Mask(100, 100).rect(80, 80, 4, 4).rect(5, 60, 10, 10).rect(50, 5, 2, 2).rect(30, 30, 6, 6).rect(5, 5, 3, 3);
      expect(mask.regions(0, 3).map((b) => b.width * b.height)).to.deep.equal([100, 36, 16]);
      expect(mask.regions(0, 1)).to.deep.equal([{ x: 5, y: 60, width: 10, height: 10, pixels: 100 }]);
    });

    it('breaks ties at the cap by position: the top-left-most of equal boxes are kept', () => {
      const mask = new Mask(50, 50);
      for (let y = 1; y < 50; y += 4) for (let x = 1; x < 50; x += 4) mask.set(x, y);
      expect(mask.regions(0, 4).map((b) => [b.x, b.y])).to.deep.equal([[1, 1], [5, 1], [9, 1], [13, 1]]);
      expect(mask.regions(0, 15).at(-1)).to.include({ x: 5, y: 5 });
    });
  });

  it('labels a large noisy mask quickly, with and without merging (gh issue 8: the row scan was quadratic)', () => {
    const width = 2000;
    const height = 1500;
    const random = rng(1);
    const mask = new Mask(width, height);
    for (let i = 0; i < width * height; i++) if (random() < 0.5) mask.data[i * 4 + 3] = 255;
    for (const mergeDistance of [0, 1, 4]) {
      const started = performance.now();
      const boxes = mask.regions(mergeDistance, 50);
      const elapsed = performance.now() - started;
      expect(elapsed, `mergeDistance ${mergeDistance}: ${elapsed.toFixed(0)} ms`).to.be.below(3000);
      expect(boxes.length).to.be.within(1, 50);
      // At 50 % density the 8-connected pixels percolate: one region spans the mask.
      expect(boxes[0]).to.include({ x: 0, y: 0, width, height });
      if (mergeDistance > 0) expect(boxes).to.have.length(1);
    }
  });
});

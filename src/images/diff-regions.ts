/** A rectangle in pixels: left/top inclusive, width/height ≥ 1. */
export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Differing pixels inside the region (before merging, summed when merged). */
  pixels: number;
}

/**
 * Finds the connected regions (8-connectivity) of differing pixels in a mask
 * (`alpha` channel of pixelmatch's diffMask output: non-zero = differs),
 * merges regions whose boxes are within `mergeDistance` pixels of each other,
 * and returns them sorted by area, largest first, at most `maxBoxes`.
 *
 * Works on runs of pixels (run-length connected-component labelling with
 * union-find), so the cost follows the number of runs, not of pixels.
 */
export function findRegions(mask: Uint8Array, width: number, height: number, mergeDistance: number, maxBoxes: number): Box[] {
  const parent: number[] = [];
  const boxes: Box[] = [];
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[rb] = ra;
  };
  let previous: Array<[number, number, number]> = []; // [start, end, run id] of the row above
  for (let y = 0; y < height; y++) {
    const current: Array<[number, number, number]> = [];
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (mask[(row + x) * 4 + 3] === 0) continue;
      const start = x;
      while (x + 1 < width && mask[(row + x + 1) * 4 + 3] !== 0) x++;
      const id = boxes.length;
      parent.push(id);
      boxes.push({ x: start, y, width: x - start + 1, height: 1, pixels: x - start + 1 });
      // 8-connectivity: a run touches runs above that overlap [start-1, end+1].
      for (const [s, e, other] of previous) if (s <= x + 1 && e >= start - 1) union(other, id);
      current.push([start, x, id]);
    }
    previous = current;
  }
  const byRoot = new Map<number, Box>();
  for (let i = 0; i < boxes.length; i++) {
    const root = find(i);
    const merged = byRoot.get(root);
    byRoot.set(root, merged ? unite(merged, boxes[i]) : { ...boxes[i] });
  }
  return mergeClose([...byRoot.values()], mergeDistance)
    .sort((a, b) => b.width * b.height - a.width * a.height || a.y - b.y || a.x - b.x)
    .slice(0, maxBoxes);
}

function unite(a: Box, b: Box): Box {
  const x = Math.min(a.x, b.x);
  const y = Math.min(a.y, b.y);
  return {
    x, y,
    width: Math.max(a.x + a.width, b.x + b.width) - x,
    height: Math.max(a.y + a.height, b.y + b.height) - y,
    pixels: a.pixels + b.pixels,
  };
}

/**
 * Merges boxes that lie within `distance` pixels of each other: every box
 * claims the cells (of side `distance`) it covers on a coarse grid; boxes
 * sharing a cell or owning neighbouring cells end up in one group.
 */
function mergeClose(boxes: Box[], distance: number): Box[] {
  if (distance <= 0 || boxes.length < 2) return boxes;
  const cell = distance;
  const parent = boxes.map((_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  };
  const union = (a: number, b: number) => {
    const ra = find(a);
    const rb = find(b);
    if (ra !== rb) parent[rb] = ra;
  };
  const owner = new Map<string, number>();
  boxes.forEach((box, i) => {
    for (let cy = Math.floor(box.y / cell); cy <= Math.floor((box.y + box.height - 1) / cell); cy++) {
      for (let cx = Math.floor(box.x / cell); cx <= Math.floor((box.x + box.width - 1) / cell); cx++) {
        const key = `${cx},${cy}`;
        const other = owner.get(key);
        if (other === undefined) owner.set(key, i);
        else union(other, i);
      }
    }
  });
  for (const [key, i] of owner) {
    const [cx, cy] = key.split(',').map(Number);
    for (const [dx, dy] of [[1, -1], [1, 0], [1, 1], [0, 1]]) {
      const other = owner.get(`${cx + dx},${cy + dy}`);
      if (other !== undefined) union(i, other);
    }
  }
  const groups = new Map<number, Box>();
  boxes.forEach((box, i) => {
    const root = find(i);
    const group = groups.get(root);
    groups.set(root, group ? unite(group, box) : { ...box });
  });
  return [...groups.values()];
}

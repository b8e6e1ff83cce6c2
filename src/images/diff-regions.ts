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
 * union-find), so the cost follows the number of runs, not of pixels; the
 * bookkeeping lives in typed arrays, as a noisy 12-megapixel mask has millions of runs.
 */
export function findRegions(mask: Uint8Array, width: number, height: number, mergeDistance: number, maxBoxes: number): Box[] {
  const runs = new Runs(height);
  for (let y = 0; y < height; y++) {
    runs.beginRow();
    const row = y * width;
    for (let x = 0; x < width; x++) {
      if (mask[(row + x) * 4 + 3] === 0) continue;
      const start = x;
      while (x + 1 < width && mask[(row + x + 1) * 4 + 3] !== 0) x++;
      runs.addRun(start, x);
    }
  }
  const regions = new BoxTable(runs.count);
  for (let i = 0; i < runs.count; i++) regions.add(runs.find(i), runs.start[i], runs.row[i], runs.end[i], runs.row[i], runs.end[i] - runs.start[i] + 1);
  const boxes = regions.compact();
  const groups = mergeDistance > 0 && boxes.count > 1 ? mergeClose(boxes, width, height, mergeDistance) : boxes;
  return largest(groups, maxBoxes, width);
}

/**
 * Merges boxes that lie within `distance` pixels of each other: every box
 * covers the cells (of side `distance`) it touches on a coarse grid; boxes
 * whose cells overlap or neighbour each other (8-connectivity) form one group.
 * The grid is swept row by row (coverage from a per-row difference array),
 * so the cost is cells + boxes, however large or nested the boxes are.
 */
function mergeClose(boxes: BoxTable, width: number, height: number, distance: number): BoxTable {
  const cols = Math.ceil(width / distance);
  const rows = Math.ceil(height / distance);
  const cell = (v: Int32Array, i: number) => Math.floor(v[i] / distance);
  const byTop = bucketBy(boxes.count, rows, (i) => cell(boxes.y0, i));
  const byBottom = bucketBy(boxes.count, rows, (i) => cell(boxes.y1, i));
  const delta = new Int32Array(cols + 1);
  const cells = new Runs(rows);
  const runOf = new Int32Array(boxes.count);
  for (let cy = 0; cy < rows; cy++) {
    for (let k = byTop.first[cy]; k < byTop.first[cy + 1]; k++) {
      const i = byTop.order[k];
      delta[cell(boxes.x0, i)] += 1;
      delta[cell(boxes.x1, i) + 1] -= 1;
    }
    cells.beginRow();
    let cover = 0;
    let start = -1;
    for (let cx = 0; cx <= cols; cx++) {
      if (cx < cols) cover += delta[cx];
      const covered = cx < cols && cover > 0;
      if (covered && start < 0) start = cx;
      else if (!covered && start >= 0) {
        cells.addRun(start, cx - 1);
        start = -1;
      }
    }
    for (let k = byTop.first[cy]; k < byTop.first[cy + 1]; k++) runOf[byTop.order[k]] = cells.runAt(cy, cell(boxes.x0, byTop.order[k]));
    for (let k = byBottom.first[cy]; k < byBottom.first[cy + 1]; k++) {
      const i = byBottom.order[k];
      delta[cell(boxes.x0, i)] -= 1;
      delta[cell(boxes.x1, i) + 1] += 1;
    }
  }
  const groups = new BoxTable(cells.count);
  for (let i = 0; i < boxes.count; i++) {
    groups.add(cells.find(runOf[i]), boxes.x0[i], boxes.y0[i], boxes.x1[i], boxes.y1[i], boxes.pixels[i]);
  }
  return groups.compact();
}

/** The `maxBoxes` largest boxes (ties: top, then left first), sorted, without sorting them all. */
function largest(t: BoxTable, maxBoxes: number, width: number): Box[] {
  const area = (i: number) => (t.x1[i] - t.x0[i] + 1) * (t.y1[i] - t.y0[i] + 1);
  let chosen = Array.from({ length: t.count }, (_, i) => i);
  if (t.count > maxBoxes) {
    // The maxBoxes-th largest area, then among boxes of exactly that area the top-left-most ones.
    const cut = Float64Array.from(chosen, area).sort()[t.count - maxBoxes];
    const bigger = chosen.filter((i) => area(i) > cut);
    const ties = chosen.filter((i) => area(i) === cut);
    const position = (i: number) => t.y0[i] * width + t.x0[i];
    const lastPosition = Float64Array.from(ties, position).sort()[maxBoxes - bigger.length - 1];
    chosen = bigger.concat(ties.filter((i) => position(i) <= lastPosition));
  }
  return chosen
    .map((i) => ({ x: t.x0[i], y: t.y0[i], width: t.x1[i] - t.x0[i] + 1, height: t.y1[i] - t.y0[i] + 1, pixels: t.pixels[i] }))
    .sort((a, b) => b.width * b.height - a.width * a.height || a.y - b.y || a.x - b.x)
    .slice(0, maxBoxes);
}

/** Indexes 0..count-1 grouped by key (0..buckets-1): a counting sort. */
function bucketBy(count: number, buckets: number, key: (i: number) => number): { first: Int32Array; order: Int32Array } {
  const first = new Int32Array(buckets + 1);
  for (let i = 0; i < count; i++) first[key(i) + 1] += 1;
  for (let b = 0; b < buckets; b++) first[b + 1] += first[b];
  const next = first.slice(0, buckets);
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[next[key(i)]++] = i;
  return { first, order };
}

/**
 * Horizontal runs of set cells, added row by row in x order, joined with the
 * runs they touch in the row above (8-connectivity) by union-find.
 */
class Runs {
  count = 0;
  start = new Int32Array(1024);
  end = new Int32Array(1024);
  row = new Int32Array(1024);
  private parent = new Int32Array(1024);
  /** Runs of row y are rowFirst[y] .. rowFirst[y + 1] - 1. */
  private readonly rowFirst: Int32Array;
  private y = -1;
  /** Cursor into the row above: both rows come in x order, so one pass over it serves the whole row. */
  private above = 0;
  private aboveEnd = 0;

  constructor(height: number) {
    this.rowFirst = new Int32Array(height + 1);
  }

  beginRow(): void {
    this.y += 1;
    this.above = this.y > 0 ? this.rowFirst[this.y - 1] : 0;
    this.aboveEnd = this.count;
    this.rowFirst[this.y] = this.count;
    this.rowFirst[this.y + 1] = this.count;
  }

  addRun(start: number, end: number): void {
    if (this.count === this.start.length) this.grow();
    const id = this.count++;
    this.start[id] = start;
    this.end[id] = end;
    this.row[id] = this.y;
    this.parent[id] = id;
    while (this.above < this.aboveEnd && this.end[this.above] < start - 1) this.above++;
    for (let k = this.above; k < this.aboveEnd && this.start[k] <= end + 1; k++) this.union(k, id);
    this.rowFirst[this.y + 1] = this.count;
  }

  /** The run of row y that contains x (it must exist). */
  runAt(y: number, x: number): number {
    let lo = this.rowFirst[y];
    let hi = this.rowFirst[y + 1] - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.start[mid] <= x) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  find(i: number): number {
    const parent = this.parent;
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]];
      i = parent[i];
    }
    return i;
  }

  private union(a: number, b: number): void {
    const ra = this.find(a);
    const rb = this.find(b);
    if (ra < rb) this.parent[rb] = ra;
    else if (rb < ra) this.parent[ra] = rb;
  }

  private grow(): void {
    const bigger = (a: Int32Array) => {
      const next = new Int32Array(a.length * 2);
      next.set(a);
      return next;
    };
    this.start = bigger(this.start);
    this.end = bigger(this.end);
    this.row = bigger(this.row);
    this.parent = bigger(this.parent);
  }
}

/** Bounding boxes (inclusive corners) and pixel counts, accumulated per slot, then compacted. */
class BoxTable {
  count: number;
  x0: Int32Array;
  y0: Int32Array;
  x1: Int32Array;
  y1: Int32Array;
  pixels: Float64Array;

  constructor(slots: number) {
    this.count = slots;
    this.x0 = new Int32Array(slots).fill(-1);
    this.y0 = new Int32Array(slots);
    this.x1 = new Int32Array(slots);
    this.y1 = new Int32Array(slots);
    this.pixels = new Float64Array(slots);
  }

  add(slot: number, x0: number, y0: number, x1: number, y1: number, pixels: number): void {
    if (this.x0[slot] < 0) {
      this.x0[slot] = x0;
      this.y0[slot] = y0;
      this.x1[slot] = x1;
      this.y1[slot] = y1;
    } else {
      this.x0[slot] = Math.min(this.x0[slot], x0);
      this.y0[slot] = Math.min(this.y0[slot], y0);
      this.x1[slot] = Math.max(this.x1[slot], x1);
      this.y1[slot] = Math.max(this.y1[slot], y1);
    }
    this.pixels[slot] += pixels;
  }

  /** A table of the used slots only. */
  compact(): BoxTable {
    let used = 0;
    for (let i = 0; i < this.count; i++) if (this.x0[i] >= 0) used++;
    const dense = new BoxTable(used);
    let j = 0;
    for (let i = 0; i < this.count; i++) {
      if (this.x0[i] < 0) continue;
      dense.x0[j] = this.x0[i];
      dense.y0[j] = this.y0[i];
      dense.x1[j] = this.x1[i];
      dense.y1[j] = this.y1[i];
      dense.pixels[j] = this.pixels[i];
      j++;
    }
    return dense;
  }
}

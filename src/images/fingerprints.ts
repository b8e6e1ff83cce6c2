import { rgbaToThumbHash } from 'thumbhash';

/** Largest side of the thumbnail the fingerprints are computed from (ThumbHash takes at most 100 px). */
export const FINGERPRINT_SIDE = 100;

/** What is computed at upload from a small thumbnail, so a page can paint a placeholder and near-duplicates can be found. */
export interface Fingerprints {
  /** ThumbHash (base64): a ~25-byte blurred preview with its aspect ratio and alpha. */
  thumbhash: string;
  /** The most common colour, `#rrggbb`. */
  dominantColor: string;
  /** 64-bit DCT perceptual hash, 16 hex digits: near-identical pictures differ in few bits. */
  phash: string;
}

/**
 * Fingerprints of a thumbnail (RGBA, at most FINGERPRINT_SIDE on each side, as seen:
 * orientation applied). Pure JavaScript on ≤ 10,000 pixels: well under a millisecond.
 */
export function fingerprints(width: number, height: number, rgba: Uint8Array): Fingerprints {
  return {
    thumbhash: Buffer.from(rgbaToThumbHash(width, height, rgba)).toString('base64'),
    dominantColor: dominantColor(rgba),
    phash: perceptualHash(greyscale32(width, height, rgba)),
  };
}

/**
 * The centre of the most populated cell of a 16×16×16 colour grid (weighted by
 * alpha), as the mean of its pixels: the colour a flat placeholder should have.
 */
export function dominantColor(rgba: Uint8Array): string {
  const weight = new Float64Array(4096);
  const sums = new Float64Array(4096 * 3);
  for (let i = 0; i < rgba.length; i += 4) {
    const a = rgba[i + 3] / 255;
    if (a === 0) continue;
    const cell = ((rgba[i] >> 4) << 8) | ((rgba[i + 1] >> 4) << 4) | (rgba[i + 2] >> 4);
    weight[cell] += a;
    sums[cell * 3] += rgba[i] * a;
    sums[cell * 3 + 1] += rgba[i + 1] * a;
    sums[cell * 3 + 2] += rgba[i + 2] * a;
  }
  let best = 0;
  for (let cell = 1; cell < 4096; cell++) if (weight[cell] > weight[best]) best = cell;
  if (weight[best] === 0) return '#000000';
  const hex = (n: number) => Math.round(n / weight[best]).toString(16).padStart(2, '0');
  return `#${hex(sums[best * 3])}${hex(sums[best * 3 + 1])}${hex(sums[best * 3 + 2])}`;
}

/** Luma of a thumbnail resampled to 32×32 (area average; alpha composited on white, as a page would show it). */
function greyscale32(width: number, height: number, rgba: Uint8Array): Float64Array {
  const out = new Float64Array(32 * 32);
  const counts = new Float64Array(32 * 32);
  for (let y = 0; y < height; y++) {
    const row = Math.min(31, Math.floor((y * 32) / height));
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const a = rgba[i + 3] / 255;
      const luma = 0.299 * rgba[i] + 0.587 * rgba[i + 1] + 0.114 * rgba[i + 2];
      const cell = row * 32 + Math.min(31, Math.floor((x * 32) / width));
      out[cell] += luma * a + 255 * (1 - a);
      counts[cell] += 1;
    }
  }
  // A thumbnail under 32 px on a side leaves cells empty: they take their row's previous value.
  for (let cell = 0; cell < out.length; cell++) out[cell] = counts[cell] ? out[cell] / counts[cell] : cell > 0 ? out[cell - 1] : 0;
  return out;
}

const COSINES = (() => {
  const table = new Float64Array(8 * 32);
  for (let u = 0; u < 8; u++) for (let x = 0; x < 32; x++) table[u * 32 + x] = Math.cos(((2 * x + 1) * u * Math.PI) / 64);
  return table;
})();

/**
 * DCT pHash: the 8×8 lowest frequencies of the 32×32 DCT, one bit each for
 * "above the median" (the DC term excluded from the median, as it only says how bright).
 */
export function perceptualHash(grey: Float64Array): string {
  const low = new Float64Array(64);
  for (let u = 0; u < 8; u++) {
    for (let v = 0; v < 8; v++) {
      let sum = 0;
      for (let y = 0; y < 32; y++) {
        const cy = COSINES[v * 32 + y];
        for (let x = 0; x < 32; x++) sum += grey[y * 32 + x] * COSINES[u * 32 + x] * cy;
      }
      low[v * 8 + u] = sum;
    }
  }
  const median = [...low.subarray(1)].sort((a, b) => a - b)[31];
  let hex = '';
  for (let nibble = 0; nibble < 16; nibble++) {
    let value = 0;
    for (let bit = 0; bit < 4; bit++) value = (value << 1) | (low[nibble * 4 + bit] > median ? 1 : 0);
    hex += value.toString(16);
  }
  return hex;
}

import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { makeTmpDir, removeDir } from './tmp-dir.js';

const run = promisify(execFile);

/** Debian's HEIF encoder (package libheif-examples; scripts/ensure-test-deps.sh installs it). */
export const HEIF_ENC = '/usr/bin/heif-enc';

/** True when heif-enc is installed; tests that need HEIC fixtures skip with a message otherwise. */
export function canMakeHeic(): boolean {
  return existsSync(HEIF_ENC);
}

/** A HEIC file encoded by heif-enc from the given images (PNG or JPEG bytes; several make a multi-image file, the first primary). */
export async function encodeHeic(...sources: Buffer[]): Promise<Buffer> {
  const dir = await makeTmpDir('heif-');
  try {
    const inputs = await Promise.all(sources.map(async (bytes, i) => {
      const file = path.join(dir, `in-${i}.png`);
      await fs.writeFile(file, await sharp(bytes).png().toBuffer());
      return file;
    }));
    const out = path.join(dir, 'out.heic');
    await run(HEIF_ENC, ['-q', '90', ...inputs, '-o', out]);
    return await fs.readFile(out);
  } finally {
    await removeDir(dir);
  }
}

/** Offsets of every box of this type in an ISOBMFF file (walking meta, iprp and ipco). */
function findBoxes(bytes: Buffer, type: string): number[] {
  const found: number[] = [];
  const walk = (start: number, end: number) => {
    for (let at = start; at + 8 <= end;) {
      const size = bytes.readUInt32BE(at);
      const name = bytes.toString('latin1', at + 4, at + 8);
      if (size < 8) return;
      if (name === type) found.push(at);
      if (name === 'meta') walk(at + 12, at + size);
      else if (name === 'iprp' || name === 'ipco') walk(at + 8, at + size);
      at += size;
    }
  };
  walk(0, bytes.length);
  return found;
}

/**
 * Turns a heif-enc output by 90° anticlockwise with an `irot` property, as phones write
 * them (heif-enc 1.15 has no option for it): its `pixi` property (16 bytes, associated with
 * the primary image) is rewritten in place as an `irot` box of the same size, so no offset moves.
 */
export function withIrot90(heic: Buffer): Buffer {
  const out = Buffer.from(heic);
  const [pixi] = findBoxes(out, 'pixi');
  if (pixi === undefined) throw new Error('no pixi property to turn into irot');
  const size = out.readUInt32BE(pixi);
  out.write('irot', pixi + 4, 'latin1');
  out.fill(0, pixi + 8, pixi + size);
  out[pixi + 8] = 1; // angle × 90° anticlockwise
  return out;
}

/** A HEIC whose header claims `width` × `height` (every `ispe`), a pixel bomb of a few hundred bytes. */
export function withClaimedSize(heic: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(heic);
  for (const ispe of findBoxes(out, 'ispe')) {
    out.writeUInt32BE(width, ispe + 12);
    out.writeUInt32BE(height, ispe + 16);
  }
  return out;
}

/** Debian's JPEG XL encoder (package libjxl-tools; scripts/ensure-test-deps.sh installs it). */
export const CJXL = '/usr/bin/cjxl';

/** True when cjxl is installed. */
export function canMakeJxl(): boolean {
  return existsSync(CJXL);
}

/** A JPEG XL file encoded by cjxl from an image (lossless with `distance` 0). */
export async function encodeJxl(source: Buffer, distance = 1): Promise<Buffer> {
  const dir = await makeTmpDir('jxl-');
  try {
    const input = path.join(dir, 'in.png');
    await fs.writeFile(input, await sharp(source).png().toBuffer());
    const out = path.join(dir, 'out.jxl');
    await run(CJXL, [input, out, '-d', String(distance)]);
    return await fs.readFile(out);
  } finally {
    await removeDir(dir);
  }
}

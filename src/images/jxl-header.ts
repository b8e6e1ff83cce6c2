/** JPEG XL signatures: a bare codestream, or the ISO BMFF container. */
const CODESTREAM = Buffer.from([0xff, 0x0a]);
const CONTAINER = Buffer.from([0, 0, 0, 0x0c, 0x4a, 0x58, 0x4c, 0x20, 0x0d, 0x0a, 0x87, 0x0a]);

/** True when the bytes start like a JPEG XL file. */
export function isJxl(head: Uint8Array): boolean {
  const bytes = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  return bytes.subarray(0, 2).equals(CODESTREAM) || bytes.subarray(0, 12).equals(CONTAINER);
}

/** Width : height of the SizeHeader's `ratio` values 1-7 (ISO/IEC 18181-1, D.2). */
const RATIOS: Array<[number, number]> = [[1, 1], [12, 10], [4, 3], [3, 2], [16, 9], [5, 4], [2, 1]];

/**
 * The picture's size from a JPEG XL file's SizeHeader, read before anything is decoded
 * (the pixel limit is checked from it). Undefined when the header cannot be read.
 */
export function jxlSize(file: Uint8Array): { width: number; height: number } | undefined {
  const stream = codestream(Buffer.from(file.buffer, file.byteOffset, file.byteLength));
  if (!stream || stream.length < 12 || !stream.subarray(0, 2).equals(CODESTREAM)) return undefined;
  let bit = 16;
  const bits = (n: number) => {
    let value = 0;
    for (let i = 0; i < n; i++, bit++) value += ((stream[bit >> 3] >> (bit & 7)) & 1) * 2 ** i;
    return value;
  };
  const u32 = () => bits([9, 13, 18, 30][bits(2)]) + 1;
  const small = bits(1) === 1;
  const height = small ? (bits(5) + 1) * 8 : u32();
  const ratio = bits(3);
  const width = ratio === 0 ? (small ? (bits(5) + 1) * 8 : u32()) : Math.floor((height * RATIOS[ratio - 1][0]) / RATIOS[ratio - 1][1]);
  return { width, height };
}

/** The codestream of a bare file, or of a container's first `jxlc` / `jxlp` box. */
function codestream(file: Buffer): Buffer | undefined {
  if (file.subarray(0, 2).equals(CODESTREAM)) return file;
  for (let at = CONTAINER.length; at + 8 <= file.length;) {
    let size = file.readUInt32BE(at);
    const type = file.toString('latin1', at + 4, at + 8);
    let header = 8;
    if (size === 1 && at + 16 <= file.length) {
      size = Number(file.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) size = file.length - at;
    if (size < header) return undefined;
    if (type === 'jxlc') return file.subarray(at + header, at + size);
    if (type === 'jxlp') return file.subarray(at + header + 4, at + size);
    at += size;
  }
  return undefined;
}

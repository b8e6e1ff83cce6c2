/** How many leading bytes `sniffType` needs. */
export const SNIFF_BYTES = 64;

const ISO_BMFF_BRANDS: Record<string, string> = {
  avif: 'image/avif',
  avis: 'image/avif',
  heic: 'image/heic',
  heix: 'image/heic',
  mif1: 'image/heif',
  msf1: 'image/heif',
};

/**
 * Tells the MIME type of a file from its first bytes (never from its name or
 * the type a client declared). Unknown content is `application/octet-stream`.
 */
export function sniffType(head: Buffer): string {
  const ascii = head.toString('latin1');
  if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'image/jpeg';
  if (ascii.startsWith('\x89PNG\r\n\x1a\n')) return 'image/png';
  if (ascii.startsWith('GIF87a') || ascii.startsWith('GIF89a')) return 'image/gif';
  if (ascii.startsWith('RIFF') && ascii.slice(8, 12) === 'WEBP') return 'image/webp';
  if (ascii.startsWith('II*\0') || ascii.startsWith('MM\0*')) return 'image/tiff';
  if (ascii.startsWith('BM')) return 'image/bmp';
  if (ascii.startsWith('\xff\x0a') || ascii.startsWith('\0\0\0\x0cJXL \r\n\x87\n')) return 'image/jxl';
  if (ascii.slice(4, 8) === 'ftyp') return ISO_BMFF_BRANDS[ascii.slice(8, 12)] ?? 'application/octet-stream';
  if (/^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/i.test(ascii)) return 'image/svg+xml';
  return 'application/octet-stream';
}

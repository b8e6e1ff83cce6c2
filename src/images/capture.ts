import type { CaptureMeta } from '../contract/types.js';

export type { CaptureMeta };

/** exifr, loaded on the first image with EXIF (a third of a second: not at every start). */
let parser: Promise<ExifParse> | undefined;
type ExifParse = (data: Buffer, options: object) => Promise<Record<string, unknown> | undefined>;
const loadExifr = () => (parser ??= import('exifr').then((module) => module.parse as ExifParse));

const PICK = [
  'Make', 'Model', 'LensModel', 'DateTimeOriginal', 'OffsetTimeOriginal', 'ExposureTime', 'FNumber', 'ISO', 'FocalLength',
  'GPSLatitude', 'GPSLatitudeRef', 'GPSLongitude', 'GPSLongitudeRef', 'GPSAltitude', 'GPSAltitudeRef',
];

/**
 * Reads capture metadata from an EXIF block as sharp returns it (`Exif\0\0` then
 * a TIFF structure), with exifr: no second read of the file. Damaged EXIF is
 * no reason to refuse an image: it yields nothing.
 */
export async function readCapture(exif: Buffer | undefined): Promise<CaptureMeta | undefined> {
  if (!exif || exif.length < 14) return undefined;
  const tiff = exif.subarray(0, 6).toString('latin1') === 'Exif\0\0' ? exif.subarray(6) : exif;
  let tags: Record<string, unknown> | undefined;
  try {
    tags = await (await loadExifr())(tiff, { pick: PICK, gps: true, reviveValues: false, translateValues: false });
  } catch {
    return undefined;
  }
  if (!tags) return undefined;
  const capture: CaptureMeta = {
    capturedAt: captureTime(tags.DateTimeOriginal, tags.OffsetTimeOriginal),
    make: text(tags.Make),
    model: text(tags.Model),
    lens: text(tags.LensModel),
    exposureTime: number(tags.ExposureTime),
    fNumber: number(tags.FNumber),
    iso: number(Array.isArray(tags.ISO) ? tags.ISO[0] : tags.ISO),
    focalLength: number(tags.FocalLength),
  };
  const [latitude, longitude] = [number(tags.latitude), number(tags.longitude)];
  if (latitude !== undefined && longitude !== undefined) {
    const altitude = number(tags.GPSAltitude);
    capture.gps = { latitude, longitude, ...(altitude !== undefined ? { altitude: tags.GPSAltitudeRef === 1 ? -altitude : altitude } : {}) };
  }
  const kept = Object.fromEntries(Object.entries(capture).filter(([, v]) => v !== undefined)) as CaptureMeta;
  return Object.keys(kept).length ? kept : undefined;
}

/** `2024:05:01 12:34:56` (+ `+02:00`) as `2024-05-01T12:34:56+02:00`. */
function captureTime(raw: unknown, offset: unknown): string | undefined {
  const match = typeof raw === 'string' ? /^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})/.exec(raw) : null;
  if (!match || match[1] === '0000') return undefined;
  const zone = typeof offset === 'string' && /^[+-]\d{2}:\d{2}$/.test(offset) ? offset : '';
  return `${match[1]}-${match[2]}-${match[3]}T${match[4]}:${match[5]}:${match[6]}${zone}`;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim().slice(0, 200) : undefined;
}

function number(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

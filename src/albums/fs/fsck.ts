import { promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { checkName, RESERVED_PREFIX } from '../names.js';
import { Layout } from '../layout.js';
import { adoptFile, describeFile, readImageMeta, type StoredImageMeta } from '../image-meta.js';
import { mapLimit } from '../../lib/map-limit.js';
import { fsyncDir, isErrno, writeFileAtomic } from '../../lib/durable.js';
import type { FsckProblem } from '../../contract/types.js';

export interface FsckOptions {
  /** Fix what can be fixed (remove temp files, adopt files, drop orphan metadata). */
  repair: boolean;
  /** Re-hash every image and compare with its metadata (slow: reads every byte). */
  verifyContent: boolean;
}

export interface FsckReport {
  problems: FsckProblem[];
  albums: number;
  images: number;
  /** Album name → metadata of its images, as found after repair (the store's starting index). */
  index: Map<string, StoredImageMeta[]>;
}

/**
 * Checks a data dir and, with `repair`, brings it back to a consistent state.
 * The service runs it with repair on every start (crash recovery); `npm run fsck`
 * runs it by hand. Never deletes an image file: only temporary files, the
 * trash, and metadata whose image is gone.
 */
export async function fsck(root: string, options: FsckOptions): Promise<FsckReport> {
  const layout = new Layout(root);
  const report: FsckReport = { problems: [], albums: 0, images: 0, index: new Map() };
  if (!options.repair && !(await fs.stat(root).then((s) => s.isDirectory(), () => false))) {
    throw new Error(`${root} is not a directory (not an imagestore data dir)`);
  }
  const note = (problem: Omit<FsckProblem, 'repaired'>, repaired = options.repair) =>
    report.problems.push({ ...problem, repaired });

  for (const dir of [layout.albumsDir, layout.tmpDir, layout.trashDir, layout.outboxDir]) {
    if (options.repair) await fs.mkdir(dir, { recursive: true });
  }
  for (const entry of await readDir(layout.tmpDir)) {
    note({ kind: 'temp-file', path: path.join(layout.tmpDir, entry.name), detail: 'leftover temporary file' });
    if (options.repair) await fs.rm(path.join(layout.tmpDir, entry.name), { recursive: true, force: true });
  }
  for (const entry of await readDir(layout.trashDir)) {
    note({ kind: 'trash', path: path.join(layout.trashDir, entry.name), detail: 'album deletion not finished' });
    if (options.repair) await fs.rm(path.join(layout.trashDir, entry.name), { recursive: true, force: true });
  }

  for (const entry of await readDir(layout.albumsDir)) {
    const album = await checkEntryName(layout.albumsDir, entry, 'album', note, options.repair);
    if (album === undefined) continue;
    const { images, files } = await checkAlbum(layout, album, note, options);
    report.index.set(album, images);
    report.albums += 1;
    report.images += files;
  }
  await checkGoIndex(layout, report.index, note, options.repair);
  return report;
}

type Note = (problem: Omit<FsckProblem, 'repaired'>, repaired?: boolean) => void;

async function readDir(dir: string): Promise<Dirent[]> {
  try {
    return await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return [];
    throw err;
  }
}

/** Returns the usable name of a directory entry, renaming a non-NFC name to NFC when repairing. */
async function checkEntryName(dir: string, entry: Dirent, kind: 'album' | 'image', note: Note, repair: boolean) {
  const full = path.join(dir, entry.name);
  const wanted = kind === 'album' ? entry.isDirectory() : entry.isFile();
  if (!wanted) {
    note({ kind: 'stray-entry', path: full, detail: `not a ${kind === 'album' ? 'directory' : 'regular file'}; ignored` }, false);
    return undefined;
  }
  let name: string;
  try {
    name = checkName(kind, entry.name);
  } catch (err) {
    note({ kind: 'invalid-name', path: full, detail: `${(err as Error).message}; not served` }, false);
    return undefined;
  }
  if (name === entry.name) return name;
  // Names are stored in NFC; a name written in NFD by another tool is renamed when free.
  const target = path.join(dir, name);
  const free = await fs.stat(target).then(() => false, () => true);
  note({ kind: 'invalid-name', path: full, detail: `not in Unicode NFC form${free ? '' : ', and the NFC name is taken'}` }, repair && free);
  if (!repair || !free) return undefined;
  await fs.rename(full, target);
  return name;
}

/** Checks one album; returns the metadata of its images (only those with metadata, unless repairing) and the file count. */
async function checkAlbum(layout: Layout, album: string, note: Note, options: FsckOptions): Promise<{ images: StoredImageMeta[]; files: number }> {
  const { repair } = options;
  const infoFile = layout.albumInfoFile(album);
  if (!(await fs.stat(infoFile).then(() => true, () => false))) {
    note({ kind: 'album-without-metadata', path: layout.albumDir(album), detail: 'album metadata created' });
    if (repair) {
      const stat = await fs.stat(layout.albumDir(album));
      await fs.mkdir(layout.imageMetaDir(album), { recursive: true });
      await writeFileAtomic(infoFile, JSON.stringify({ createdAt: stat.mtime.toISOString() }), layout.tmpDir);
    }
  }
  const metaNames = new Set((await readDir(layout.imageMetaDir(album))).map((e) => e.name));
  // Names first, in order (a rename to NFC must see the renames before it), then the per-image
  // reads and writes with bounded concurrency: one at a time, adopting a 20,000-file album
  // (one fsync per metadata file) took ~45 s on a 2-core test machine.
  const found: Array<{ name: string; hadMeta: boolean }> = [];
  for (const entry of await readDir(layout.albumDir(album))) {
    if (entry.name.toLowerCase().startsWith(RESERVED_PREFIX)) continue;
    const name = await checkEntryName(layout.albumDir(album), entry, 'image', note, repair);
    if (name !== undefined) found.push({ name, hadMeta: metaNames.delete(name) });
  }
  const checked = await mapLimit(found, IMAGE_CHECK_CONCURRENCY, ({ name, hadMeta }) => checkImage(layout, album, name, hadMeta, options));
  let changed = false;
  const images: StoredImageMeta[] = [];
  for (const result of checked) {
    if (result.problem) note(result.problem);
    changed ||= result.changed;
    if (result.meta) images.push(result.meta);
  }
  for (const orphan of metaNames) {
    note({ kind: 'metadata-without-file', path: layout.imageMetaFile(album, orphan), detail: 'image file missing; metadata dropped' });
    if (repair) {
      await fs.rm(layout.imageMetaFile(album, orphan), { force: true });
      changed = true;
    }
  }
  if (changed) await fsyncDir(layout.imageMetaDir(album));
  return { images, files: found.length };
}

/** Image files checked at once per album during recovery. */
const IMAGE_CHECK_CONCURRENCY = 16;

/** Checks one image file against its metadata; adopts or rewrites the metadata when repairing. */
async function checkImage(layout: Layout, album: string, name: string, hadMeta: boolean, options: FsckOptions) {
  const file = layout.imageFile(album, name);
  const metaFile = layout.imageMetaFile(album, name);
  const meta = hadMeta ? await readImageMeta(metaFile) : undefined;
  if (!meta) {
    const kind = hadMeta ? 'bad-metadata' : 'file-without-metadata';
    const adopted = options.repair ? await adoptFile(file, name) : undefined;
    if (adopted) await writeFileAtomic(metaFile, JSON.stringify(adopted), layout.tmpDir);
    return { problem: { kind, path: file, detail: 'image adopted, metadata rebuilt from its bytes' } as const, changed: options.repair, meta: adopted };
  }
  if (options.verifyContent) {
    const actual = await describeFile(file);
    if (actual.sha256 !== meta.sha256 || actual.size !== meta.size) {
      const rewritten = { ...meta, ...actual, name };
      if (options.repair) await writeFileAtomic(metaFile, JSON.stringify(rewritten), layout.tmpDir);
      const detail = `metadata says ${meta.size} bytes sha256 ${meta.sha256}, file has ${actual.size} bytes sha256 ${actual.sha256}; metadata rewritten, id kept`;
      return { problem: { kind: 'content-mismatch', path: file, detail } as const, changed: options.repair, meta: options.repair ? rewritten : meta };
    }
  }
  return { problem: undefined, changed: false, meta };
}

/** The Go service's image-info.json: `{ album: { image: { fileName, filePath } } }`. Read once, on first start. */
async function checkGoIndex(layout: Layout, index: Map<string, StoredImageMeta[]>, note: Note, repair: boolean) {
  const imported = await fs.stat(layout.formatFile).then(() => true, () => false);
  if (imported) return;
  let goIndex: Record<string, Record<string, unknown>> = {};
  try {
    goIndex = JSON.parse(await fs.readFile(layout.goIndexFile, 'utf8'));
  } catch {
    goIndex = {};
  }
  for (const [album, images] of Object.entries(goIndex ?? {})) {
    const present = new Set((index.get(album.normalize('NFC')) ?? []).map((meta) => meta.name));
    for (const image of Object.keys(images ?? {})) {
      if (!present.has(image.normalize('NFC'))) {
        note({ kind: 'go-index-entry-missing', path: layout.goIndexFile, detail: `image-info.json lists ${album}/${image} but the file is missing` }, false);
      }
    }
  }
  if (repair) {
    await writeFileAtomic(layout.formatFile, JSON.stringify({ format: 1, createdAt: new Date().toISOString() }), layout.tmpDir);
    await fsyncDir(layout.internalDir);
  }
}

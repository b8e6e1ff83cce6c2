import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { FsckProblem } from '../../contract/types.js';
import { newImageId, type StoredImageMeta } from '../image-meta.js';
import { mapLimit } from '../../lib/map-limit.js';
import type { S3Bucket } from './s3-bucket.js';
import type { S3Layout } from './s3-layout.js';
import { metaFromObjectMetadata, metaToObjectMetadata } from './s3-object-meta.js';
import { PARALLEL_REQUESTS, type AlbumMarker, type S3Objects } from './s3-objects.js';
import { SNIFF_BYTES, sniffType } from '../sniff.js';
import type { StoreCheck, StoreCheckOptions } from '../types.js';

/** What the bucket check needs from the store. */
export interface BucketCheckDeps {
  bucket: S3Bucket;
  layout: S3Layout;
  objects: S3Objects;
  /** Metadata without bytes younger than this is an upload in flight, not damage. */
  claimTtlMs: number;
  /** Finishes an album rename cut short (the store's resumable steps). */
  finishRename(from: string, to: string, marker: AlbumMarker): Promise<void>;
  now?: () => number;
}

type Note = (problem: Omit<FsckProblem, 'repaired'>, repaired?: boolean) => void;

/**
 * fsck for a bucket: reads every object of the store (markers, bytes, metadata, id and
 * content records) and reports, and with `repair` fixes: albums whose images have no
 * marker (marker created), album renames cut short (finished), bytes without metadata
 * (metadata rebuilt, from the bytes object's own user metadata when it has it, else from
 * the bytes under a new id), metadata without bytes older than the claim TTL (dropped),
 * bytes objects without their user metadata (added), id and content records missing or
 * stale (written or deleted); with `verify` every image is re-hashed against its
 * metadata. Never deletes image bytes. Paths in the report are keys in the bucket.
 */
export async function checkBucket(deps: BucketCheckDeps, options: StoreCheckOptions): Promise<StoreCheck> {
  const { bucket, layout, objects } = deps;
  const now = deps.now ?? Date.now;
  const report: StoreCheck = { albums: 0, images: 0, problems: [] };
  const note: Note = (problem, repaired = options.repair) => report.problems.push({ ...problem, repaired });
  const where = (key: string) => `s3://${bucket.name}/${key}`;

  // Markers: renames cut short first, so the listings below see where the images are now.
  let markers = await readMarkers(deps);
  for (const [album, marker] of markers) {
    if (marker.renamingTo !== undefined) {
      note({ kind: 'album-rename-unfinished', path: where(layout.albumKey(album)), detail: `rename to ${marker.renamingTo} not finished; finished` });
      if (options.repair) await deps.finishRename(album, marker.renamingTo, marker);
    } else if (marker.renamedFrom !== undefined && markers.get(marker.renamedFrom)?.renamingTo !== album) {
      note({ kind: 'album-rename-unfinished', path: where(layout.albumKey(album)), detail: `rename from ${marker.renamedFrom} finished but still marked; mark cleared` });
      if (options.repair) await bucket.putJson(layout.albumKey(album), { createdAt: marker.createdAt } satisfies AlbumMarker);
    }
  }
  if (options.repair) markers = await readMarkers(deps);

  const images = await listByAlbum(bucket, `${layout.prefix}images/`);
  const metaKeys = await listByAlbum(bucket, `${layout.prefix}meta/`);
  for (const album of new Set([...images.keys(), ...metaKeys.keys()])) {
    if (markers.has(album)) continue;
    note({ kind: 'album-without-metadata', path: where(layout.albumKey(album)), detail: 'objects of an album without its marker; marker created' });
    if (options.repair) {
      const marker: AlbumMarker = { createdAt: new Date(now()).toISOString() };
      await bucket.putJson(layout.albumKey(album), marker);
      markers.set(album, marker);
    }
  }
  report.albums = markers.size;

  /** Every image's metadata as found (or rebuilt), by id: what the id and content records must say. */
  const found = new Map<string, { album: string; meta: StoredImageMeta }>();
  for (const [album, names] of images) {
    if (!markers.has(album) && !options.repair) continue;
    const metaNames = metaKeys.get(album) ?? new Map<string, number>();
    const checked = await mapLimit([...names.keys()], PARALLEL_REQUESTS, (name) => checkImage(deps, album, name, metaNames.has(name), note, options, where));
    for (const meta of checked) if (meta) found.set(meta.id, { album, meta });
    report.images += names.size;
  }
  /** Uploads in flight (metadata younger than the claim TTL, bytes not there yet): their id and content records are left alone. */
  const inFlight = new Set<string>();
  for (const [album, metas] of metaKeys) {
    const bytes = images.get(album);
    for (const [name, lastModified] of metas) {
      if (bytes?.has(name)) continue;
      const key = layout.metaKey(album, name);
      // A claim younger than the TTL is an upload in flight. Not with a TTL of 0: a server that rounds Last-Modified up to
      // the second (Swift) would make a claim of this very second look younger than 0 ms.
      if (deps.claimTtlMs > 0 && now() - lastModified <= deps.claimTtlMs) {
        const claim = await objects.readMetaKey(key);
        if (claim) inFlight.add(claim.id);
        continue;
      }
      note({ kind: 'metadata-without-file', path: where(key), detail: 'image bytes missing; metadata dropped' });
      if (options.repair) await bucket.delete(key);
    }
  }
  await checkRecords(deps, found, inFlight, note, options, where);
  return report;
}

/** Album markers by name (unreadable ones count as created now). */
async function readMarkers({ bucket, layout }: BucketCheckDeps): Promise<Map<string, AlbumMarker>> {
  const names: string[] = [];
  for await (const keys of bucket.keys(layout.albumsPrefix)) names.push(...keys.map((key) => key.slice(layout.albumsPrefix.length)));
  const markers = await mapLimit(names, PARALLEL_REQUESTS, (name) => bucket.getJson<AlbumMarker>(layout.albumKey(name)));
  return new Map(names.map((name, i) => [name, markers[i] ?? { createdAt: new Date().toISOString() }]));
}

/** `<prefix><album>/<name>` keys: album → name → last change (ms). */
async function listByAlbum(bucket: S3Bucket, prefix: string): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  let after: string | undefined;
  for (;;) {
    const { keys, versions, more } = await bucket.listPage(prefix, after, 1000);
    keys.forEach((key, i) => {
      const rest = key.slice(prefix.length);
      const slash = rest.indexOf('/');
      if (slash <= 0) return;
      const album = rest.slice(0, slash);
      if (!out.has(album)) out.set(album, new Map());
      out.get(album)!.set(rest.slice(slash + 1), versions[i].lastModified);
    });
    if (!more || keys.length === 0) return out;
    after = keys[keys.length - 1];
  }
}

/** One image's bytes object against its metadata object; returns the metadata it has (after repair). */
async function checkImage(deps: BucketCheckDeps, album: string, name: string, hasMeta: boolean, note: Note, options: StoreCheckOptions, where: (key: string) => string): Promise<StoredImageMeta | undefined> {
  const { bucket, layout, objects } = deps;
  const key = layout.imageKey(album, name);
  const metaKey = layout.metaKey(album, name);
  const [facts, stored] = await Promise.all([bucket.head(key), hasMeta ? objects.readMetaKey(metaKey) : undefined]);
  if (!facts) return stored; // deleted meanwhile
  const carried = metaFromObjectMetadata(facts.metadata, name);
  let meta = stored;
  if (!meta) {
    const rebuilt = carried?.size === facts.size ? carried : undefined;
    note({ kind: hasMeta ? 'bad-metadata' : 'file-without-metadata', path: where(key), detail: rebuilt ? 'metadata rebuilt from the object\'s user metadata' : 'image adopted, metadata rebuilt from its bytes' });
    if (!options.repair) return undefined;
    meta = rebuilt ?? { id: newImageId(), name, ...(await describeObject(bucket, key)), createdAt: new Date(facts.lastModified).toISOString(), modifiedAt: new Date(facts.lastModified).toISOString() };
    await bucket.putJson(metaKey, meta);
  }
  if (options.verify) {
    const actual = await describeObject(bucket, key);
    if (actual.sha256 !== meta.sha256 || actual.size !== meta.size) {
      const detail = `metadata says ${meta.size} bytes sha256 ${meta.sha256}, object has ${actual.size} bytes sha256 ${actual.sha256}; metadata rewritten, id kept`;
      note({ kind: 'content-mismatch', path: where(key), detail });
      if (!options.repair) return meta;
      meta = { ...meta, ...actual, name };
      await bucket.putJson(metaKey, meta);
    }
  }
  const current = metaFromObjectMetadata(facts.metadata, name);
  if (!current || !sameMeta(current, meta)) {
    note({ kind: 'object-metadata-missing', path: where(key), detail: current ? 'the object\'s user metadata differs from its metadata object; rewritten' : 'the object carries no user metadata (a download then needs two requests); added' });
    if (options.repair) await bucket.copy(key, key, facts.size, { metadata: metaToObjectMetadata(meta), contentType: meta.type });
  }
  return meta;
}

/** Id and content records: each image's written where missing or wrong, the others (no image has them) deleted. */
async function checkRecords(deps: BucketCheckDeps, found: Map<string, { album: string; meta: StoredImageMeta }>, inFlight: Set<string>, note: Note, options: StoreCheckOptions, where: (key: string) => string): Promise<void> {
  const { bucket, layout } = deps;
  const ids: string[] = [];
  for await (const keys of bucket.keys(layout.idsPrefix)) ids.push(...keys.map((key) => key.slice(layout.idsPrefix.length)));
  const pointing = await mapLimit(ids, PARALLEL_REQUESTS, (id) => bucket.getJson<{ album: string; name: string }>(layout.idKey(id)));
  const idRecords = new Map(ids.map((id, i) => [id, pointing[i]]));
  for (const [id, to] of idRecords) {
    if (found.has(id) || inFlight.has(id)) continue;
    note({ kind: 'stale-id-entry', path: where(layout.idKey(id)), detail: `points at ${to ? `${to.album}/${to.name}` : 'nothing readable'}, which has no image with this id; deleted` });
    if (options.repair) await bucket.delete(layout.idKey(id));
  }
  await mapLimit([...found], PARALLEL_REQUESTS, async ([id, { album, meta }]) => {
    const to = idRecords.get(id);
    if (to?.album === album && to.name === meta.name) return;
    note({ kind: 'id-entry-missing', path: where(layout.idKey(id)), detail: `${to ? `points at ${to.album}/${to.name}` : 'missing'}; the image is ${album}/${meta.name}: rewritten` });
    if (options.repair) await bucket.putJson(layout.idKey(id), { album, name: meta.name });
  });

  const contentPrefix = `${layout.prefix}content/`;
  const contents = new Set<string>();
  for await (const keys of bucket.keys(contentPrefix)) {
    for (const key of keys) {
      contents.add(key);
      const [sha256, id] = key.slice(contentPrefix.length).split('/');
      if (found.get(id)?.meta.sha256 === sha256 || inFlight.has(id)) continue;
      note({ kind: 'stale-content-entry', path: where(key), detail: 'no image with this id has this content; deleted' });
      if (options.repair) await bucket.delete(key);
    }
  }
  for (const [id, { meta }] of found) {
    const key = layout.contentKey(meta.sha256, id);
    if (contents.has(key)) continue;
    note({ kind: 'content-entry-missing', path: where(key), detail: 'the image\'s content record is missing; written' });
    if (options.repair) await bucket.putJson(key, {});
  }
}

/** sha256, size and sniffed type of an object, read once. */
async function describeObject(bucket: S3Bucket, key: string): Promise<{ sha256: string; size: number; type: string }> {
  const hash = createHash('sha256');
  let size = 0;
  let head = Buffer.alloc(0);
  for await (const chunk of (await bucket.get(key)).body as Readable) {
    const bytes = chunk as Buffer;
    if (head.length < SNIFF_BYTES) head = Buffer.concat([head, bytes.subarray(0, SNIFF_BYTES - head.length)]);
    hash.update(bytes);
    size += bytes.length;
  }
  return { sha256: hash.digest('hex'), size, type: sniffType(head) };
}

function sameMeta(a: StoredImageMeta, b: StoredImageMeta): boolean {
  const canonical = (meta: StoredImageMeta) => JSON.stringify(Object.entries(meta).sort(([x], [y]) => (x < y ? -1 : 1)));
  return canonical(a) === canonical(b);
}

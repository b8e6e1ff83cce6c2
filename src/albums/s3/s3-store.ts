import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { S3Settings } from '../../config.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import { newImageId, type StoredImageMeta } from '../image-meta.js';
import { Layout } from '../layout.js';
import { lockDataDir, type DataDirLock } from '../owner.js';
import { S3Bucket, createS3Client, isNotFound, type ConditionalWrites } from './s3-bucket.js';
import { mapLimit } from '../../lib/map-limit.js';
import { S3ImageHandle } from './s3-image-handle.js';
import { S3Layout } from './s3-layout.js';
import { metaFromObjectMetadata, metaToObjectMetadata } from './s3-object-meta.js';
import { S3ReadCache, type ChangeNotice } from './s3-read-cache.js';
import { PARALLEL_REQUESTS, S3Objects, type AlbumMarker } from './s3-objects.js';
import { SharedKeyedLock } from '../../lib/shared-keyed-lock.js';
import type { AlbumInfo, AlbumStore, ImageHandle, ImageInfo, Page, PageRequest, RecoveryReport, StagedFile, StoreCheck, StoreCheckOptions } from '../types.js';
import { checkBucket } from './s3-check.js';
import { NO_CRASH, UndoFailedError, type ChangeJournal, type CrashPoint, type RecoveryJournal, type RedoOutcome, type StoreChange } from '../changes.js';
import { makeChange } from '../make-change.js';
import { redoJournal } from '../redo.js';
import { StagedUploads } from '../staged-uploads.js';

export type { AlbumMarker };

/** Tuning; the defaults suit production. */
export interface S3StoreOptions {
  /** `auto` (default) probes the backend at open; tests force `none` to exercise the fallback. */
  conditionalWrites?: ConditionalWrites | 'auto';
  /** See S3Bucket.copyPartBytes. */
  copyPartBytes?: number;
  /** counts() answers from a count at most this old, unless this node changed something (default 60 s). */
  countsTtlMs?: number;
  /** Metadata without image bytes older than this is a dead upload's claim and may be taken over (default 1 h). */
  claimTtlMs?: number;
  /** The data dir's lock, when the caller took it (to open the journal first); else `open` takes it. */
  owner?: DataDirLock;
  /** The event journal: its commit records after the checkpoint are redone (against the bucket) at open. */
  journal?: RecoveryJournal;
  /** Test-only crash points (CRASH_POINT). */
  crash?: CrashPoint;
  /** The node-local metadata cache (S3ReadCache): S3_CACHE_BYTES, S3_CACHE_TTL_MS, S3_STRICT_READS; off by default. */
  cache?: { budgetBytes: number; ttlMs: number; strict: boolean };
}

/** Where the store hears of changes made by every node (the broker's event stream), for its cache. */
export interface ChangeFeed {
  /** Calls `listener` with each change event, and `following` whenever the feed starts (true) or stops (false) being complete. */
  follow(listener: (event: ChangeNotice) => void, following: (on: boolean) => void): void;
}

/**
 * The object-storage store: albums, images, metadata and the id index as
 * objects in one bucket (see s3-layout.ts), so any number of nodes can serve
 * the same store. An image's metadata also rides on its bytes object (user
 * metadata, s3-object-meta.ts), so a download is one GET. Metadata and album
 * markers are kept in memory (S3ReadCache) while the node follows the event
 * stream (`follow`), which tells it of every other node's changes.
 *
 * Writes: a new name is claimed by creating its metadata object only if absent
 * (`If-None-Match: *` where the backend honours it, else HEAD then PUT: see
 * ConditionalWrites), then the bytes are streamed from the staged file.
 * Locks are per node and in memory (nothing locks across nodes): changes to one
 * image name run one at a time, uploads into one album run side by side, and an
 * album rename or delete waits for them (SharedKeyedLock). Renames are copy then
 * delete (see renameImage, renameAlbum).
 * The data dir is still used for staging, and is claimed like the filesystem store's.
 *
 * Commit path (make-change.ts): the name is claimed before the commit record; apply
 * writes the objects, which are durable when each PUT returns, so the checkpoint has
 * nothing to flush, and only deletes the staged uploads that redo would have needed.
 * Redo (`redo`) writes again whatever of a change's objects is missing, with the id and
 * metadata of its record. Album renames and deletes are not atomic, as before: one that
 * fails part way is left resumable (asking again finishes it) and its event not published.
 */
export class S3AlbumStore implements AlbumStore {
  readonly stagingDir: string;
  private readonly lock = new SharedKeyedLock();
  private counted?: { at: number; value: Promise<{ albums: number; images: number }> };
  private readonly countsTtlMs: number;
  private readonly claimTtlMs: number;
  private readonly objects: S3Objects;
  private readonly staged: StagedUploads;
  private readonly crash: CrashPoint;
  readonly cache: S3ReadCache;
  /** Without a journal: the PUTs are durable when they return. */
  private readonly direct: ChangeJournal = {
    commit: async () => ({ applied: async () => undefined, aborted: async () => undefined, fatal: () => undefined }),
  };

  private constructor(
    readonly bucket: S3Bucket,
    readonly layout: S3Layout,
    private readonly dataLayout: Layout,
    private readonly owner: DataDirLock,
    log: Logger,
    options: S3StoreOptions,
  ) {
    this.stagingDir = dataLayout.tmpDir;
    this.countsTtlMs = options.countsTtlMs ?? 60_000;
    this.claimTtlMs = options.claimTtlMs ?? 3_600_000;
    this.objects = new S3Objects(bucket, layout, log, this.claimTtlMs);
    this.staged = new StagedUploads(dataLayout.root, dataLayout.stagedDir);
    this.crash = options.crash ?? NO_CRASH;
    this.cache = new S3ReadCache(options.cache ?? { budgetBytes: 0, ttlMs: 0, strict: true });
  }

  /**
   * Keeps the cache coherent with the other nodes' changes: entries are trusted only while the
   * feed is followed (from its first subscription on, and never across a gap in it).
   */
  follow(feed: ChangeFeed): void {
    feed.follow((event) => this.cache.changed(event), (on) => this.cache.setFollowing(on));
  }

  /** Optional (AlbumStore): the version of an album or of the album list, from the cache's coherence. */
  version(album?: string): number | undefined {
    return this.cache.version(album);
  }

  /**
   * Connects to the bucket (which must exist), finds out whether it honours
   * conditional writes, and claims the local data dir (staging, emptied).
   * `recovery` lists what redoing the journal found; the bucket is not scanned (see `check`).
   * @throws {Error} bucket not accessible, or data dir used by another process
   */
  static async open(settings: S3Settings, dataDir: string, log: Logger, options: S3StoreOptions = {}): Promise<{ store: S3AlbumStore; recovery: RecoveryReport }> {
    const dataLayout = new Layout(path.resolve(dataDir));
    await fs.mkdir(dataLayout.tmpDir, { recursive: true });
    await fs.mkdir(dataLayout.stagedDir, { recursive: true });
    const owner = options.owner ?? (await lockDataDir(dataLayout.ownerFile));
    const bucket = new S3Bucket(createS3Client(settings), settings.bucket, options.copyPartBytes);
    try {
      for (const entry of await fs.readdir(dataLayout.tmpDir)) await fs.rm(path.join(dataLayout.tmpDir, entry), { recursive: true, force: true });
      await bucket.checkExists();
      const layout = new S3Layout(settings.prefix);
      const mode = options.conditionalWrites ?? 'auto';
      if (mode === 'auto') await bucket.detectConditionalWrites(layout.probePrefix);
      else bucket.conditionalWrites = mode;
      if (bucket.conditionalWrites === 'none') {
        log.warn({ bucket: settings.bucket }, 'the S3 backend refuses conditional writes (If-None-Match): names are claimed with HEAD then PUT, so two nodes creating one name at the same moment may both succeed');
      }
      log.info({ bucket: settings.bucket, prefix: layout.prefix, conditionalWrites: bucket.conditionalWrites }, 'S3 store opened');
      const store = new S3AlbumStore(bucket, layout, dataLayout, owner, log, options);
      const recovery: RecoveryReport = { problems: [] };
      if (options.journal) {
        const redone = await redoJournal(options.journal, (change) => store.redo(change), async () => undefined, log);
        recovery.problems.push(...redone.problems);
        if (redone.checkpointed) await store.staged.clear();
      }
      return { store, recovery };
    } catch (err) {
      bucket.client.destroy();
      if (!options.owner) await owner.release();
      throw err;
    }
  }

  async listAlbums(page?: PageRequest): Promise<Page<string>> {
    const { versions: _versions, ...listing } = await this.objects.page(this.layout.albumsPrefix, page);
    return listing;
  }

  async hasAlbum(name: string): Promise<boolean> {
    return (await this.objects.marker(name)) !== undefined;
  }

  async albumInfos(names: string[]): Promise<AlbumInfo[]> {
    const markers = await mapLimit(names, PARALLEL_REQUESTS, (name) => this.marker(name));
    return names.flatMap((name, i) => (markers[i] ? [{ name, createdAt: markers[i].createdAt }] : []));
  }

  async createAlbum(name: string, journal = this.direct): Promise<AlbumInfo> {
    return this.lockAlbums([name], async () => {
      if (await this.bucket.head(this.layout.albumKey(name))) throw new ConflictError(`${name} album already present`);
      await this.objects.purgeAlbumObjects(name);
      const info: AlbumInfo = { name, createdAt: new Date().toISOString() };
      this.cache.albumChanged(name);
      await makeChange({
        journal, crash: this.crash, change: { op: 'album.create', album: name, createdAt: info.createdAt },
        apply: async () => {
          if (!(await this.bucket.createIfAbsent(this.layout.albumKey(name), JSON.stringify({ createdAt: info.createdAt } satisfies AlbumMarker)))) {
            throw new ConflictError(`${name} album already present`);
          }
        },
        update: () => {
          this.changed(name);
          this.cache.setMarker(name, { createdAt: info.createdAt });
        },
      });
      return info;
    });
  }

  /**
   * Copies every image to the new name, then deletes the old objects. Not atomic:
   * meanwhile other nodes see the new album fill up and the old one empty. The
   * markers journal the move (`renamingTo`, `renamedFrom`), so a rename cut short
   * by a crash is finished by asking for the same rename again; until then both
   * albums exist and writes into the old one may be lost.
   */
  async renameAlbum(from: string, to: string, journal = this.direct): Promise<AlbumInfo> {
    return this.lockAlbums([from, to], async () => {
      const marker = await this.objects.requireMarker(from);
      if (from === to) return { name: to, createdAt: marker.createdAt };
      if (marker.renamingTo !== undefined && marker.renamingTo !== to) throw new ConflictError(`${from} album is being renamed to ${marker.renamingTo}`);
      const target = await this.objects.marker(to);
      if (target && target.renamedFrom !== from) throw new ConflictError(`${to} album already present`);
      this.changed(from, to);
      await makeChange({
        journal, crash: this.crash, change: { op: 'album.rename', album: from, to },
        apply: () => this.moveAlbum(from, to, marker, target),
        update: () => this.changed(from, to),
      });
      return { name: to, createdAt: marker.createdAt };
    });
  }

  /**
   * Deletes the images (bytes first, so they leave listings first), their ids and
   * content references, then the marker. Cut short, the album remains with fewer
   * images, and deleting it again finishes the job.
   */
  async deleteAlbum(name: string, journal = this.direct): Promise<{ unusedContent: string[] }> {
    return this.lockAlbums([name], async () => {
      await this.objects.requireMarker(name);
      let contents = new Set<string>();
      this.changed(name);
      await makeChange({
        journal, crash: this.crash, change: { op: 'album.delete', album: name },
        apply: async () => {
          contents = await this.removeAlbum(name);
        },
        update: () => this.changed(name),
      });
      const used = await mapLimit([...contents], PARALLEL_REQUESTS, (sha) => this.isContentUsed(sha));
      return { unusedContent: [...contents].filter((_, i) => !used[i]) };
    });
  }

  /** One ListObjectsV2 (the marker from the cache when trusted); the listing's ETags revalidate the cached metadata of its images. */
  async listImages(album: string, page?: PageRequest): Promise<Page<string>> {
    const [, listing] = await Promise.all([this.requireMarker(album), this.objects.page(this.layout.imagesPrefix(album), page)]);
    listing.versions?.forEach((version, i) => this.cache.observe(album, listing.items[i], version));
    return { items: listing.items, ...(listing.nextCursor === undefined ? {} : { nextCursor: listing.nextCursor }) };
  }

  /** From the cache where trusted, else one HEAD per image (its metadata rides on the bytes object). */
  async imageInfos(album: string, names: string[]): Promise<ImageInfo[]> {
    const metas = await mapLimit(names, PARALLEL_REQUESTS, async (name) => (this.cache.image(album, name) ?? (await this.readImage(album, name)))?.meta);
    return metas.filter((m): m is StoredImageMeta => m !== undefined).map((m) => ({ ...m, album }));
  }

  async commitImage(album: string, name: string, staged: StagedFile, journal = this.direct): Promise<ImageInfo> {
    return this.lockImages(album, [name], async () => {
      const now = new Date().toISOString();
      const meta: StoredImageMeta = {
        id: newImageId(), name, size: staged.size, type: staged.type, sha256: staged.sha256, ...staged.facts,
        ...(staged.duplicateOf?.length ? { duplicateOf: staged.duplicateOf } : {}), createdAt: now, modifiedAt: now,
      };
      // The album check (from memory when trusted) and the claim side by side; a claim in a missing album is taken back.
      this.cache.imageChanged(album, name);
      const [marker, claimed] = await Promise.allSettled([this.requireMarker(album), this.objects.claimName(album, name, meta)]);
      if (marker.status === 'rejected') {
        if (claimed.status === 'fulfilled') await this.objects.releaseClaim(album, name, meta.id);
        throw marker.reason;
      }
      if (claimed.status === 'rejected') throw claimed.reason;
      let kept: string;
      try {
        kept = await this.staged.keep(staged.path, meta.id, staged.synced);
      } catch (err) {
        await this.objects.releaseClaim(album, name, meta.id);
        throw err;
      }
      let etag = '';
      await makeChange({
        journal, crash: this.crash, change: { op: 'image.add', album, meta, staged: kept },
        staged: { uploads: this.staged, file: kept },
        apply: async () => {
          try {
            // The bytes (with the metadata, in one PUT when small), the id and the content record side by side:
            // the claim (before the commit record) already holds the name, and redo rewrites whichever is missing.
            [etag] = await Promise.all([
              // Conditional as well where honoured: a node whose claim was wrongly taken over as stale cannot overwrite.
              this.bucket.upload(this.layout.imageKey(album, name), this.staged.resolve(kept), staged.type, {
                ifAbsent: this.bucket.conditionalWrites === 'put', metadata: metaToObjectMetadata(meta), bytes: staged.bytes,
              }),
              this.objects.recordImage(album, meta),
            ]);
          } catch (err) {
            await this.objects.forgetImage(album, meta).catch(() => undefined);
            if (err instanceof ConflictError) throw new ConflictError(`${name} image already present`);
            throw err;
          }
        },
        discard: () => this.objects.releaseClaim(album, name, meta.id),
        update: () => {
          this.changed(album, undefined, [name]);
          this.cache.setImage(album, name, { meta, etag });
        },
      });
      return { ...meta, album };
    });
  }

  /**
   * From the cache (no request until bytes are needed) when trusted, else one GET of the
   * bytes object, whose user metadata is the image's metadata and whose body the download
   * then takes. The album's marker is asked for only to word a 404: an image's bytes exist
   * only while its album does (a delete removes them first, a rename copies them in).
   */
  async openImage(album: string, name: string): Promise<ImageHandle> {
    const key = this.layout.imageKey(album, name);
    const cached = this.cache.image(album, name);
    if (cached) return new S3ImageHandle({ ...cached.meta, album }, this.bucket, key, cached.etag, this.stagingDir);
    const stamp = this.cache.stamp(album);
    let got;
    try {
      got = await this.bucket.get(key);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.requireMarker(album);
      throw new NotFoundError(`${name} image is not present`);
    }
    const meta = metaFromObjectMetadata(got.metadata, name) ?? (await this.legacyMeta(album, name, got.size));
    if (!meta) {
      got.body.destroy();
      throw new NotFoundError(`${name} image is not present`);
    }
    this.cache.setImage(album, name, { meta, etag: got.etag, lastModified: got.lastModified }, stamp);
    return new S3ImageHandle({ ...meta, album }, this.bucket, key, got.etag, this.stagingDir, got.body);
  }

  /**
   * Claims the new name, copies the bytes server-side, points the id at the new
   * name, then deletes the old objects. Other nodes may see both names for that
   * moment; a crash in between leaves both (same id, found under the new name),
   * and deleting the old one does not lose the id.
   */
  async renameImage(album: string, from: string, to: string, journal = this.direct): Promise<ImageInfo> {
    return this.lockImages(album, [from, to], async () => {
      const old = await this.objects.requireImage(album, from);
      if (from === to) return { ...old, album };
      const meta: StoredImageMeta = { ...old, name: to, modifiedAt: new Date().toISOString() };
      this.cache.imageChanged(album, from);
      this.cache.imageChanged(album, to);
      await this.objects.claimName(album, to, meta);
      await makeChange({
        journal, crash: this.crash, change: { op: 'image.rename', album, from, meta },
        apply: async () => {
          await this.bucket.copy(this.layout.imageKey(album, from), this.layout.imageKey(album, to), old.size, { metadata: metaToObjectMetadata(meta), contentType: meta.type });
          this.crash('image-rename:mid-apply');
          try {
            await Promise.all([this.bucket.putJson(this.layout.idKey(meta.id), { album, name: to }), this.bucket.delete(this.layout.imageKey(album, from))]);
            await this.bucket.delete(this.layout.metaKey(album, from));
          } catch (err) {
            // The copy is made: finishing is redo's job after a restart (both names may show meanwhile).
            throw new UndoFailedError(err, new Error('a copied image cannot be taken back safely'));
          }
        },
        discard: () => this.objects.releaseClaim(album, to, meta.id),
        update: () => this.changed(album, undefined, [from, to]),
      });
      return { ...meta, album };
    });
  }

  async deleteImage(album: string, name: string, journal = this.direct): Promise<ImageInfo> {
    return this.lockImages(album, [name], async () => {
      const meta = await this.objects.requireImage(album, name);
      this.cache.imageChanged(album, name);
      await makeChange({
        journal, crash: this.crash, change: { op: 'image.delete', album, meta },
        apply: async () => {
          await this.bucket.delete(this.layout.imageKey(album, name)); // first: the image leaves listings
          this.crash('image-delete:mid-apply');
          try {
            await Promise.all([this.bucket.delete(this.layout.metaKey(album, name)), this.objects.forgetImage(album, meta)]);
          } catch (err) {
            throw new UndoFailedError(err, new Error('deleted bytes cannot be restored'));
          }
        },
        update: () => this.changed(album, undefined, [name]),
      });
      return { ...meta, album };
    });
  }

  /** Nothing to flush: every object is durable once its PUT returns. */
  async flush(): Promise<void> {}

  /** Deletes the staged files of the changes up to `seq`, now checkpointed. */
  async checkpointed(seq: number): Promise<void> {
    await this.staged.release(seq);
  }

  /**
   * Redo (recovery): writes whatever of the change's objects is missing, with the id and
   * metadata of its record. 'impossible' when the name is now another image's (another
   * node took it) or the bytes are gone.
   */
  async redo(change: StoreChange): Promise<RedoOutcome> {
    const { layout } = this;
    switch (change.op) {
      case 'album.create':
        await this.bucket.createIfAbsent(layout.albumKey(change.album), JSON.stringify({ createdAt: change.createdAt } satisfies AlbumMarker));
        return 'applied';
      case 'album.rename': {
        const marker = await this.objects.marker(change.album);
        if (marker) await this.moveAlbum(change.album, change.to, marker, await this.objects.marker(change.to));
        return 'applied';
      }
      case 'album.delete':
        if (await this.objects.marker(change.album)) await this.removeAlbum(change.album);
        return 'applied';
      case 'image.add': {
        const { album, meta } = change;
        const claim = await this.objects.readMetaKey(layout.metaKey(album, meta.name));
        if (claim && claim.id !== meta.id) return 'impossible';
        if (!claim) await this.bucket.putJson(layout.metaKey(album, meta.name), meta);
        if ((await this.bucket.head(layout.imageKey(album, meta.name)))?.size !== meta.size) {
          const file = this.staged.resolve(change.staged);
          if (!(await fs.stat(file).then(() => true, () => false))) return 'impossible';
          await this.bucket.upload(layout.imageKey(album, meta.name), file, meta.type, { metadata: metaToObjectMetadata(meta) });
        }
        await this.objects.recordImage(album, meta);
        return 'applied';
      }
      case 'image.rename': {
        const { album, from, meta } = change;
        const claim = await this.objects.readMetaKey(layout.metaKey(album, meta.name));
        if (claim && claim.id !== meta.id) return 'impossible';
        if (!claim) await this.bucket.putJson(layout.metaKey(album, meta.name), meta);
        if (!(await this.bucket.head(layout.imageKey(album, meta.name)))) {
          if (!(await this.bucket.head(layout.imageKey(album, from)))) return 'impossible';
          await this.bucket.copy(layout.imageKey(album, from), layout.imageKey(album, meta.name), meta.size, { metadata: metaToObjectMetadata(meta), contentType: meta.type });
        }
        await this.bucket.putJson(layout.idKey(meta.id), { album, name: meta.name });
        if ((await this.objects.readMetaKey(layout.metaKey(album, from)))?.id === meta.id) {
          await this.bucket.delete(layout.imageKey(album, from));
          await this.bucket.delete(layout.metaKey(album, from));
        }
        return 'applied';
      }
      case 'image.delete': {
        const { album, meta } = change;
        const current = await this.objects.readMetaKey(layout.metaKey(album, meta.name));
        if (!current || current.id === meta.id) {
          await this.bucket.delete(layout.imageKey(album, meta.name));
          if (current) await this.bucket.delete(layout.metaKey(album, meta.name));
        }
        await this.objects.forgetImage(album, meta);
        return 'applied';
      }
    }
  }

  /** Reads the id's location object and checks that the image there still has this id. */
  async findImage(id: string): Promise<{ album: string; name: string } | undefined> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) return undefined;
    const where = await this.bucket.getJson<{ album: string; name: string }>(this.layout.idKey(id));
    if (typeof where?.album !== 'string' || typeof where.name !== 'string') return undefined;
    const meta = this.cache.image(where.album, where.name)?.meta ?? (await this.objects.readMetaKey(this.layout.metaKey(where.album, where.name)));
    return meta?.id === id ? { album: where.album, name: where.name } : undefined;
  }

  /**
   * Counts by listing every marker and image key: a recent count is reused for
   * `countsTtlMs` (other nodes' changes show within that time), a change on this
   * node invalidates it.
   */
  async counts(): Promise<{ albums: number; images: number }> {
    if (!this.counted || Date.now() - this.counted.at > this.countsTtlMs) {
      const value = Promise.all([this.bucket.count(this.layout.albumsPrefix), this.bucket.count(`${this.layout.prefix}images/`)])
        .then(([albums, images]) => ({ albums, images }));
      const counted = { at: Date.now(), value };
      this.counted = counted;
      value.catch(() => {
        if (this.counted === counted) this.counted = undefined;
      });
    }
    return this.counted.value;
  }

  async contentIds(sha256: string): Promise<string[]> {
    const prefix = this.layout.contentPrefix(sha256);
    const ids: string[] = [];
    for await (const keys of this.bucket.keys(prefix)) ids.push(...keys.map((key) => key.slice(prefix.length)));
    return ids;
  }

  /**
   * fsck of the bucket (s3-check.ts). Repairs are safe beside running nodes except for two
   * races: a rename or delete of the same album meanwhile, and an upload that claimed its name
   * longer ago than the claim TTL. The nodes' own journals are redone at their starts, not here.
   */
  async check(options: StoreCheckOptions): Promise<StoreCheck> {
    const report = await checkBucket({
      bucket: this.bucket, layout: this.layout, objects: this.objects, claimTtlMs: this.claimTtlMs,
      finishRename: (from, to, marker) => this.lockAlbums([from, to], async () => this.moveAlbum(from, to, marker, await this.objects.marker(to))),
    }, options);
    if (options.repair && report.problems.length > 0) {
      this.changed();
      this.cache.forgetAll(); // whatever was repaired is read again
    }
    return report;
  }

  async isContentUsed(sha256: string): Promise<boolean> {
    return this.bucket.hasAny(this.layout.contentPrefix(sha256));
  }

  async checkWritable(): Promise<void> {
    const key = `${this.layout.probePrefix}${randomUUID()}`;
    await this.bucket.putJson(key, { probe: true });
    await this.bucket.delete(key);
  }

  async close(): Promise<void> {
    this.bucket.client.destroy();
    await this.owner.release();
  }

  /**
   * Writes an album marker as given, unconditionally (the migration command, which
   * keeps creation times).
   */
  async importAlbum(info: AlbumInfo): Promise<void> {
    await this.bucket.putJson(this.layout.albumKey(info.name), { createdAt: info.createdAt } satisfies AlbumMarker);
    this.changed(info.name);
  }

  /**
   * Stores an image with its existing metadata (id and times kept), replacing
   * whatever has that name: for the migration command, which checks first.
   */
  async importImage(album: string, meta: StoredImageMeta, file: string): Promise<void> {
    await Promise.all([
      this.bucket.upload(this.layout.imageKey(album, meta.name), file, meta.type, { metadata: metaToObjectMetadata(meta) }), this.objects.recordImage(album, meta),
    ]);
    await this.bucket.putJson(this.layout.metaKey(album, meta.name), meta); // last: an image with metadata is complete
    this.changed(album, undefined, [meta.name]);
  }

  /** An image's stored metadata (undefined when absent or unreadable), for the migration command. */
  async storedMeta(album: string, name: string): Promise<StoredImageMeta | undefined> {
    return this.objects.readMetaKey(this.layout.metaKey(album, name));
  }

  /**
   * The steps of an album rename, resumable: the markers journal the move (`renamingTo`,
   * `renamedFrom`), so a rename cut short is finished by running them again.
   */
  private async moveAlbum(from: string, to: string, marker: AlbumMarker, target: AlbumMarker | undefined): Promise<void> {
    if (!target) {
      await this.objects.purgeAlbumObjects(to);
      const journal: AlbumMarker = { createdAt: marker.createdAt, renamedFrom: from };
      if (!(await this.bucket.createIfAbsent(this.layout.albumKey(to), JSON.stringify(journal)))) throw new ConflictError(`${to} album already present`);
    }
    await this.bucket.putJson(this.layout.albumKey(from), { ...marker, renamingTo: to });
    await this.objects.moveImages(from, to);
    await this.bucket.delete(this.layout.albumKey(from));
    await this.bucket.putJson(this.layout.albumKey(to), { createdAt: marker.createdAt } satisfies AlbumMarker);
  }

  /** The steps of an album delete, resumable: images first, the marker last. @returns the contents the images had */
  private async removeAlbum(name: string): Promise<Set<string>> {
    const { contents } = await this.objects.removeImages(name);
    await this.bucket.delete(this.layout.albumKey(name));
    return contents;
  }

  /** Album changes: the albums' keys alone. */
  private lockAlbums<T>(albums: string[], fn: () => Promise<T>): Promise<T> {
    return this.lock.with({ exclusive: albums }, fn);
  }

  /** Image changes: the album's key shared (no album rename or delete meanwhile), the names' keys alone. */
  private lockImages<T>(album: string, names: string[], fn: () => Promise<T>): Promise<T> {
    return this.lock.with({ shared: [album], exclusive: names.map((name) => `${album}/${name}`) }, fn);
  }

  /**
   * After a change made here: the counts are recounted, and the cache forgets the albums
   * (as a whole) or the images named (the event, when it comes back, does so again).
   */
  private changed(album?: string, otherAlbum?: string, images?: string[]): void {
    this.counted = undefined;
    if (album === undefined) return;
    if (images) for (const name of images) this.cache.imageChanged(album, name);
    else for (const name of [album, otherAlbum]) if (name !== undefined) this.cache.albumChanged(name);
  }

  /** An album's marker, from the cache when trusted. */
  private async marker(album: string): Promise<AlbumMarker | undefined> {
    const cached = this.cache.marker(album);
    if (cached) return cached;
    const stamp = this.cache.stamp(album);
    const marker = await this.objects.marker(album);
    if (marker) this.cache.setMarker(album, marker, stamp);
    return marker;
  }

  private async requireMarker(album: string): Promise<AlbumMarker> {
    const marker = await this.marker(album);
    if (!marker) throw new NotFoundError(`${album} album is not present`);
    return marker;
  }

  /** An image's metadata and version from a HEAD of its bytes object (kept in the cache); undefined when absent. */
  private async readImage(album: string, name: string): Promise<{ meta: StoredImageMeta } | undefined> {
    const stamp = this.cache.stamp(album);
    const facts = await this.bucket.head(this.layout.imageKey(album, name));
    if (!facts) return undefined;
    const meta = metaFromObjectMetadata(facts.metadata, name) ?? (await this.legacyMeta(album, name, facts.size));
    if (!meta) return undefined;
    this.cache.setImage(album, name, { meta, etag: facts.etag, lastModified: facts.lastModified }, stamp);
    return { meta };
  }

  /**
   * The metadata object of an image whose bytes object carries none (written before metadata
   * rode on it, or by another tool: fsck --repair adds it). Checked against the bytes' size.
   */
  private async legacyMeta(album: string, name: string, size: number): Promise<StoredImageMeta | undefined> {
    const meta = await this.objects.readMetaKey(this.layout.metaKey(album, name));
    return meta?.size === size ? meta : undefined;
  }
}

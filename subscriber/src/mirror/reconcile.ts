import type { Logger } from 'pino';
import type { ImageStoreClient } from '../../../src/client/client.js';
import type { ImageInfo } from '../../../src/client/types.js';
import { unsafeNameReason, type MirrorFs } from './fs-ops.js';
import { download, isGone, LIST_PAGE_LIMIT } from './remote.js';
import type { MirrorState } from './state.js';

/** What `reconcile` needs: the service, the directory, the state, and which albums to mirror. */
export interface ReconcileDeps {
  api: ImageStoreClient;
  /** Aborts the requests in flight (the mirror is closing). */
  signal?: AbortSignal;
  files: MirrorFs;
  state: MirrorState;
  log: Logger;
  /** False for albums left out by --album. */
  inScope: (album: string) => boolean;
  /** Called after each download, so that long runs can save the state now and then. */
  checkpoint?: () => Promise<void>;
}

/** What one reconcile did. */
export interface ReconcileReport {
  albums: number;
  images: number;
  downloaded: number;
  /** Local files and directories removed (gone from the service, or not the mirror's). */
  removed: number;
  /** Names refused as unsafe, and images gone between listing and download. */
  skipped: number;
}

/**
 * Makes the mirror directory match the service's listing: downloads every image that is missing
 * locally or whose SHA-256 differs from the state's record of the local copy (a file changed
 * behind the mirror's back counts as different: size and mtime are compared too), and removes
 * local images, albums and stray entries the service does not have.
 * An album or image that disappears while we work is skipped: its event, or the next reconcile,
 * settles it.
 * @throws {ImageStoreError} when the listing cannot be read; nothing is removed then
 */
export async function reconcile(deps: ReconcileDeps): Promise<ReconcileReport> {
  const { files, state, log } = deps;
  const report: ReconcileReport = { albums: 0, images: 0, downloaded: 0, removed: 0, skipped: 0 };
  const remote = await readListing(deps, report);
  const local = await files.listTree();

  for (const stray of local.strays) {
    log.info({ path: stray }, 'removing a stray local entry');
    await files.remove(stray);
    report.removed++;
  }
  for (const album of local.albums.keys()) {
    if (remote.has(album)) continue;
    log.info({ album }, 'removing an album the service no longer has');
    await files.remove(files.albumPath(album));
    report.removed++;
  }
  for (const album of state.albumNames()) if (!remote.has(album)) state.deleteAlbum(album);

  for (const [album, images] of remote) {
    await files.ensureAlbum(album);
    const wanted = new Map(images.map((image) => [image.name, image]));
    for (const name of local.albums.get(album) ?? []) {
      if (wanted.has(name)) continue;
      await files.remove(files.imagePath(album, name));
      report.removed++;
    }
    for (const name of state.images(album)) if (!wanted.has(name)) state.delete(album, name);
    for (const image of wanted.values()) {
      const outcome = await syncImage(deps, album, image);
      if (outcome === 'gone') report.skipped++;
      if (outcome !== 'downloaded') continue;
      report.downloaded++;
      await deps.checkpoint?.();
    }
  }
  return report;
}

/** The albums in scope with their images; albums and images with unsafe names are left out. */
async function readListing({ api, signal, log, inScope }: ReconcileDeps, report: ReconcileReport): Promise<Map<string, ImageInfo[]>> {
  const remote = new Map<string, ImageInfo[]>();
  for (const album of await api.listAllAlbums(LIST_PAGE_LIMIT, signal)) {
    if (!inScope(album)) continue;
    const albumProblem = unsafeNameReason(album);
    if (albumProblem) {
      log.warn({ album, reason: albumProblem }, 'album not mirrored: unsafe name');
      report.skipped++;
      continue;
    }
    let images: ImageInfo[];
    try {
      images = await api.listAllImages(album, LIST_PAGE_LIMIT, signal);
    } catch (err) {
      if (isGone(err)) continue; // deleted since the album listing
      throw err;
    }
    remote.set(
      album,
      images.filter((image) => {
        const problem = unsafeNameReason(image.name);
        if (problem) log.warn({ album, image: image.name, reason: problem }, 'image not mirrored: unsafe name');
        return !problem;
      }),
    );
    report.albums++;
    report.images += images.length;
  }
  return remote;
}

/** Downloads `image` unless the local copy is known to have its SHA-256. */
async function syncImage({ api, signal, files, state }: ReconcileDeps, album: string, image: ImageInfo): Promise<'current' | 'downloaded' | 'gone'> {
  const file = files.imagePath(album, image.name);
  const known = state.get(album, image.name);
  if (known?.sha256 === image.sha256 && (await files.matches(file, known))) {
    if (image.id !== undefined && known.id !== image.id) state.set(album, image.name, { ...known, id: image.id });
    return 'current';
  }
  try {
    const copy = await download(api, album, image.name, (body, sha256) => files.writeAtomic(file, body, sha256 ?? image.sha256), signal);
    state.set(album, image.name, { ...copy, ...(image.id !== undefined ? { id: image.id } : {}) });
    return 'downloaded';
  } catch (err) {
    if (isGone(err)) {
      // Gone since the listing: drop what we had; its deleted event follows.
      await files.remove(file);
      state.delete(album, image.name);
      return 'gone';
    }
    throw err;
  }
}

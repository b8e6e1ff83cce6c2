import type { Logger } from 'pino';
import type { ReceivedEvent } from '../handle-message.js';
import type { ImageStoreClient } from '../../../src/client/client.js';
import type { MirrorFs } from './fs-ops.js';
import { download, isGone } from './remote.js';
import type { ImageEntry, MirrorState } from './state.js';

/** What an event action needs. */
export interface ActionDeps {
  api: ImageStoreClient;
  /** Aborts the requests in flight (the mirror is closing). */
  signal?: AbortSignal;
  files: MirrorFs;
  state: MirrorState;
  log: Logger;
  inScope: (album: string) => boolean;
}

/**
 * How an event was applied. `stale`: the service no longer matches the event (e.g. 404 for an
 * image deleted since), or the event alone cannot settle the album: a reconcile will.
 */
export type Outcome = 'applied' | 'downloaded' | 'ignored' | 'stale';

/** An event that lacks a member its type needs (e.g. `data.image` in an image event). */
export class InvalidEventError extends Error {
  constructor(event: ReceivedEvent, member: string) {
    super(`event ${event.id} (${event.type}) has no ${member}`);
    this.name = 'InvalidEventError';
  }
}

/**
 * Applies one event to the mirror directory. Every action is idempotent: applying an event twice,
 * or an event the directory already reflects, changes nothing (or downloads the same bytes again).
 * @throws {UnsafeNameError|InvalidEventError} for an event that must be skipped
 * @throws {ImageStoreError} when the service cannot be reached (see isUnreachable)
 */
export async function applyEvent(deps: ActionDeps, event: ReceivedEvent): Promise<Outcome> {
  const { files, state, inScope } = deps;
  const { album } = event.data;
  const image = () => required(event, 'image');
  switch (event.type) {
    case 'imagestore.album.created':
      if (!inScope(album)) return 'ignored';
      await files.ensureAlbum(album);
      return 'applied';
    case 'imagestore.album.deleted':
      if (!inScope(album)) return 'ignored';
      await files.remove(files.albumPath(album));
      state.deleteAlbum(album);
      return 'applied';
    case 'imagestore.album.renamed':
      return renameAlbum(deps, required(event, 'previousName'), album);
    case 'imagestore.image.created':
      return inScope(album) ? fetchImage(deps, album, image(), event.data.id) : 'ignored';
    case 'imagestore.image.renamed':
      return inScope(album) ? renameImage(deps, album, required(event, 'previousName'), image(), event.data.id) : 'ignored';
    case 'imagestore.image.deleted':
      return inScope(album) ? deleteImage(deps, album, image(), event.data.id) : 'ignored';
    default:
      // image.fetched and import.* change nothing here (an imported image comes as image.created);
      // unknown types come from a newer service.
      return 'ignored';
  }
}

function required(event: ReceivedEvent, member: 'image' | 'previousName'): string {
  const value = event.data[member];
  if (typeof value !== 'string' || value === '') throw new InvalidEventError(event, `data.${member}`);
  return value;
}

/**
 * True when the state knows the local copy to be another image than the event's: the name was
 * reused since (image names are never overwritten in place), so the event is stale here.
 */
function otherImage(known: ImageEntry | undefined, id: string | undefined): boolean {
  return known?.id !== undefined && id !== undefined && known.id !== id;
}

/** Downloads an image, unless the local copy is already the image with this id. */
async function fetchImage({ api, signal, files, state }: ActionDeps, album: string, image: string, id: string | undefined): Promise<Outcome> {
  const file = files.imagePath(album, image);
  const known = state.get(album, image);
  if (id !== undefined && known?.id === id && (await files.matches(file, known))) return 'applied';
  await files.ensureAlbum(album);
  try {
    const copy = await download(api, album, image, (body, sha256) => files.writeAtomic(file, body, sha256), signal);
    // The bytes of the copy we had (a stale event): keep the id we knew for them.
    const keptId = known?.sha256 === copy.sha256 && known.id !== undefined ? known.id : id;
    state.set(album, image, { ...copy, ...(keptId !== undefined ? { id: keptId } : {}) });
    return 'downloaded';
  } catch (err) {
    if (isGone(err)) return 'stale';
    throw err;
  }
}

/** Removes the local copy, unless the state knows it to be a newer image of the same name. */
async function deleteImage({ files, state }: ActionDeps, album: string, image: string, id: string | undefined): Promise<Outcome> {
  const file = files.imagePath(album, image);
  if (otherImage(state.get(album, image), id)) return 'ignored';
  await files.remove(file);
  state.delete(album, image);
  return 'applied';
}

/** Renames the local copy when it is the image renamed; downloads the image under its new name otherwise. */
async function renameImage(deps: ActionDeps, album: string, from: string, to: string, id: string | undefined): Promise<Outcome> {
  const { files, state } = deps;
  const src = files.imagePath(album, from);
  const dest = files.imagePath(album, to);
  const known = state.get(album, from);
  if (known && !otherImage(known, id) && (await files.matches(src, known))) {
    await files.rename(src, dest);
    state.delete(album, from);
    state.set(album, to, { ...known, ...(id !== undefined ? { id } : {}) });
    return 'applied';
  }
  // Missing, not the file we wrote, or a newer image under the old name (left alone): fetch the new name.
  return fetchImage(deps, album, to, id);
}

/** Renames the album directory; an album renamed into or out of the --album scope appears or goes. */
async function renameAlbum({ files, state, inScope }: ActionDeps, from: string, to: string): Promise<Outcome> {
  if (!inScope(to)) {
    if (!inScope(from)) return 'ignored';
    await files.remove(files.albumPath(from));
    state.deleteAlbum(from);
    return 'applied';
  }
  const dest = files.albumPath(to);
  if (!inScope(from)) {
    // Renamed into the scope: its images were never mirrored.
    await files.ensureAlbum(to);
    return 'stale';
  }
  const src = files.albumPath(from);
  const [haveSrc, haveDest] = [await files.exists(src), await files.exists(dest)];
  if (haveSrc && !haveDest) {
    await files.rename(src, dest);
    state.renameAlbum(from, to);
    return 'applied';
  }
  if (!haveSrc && haveDest) return 'applied'; // done already (a duplicate)
  // Nothing to rename (its images must be fetched), or both exist (ambiguous): let reconcile decide.
  if (!haveDest) await files.ensureAlbum(to);
  return 'stale';
}

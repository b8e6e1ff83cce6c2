import { SimilarIndex } from './similar-index.js';

/** An album as the id index sees it: its name changes on rename, the object stays. */
export interface AlbumRef {
  name: string;
  /** Ids of the album's images. */
  ids: Set<string>;
}

interface Entry {
  album: AlbumRef;
  name: string;
  sha256: string;
}

/**
 * Finds images by id and tells whether some image still has a given content
 * (sha256), in memory. Built from the metadata at start; an album rename is
 * one assignment (`ref.name = to`), whatever its number of images.
 */
export class ImageIndex {
  private readonly byId = new Map<string, Entry>();
  /** Ids of the images with each content (sha256). */
  private readonly byContent = new Map<string, Set<string>>();

  /** Perceptual hashes, for near-duplicate search. */
  readonly similar = new SimilarIndex();

  add(album: AlbumRef, meta: { id: string; name: string; sha256: string; phash?: string }): void {
    this.remove(meta.id);
    this.similar.add(meta.id, meta.phash);
    this.byId.set(meta.id, { album, name: meta.name, sha256: meta.sha256 });
    album.ids.add(meta.id);
    const ids = this.byContent.get(meta.sha256);
    if (ids) ids.add(meta.id);
    else this.byContent.set(meta.sha256, new Set([meta.id]));
  }

  /** Removes an image; returns its sha256 when no other image has that content any more. */
  remove(id: string): string | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    this.byId.delete(id);
    this.similar.remove(id);
    entry.album.ids.delete(id);
    const ids = this.byContent.get(entry.sha256);
    ids?.delete(id);
    if (ids && ids.size > 0) return undefined;
    this.byContent.delete(entry.sha256);
    return entry.sha256;
  }

  rename(id: string, name: string): void {
    const entry = this.byId.get(id);
    if (entry) entry.name = name;
  }

  /** Where the image with this id is now. */
  find(id: string): { album: string; name: string } | undefined {
    const entry = this.byId.get(id);
    return entry ? { album: entry.album.name, name: entry.name } : undefined;
  }

  /** True while some image has this content. */
  hasContent(sha256: string): boolean {
    return this.byContent.has(sha256);
  }

  /** Ids of the images with this content, oldest first. */
  withContent(sha256: string): string[] {
    return [...(this.byContent.get(sha256) ?? [])];
  }

  get size(): number {
    return this.byId.size;
  }
}

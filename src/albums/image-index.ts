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
  private readonly contentCount = new Map<string, number>();

  add(album: AlbumRef, meta: { id: string; name: string; sha256: string }): void {
    this.remove(meta.id);
    this.byId.set(meta.id, { album, name: meta.name, sha256: meta.sha256 });
    album.ids.add(meta.id);
    this.contentCount.set(meta.sha256, (this.contentCount.get(meta.sha256) ?? 0) + 1);
  }

  /** Removes an image; returns its sha256 when no other image has that content any more. */
  remove(id: string): string | undefined {
    const entry = this.byId.get(id);
    if (!entry) return undefined;
    this.byId.delete(id);
    entry.album.ids.delete(id);
    const left = (this.contentCount.get(entry.sha256) ?? 1) - 1;
    if (left > 0) {
      this.contentCount.set(entry.sha256, left);
      return undefined;
    }
    this.contentCount.delete(entry.sha256);
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
    return this.contentCount.has(sha256);
  }

  get size(): number {
    return this.byId.size;
  }
}

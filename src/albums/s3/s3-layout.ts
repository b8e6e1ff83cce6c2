/**
 * Where everything lives in the bucket, under an optional key prefix (S3_PREFIX):
 *
 *   <prefix>albums/<album>                    album marker: JSON { createdAt, renamingTo?, renamedFrom? }
 *   <prefix>images/<album>/<image>            the image, byte for byte (Content-Type set)
 *   <prefix>meta/<album>/<image>              image metadata: the same JSON as the filesystem store's
 *   <prefix>ids/<id>                          where an image id is now: JSON { album, name }
 *   <prefix>content/<sha256>/<id>             empty: "image <id> has this content" (isContentUsed)
 *   <prefix>probe/<uuid>                      written and deleted by checkWritable
 *
 * Albums are flat marker keys rather than "folders": an album exists exactly
 * when its marker does, never because some object happens to remain under its
 * name, and listing albums is one ListObjectsV2 over `albums/` (no delimiter
 * needed, since names contain no slash). Images are listed from `images/`, so
 * an image appears only once its bytes are complete (an S3 PUT is atomic).
 *
 * Names are keys as they are (UTF-8), so an operator can browse a bucket with
 * any S3 tool, as with the data dir. S3 lists keys in UTF-8 byte order, which
 * is Unicode code point order; see `compareCodePoints`.
 */
export class S3Layout {
  /** The prefix, empty or ending with "/". */
  readonly prefix: string;
  readonly albumsPrefix: string;
  readonly idsPrefix: string;
  readonly probePrefix: string;
  /** Every key this store writes starts with one of these (used to empty a prefix). */
  readonly allPrefixes: string[];

  /** @param prefix optional key prefix; a trailing "/" is added when missing */
  constructor(prefix = '') {
    this.prefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    this.albumsPrefix = `${this.prefix}albums/`;
    this.idsPrefix = `${this.prefix}ids/`;
    this.probePrefix = `${this.prefix}probe/`;
    this.allPrefixes = ['albums/', 'images/', 'meta/', 'ids/', 'content/', 'probe/'].map((p) => this.prefix + p);
  }

  albumKey(album: string): string {
    return this.albumsPrefix + album;
  }

  /** Prefix of an album's image objects. */
  imagesPrefix(album: string): string {
    return `${this.prefix}images/${album}/`;
  }

  /** Prefix of an album's metadata objects. */
  metaPrefix(album: string): string {
    return `${this.prefix}meta/${album}/`;
  }

  imageKey(album: string, image: string): string {
    return this.imagesPrefix(album) + image;
  }

  metaKey(album: string, image: string): string {
    return this.metaPrefix(album) + image;
  }

  idKey(id: string): string {
    return this.idsPrefix + id;
  }

  /** Prefix of the content references of one sha256. */
  contentPrefix(sha256: string): string {
    return `${this.prefix}content/${sha256}/`;
  }

  contentKey(sha256: string, id: string): string {
    return this.contentPrefix(sha256) + id;
  }

  /** The name part of a key listed under `prefix`. */
  static nameOf(key: string, prefix: string): string {
    return key.slice(prefix.length);
  }
}

/**
 * Orders strings by Unicode code point, which is the UTF-8 byte order S3 lists
 * keys in. JavaScript's default sort (the filesystem store's SortedNames)
 * compares UTF-16 code units instead; the two orders differ only between a
 * character above U+FFFF (emoji, rare CJK) and one in U+E000..U+FFFF (private
 * use, CJK compatibility, half/full-width forms), which UTF-16 sorts after the
 * former and code point order before. Every other pair sorts the same.
 */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

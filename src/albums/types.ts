import type { Readable } from 'node:stream';
import type { CaptureMeta, FsckProblem } from '../contract/types.js';
import type { ChangeJournal, Checkpointable } from './changes.js';

/** An album as the API shows it. */
export interface AlbumInfo {
  name: string;
  createdAt: string;
}

/** The metadata kept for every stored image. */
export interface ImageInfo {
  /** Stable id; survives renames of the image and of its album. */
  id: string;
  name: string;
  album: string;
  size: number;
  /** MIME type sniffed from the bytes. */
  type: string;
  sha256: string;
  /** What the bytes are, as decoded at upload (absent for files adopted that are not images). */
  format?: string;
  width?: number;
  height?: number;
  /** EXIF orientation 1-8. */
  orientation?: number;
  hasAlpha?: boolean;
  /** Frames (animated GIF/WebP, multi-page TIFF), or images in a HEIF file. */
  pages?: number;
  /** ThumbHash (base64) of the picture: a placeholder to paint before the image arrives (images/fingerprints.ts). */
  thumbhash?: string;
  /** Its most common colour, `#rrggbb`. */
  dominantColor?: string;
  /** 64-bit perceptual hash (16 hex digits), for near-duplicate search. */
  phash?: string;
  /** Ids of the images that had exactly these bytes when this one was uploaded. */
  duplicateOf?: string[];
  /** Capture metadata from EXIF (images/capture.ts); its `gps` only for keys with read access. */
  capture?: CaptureMeta;
  createdAt: string;
  modifiedAt: string;
}

/** A near-duplicate: where it is and how many of the 64 perceptual-hash bits differ. */
export interface SimilarImage {
  id: string;
  album: string;
  name: string;
  distance: number;
}

/** One page of a sorted listing. `nextCursor` is absent on the last page. */
export interface Page<T> {
  items: T[];
  nextCursor?: string;
}

/** Paging request: at most `limit` items after the opaque `cursor`. */
export interface PageRequest {
  limit?: number;
  cursor?: string;
}

/** A file that has been received completely and waits to be committed into an album (the store makes it durable). */
export interface StagedFile {
  path: string;
  /** The bytes too, when the upload kept them in memory (they are checked from there). */
  bytes?: Buffer;
  /** Its data is already fdatasynced (the store then only makes its directory entry durable). */
  synced?: boolean;
  size: number;
  sha256: string;
  type: string;
  /** Ids of the stored images with these bytes (AlbumService looked them up). */
  duplicateOf?: string[];
  facts?: Pick<ImageInfo, 'format' | 'width' | 'height' | 'orientation' | 'hasAlpha' | 'pages' | 'thumbhash' | 'dominantColor' | 'phash' | 'capture'>;
}

/**
 * An image opened for reading: its metadata and a way to stream (part of) it.
 * A store may open the bytes lazily (the filesystem store does, so that an answer
 * made from the metadata alone, a 304 or a HEAD, or from cached bytes, opens no file).
 */
export interface ImageHandle {
  info: ImageInfo;
  /**
   * Optional: true when every use of the bytes is a network round trip (object storage), so
   * the delivery keeps a local copy of the original to serve it again (content-addressed:
   * never stale).
   */
  readonly remote?: boolean;
  /**
   * Optional: opens the bytes now if the store opens them lazily, so that a missing
   * file is an error before a response starts, not in the middle of its stream.
   * @throws {NotFoundError} the image was deleted or replaced since the handle was made
   */
  open?(): Promise<void>;
  /**
   * A local file path the image engine can read, valid until close: the file
   * itself (through /proc, so a concurrent rename does no harm) for the
   * filesystem store, a temporary copy for object storage.
   */
  localPath(): Promise<string>;
  /** Streams bytes `start`..`end` inclusive (the whole file by default). */
  stream(range?: { start: number; end: number }): Readable;
  /**
   * Optional: reads bytes `start`..`end` inclusive (the whole file by default) into
   * one buffer and releases the file, for small bodies (cheaper than a stream).
   */
  read?(range?: { start: number; end: number }): Promise<Buffer>;
  /** Releases the open file when the bytes are not streamed (HEAD, 304); nothing to do when none was opened. */
  close(): Promise<void>;
}

/**
 * The storage behind the album service. Implementations: FsAlbumStore (the data dir),
 * S3AlbumStore (a bucket; s3-store.ts); both pass test/contract/album-store.contract.ts. Names given here are already checked (names.ts).
 * Errors: NotFoundError for an unknown album or image, ConflictError for a taken name.
 *
 * Changes take the event journal (`journal`), whose commit record is each change's
 * commit point (make-change.ts); without one, a change is durable before it returns.
 */
export interface AlbumStore extends Checkpointable {
  listAlbums(page?: PageRequest): Promise<Page<string>>;
  /** Details of several albums, in the given order (missing ones skipped). */
  albumInfos(names: string[]): Promise<AlbumInfo[]>;
  /** True when the album exists (from memory on the filesystem; one request on object storage). */
  hasAlbum(name: string): Promise<boolean>;
  createAlbum(name: string, journal?: ChangeJournal): Promise<AlbumInfo>;
  renameAlbum(from: string, to: string, journal?: ChangeJournal): Promise<AlbumInfo>;
  /** Deletes an album and its images; returns the contents (sha256) no image has any more. */
  deleteAlbum(name: string, journal?: ChangeJournal): Promise<{ unusedContent: string[] }>;

  listImages(album: string, page?: PageRequest): Promise<Page<string>>;
  /** Metadata of several images of one album, in the given order (missing ones skipped). */
  imageInfos(album: string, names: string[]): Promise<ImageInfo[]>;
  /** Commits a staged file under `name` (the file is taken away from its path); never overwrites. */
  commitImage(album: string, name: string, staged: StagedFile, journal?: ChangeJournal): Promise<ImageInfo>;
  openImage(album: string, name: string): Promise<ImageHandle>;
  renameImage(album: string, from: string, to: string, journal?: ChangeJournal): Promise<ImageInfo>;
  deleteImage(album: string, name: string, journal?: ChangeJournal): Promise<ImageInfo>;
  /** Where the image with this id is now (ids survive renames); async, since object storage must ask the bucket. */
  findImage(id: string): Promise<{ album: string; name: string } | undefined>;
  /**
   * Optional: a number that changes whenever the album's images (or, without `album`, the
   * list of albums) change, never the same for two states of one name: listings are cached
   * under it. Undefined for an unknown album, or when the store cannot tell cheaply (no caching then).
   */
  version?(album?: string): number | undefined;
  /** Albums and images stored (object storage may answer from a recent count). */
  counts(): Promise<{ albums: number; images: number }>;
  /** True while some stored image has this content. */
  isContentUsed(sha256: string): Promise<boolean>;
  /** Ids of the stored images with this content (exact duplicates of an upload). */
  contentIds(sha256: string): Promise<string[]>;
  /**
   * Optional: the images whose perceptual hash is within `maxDistance` bits of image `id`'s,
   * nearest first, across the store (an in-memory index: the filesystem store has one).
   * Undefined when `id` is unknown.
   */
  similarImages?(id: string, maxDistance: number, limit: number): Promise<SimilarImage[] | undefined>;

  /**
   * fsck of this store, wherever it keeps its data (the data dir, a bucket): what is wrong
   * and, with `repair`, fixed; `verify` re-hashes every image. Callers never check a place
   * themselves, so a check can never look at the wrong one.
   */
  check(options: StoreCheckOptions): Promise<StoreCheck>;

  /** Directory where uploads are received (same filesystem as the store, so commits are renames and links). */
  readonly stagingDir: string;
  /** Checks that the store can be written (for /readyz). */
  checkWritable(): Promise<void>;
  close(): Promise<void>;
}

/** What AlbumStore.check does. */
export interface StoreCheckOptions {
  /** Re-hash every image and compare with its metadata (reads every byte). */
  verify: boolean;
  /** Fix what can be fixed. */
  repair: boolean;
}

/** AlbumStore.check's answer: albums and images found, and every problem (repaired or not). */
export interface StoreCheck {
  albums: number;
  images: number;
  problems: FsckProblem[];
}

/**
 * What a store's open recovered. Counts only where the open counted (the filesystem store's
 * fsck does; the S3 store's open only redoes the journal: its bucket check is `check`).
 */
export interface RecoveryReport {
  problems: FsckProblem[];
  albums?: number;
  images?: number;
}

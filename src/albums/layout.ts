import path from 'node:path';

/**
 * Where everything lives in the data dir. The album tree is the Go service's
 * (`image-store/<album>/<image>`), so its data dirs open unchanged and an
 * operator can browse and back up images with ordinary tools:
 *
 *   <root>/image-store/<album>/<image>                   the image, byte for byte
 *   <root>/image-store/<album>/.imagestore/album.json    album metadata
 *   <root>/image-store/<album>/.imagestore/meta/<image>  image metadata (JSON)
 *   <root>/image-info.json                               the Go service's index (read once, on import)
 *   <root>/.imagestore/tmp/                              uploads being received, temporary files
 *   <root>/.imagestore/outbox/staged/                    bytes of committed uploads, kept until checkpointed (staged-uploads.ts)
 *   <root>/.imagestore/trash/                            albums being deleted
 *   <root>/.imagestore/outbox/                           event journal
 *   <root>/.imagestore/broker/                           embedded broker's sessions (LevelDB)
 *   <root>/.imagestore/cache/                            derivative cache (transform results)
 *   <root>/.imagestore/imports/                          import jobs (a snapshot and a log of changes each)
 *
 * Metadata sits inside the album directory, so renaming an album is one
 * directory rename and one change writes O(1) data.
 */
export class Layout {
  readonly albumsDir: string;
  readonly internalDir: string;
  readonly tmpDir: string;
  readonly stagedDir: string;
  readonly trashDir: string;
  readonly outboxDir: string;
  readonly brokerDir: string;
  readonly cacheDir: string;
  readonly importsDir: string;
  /** Webhook endpoints and their cursors in the event journal. */
  readonly webhooksDir: string;
  readonly goIndexFile: string;
  readonly formatFile: string;
  readonly ownerFile: string;

  constructor(readonly root: string) {
    this.albumsDir = path.join(root, 'image-store');
    this.internalDir = path.join(root, '.imagestore');
    this.tmpDir = path.join(this.internalDir, 'tmp');
    this.outboxDir = path.join(this.internalDir, 'outbox');
    this.stagedDir = path.join(this.outboxDir, 'staged');
    this.trashDir = path.join(this.internalDir, 'trash');
    this.brokerDir = path.join(this.internalDir, 'broker');
    this.cacheDir = path.join(this.internalDir, 'cache');
    this.importsDir = path.join(this.internalDir, 'imports');
    this.webhooksDir = path.join(this.internalDir, 'webhooks');
    this.goIndexFile = path.join(root, 'image-info.json');
    this.formatFile = path.join(this.internalDir, 'format.json');
    this.ownerFile = path.join(this.internalDir, 'owner.pid');
  }

  albumDir(album: string): string {
    return path.join(this.albumsDir, album);
  }

  albumMetaDir(album: string): string {
    return path.join(this.albumsDir, album, '.imagestore');
  }

  albumInfoFile(album: string): string {
    return path.join(this.albumMetaDir(album), 'album.json');
  }

  imageMetaDir(album: string): string {
    return path.join(this.albumMetaDir(album), 'meta');
  }

  imageFile(album: string, image: string): string {
    return path.join(this.albumsDir, album, image);
  }

  imageMetaFile(album: string, image: string): string {
    return path.join(this.imageMetaDir(album), image);
  }
}

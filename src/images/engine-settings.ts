import sharp from 'sharp';

/**
 * Process-wide settings of the image engine, applied by the composition root
 * once its modules are loaded, and by each diff worker thread after it loads
 * sharp: libvips keeps them globally, and sharp puts its defaults back every
 * time a thread loads it.
 *
 * libvips' operation cache is off: it keeps recently used inputs open (GIF
 * and others), so a deleted image's blocks stay allocated until it happens to
 * be evicted, and deleting images on a full disk frees nothing. Every
 * transform result is already cached on disk (DerivativeCache), so the
 * in-memory cache saves little. Importing sharp here, in the main thread,
 * also keeps its shared libraries loaded for the diff worker threads, as
 * sharp requires on glibc Linux.
 */
export function configureImageEngine(): void {
  sharp.cache(false);
}

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from '../../lib/durable.js';
import { readImageMeta, type StoredImageMeta } from '../image-meta.js';
import type { Layout } from '../layout.js';
import { mapLimit } from '../../lib/map-limit.js';

/** Images inspected at once: each decodes one picture (to a 100 px thumbnail). */
const CONCURRENCY = 2;

/** What a backfill did. */
export interface BackfillReport {
  /** Images given placeholders and a perceptual hash (and capture metadata when they had none). */
  filled: number;
  /** Images left as they were: not decodable (not images, or refused), with the reason. */
  skipped: Array<{ path: string; reason: string }>;
}

/** What the backfill takes from an image's inspection (inspectImage with fingerprints on). */
type Fingerprinted = Pick<StoredImageMeta, 'thumbhash' | 'dominantColor' | 'phash' | 'capture'>;

/**
 * `npm run fsck -- --backfill`: gives every stored image without them the fingerprints
 * (ThumbHash, dominant colour, perceptual hash) and capture metadata that uploads now
 * get, from its bytes. Runs with the service stopped and the data dir locked, after the
 * journal's changes are redone, so each metadata file is written (atomically, fsynced)
 * while nothing else changes it; a crash midway leaves every file old or new.
 * @param inspect inspectImage with fingerprints on
 */
export async function backfillFingerprints(layout: Layout, inspect: (file: string) => Promise<Fingerprinted>): Promise<BackfillReport> {
  const report: BackfillReport = { filled: 0, skipped: [] };
  const albums = await fs.readdir(layout.albumsDir, { withFileTypes: true }).catch(() => []);
  for (const album of albums.filter((entry) => entry.isDirectory() && !entry.name.startsWith('.'))) {
    const metaDir = layout.imageMetaDir(album.name);
    const names = await fs.readdir(metaDir).catch(() => [] as string[]);
    await mapLimit(names, CONCURRENCY, async (name) => {
      const metaFile = path.join(metaDir, name);
      const meta = await readImageMeta(metaFile);
      if (!meta || (meta.thumbhash && meta.phash) || !meta.format) return;
      const file = layout.imageFile(album.name, name);
      let facts: Fingerprinted;
      try {
        facts = await inspect(file);
      } catch (err) {
        report.skipped.push({ path: file, reason: (err as Error).message });
        return;
      }
      const { thumbhash, dominantColor, phash, capture } = facts;
      const filled: StoredImageMeta = { ...meta, thumbhash, dominantColor, phash, ...(meta.capture || !capture ? {} : { capture }) };
      await writeFileAtomic(metaFile, JSON.stringify(filled), layout.tmpDir);
      report.filled += 1;
    });
  }
  return report;
}

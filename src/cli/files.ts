import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import path from 'node:path';

/** Extensions the upload command picks up (the formats the service accepts). */
export const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff']);

/** A file found under the upload directory. */
export interface LocalFile {
  path: string;
  /** Path relative to the directory, for messages. */
  relative: string;
  name: string;
  size: number;
}

/**
 * Every regular file below `dir` (recursively, sorted), hidden entries
 * (dot-names) left out; split into images (by extension) and the rest.
 * Symbolic links are not followed.
 */
export async function walkImages(dir: string): Promise<{ images: LocalFile[]; others: string[] }> {
  const images: LocalFile[] = [];
  const others: string[] = [];
  const visit = async (current: string) => {
    const entries = await fs.readdir(current, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) await visit(full);
      else if (entry.isFile()) {
        const relative = path.relative(dir, full);
        if (!IMAGE_EXTENSIONS.has(path.extname(entry.name).toLowerCase())) others.push(relative);
        else images.push({ path: full, relative, name: entry.name, size: (await fs.stat(full)).size });
      }
    }
  };
  await visit(dir);
  return { images, others };
}

/** sha256 of a file, hex, read as a stream. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of a file, or undefined when it does not exist. */
export async function sha256IfExists(file: string): Promise<string | undefined> {
  try {
    return await sha256File(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fsyncDir, isErrno, writeFileAtomic } from '../albums/durable.js';
import type { ImportJob } from './job.js';

/** Finished jobs kept for GET /api/v1/imports; older ones are deleted. */
export const KEPT_FINISHED_JOBS = 200;

/**
 * Import jobs on disk, one JSON file per job under `dir` (written atomically:
 * O(1) per change). Creation is fsynced (the 202 promises the job); progress
 * updates are not (after a crash, a resumed item is downloaded again and
 * recognised by its sha256 if it was already stored).
 */
export class JobStore {
  constructor(private readonly dir: string) {}

  async loadAll(): Promise<ImportJob[]> {
    await fs.mkdir(this.dir, { recursive: true });
    const jobs: ImportJob[] = [];
    for (const name of await fs.readdir(this.dir)) {
      if (!name.endsWith('.json')) {
        await fs.rm(path.join(this.dir, name), { force: true }); // a temporary file of an interrupted write
        continue;
      }
      try {
        jobs.push(JSON.parse(await fs.readFile(path.join(this.dir, name), 'utf8')) as ImportJob);
      } catch {
        // unreadable: skipped (written atomically, so only a disk fault does this)
      }
    }
    return jobs.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  }

  async save(job: ImportJob, durable = false): Promise<void> {
    const file = path.join(this.dir, `${job.id}.json`);
    if (durable) {
      await writeFileAtomic(file, JSON.stringify(job), this.dir);
      await fsyncDir(this.dir);
      return;
    }
    const tmp = `${file}.${process.pid}.tmp`;
    await fs.writeFile(tmp, JSON.stringify(job));
    await fs.rename(tmp, file);
  }

  async remove(id: string): Promise<void> {
    await fs.rm(path.join(this.dir, `${id}.json`), { force: true }).catch((err) => {
      if (!isErrno(err, 'ENOENT')) throw err;
    });
  }
}

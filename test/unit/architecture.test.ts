import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const SCRIPT = path.join(REPO_ROOT, 'scripts/check-architecture.mjs');
const check = (root: string) => spawnSync(process.execPath, [SCRIPT, root], { encoding: 'utf8' });

// Issue 14: no import arrow from a lower layer to a higher one, no folder cycle (layers in docs/architecture.md).
describe('the import graph (scripts/check-architecture.mjs, issue 14)', () => {
  it('src/ has no upward import and no folder cycle', () => {
    const result = check(REPO_ROOT);
    expect(result.stderr).to.equal('');
    expect(result.status).to.equal(0);
  });

  it('fails on an upward import, a folder cycle and a room without a layer, naming the files', async () => {
    const root = await makeTmpDir();
    try {
      const write = async (file: string, text: string) => {
        await fs.mkdir(path.dirname(path.join(root, file)), { recursive: true });
        await fs.writeFile(path.join(root, file), text);
      };
      await write('docs/architecture.md', '<!-- layers:start -->\n| layer | rooms |\n|---|---|\n| 0 | `lib` |\n| 1 | `albums`, `notifier` |\n<!-- layers:end -->\n');
      await write('src/lib/a.ts', "import { b } from '../albums/b.js';\nexport const a = b;\n");
      await write('src/albums/b.ts', "export type { C } from '../notifier/c.js';\nexport const b = 1;\n");
      await write('src/notifier/c.ts', "import type { b } from '../albums/b.js';\nexport type C = typeof b;\n");
      await write('src/extra/d.ts', "export const d = await import('../lib/a.js');\n");
      const result = check(root);
      expect(result.status).to.equal(1);
      expect(result.stderr).to.include('upward import: lib/a.ts (lib, layer 0) imports albums/b.ts (albums, layer 1)');
      expect(result.stderr).to.include('folder cycle between albums, notifier:\n    albums/b.ts -> notifier/c.ts\n    notifier/c.ts -> albums/b.ts');
      expect(result.stderr).to.include('extra: no layer in docs/architecture.md');
    } finally {
      await removeDir(root);
    }
  });

  it('fails when a subroom (albums/fs, albums/s3) is imported by its sibling or its parent, not by itself or from outside', async () => {
    const root = await makeTmpDir();
    try {
      const write = async (file: string, text: string) => {
        await fs.mkdir(path.dirname(path.join(root, file)), { recursive: true });
        await fs.writeFile(path.join(root, file), text);
      };
      await write('docs/architecture.md', '<!-- layers:start -->\n| layer | rooms |\n|---|---|\n| 1 | `albums`, `albums/fs`, `albums/s3` |\n| 2 | `server.ts` |\n<!-- layers:end -->\n');
      await write('src/albums/types.ts', 'export type Store = { n: number };\n');
      await write('src/albums/s3/bucket.ts', 'export const bucket = { n: 1 };\n');
      await write('src/albums/s3/store.ts', "import { bucket } from './bucket.js';\nexport const s3 = bucket;\n");
      await write('src/albums/fs/store.ts', "import type { Store } from '../types.js';\nimport { bucket } from '../s3/bucket.js';\nexport const fs: Store = bucket;\n");
      await write('src/albums/memory.ts', "export const memory = (await import('./s3/store.js')).s3;\n");
      await write('src/server.ts', "import { fs } from './albums/fs/store.js';\nimport { s3 } from './albums/s3/store.js';\nexport const stores = [fs, s3];\n");
      const result = check(root);
      expect(result.status).to.equal(1);
      const lines = result.stderr.trim().split('\n').sort();
      expect(lines).to.deep.equal([
        'architecture: subroom import: albums/fs/store.ts (albums/fs) imports albums/s3/bucket.ts (albums/s3): only rooms outside albums may import albums/s3',
        'architecture: subroom import: albums/memory.ts (albums) imports albums/s3/store.ts (albums/s3): only rooms outside albums may import albums/s3',
      ]);
    } finally {
      await removeDir(root);
    }
  });
});

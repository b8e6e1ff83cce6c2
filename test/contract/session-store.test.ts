import assert from 'node:assert';
import { createRequire } from 'node:module';
import { Level } from 'level';
import aedesPersistenceLevel from 'aedes-persistence-level';
import { silentLogger } from '../../src/logger.js';
import { SessionStore } from '../../src/broker/session-store.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/** The test context aedes-persistence's suite expects from node:test, as far as it uses it. */
interface NodeTestContext {
  assert: typeof assert;
  diagnostic(message: string): void;
  plan(count: number): void;
}

const require = createRequire(import.meta.url);
/** aedes-persistence's own suite, which every aedes persistence must pass (its abstract.js). */
const abstractPersistence = require('aedes-persistence/abstract') as (options: {
  test: (name: string, fn: (t: NodeTestContext) => Promise<void> | void) => void;
  testAsync: boolean;
  persistence: () => Promise<unknown>;
}) => void;

describe('SessionStore keeps the aedes persistence contract (aedes-persistence abstract.js, over aedes-persistence-level)', () => {
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(dirs.map((dir) => removeDir(dir)));
  });

  abstractPersistence({
    // node:test's `test`, run as mocha tests; `t.assert` is node:assert there too.
    test: (name, fn) => it(name, () => fn({ assert, diagnostic: () => undefined, plan: () => undefined })),
    testAsync: true,
    async persistence() {
      const dir = await makeTmpDir('imagestore-sessions-');
      dirs.push(dir);
      const db = new Level<string, Uint8Array>(dir, { valueEncoding: 'view' });
      const limits = { sessionExpiryMs: 3_600_000, maxQueuedPerSession: 1000, storeMaxBytes: 1e9 };
      return new SessionStore(aedesPersistenceLevel(db), db, limits, silentLogger()).persistence;
    },
  });
});

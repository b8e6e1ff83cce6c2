import { expect } from 'chai';
import { WebhookStore } from '../../src/events/webhooks/webhook-store.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

describe('WebhookStore cursors (real files in a temp dir)', () => {
  let dir: string;
  let store: WebhookStore | undefined;
  beforeEach(async () => {
    dir = await makeTmpDir();
  });
  afterEach(async () => {
    await store?.close();
    store = undefined;
    await removeDir(dir);
  });

  it('never answers an older cursor while a move is being written (the worker would send those events again)', async () => {
    store = await WebhookStore.open(dir);
    const { id } = await store.create({ url: 'https://example.com/h', enabled: true, secrets: [] }, 0);
    for (let round = 1; round <= 20; round += 1) {
      const seq = round * 10;
      let written = false;
      const write = store.setCursor(id, seq, true).then(() => {
        written = true;
      });
      const seen = new Set<number>();
      while (!written) {
        seen.add(store.cursor(id));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await write;
      seen.add(store.cursor(id));
      expect([...seen], `round ${round}`).to.deep.equal([seq]);
    }
    await store.close();
    store = await WebhookStore.open(dir);
    expect(store.cursor(id)).to.equal(200);
  });
});

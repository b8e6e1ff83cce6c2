import { FsAlbumStore } from '../../src/albums/fs-store.js';
import { silentLogger } from '../../src/logger.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { albumStoreContract } from './album-store.contract.js';

/** The filesystem store: a fresh data dir per test. Lists in UTF-16 code unit order (JavaScript's sort). */
albumStoreContract(
  'FsAlbumStore',
  async () => {
    const dir = await makeTmpDir();
    const { store } = await FsAlbumStore.open(dir, silentLogger());
    return {
      store,
      async close() {
        await store.close();
        await removeDir(dir);
      },
    };
  },
  { compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0) },
);

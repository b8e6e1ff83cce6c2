import { MemoryAlbumStore } from '../../src/albums/memory-store.js';
import { albumStoreContract } from '../contract/album-store.contract.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

// Issue 14: the in-memory store the service rules are tested on passes the contract of the real ones.
albumStoreContract(
  'MemoryAlbumStore',
  async () => {
    const dir = await makeTmpDir();
    return {
      store: new MemoryAlbumStore(dir),
      close: () => removeDir(dir),
    };
  },
  { compare: (a, b) => (a < b ? -1 : a > b ? 1 : 0) },
);

import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { silentLogger } from '../../src/logger.js';
import { makeTmpDir, removeDir } from '../../test/helpers/tmp-dir.js';
import { ChecksumError, MirrorFs, STATE_FILE_NAME, TMP_DIR_NAME, UnsafeNameError, unsafeNameReason } from '../src/mirror/fs-ops.js';
import { Mirror, MirrorSetupError } from '../src/mirror/mirror.js';
import { MirrorState, RECENT_EVENT_IDS } from '../src/mirror/state.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('subscriber mirror files and state (real files in a temp dir)', () => {
  let root: string;
  let files: MirrorFs;
  beforeEach(async () => {
    root = await makeTmpDir('imagestore-mirror-unit-');
    files = new MirrorFs(path.join(root, 'copy'));
    await files.prepare();
  });
  afterEach(async () => removeDir(root));

  describe('names', () => {
    it('refuses names that would leave the directory or hit the mirror\'s own files', () => {
      for (const name of ['', '.', '..', 'a/b', '../x', 'a\\b', 'a\u0000b', '.imagestore-mirror-tmp', '.IMAGESTORE-anything']) {
        expect(unsafeNameReason(name), JSON.stringify(name)).to.be.a('string');
      }
      expect(() => files.imagePath('holidays', '../../etc/passwd')).to.throw(UnsafeNameError, /refusing image name "..\/..\/etc\/passwd": contains "\/"/);
      expect(() => files.albumPath('..')).to.throw(UnsafeNameError, /refusing album name "..": empty, "." or ".."/);
    });

    it('accepts every other name the service allows', () => {
      for (const name of ['...', '__proto__', 'a b#+%?ü', '.hidden', 'x'.repeat(255)]) expect(unsafeNameReason(name), name).to.equal(undefined);
      expect(files.imagePath('__proto__', '...')).to.equal(path.join(files.root, '__proto__', '...'));
    });
  });

  describe('atomic writes', () => {
    it('writes the bytes and returns their sha256, size and mtime, leaving no temp file', async () => {
      await files.ensureAlbum('holidays');
      const dest = files.imagePath('holidays', 'a.txt');
      const copy = await files.writeAtomic(dest, Readable.from([Buffer.from('hello '), Buffer.from('world')]));
      expect(await fs.readFile(dest, 'utf8')).to.equal('hello world');
      expect(copy).to.deep.equal({ sha256: sha256('hello world'), size: 11, mtimeMs: (await fs.stat(dest)).mtimeMs });
      expect(await fs.readdir(files.tmpDir)).to.deep.equal([]);
      expect(await files.matches(dest, copy)).to.equal(true);
    });

    it('keeps the old file when the bytes do not have the announced sha256', async () => {
      await files.ensureAlbum('holidays');
      const dest = files.imagePath('holidays', 'a.txt');
      await fs.writeFile(dest, 'old');
      const write = files.writeAtomic(dest, Readable.from([Buffer.from('new')]), sha256('something else'));
      await write.then(() => expect.fail('expected a ChecksumError'), (err) => expect(err).to.be.instanceOf(ChecksumError));
      expect(await fs.readFile(dest, 'utf8')).to.equal('old');
      expect(await fs.readdir(files.tmpDir)).to.deep.equal([]);
    });

    it('tells a file replaced behind its back from the copy it wrote (same size, other mtime)', async () => {
      await files.ensureAlbum('holidays');
      const dest = files.imagePath('holidays', 'a.txt');
      const copy = await files.writeAtomic(dest, Readable.from([Buffer.from('abc')]));
      await fs.writeFile(dest, 'xyz');
      await fs.utimes(dest, new Date(), new Date(copy.mtimeMs + 5000));
      expect(await files.matches(dest, copy)).to.equal(false);
    });

    it('replaces a symlinked album with a real directory', async () => {
      const outside = path.join(root, 'outside');
      await fs.mkdir(outside);
      await fs.symlink(outside, files.albumPath('holidays'));
      await files.ensureAlbum('holidays');
      expect((await fs.lstat(files.albumPath('holidays'))).isDirectory()).to.equal(true);
      expect(await fs.readdir(outside)).to.deep.equal([]);
    });
  });

  describe('state file', () => {
    it('survives a save and a load, names like "__proto__" included', async () => {
      const { state } = await MirrorState.load(files);
      state.set('__proto__', '__proto__', { sha256: 'a'.repeat(64), size: 3, mtimeMs: 1.5, id: 'img-1' });
      state.set('holidays', 'b.png', { sha256: 'b'.repeat(64), size: 4, mtimeMs: 2 });
      state.remember('event-1');
      await state.save();
      const { state: loaded, problem } = await MirrorState.load(files);
      expect(problem).to.equal(undefined);
      expect(loaded.get('__proto__', '__proto__')).to.deep.equal({ sha256: 'a'.repeat(64), size: 3, mtimeMs: 1.5, id: 'img-1' });
      expect(loaded.albumNames().sort()).to.deep.equal(['__proto__', 'holidays']);
      expect(loaded.seen('event-1')).to.equal(true);
      expect(({} as Record<string, unknown>).sha256).to.equal(undefined); // no prototype pollution
      expect(await fs.readdir(files.tmpDir)).to.deep.equal([]);
    });

    it(`remembers only the last ${RECENT_EVENT_IDS} event ids`, async () => {
      const { state } = await MirrorState.load(files);
      for (let i = 0; i <= RECENT_EVENT_IDS; i++) state.remember(`e${i}`);
      await state.save();
      const { state: loaded } = await MirrorState.load(files);
      expect(loaded.seen('e0')).to.equal(false);
      expect(loaded.seen('e1')).to.equal(true);
      expect(loaded.seen(`e${RECENT_EVENT_IDS}`)).to.equal(true);
    });

    it('starts from an empty state, saying why, when the file is unreadable', async () => {
      await fs.writeFile(files.statePath, '{"version": 1, "albums": ');
      const { state, problem } = await MirrorState.load(files);
      expect(problem).to.match(/state file .* ignored: /);
      expect(state.albumNames()).to.deep.equal([]);
    });
  });

  describe('Mirror.open', () => {
    const open = (dir: string) => Mirror.open({ dir, apiUrl: 'http://127.0.0.1:9', log: silentLogger(), retry: { attempts: 1, firstDelayMs: 1, maxDelayMs: 1 } });

    it('refuses a directory that holds files but is not a mirror', async () => {
      const dir = path.join(root, 'photos');
      await fs.mkdir(dir);
      await fs.writeFile(path.join(dir, 'precious.jpg'), 'x');
      const opened = open(dir);
      await opened.then(() => expect.fail('expected a MirrorSetupError'), (err) => {
        expect(err).to.be.instanceOf(MirrorSetupError);
        expect(err.message).to.match(/refusing to mirror into .*photos: it is not empty and has no \.imagestore-mirror-state\.json/);
      });
      expect(await fs.readdir(dir)).to.deep.equal(['precious.jpg']);
    });

    it('creates a missing directory and marks it as a mirror, which it then accepts again', async () => {
      const dir = path.join(root, 'new', 'mirror');
      const mirror = await open(dir);
      await mirror.close();
      expect((await fs.readdir(dir)).sort()).to.deep.equal([TMP_DIR_NAME, STATE_FILE_NAME].sort());
      await fs.mkdir(path.join(dir, 'holidays'));
      await (await open(dir)).close();
    });
  });
});

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { listTree, makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { makeJpeg, makePng } from '../helpers/images.js';
import sharp from 'sharp';
import { defaultConfig } from '../../src/config.js';

// `npm run fsck` (src/fsck-main.ts) run as a real process against data dirs
// broken by hand, the way a crash, a disk tool or an operator would break them.

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const API = '/api/v1';

interface FsckRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

interface FsckJson {
  root: string;
  albums: number;
  images: number;
  problems: Array<{ kind: string; path: string; detail: string; repaired: boolean }>;
}

/** Runs `node --import tsx src/fsck-main.ts ARGS`; killed (by its pid) if it takes over 60 s. */
async function runFsck(...args: string[]): Promise<FsckRun> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/fsck-main.ts', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'close');
  clearTimeout(timer);
  return { code: code as number | null, stdout, stderr };
}

function parseReport(run: FsckRun): FsckJson {
  try {
    return JSON.parse(run.stdout) as FsckJson;
  } catch {
    throw new Error(`fsck --json printed no JSON (exit ${run.code}):\n${run.stdout}\n${run.stderr}`);
  }
}

describe('fsck: reports every kind of damage, repairs it, and refuses to repair under a running service', function () {
  this.timeout(30_000);
  let dataDir: string;
  let png: Buffer;

  /** A data dir made by the real service: album "a" with five images, album "b" with one. */
  async function makeStore(): Promise<string> {
    const dir = await makeTmpDir('imagestore-fsck-');
    const svc = await startTestService({ dataDir: dir });
    try {
      await svc.http.post(`${API}/albums`).send({ albumName: 'a' }).expect(201);
      await svc.http.post(`${API}/albums`).send({ albumName: 'b' }).expect(201);
      // 3.png has bytes of its own: the others share one inode (issue 18 stores identical bytes once), and
      // the damage below overwrites 3.png in place, which would reach every name of a shared inode.
      for (const name of ['1.png', '2.png', '3.png', '4.png', '5.png']) {
        const bytes = name === '3.png' ? await makePng(8, 8, { r: 1, g: 2, b: 3 }) : png;
        await svc.http.post(`${API}/albums/a/images`).attach('file', bytes, name).expect(201);
      }
      await svc.http.post(`${API}/albums/b/images`).attach('file', await makeJpeg(), 'kept.jpg').expect(201);
    } finally {
      await svc.stop();
    }
    return dir;
  }

  before(async () => {
    png = await makePng(8, 8);
  });
  afterEach(async () => removeDir(dataDir));

  it('finds nothing wrong in a store the service wrote', async () => {
    dataDir = await makeStore();
    const run = await runFsck(dataDir, '--json');
    expect(run.code, run.stderr).to.equal(0);
    const report = parseReport(run);
    expect(report).to.deep.include({ root: dataDir, albums: 2, images: 6, problems: [] });
  });

  it('reports each problem (exit 1) without changing anything, repairs them with --repair (exit 0), then is clean', async () => {
    dataDir = await makeStore();
    const store = path.join(dataDir, 'image-store');
    const other = await makeJpeg(10, 10);
    // The damage, one of each kind.
    await fs.writeFile(path.join(dataDir, '.imagestore', 'tmp', 'upload_3f2a'), 'half an upload'); // temp-file
    await fs.mkdir(path.join(dataDir, '.imagestore', 'trash', 'album-being-deleted'), { recursive: true }); // trash
    await fs.writeFile(path.join(store, 'a', 'adopt-me.jpg'), other); // file-without-metadata
    await fs.rm(path.join(store, 'a', '1.png')); // metadata-without-file
    await fs.writeFile(path.join(store, 'a', '.imagestore', 'meta', '2.png'), '{"id": "trunc'); // bad-metadata
    await fs.writeFile(path.join(store, 'a', '3.png'), other); // content-mismatch
    await fs.mkdir(path.join(store, 'c')); // album-without-metadata
    await fs.writeFile(path.join(store, 'c', 'dropped-in.png'), png); // ... holding a file-without-metadata

    const untouched = await listTree(dataDir);
    const check = await runFsck(dataDir, '--json');
    expect(check.code, check.stderr).to.equal(1);
    const found = parseReport(check);
    const rel = (p: string) => path.relative(dataDir, p);
    expect(found.problems.map((p) => `${p.kind} ${rel(p.path)}`).sort()).to.deep.equal([
      'album-without-metadata image-store/c',
      'bad-metadata image-store/a/2.png',
      'content-mismatch image-store/a/3.png',
      'file-without-metadata image-store/a/adopt-me.jpg',
      'file-without-metadata image-store/c/dropped-in.png',
      'metadata-without-file image-store/a/.imagestore/meta/1.png',
      'temp-file .imagestore/tmp/upload_3f2a',
      'trash .imagestore/trash/album-being-deleted',
    ]);
    expect(found.problems.every((p) => !p.repaired && p.detail.length > 0)).to.equal(true);
    expect(await listTree(dataDir), 'a check without --repair changes nothing').to.deep.equal(untouched);

    const text = await runFsck(dataDir);
    expect(text.code).to.equal(1);
    expect(text.stdout).to.match(/^PROBLEM {2}content-mismatch: .*3\.png: metadata says \d+ bytes sha256 [0-9a-f]{64}, file has \d+ bytes/m);
    expect(text.stdout).to.match(/3 albums, 7 images, 8 problems, 8 left\n$/);

    const quick = parseReport(await runFsck(dataDir, '--json', '--quick'));
    expect(quick.problems.map((p) => p.kind), '--quick does not re-hash').to.not.include('content-mismatch');

    const repair = await runFsck(dataDir, '--repair', '--json');
    expect(repair.code, repair.stderr).to.equal(0);
    const repaired = parseReport(repair);
    expect(repaired.problems).to.have.length(8);
    expect(repaired.problems.filter((p) => !p.repaired)).to.deep.equal([]);

    const again = await runFsck(dataDir, '--json');
    expect(again.code, again.stdout).to.equal(0);
    expect(parseReport(again)).to.deep.include({ albums: 3, images: 7, problems: [] });
    expect(await fs.readdir(path.join(dataDir, '.imagestore', 'tmp'))).to.deep.equal([]);
    expect(await fs.readdir(path.join(dataDir, '.imagestore', 'trash'))).to.deep.equal([]);
    await fs.access(path.join(dataDir, '.imagestore', 'owner.pid')).then(
      () => expect.fail('fsck --repair left its owner.pid behind'),
      () => undefined,
    );

    // The service serves the repaired store: adopted files with their bytes, the lost image gone.
    const svc = await startTestService({ dataDir });
    try {
      expect(svc.service.recovery.problems).to.deep.equal([]);
      const list = await svc.http.get(`${API}/albums/a/images?details=true`).expect(200);
      expect(list.body.imageList).to.deep.equal(['2.png', '3.png', '4.png', '5.png', 'adopt-me.jpg']);
      const three = list.body.images.find((i: { name: string }) => i.name === '3.png');
      expect(three).to.include({ size: other.length, type: 'image/jpeg' });
      const got = await svc.http.get(`${API}/albums/a/images/3.png`).buffer(true).expect(200);
      expect(Buffer.compare(got.body as Buffer, other)).to.equal(0);
      await svc.http.get(`${API}/albums/a/images/1.png`).expect(404);
      expect((await svc.http.get(`${API}/albums/c/images`).expect(200)).body.imageList).to.deep.equal(['dropped-in.png']);
    } finally {
      await svc.stop();
    }
  });

  // Issue 12, item 3: damage in the event journal is reported, never skipped silently.
  it('reports the event journal\'s damage: a torn last record (cut off by --repair) and a corrupt one (left, exit 1)', async () => {
    dataDir = await makeStore();
    const outbox = path.join(dataDir, '.imagestore', 'outbox');
    const [last] = (await fs.readdir(outbox)).filter((f) => f.startsWith('seg-')).sort().slice(-1);
    const file = path.join(outbox, last);
    const whole = (await fs.stat(file)).size;
    expect(whole, 'the service journaled its events').to.be.above(0);
    await fs.appendFile(file, 'not a record\n{"seq":999,"event":{"spec');

    const check = await runFsck(dataDir, '--json', '--quick');
    expect(check.code).to.equal(1);
    const problems = parseReport(check).problems.map((p) => ({ kind: p.kind, path: p.path, detail: p.detail.replace(/:.*/, '') }));
    expect(problems).to.deep.equal([
      { kind: 'journal-corrupt-record', path: file, detail: `at byte ${whole}` },
      { kind: 'journal-torn-record', path: file, detail: `at byte ${whole + 'not a record\n'.length}` },
    ]);

    const repair = parseReport(await runFsck(dataDir, '--json', '--quick', '--repair'));
    expect(repair.problems.map((p) => [p.kind, p.repaired])).to.deep.equal([['journal-corrupt-record', false], ['journal-torn-record', true]]);
    expect((await fs.stat(file)).size).to.equal(whole + 'not a record\n'.length);

    // The service reports what is left in its recovery report (and logs it as an error).
    const svc = await startTestService({ dataDir });
    try {
      expect(svc.service.recovery.problems.map((p) => p.kind)).to.deep.equal(['journal-corrupt-record']);
    } finally {
      await svc.stop();
    }
  });

  describe('while the service runs on the data dir', () => {
    let svc: TestService | undefined;
    afterEach(async () => svc?.stop());

    it('checks (read-only) but refuses --repair: owner.pid names a live process', async () => {
      dataDir = await makeStore();
      await fs.writeFile(path.join(dataDir, '.imagestore', 'tmp', 'leftover'), 'x');
      svc = await startTestService({ dataDir }); // recovery removes the leftover, then the service owns the dir
      const ownerFile = path.join(dataDir, '.imagestore', 'owner.pid');
      expect((await fs.readFile(ownerFile, 'utf8')).trim()).to.equal(String(process.pid));

      const check = await runFsck(dataDir, '--json');
      expect(check.code, check.stderr).to.equal(0);
      expect(parseReport(check).problems).to.deep.equal([]);

      await fs.writeFile(path.join(dataDir, '.imagestore', 'tmp', 'fake-upload'), 'y');
      const refused = await runFsck(dataDir, '--repair');
      expect(refused.code).to.equal(2);
      expect(refused.stderr).to.match(new RegExp(`fsck: data dir is in use by another imagestore process \\(pid ${process.pid}`));
      expect(await fs.readdir(path.join(dataDir, '.imagestore', 'tmp')), 'nothing repaired').to.include('fake-upload');
      expect((await fs.readFile(ownerFile, 'utf8')).trim(), 'the service keeps owning the dir').to.equal(String(process.pid));

      await svc.stop();
      svc = undefined;
      await fs.access(ownerFile).then(() => expect.fail('owner.pid kept after stop'), () => undefined);
      const repair = await runFsck(dataDir, '--repair', '--json');
      expect(repair.code, repair.stderr).to.equal(0);
      expect(parseReport(repair).problems.map((p) => p.kind)).to.deep.equal(['temp-file']);
    });

    it('takes over an owner.pid left by a process that died', async () => {
      dataDir = await makeStore();
      const dead = spawn(process.execPath, ['-e', '0']);
      await once(dead, 'close');
      await fs.writeFile(path.join(dataDir, '.imagestore', 'owner.pid'), `${dead.pid}\n`);
      const repair = await runFsck(dataDir, '--repair', '--json');
      expect(repair.code, repair.stderr).to.equal(0);
    });
  });

  it('exits 2 on a usage error', async () => {
    dataDir = await makeTmpDir('imagestore-fsck-');
    const run = await runFsck(dataDir, '--frobnicate');
    expect(run.code).to.equal(2);
    expect(run.stderr).to.match(/Unknown option '--frobnicate'[\s\S]*Usage: npm run fsck/);
  });

  it('issue 18: --backfill gives images stored without them placeholders and a perceptual hash (the service then finds near duplicates)', async function () {
    this.timeout(120_000); // three starts and a spawned fsck
    dataDir = await makeTmpDir('imagestore-fsck-');
    const plain = await startTestService({ dataDir, config: { images: { ...defaultConfig().images, fingerprints: false } } });
    let ids: string[];
    try {
      await plain.http.post(`${API}/albums`).send({ albumName: 'old' }).expect(201);
      const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="160" height="120"><rect width="160" height="120" fill="#3060c0"/><circle cx="50" cy="60" r="30" fill="#f0d020"/><rect x="100" y="20" width="40" height="80" fill="#202020"/></svg>';
      const big = await sharp(Buffer.from(svg)).jpeg().toBuffer();
      const small = await sharp(big).resize(32).jpeg({ quality: 60 }).toBuffer();
      ids = [];
      for (const [name, bytes] of [['big.jpg', big], ['small.jpg', small]] as const) {
        ids.push((await plain.http.post(`${API}/albums/old/images`).attach('file', bytes, name).expect(201)).body.image.id);
      }
      await fs.writeFile(path.join(dataDir, 'image-store', 'old', 'notes.txt'), 'not an image');
    } finally {
      await plain.stop();
    }
    const run = await runFsck(dataDir, '--backfill', '--quick');
    expect(run.stderr, `exit ${run.code}: ${run.stdout}`).to.match(/backfill: 2 images given placeholders and a perceptual hash, 0 not decodable/);
    const svc = await startTestService({ dataDir });
    try {
      const meta = await svc.http.get(`${API}/albums/old/images/big.jpg/metadata`).expect(200);
      expect(meta.body.thumbhash).to.be.a('string');
      expect(meta.body.dominantColor).to.match(/^#[0-9a-f]{6}$/);
      expect(meta.body.phash).to.match(/^[0-9a-f]{16}$/);
      const similar = await svc.http.get(`${API}/images/${ids[0]}/similar`).expect(200);
      expect(similar.body.similar.map((s: { id: string }) => s.id)).to.include(ids[1]);
    } finally {
      await svc.stop();
    }
  });
});


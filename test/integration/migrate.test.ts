import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { FsAlbumStore } from '../../src/albums/fs/fs-store.js';
import { describeFile } from '../../src/albums/image-meta.js';
import { Layout } from '../../src/albums/layout.js';
import { mapLimit } from '../../src/lib/map-limit.js';
import { S3AlbumStore } from '../../src/albums/s3/s3-store.js';
import type { ImageInfo } from '../../src/albums/types.js';
import { silentLogger } from '../../src/logger.js';
import { requireS3, TestBucket } from '../helpers/s3.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const run = promisify(execFile);
const ALBUMS = ['alpha', 'beta', 'gamma été'];
const IMAGES_PER_ALBUM = 80;

/**
 * `npm run migrate` (src/migrate-main.ts, run as a child process) between a
 * data dir and a bucket on the real S3 server of S3_TEST_ENDPOINT: 240 images
 * both ways, every sha256 and id kept, a second run copies nothing, and a
 * source image whose bytes do not match its sha256 makes the command fail.
 */
describe('migrate command: filesystem <-> S3, resumable, verified by sha256', function () {
  this.timeout(60_000);
  let bucket: TestBucket | undefined;
  let env: Record<string, string>;
  const dirs: string[] = [];
  let sourceDir: string;
  let original: ImageInfo[];

  before(async function () {
    bucket = await TestBucket.create(await requireS3(this));
    const s3 = bucket.settings(TestBucket.prefix());
    env = {
      PATH: process.env.PATH ?? '', S3_ENDPOINT: s3.endpoint!, S3_BUCKET: s3.bucket, S3_REGION: s3.region, S3_ACCESS_KEY_ID: s3.accessKeyId!,
      S3_SECRET_ACCESS_KEY: s3.secretAccessKey!, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: s3.prefix!,
    };
    sourceDir = await tmpDir();
    original = await fillFsStore(sourceDir);
  });
  after(async function () {
    for (const dir of dirs) await removeDir(dir);
    await bucket?.destroy();
  });

  async function tmpDir(): Promise<string> {
    const dir = await makeTmpDir();
    dirs.push(dir);
    return dir;
  }

  async function migrateCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/migrate-main.ts', '--concurrency', '16', ...args], {
        cwd: REPO_ROOT, env, timeout: 45_000,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const failed = err as { code?: number; stdout?: string; stderr?: string };
      return { code: failed.code ?? -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
    }
  }

  /** Opens the bucket as a node would, on a throwaway data dir. */
  async function openBucket(): Promise<S3AlbumStore> {
    const { store } = await S3AlbumStore.open(bucket!.settings(env.S3_PREFIX), await tmpDir(), silentLogger());
    return store;
  }

  it('copies a data dir into the bucket: every image, id and sha256 kept; a second run copies nothing', async function () {
    const first = await migrateCli('--from', `fs:${sourceDir}`, '--to', 's3');
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.match(/albums 3 created, 0 already there; images 240 copied \(\d+ bytes\), 0 already there, 0 failed/);
    expect(first.stdout).to.match(/200 images processed/);

    // Every id is indexed in the bucket; a sample is checked through the store as a node sees it. (The copy
    // back in the next test reads every object and checks every sha256 and metadata field.)
    const store = await openBucket();
    try {
      expect((await store.listAlbums()).items).to.deep.equal(ALBUMS);
      expect(await store.counts()).to.deep.equal({ albums: 3, images: 240 });
      const ids = (await all(store.bucket.keys(store.layout.idsPrefix))).flat().map((key) => key.slice(store.layout.idsPrefix.length));
      expect(ids.sort()).to.deep.equal(original.map((i) => i.id).sort());
      await mapLimit(original.filter((_, i) => i % 40 === 7), 6, async (image) => {
        expect(await store.findImage(image.id)).to.deep.equal({ album: image.album, name: image.name });
        const handle = await store.openImage(image.album, image.name);
        expect(handle.info).to.deep.equal(image);
        expect(await sha256Of(handle.stream())).to.equal(image.sha256);
      });
    } finally {
      await store.close();
    }

    const second = await migrateCli('--from', `fs:${sourceDir}`, '--to', 's3', '--quiet');
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stdout).to.match(/albums 0 created, 3 already there; images 0 copied \(0 bytes\), 240 already there, 0 failed/);
  });

  it('copies the bucket back into a new data dir: same albums, ids, times and bytes; a second run copies nothing', async function () {
    const backDir = await tmpDir();
    const first = await migrateCli('--from', 's3', '--to', `fs:${backDir}`);
    expect(first.code, first.stderr).to.equal(0);
    expect(first.stdout).to.match(/images 240 copied \(\d+ bytes\), 0 already there, 0 failed/);

    const { store, recovery } = await FsAlbumStore.open(backDir, silentLogger());
    try {
      expect(recovery.problems.filter((p) => p.kind !== 'temp-file')).to.deep.equal([]);
      const layout = new Layout(backDir);
      for (const album of ALBUMS) {
        const names = (await store.listImages(album)).items;
        const infos = await store.imageInfos(album, names);
        expect(infos).to.deep.equal(original.filter((i) => i.album === album));
        for (const info of infos) expect((await describeFile(layout.imageFile(album, info.name))).sha256).to.equal(info.sha256);
      }
      const source = await FsAlbumStore.open(sourceDir, silentLogger());
      try {
        expect(await store.albumInfos(ALBUMS)).to.deep.equal(await source.store.albumInfos(ALBUMS));
      } finally {
        await source.store.close();
      }
    } finally {
      await store.close();
    }

    const second = await migrateCli('--from', 's3', '--to', `fs:${backDir}`, '--quiet');
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stdout).to.match(/images 0 copied \(0 bytes\), 240 already there, 0 failed/);
  });

  it('exits 1 and names the image when source bytes do not match their sha256 (nothing wrong is copied)', async function () {
    const dir = await tmpDir();
    const { store } = await FsAlbumStore.open(dir, silentLogger());
    const bytes = randomBytes(500);
    try {
      await store.createAlbum('rot');
      await store.commitImage('rot', 'fine.bin', await stageIn(store.stagingDir, randomBytes(300)));
      await store.commitImage('rot', 'bitrot.bin', await stageIn(store.stagingDir, bytes));
    } finally {
      await store.close();
    }
    bytes[100] ^= 0xff; // same size, one byte flipped behind the store's back
    await fs.writeFile(new Layout(dir).imageFile('rot', 'bitrot.bin'), bytes);

    const result = await migrateCli('--from', `fs:${dir}`, '--to', 's3', '--quiet');
    expect(result.code).to.equal(1);
    expect(result.stdout).to.match(/FAILED rot\/bitrot\.bin: source bytes have sha256 [0-9a-f]{64}, their metadata says [0-9a-f]{64}; not copied/);
    expect(result.stdout).to.match(/images 1 copied \(300 bytes\), 0 already there, 1 failed/);
    const bucketStore = await openBucket();
    try {
      expect((await bucketStore.listImages('rot')).items).to.deep.equal(['fine.bin']);
    } finally {
      await bucketStore.close();
    }
  });

  it('refuses bad arguments and missing S3 settings with exit status 2', async function () {
    const noTarget = await migrateCli('--from', `fs:${sourceDir}`);
    expect(noTarget.code).to.equal(2);
    expect(noTarget.stderr).to.match(/expected --to fs:DIR or s3/);
    const saved = env;
    env = { PATH: saved.PATH };
    try {
      const noBucket = await migrateCli('--from', `fs:${sourceDir}`, '--to', 's3');
      expect(noBucket.code).to.equal(2);
      expect(noBucket.stderr).to.match(/invalid S3_BUCKET/);
    } finally {
      env = saved;
    }
  });
});

/** A filesystem store with ALBUMS × IMAGES_PER_ALBUM small random images; returns their metadata. */
async function fillFsStore(dir: string): Promise<ImageInfo[]> {
  const { store } = await FsAlbumStore.open(dir, silentLogger());
  try {
    const infos: ImageInfo[][] = await Promise.all(ALBUMS.map(async (album) => {
      await store.createAlbum(album);
      const out: ImageInfo[] = [];
      for (let i = 0; i < IMAGES_PER_ALBUM; i++) {
        out.push(await store.commitImage(album, `img-${String(i).padStart(3, '0')}.bin`, await stageIn(store.stagingDir, randomBytes(64 + i))));
      }
      return out;
    }));
    return infos.flat();
  } finally {
    await store.close();
  }
}

async function stageIn(stagingDir: string, bytes: Buffer) {
  const file = path.join(stagingDir, `upload-${randomUUID()}`);
  await fs.writeFile(file, bytes);
  return { path: file, ...(await describeFile(file)) };
}

async function all<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function sha256Of(stream: NodeJS.ReadableStream): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { describeFile } from '../../src/albums/image-meta.js';
import { compareCodePoints, S3Layout } from '../../src/albums/s3/s3-layout.js';
import { S3AlbumStore, type S3StoreOptions } from '../../src/albums/s3/s3-store.js';
import { S3Bucket, createS3Client } from '../../src/albums/s3/s3-bucket.js';
import { ConflictError, ServiceUnavailableError } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { requireS3, TestBucket } from '../helpers/s3.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { albumStoreContract, stage } from './album-store.contract.js';

/**
 * S3AlbumStore against a real S3 server (S3_TEST_ENDPOINT; .ci/run starts
 * OpenStack Swift's s3api with scripts/swift-s3.sh): one bucket per run,
 * a fresh key prefix (an empty store) per test.
 */
describe('S3AlbumStore', function () {
  let bucket: TestBucket | undefined;
  const open: Array<{ store: S3AlbumStore; dir: string }> = [];

  before(async function () {
    bucket = await TestBucket.create(await requireS3(this));
  });
  after(async function () {
    await bucket?.destroy();
  });
  afterEach(async function () {
    for (const { store, dir } of open.splice(0)) {
      await store.close();
      await removeDir(dir);
    }
  });

  /** A node: its own data dir (staging), on the given prefix of the run's bucket. */
  async function node(prefix: string, options: S3StoreOptions = {}): Promise<S3AlbumStore> {
    const dir = await makeTmpDir();
    const { store } = await S3AlbumStore.open(bucket!.settings(prefix), dir, silentLogger(), options);
    open.push({ store, dir });
    return store;
  }

  albumStoreContract(
    'S3AlbumStore',
    async () => {
      const store = await node(TestBucket.prefix());
      return { store, close: async () => undefined }; // closed by the afterEach above
    },
    { compare: compareCodePoints },
  );

  // The same contract with the node-local cache trusted (a feed that follows from the start, one node).
  albumStoreContract(
    'S3AlbumStore with its metadata cache',
    async () => {
      const store = await node(TestBucket.prefix(), { cache: { budgetBytes: 1024 * 1024, ttlMs: 60_000, strict: false } });
      store.follow({ follow: (_listener, following) => following(true) });
      return { store, close: async () => undefined }; // closed by the afterEach above
    },
    { compare: compareCodePoints },
  );

  describe('conditional writes (If-None-Match: *)', function () {
    it("detects whether the backend honours If-None-Match on PUT, as a raw request shows", async function () {
      const raw = bucket!.raw();
      const key = `${TestBucket.prefix()}probe`;
      const put = () => raw.client.send(new PutObjectCommand({ Bucket: raw.name, Key: key, Body: 'x', IfNoneMatch: '*' }));
      let expected: 'put' | 'none';
      try {
        await put();
        expected = await put().then(() => 'none' as const, (err) => (err.$metadata?.httpStatusCode === 412 ? 'put' : Promise.reject(err)));
      } catch (err) {
        // Swift's s3api: 501 NotImplemented "Conditional object PUTs are not supported."
        expect((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).to.equal(501);
        expected = 'none';
      }
      const store = await node(TestBucket.prefix());
      expect(store.bucket.conditionalWrites).to.equal(expected);
    });

    for (const mode of ['auto', 'none'] as const) {
      it(`two nodes creating one album name one after the other: the second gets ConflictError (${mode})`, async function () {
        const prefix = TestBucket.prefix();
        const [a, b] = [await node(prefix, { conditionalWrites: mode }), await node(prefix, { conditionalWrites: mode })];
        await a.createAlbum('shared');
        expect(await b.createAlbum('shared').catch((e) => e)).to.be.instanceOf(ConflictError);
        await a.commitImage('shared', 'x', await stage(a, randomBytes(10)));
        expect(await b.commitImage('shared', 'x', await stage(b, randomBytes(10))).catch((e) => e)).to.be.instanceOf(ConflictError);
      });
    }

    it('two nodes creating one name at the same moment: exactly one wins where the backend honours If-None-Match', async function () {
      const prefix = TestBucket.prefix();
      const [a, b] = [await node(prefix), await node(prefix)];
      const outcomes = [];
      for (let i = 0; i < 5; i++) {
        const results = await Promise.allSettled([a.createAlbum(`race-${i}`), b.createAlbum(`race-${i}`)]);
        outcomes.push(results.filter((r) => r.status === 'fulfilled').length);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).to.be.instanceOf(ConflictError);
      }
      // With HEAD-then-PUT (Swift) both may win a race: the documented window. Never neither.
      if (a.bucket.conditionalWrites === 'put') expect(outcomes).to.deep.equal([1, 1, 1, 1, 1]);
      else expect(outcomes.every((n) => n >= 1)).to.equal(true);
      expect((await a.listAlbums()).items).to.have.length(5);
    });
  });

  describe('several nodes on one bucket', function () {
    it('sees through node B what node A stored, renamed and deleted', async function () {
      const prefix = TestBucket.prefix();
      const [a, b] = [await node(prefix), await node(prefix)];
      await a.createAlbum('album');
      const bytes = randomBytes(5000);
      const info = await a.commitImage('album', 'pic.bin', await stage(a, bytes));
      expect((await b.listImages('album')).items).to.deep.equal(['pic.bin']);
      expect(await b.findImage(info.id)).to.deep.equal({ album: 'album', name: 'pic.bin' });
      const handle = await b.openImage('album', 'pic.bin');
      expect(await readAll(handle.stream({ start: 100, end: 199 }))).to.deep.equal(bytes.subarray(100, 200));
      await a.renameImage('album', 'pic.bin', 'renamed.bin');
      expect(await b.findImage(info.id)).to.deep.equal({ album: 'album', name: 'renamed.bin' });
      await a.deleteAlbum('album');
      expect(await b.findImage(info.id)).to.equal(undefined);
      expect((await b.listAlbums()).items).to.deep.equal([]);
    });

    it('never mixes versions of a name another node replaced after it was opened: the opening GET\'s bytes, or an error', async function () {
      const prefix = TestBucket.prefix();
      const [a, b] = [await node(prefix), await node(prefix)];
      await a.createAlbum('album');
      const old = randomBytes(1000);
      await a.commitImage('album', 'x', await stage(a, old));
      const whole = await b.openImage('album', 'x');
      const ranged = await b.openImage('album', 'x');
      await a.deleteImage('album', 'x');
      await a.commitImage('album', 'x', await stage(a, randomBytes(1000)));
      // The whole image is the body of the GET that opened it (one request per download): all of the old version.
      expect(await readAll(whole.stream())).to.deep.equal(old);
      // A range is a GET of its own, pinned to the opened version's ETag.
      const err = await readAll(ranged.stream({ start: 10, end: 19 })).catch((e: Error) => e);
      expect(err).to.be.instanceOf(Error);
      expect((err as Error).message).to.match(/replaced or deleted/);
      await Promise.all([whole.close(), ranged.close()]);
    });
  });

  describe('large objects', function () {
    it('uploads a 9 MiB image in parts and reads any range of it back, across the part boundary', async function () {
      this.timeout(30_000);
      const store = await node(TestBucket.prefix());
      await store.createAlbum('big');
      const bytes = randomBytes(9 * 1024 * 1024);
      await store.commitImage('big', 'large.bin', await stage(store, bytes));
      const boundary = 8 * 1024 * 1024;
      const handle = await store.openImage('big', 'large.bin');
      expect(await readAll(handle.stream({ start: boundary - 10, end: boundary + 9 }))).to.deep.equal(bytes.subarray(boundary - 10, boundary + 10));
      const copy = await store.openImage('big', 'large.bin');
      expect((await import('node:fs')).readFileSync(await copy.localPath()).equals(bytes)).to.equal(true);
      await copy.close();
    });

    it('streams a 96 MiB upload from the staged file, never holding the whole file in memory', async function () {
      this.timeout(60_000);
      const store = await node(TestBucket.prefix());
      await store.createAlbum('big');
      await store.commitImage('big', 'warm-up.bin', await stage(store, randomBytes(1000))); // the SDK's own first-use allocations
      const size = 96 * 1024 * 1024;
      const file = path.join(store.stagingDir, 'upload-huge');
      const chunk = randomBytes(1024 * 1024);
      await writeFile(file, (function* () {
        for (let i = 0; i < size / chunk.length; i++) yield chunk;
      })());
      const staged = { path: file, ...(await describeFile(file)) };
      // Live buffers only: collect the garbage before each sample (V8 frees Buffers lazily).
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      gc();
      const before = process.memoryUsage().arrayBuffers;
      let peak = before;
      const sampler = setInterval(() => {
        gc();
        peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      }, 250);
      try {
        await store.commitImage('big', 'huge.bin', staged);
      } finally {
        clearInterval(sampler);
      }
      // Two 8 MiB parts in flight and one being read: about 24 MiB whatever the file's size; buffering it would take 96.
      expect((peak - before) / 1024 / 1024).to.be.below(40);
      expect((await store.imageInfos('big', ['huge.bin']))[0]).to.include({ size, sha256: staged.sha256 });
    });

    it('renames an object larger than one copy part with UploadPartCopy', async function () {
      this.timeout(30_000);
      const store = await node(TestBucket.prefix(), { copyPartBytes: 5 * 1024 * 1024 });
      await store.createAlbum('big');
      const bytes = randomBytes(6 * 1024 * 1024 + 7);
      await store.commitImage('big', 'a.bin', await stage(store, bytes));
      await store.renameImage('big', 'a.bin', 'b.bin');
      expect(await readAll((await store.openImage('big', 'b.bin')).stream())).to.deep.equal(bytes);
    });
  });

  describe('interrupted operations', function () {
    it('finishes an album rename cut short when the same rename is asked again', async function () {
      const prefix = TestBucket.prefix();
      const store = await node(prefix);
      const layout = new S3Layout(prefix);
      const raw = bucket!.raw();
      await store.createAlbum('from');
      const infos = [];
      for (const name of ['1', '2', '3']) infos.push(await store.commitImage('from', name, await stage(store, randomBytes(100))));
      // State after a crash that copied image 1 only: both markers journal the move.
      const [marker] = await store.albumInfos(['from']);
      await raw.putJson(layout.albumKey('to'), { createdAt: marker.createdAt, renamedFrom: 'from' });
      await raw.putJson(layout.albumKey('from'), { createdAt: marker.createdAt, renamingTo: 'to' });
      await raw.copy(layout.imageKey('from', '1'), layout.imageKey('to', '1'), 100);
      await raw.copy(layout.metaKey('from', '1'), layout.metaKey('to', '1'), 100);

      expect(await store.renameAlbum('from', 'other').catch((e) => e)).to.be.instanceOf(ConflictError);
      expect(await store.renameAlbum('from', 'to')).to.deep.equal({ name: 'to', createdAt: marker.createdAt });
      expect((await store.listAlbums()).items).to.deep.equal(['to']);
      expect((await store.listImages('to')).items).to.deep.equal(['1', '2', '3']);
      for (const info of infos) expect(await store.findImage(info.id)).to.deep.equal({ album: 'to', name: info.name });
      expect(await raw.getJson(layout.albumKey('to'))).to.deep.equal({ createdAt: marker.createdAt });
    });

    it('takes over a stale claim (metadata without bytes, older than claimTtlMs) but not a fresh one', async function () {
      const prefix = TestBucket.prefix();
      const layout = new S3Layout(prefix);
      const store = await node(prefix, { claimTtlMs: 60_000 });
      await store.createAlbum('a');
      const old = new Date(Date.now() - 120_000).toISOString();
      const claim = { id: 'AAAAAAAAAAAAAAAA', name: 'x', size: 1, type: 'application/octet-stream', sha256: '0'.repeat(64), createdAt: old, modifiedAt: old };
      await bucket!.raw().putJson(layout.metaKey('a', 'x'), claim);
      await bucket!.raw().putJson(layout.metaKey('a', 'y'), { ...claim, name: 'y', modifiedAt: new Date().toISOString() });
      const info = await store.commitImage('a', 'x', await stage(store, randomBytes(10)));
      expect(info.id).to.not.equal(claim.id);
      expect(await store.commitImage('a', 'y', await stage(store, randomBytes(10))).catch((e) => e)).to.be.instanceOf(ConflictError);
    });

    it('starts a re-created album empty even when an interrupted delete left objects behind', async function () {
      const prefix = TestBucket.prefix();
      const layout = new S3Layout(prefix);
      const store = await node(prefix);
      await bucket!.raw().putJson(layout.imageKey('ghost', 'left.bin'), {});
      await store.createAlbum('ghost');
      expect((await store.listImages('ghost')).items).to.deep.equal([]);
      expect(await bucket!.raw().hasAny(layout.imagesPrefix('ghost'))).to.equal(false);
    });
  });

  describe('requests per operation', function () {
    /** Counts the store's S3 requests (every command its client sends, retries aside). */
    function countRequests(store: S3AlbumStore): { n: number } {
      const counter = { n: 0 };
      store.bucket.client.middlewareStack.add((next) => async (args) => {
        counter.n += 1;
        return next(args);
      }, { step: 'initialize', name: `count-${randomBytes(4).toString('hex')}` });
      return counter;
    }

    it('downloads an image in one GET, and reads its metadata with at most a HEAD, on a node that never saw it', async function () {
      const prefix = TestBucket.prefix();
      const [a, b] = [await node(prefix), await node(prefix)];
      await a.createAlbum('album');
      const bytes = randomBytes(3000);
      const info = await a.commitImage('album', 'pic.bin', await stage(a, bytes));
      const requests = countRequests(b);
      const handle = await b.openImage('album', 'pic.bin');
      expect(handle.info).to.deep.equal(info);
      expect(await readAll(handle.stream())).to.deep.equal(bytes);
      await handle.close();
      expect(requests.n, 'requests for one download').to.equal(1);
      requests.n = 0;
      expect(await b.imageInfos('album', ['pic.bin'])).to.deep.equal([info]);
      expect(requests.n, 'requests for one image\'s metadata').to.equal(1);
    });

    it('lists a page of 20 with details in one request where the cache is trusted, and asks again only for what changed', async function () {
      const prefix = TestBucket.prefix();
      const cache = { budgetBytes: 1024 * 1024, ttlMs: 60_000, strict: false };
      const [a, b] = [await node(prefix, { cache }), await node(prefix, { cache })];
      for (const store of [a, b]) store.follow({ follow: (_listener, following) => following(true) });
      await a.createAlbum('album');
      const names = Array.from({ length: 20 }, (_, i) => `img-${String(i).padStart(2, '0')}`);
      await Promise.all(names.map(async (name) => a.commitImage('album', name, await stage(a, randomBytes(50)))));
      const requests = countRequests(a);
      const page = await a.listImages('album', { limit: 20 });
      const details = await a.imageInfos('album', page.items);
      expect(details.map((d) => d.name)).to.deep.equal(names);
      expect(requests.n, 'requests for a page of 20 with details on the node that uploaded them').to.equal(1);
      // Node B: the first page fills its cache (HEADs), the next costs the listing alone.
      const seen = countRequests(b);
      await b.imageInfos('album', (await b.listImages('album', { limit: 20 })).items);
      expect(seen.n).to.be.at.most(2 + names.length);
      seen.n = 0;
      expect(await b.imageInfos('album', (await b.listImages('album', { limit: 20 })).items)).to.deep.equal(details);
      expect(seen.n).to.equal(1);
      // A replaced image (no event told B): the listing's ETag shows it, and only it is read again.
      await a.deleteImage('album', 'img-05');
      const replaced = await a.commitImage('album', 'img-05', await stage(a, randomBytes(60)));
      seen.n = 0;
      const again = await b.imageInfos('album', (await b.listImages('album', { limit: 20 })).items);
      expect(again[5]).to.deep.equal(replaced);
      expect(seen.n).to.equal(2);
    });
  });

  describe('bucket check (fsck)', function () {
    it('finds each kind of damage made by hand in the bucket, repairs it, and then finds nothing', async function () {
      const prefix = TestBucket.prefix();
      const layout = new S3Layout(prefix);
      const raw = bucket!.raw();
      const store = await node(prefix, { claimTtlMs: 0 });
      await store.createAlbum('a');
      const add = async (album: string, name: string, bytes = randomBytes(40)) => store.commitImage(album, name, await stage(store, bytes));
      const [gone, metaless, , plain, lost, contentless, changed] = await Promise.all(
        ['bytes-gone', 'meta-gone', 'spare', 'plain', 'id-lost', 'content-lost', 'changed'].map((name) => add('a', name)),
      );
      await store.createAlbum('old');
      const moving = await add('old', 'moving');
      const [oldMarker] = await store.albumInfos(['old']);

      await raw.delete(layout.imageKey('a', gone.name)); // metadata without bytes
      await raw.delete(layout.metaKey('a', metaless.name)); // bytes without metadata (the object still carries it)
      await raw.putJson(layout.imageKey('a', 'foreign.json'), { put: 'by another tool' }); // bytes without any metadata
      await raw.client.send(new PutObjectCommand({ Bucket: raw.name, Key: layout.imageKey('a', plain.name), Body: (await readAll((await store.openImage('a', plain.name)).stream())) })); // no user metadata
      await raw.delete(layout.idKey(lost.id));
      await raw.putJson(layout.idKey('stale-id'), { album: 'a', name: 'nothing' });
      await raw.delete(layout.contentKey(contentless.sha256, contentless.id));
      await raw.putJson(layout.contentKey('f'.repeat(64), 'stale-id'), {});
      const tampered = randomBytes(40);
      const head = await raw.head(layout.imageKey('a', changed.name));
      await raw.client.send(new PutObjectCommand({ Bucket: raw.name, Key: layout.imageKey('a', changed.name), Body: tampered, Metadata: head!.metadata }));
      await raw.putJson(layout.albumKey('old'), { createdAt: oldMarker.createdAt, renamingTo: 'new' }); // a rename cut short
      await raw.putJson(layout.imageKey('ghost', 'left.bin'), {}); // an album without its marker

      const expected = [
        'metadata-without-file meta/a/bytes-gone', 'file-without-metadata images/a/meta-gone', 'file-without-metadata images/a/foreign.json',
        'object-metadata-missing images/a/plain', `id-entry-missing ids/${lost.id}`, 'stale-id-entry ids/stale-id',
        `content-entry-missing content/${contentless.sha256}/${contentless.id}`, `stale-content-entry content/${'f'.repeat(64)}/stale-id`,
        'content-mismatch images/a/changed', 'album-rename-unfinished albums/old', 'album-without-metadata albums/ghost',
      ];
      const kinds = (report: { problems: Array<{ kind: string; path: string }> }) => report.problems.map((p) => `${p.kind} ${p.path.slice(p.path.indexOf(prefix) + prefix.length)}`);
      const found = await store.check({ verify: true, repair: false });
      expect(kinds(found)).to.include.members(expected);
      expect(found.problems.every((p) => !p.repaired)).to.equal(true);
      expect(await raw.head(layout.metaKey('a', gone.name)), 'nothing repaired without repair').to.not.equal(undefined);

      const repaired = await store.check({ verify: true, repair: true });
      expect(kinds(repaired)).to.include.members(expected);
      const after = await store.check({ verify: true, repair: false });
      expect(after.problems).to.deep.equal([]);
      expect(after).to.include({ albums: 3 });
      // What the repairs left: ids found again, the metadata back with its id, the rename finished, the content rewritten.
      expect(await store.findImage(lost.id)).to.deep.equal({ album: 'a', name: lost.name });
      expect((await store.imageInfos('a', [metaless.name]))[0].id).to.equal(metaless.id);
      expect((await store.listImages('new')).items).to.deep.equal(['moving']);
      expect(await store.findImage(moving.id)).to.deep.equal({ album: 'new', name: 'moving' });
      expect((await store.imageInfos('a', [changed.name]))[0]).to.include({ id: changed.id, size: 40, sha256: (await describeBytes(tampered)).sha256 });
      expect((await store.listImages('ghost')).items).to.deep.equal(['left.bin']);
      expect(await store.isContentUsed(contentless.sha256)).to.equal(true);
    });
  });

  it('turns an unreachable backend into ServiceUnavailableError (503), not an unknown error (500)', async function () {
    const dead = createS3Client({ ...bucket!.settings(), endpoint: 'http://127.0.0.1:1' });
    try {
      const err = await new S3Bucket(dead, bucket!.name).head('any').catch((e: Error) => e);
      expect(err).to.be.instanceOf(ServiceUnavailableError);
      expect((err as ServiceUnavailableError).status).to.equal(503);
      expect((err as Error).message).to.match(/^object storage unavailable: /);
    } finally {
      dead.destroy();
    }
  });

  it('deletes every object of an album (batch delete with Content-MD5)', async function () {
    const prefix = TestBucket.prefix();
    const layout = new S3Layout(prefix);
    const store = await node(prefix);
    await store.createAlbum('a');
    await Promise.all(Array.from({ length: 6 }, async (_, i) => store.commitImage('a', `i${i}`, await stage(store, randomBytes(20)))));
    await store.deleteAlbum('a');
    for (const p of layout.allPrefixes.filter((p) => !p.endsWith('probe/'))) expect(await bucket!.raw().count(p), p).to.equal(0);
  });
});

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function describeBytes(bytes: Buffer): Promise<{ sha256: string }> {
  const { createHash } = await import('node:crypto');
  return { sha256: createHash('sha256').update(bytes).digest('hex') };
}

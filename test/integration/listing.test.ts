import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { makePng } from '../helpers/images.js';
import { removeDir } from '../helpers/tmp-dir.js';
import { albumPath, createAlbum, listAll, sha256, uploadImage } from '../helpers/api.js';

// Issue 18 added the placeholders (dominantColor, thumbhash) and the perceptual hash (phash).
const IMAGE_KEYS = ['album', 'createdAt', 'dominantColor', 'format', 'hasAlpha', 'height', 'id', 'modifiedAt', 'name', 'orientation', 'pages', 'phash', 'sha256', 'size', 'thumbhash', 'type', 'width'];
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Runs `fn` over `items`, `limit` at a time. */
async function inBatches<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += limit) await Promise.all(items.slice(i, i + limit).map(fn));
}

/** JavaScript's default sort: UTF-16 code units, the order the API promises. */
const sorted = (names: string[]) => [...names].sort();

describe('listings: order, paging and details', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(async () => svc.close());

  it('lists albums and images sorted by name (code-unit order), whatever the creation order', async () => {
    const albumNames = ['zeta', 'Alpha', 'alpha', 'été', '10', '9', 'b c', 'émile'];
    for (const name of albumNames) await createAlbum(svc.http, name);
    const albums = await svc.http.get('/api/v1/albums').expect(200);
    expect(albums.body).to.deep.equal({ albumList: sorted(albumNames) });
    expect(albums.body.albumList).to.deep.equal(['10', '9', 'Alpha', 'alpha', 'b c', 'zeta', 'émile', 'été']);

    const imageNames = ['b.png', 'A.png', 'a.png', '_x.png', 'ä.png', '1.png', '10.png', '2.png'];
    const png = await makePng(2, 2);
    for (const name of imageNames) await uploadImage(svc.http, 'zeta', name, png);
    const images = await svc.http.get(`${albumPath('zeta')}/images`).expect(200);
    expect(images.body).to.deep.equal({ imageList: sorted(imageNames) });
    const empty = await svc.http.get(`${albumPath('alpha')}/images`).expect(200);
    expect(empty.body).to.deep.equal({ imageList: [] });
  });

  it('answers 404 for the images of an unknown album', async () => {
    const res = await svc.http.get(`${albumPath('nope')}/images`).expect(404);
    expect(res.body).to.deep.equal({ error: 'nope album is not present' });
  });

  describe('paging 250 images with limit=40', () => {
    const ALBUM = 'paged';
    const COUNT = 250;
    let names: string[];
    before(async function () {
      this.timeout(30_000);
      await createAlbum(svc.http, ALBUM);
      const png = await makePng(2, 2);
      // Unpadded numbers, so that code-unit order differs from creation order.
      names = Array.from({ length: COUNT }, (_, i) => `img-${i}.png`);
      await inBatches(names, 8, (name) => uploadImage(svc.http, ALBUM, name, png));
    });

    it('walks every image exactly once, in order, 40 per page, and the last page has no cursor', async () => {
      const { names: walked, pages } = await listAll(svc.http, `${albumPath(ALBUM)}/images`, 40);
      expect(walked).to.deep.equal(sorted(names));
      expect(new Set(walked).size).to.equal(COUNT);
      expect(pages.map((p) => p.length)).to.deep.equal([40, 40, 40, 40, 40, 40, 10]);
    });

    it('gives the next page from a cursor, and no cursor when the limit reaches the end', async () => {
      const first = await svc.http.get(`${albumPath(ALBUM)}/images`).query({ limit: 40 }).expect(200);
      expect(first.body.nextCursor).to.be.a('string').and.match(/^[A-Za-z0-9_-]+$/);
      const second = await svc.http.get(`${albumPath(ALBUM)}/images`).query({ limit: 40, cursor: first.body.nextCursor }).expect(200);
      expect(second.body.imageList).to.deep.equal(sorted(names).slice(40, 80));
      const exact = await svc.http.get(`${albumPath(ALBUM)}/images`).query({ limit: COUNT }).expect(200);
      expect(exact.body.imageList).to.have.length(COUNT);
      expect(exact.body).to.not.have.property('nextCursor');
      const all = await svc.http.get(`${albumPath(ALBUM)}/images`).expect(200);
      expect(all.body.imageList).to.have.length(COUNT);
      expect(all.body).to.not.have.property('nextCursor');
    });

    it('keeps a cursor valid when its image is deleted or new images arrive between pages', async () => {
      await createAlbum(svc.http, 'moving');
      const png = await makePng(2, 2);
      await inBatches(['a', 'b', 'c', 'd', 'e', 'f'].map((n) => `${n}.png`), 3, (name) => uploadImage(svc.http, 'moving', name, png));
      const first = await svc.http.get(`${albumPath('moving')}/images`).query({ limit: 3 }).expect(200);
      expect(first.body.imageList).to.deep.equal(['a.png', 'b.png', 'c.png']);
      await svc.http.delete(albumPath('moving', 'c.png')).expect(200); // the cursor's own image
      await uploadImage(svc.http, 'moving', 'a2.png', png); // before the cursor: not seen again
      await uploadImage(svc.http, 'moving', 'c2.png', png); // after the cursor: seen
      const rest = await svc.http.get(`${albumPath('moving')}/images`).query({ limit: 10, cursor: first.body.nextCursor }).expect(200);
      expect(rest.body.imageList).to.deep.equal(['c2.png', 'd.png', 'e.png', 'f.png']);
      expect(rest.body).to.not.have.property('nextCursor');
    });

    it('pages albums the same way', async () => {
      const albumNames = Array.from({ length: 45 }, (_, i) => `pa-${i}`);
      await inBatches(albumNames, 8, (name) => createAlbum(svc.http, name));
      const everything = (await svc.http.get('/api/v1/albums').expect(200)).body.albumList as string[];
      const { names: walked, pages } = await listAll(svc.http, '/api/v1/albums', 10);
      expect(walked).to.deep.equal(everything);
      expect(walked).to.deep.equal(sorted(everything));
      expect(walked).to.include.members(albumNames);
      expect(pages.slice(0, -1).every((p) => p.length === 10)).to.equal(true);
      expect(pages.at(-1)!.length).to.be.within(1, 10);
    });
  });

  describe('details=true', () => {
    it('adds an image object per name, in the same order, with id, size, type, sha256 and times', async () => {
      await createAlbum(svc.http, 'detailed');
      const bytes = new Map<string, Buffer>();
      for (const [i, name] of ['c.png', 'a.png', 'b.png'].entries()) {
        const png = await makePng(4 + i, 4);
        bytes.set(name, png);
        await uploadImage(svc.http, 'detailed', name, png);
      }
      const res = await svc.http.get(`${albumPath('detailed')}/images`).query({ details: 'true' }).expect(200);
      expect(res.body.imageList).to.deep.equal(['a.png', 'b.png', 'c.png']);
      expect(res.body.images.map((i: { name: string }) => i.name)).to.deep.equal(res.body.imageList);
      for (const image of res.body.images) {
        expect(Object.keys(image).sort()).to.deep.equal(IMAGE_KEYS);
        const png = bytes.get(image.name)!;
        expect(image).to.include({ album: 'detailed', size: png.length, type: 'image/png', sha256: sha256(png) });
        expect(image.id).to.be.a('string').with.length.above(7);
        expect(image.createdAt).to.match(ISO_TIME);
        expect(image.modifiedAt).to.match(ISO_TIME);
      }
      expect(new Set(res.body.images.map((i: { id: string }) => i.id)).size).to.equal(3);

      const page = await svc.http.get(`${albumPath('detailed')}/images`).query({ details: '1', limit: 2 }).expect(200);
      expect(page.body.images.map((i: { name: string }) => i.name)).to.deep.equal(['a.png', 'b.png']);
      expect(page.body.nextCursor).to.be.a('string');
      const plain = await svc.http.get(`${albumPath('detailed')}/images`).query({ details: 'false' }).expect(200);
      expect(plain.body).to.deep.equal({ imageList: ['a.png', 'b.png', 'c.png'] });
    });

    it('adds an album object per name, with its creation time', async () => {
      const res = await svc.http.get('/api/v1/albums').query({ details: 'true', limit: 5 }).expect(200);
      expect(res.body.albums.map((a: { name: string }) => a.name)).to.deep.equal(res.body.albumList);
      for (const album of res.body.albums) {
        expect(Object.keys(album).sort()).to.deep.equal(['createdAt', 'name']);
        expect(album.createdAt).to.match(ISO_TIME);
      }
    });
  });

  describe('bad query parameters: 400 naming the parameter', () => {
    for (const limit of ['0', '-1', 'abc', '100001', '1.5', '']) {
      it(`rejects limit=${JSON.stringify(limit)} on both listings`, async () => {
        for (const url of ['/api/v1/albums', `${albumPath('zeta')}/images`]) {
          const res = await svc.http.get(url).query({ limit }).expect(400);
          expect(Object.keys(res.body)).to.deep.equal(['error']);
          expect(res.body.error, url).to.match(/^limit: /);
        }
      });
    }

    it('rejects a forged or foreign cursor', async () => {
      // Not base64url, padded, or not UTF-8 once decoded (0xff): none can come from nextCursor.
      const forged = ['not a cursor', '!!!', '../../etc', Buffer.from('x').toString('base64'), `${Buffer.from('zeta').toString('base64url')}=`, '_w'];
      for (const cursor of forged) {
        for (const url of ['/api/v1/albums', `${albumPath('zeta')}/images`]) {
          const res = await svc.http.get(url).query({ cursor }).expect(400);
          expect(res.body.error, `${url} ${cursor}`).to.match(/cursor/i);
        }
      }
      const long = await svc.http.get('/api/v1/albums').query({ cursor: 'A'.repeat(5000) }).expect(400);
      expect(long.body.error).to.match(/^cursor: /);
    });

    it('rejects an unknown details value', async () => {
      const res = await svc.http.get('/api/v1/albums').query({ details: 'yes please' }).expect(400);
      expect(res.body.error).to.match(/^details: /);
    });
  });
});

describe('listing a 20,000-image album adopted on start', () => {
  const COUNT = 20_000;
  let svc: TestService | undefined;
  let dataDir: string | undefined;
  after(async () => {
    await svc?.stop();
    if (dataDir) await removeDir(dataDir);
  });

  it('adopts files written straight into the album dir and pages through the middle correctly', async function () {
    this.timeout(60_000);
    const prepared = Date.now();
    const first = await startTestService();
    dataDir = first.dataDir;
    await createAlbum(first.http, 'huge');
    await first.stop();

    // <dataDir>/image-store/<album>/<name>, as layout.ts puts them; no metadata: recovery adopts them.
    const png = await makePng(1, 1);
    const names = Array.from({ length: COUNT }, (_, i) => `photo-${String(i).padStart(5, '0')}.png`);
    const albumDir = path.join(dataDir, 'image-store', 'huge');
    // Synchronous writes: for 20,000 tiny files they are several times faster than the thread pool.
    for (const name of names) writeFileSync(path.join(albumDir, name), png);

    const startedAt = Date.now();
    svc = await startTestService({ dataDir });
    const startMs = Date.now() - startedAt;
    expect(svc.service.recovery.images).to.equal(COUNT);
    expect(svc.service.recovery.problems.filter((p) => p.kind !== 'file-without-metadata')).to.deep.equal([]);
    expect(svc.service.recovery.problems).to.have.length(COUNT);

    // A page of 100 from the middle: find the cursor for item 9,999 with one big page, then ask.
    const head = await svc.http.get(`${albumPath('huge')}/images`).query({ limit: 10_000 }).expect(200);
    expect(head.body.imageList).to.deep.equal(names.slice(0, 10_000));
    const timings: number[] = [];
    let cursor = head.body.nextCursor as string;
    for (let page = 0; page < 5; page += 1) {
      const t0 = process.hrtime.bigint();
      const res = await svc.http.get(`${albumPath('huge')}/images`).query({ limit: 100, cursor, details: page === 0 ? 'true' : 'false' }).expect(200);
      timings.push(Number(process.hrtime.bigint() - t0) / 1e6);
      const from = 10_000 + page * 100;
      expect(res.body.imageList).to.deep.equal(names.slice(from, from + 100));
      if (page === 0) {
        expect(res.body.images).to.have.length(100);
        expect(res.body.images[0]).to.include({ name: names[from], album: 'huge', size: png.length, type: 'image/png', sha256: sha256(png) });
      }
      cursor = res.body.nextCursor;
    }
    const rest = await svc.http.get(`${albumPath('huge')}/images`).query({ limit: 9_400, cursor }).expect(200);
    expect(rest.body.imageList).to.deep.equal(names.slice(10_500, COUNT - 100));
    const last = await svc.http.get(`${albumPath('huge')}/images`).query({ limit: 100, cursor: rest.body.nextCursor }).expect(200);
    expect(last.body.imageList).to.deep.equal(names.slice(COUNT - 100));
    expect(last.body).to.not.have.property('nextCursor');

    console.log(
      `      [${COUNT} images] files written and adopted on start in ${startMs} ms (whole test so far ${Date.now() - prepared} ms);`,
      `pages of 100 from the middle: ${timings.map((t) => `${t.toFixed(1)} ms`).join(', ')} (first with details=true)`,
    );
  });
});

import { promises as fs } from 'node:fs';
import { expect } from 'chai';
import type { Response } from 'supertest';
import { defaultConfig } from '../../src/config.js';
import { Layout } from '../../src/albums/layout.js';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import { noisyJpeg } from '../helpers/image-fixtures.js';
import { makePng, pngOfSize } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';

// Issue 13, the read path: metadata, ready-made headers, listing pages and small files' bytes are
// kept in memory. Every write path must leave no stale byte, header or listing behind, and a
// cached answer must open no file (shown by removing the file behind the store's back).

const IMAGE_HEADERS = ['etag', 'last-modified', 'content-type', 'content-length', 'content-disposition', 'cache-control'];

/** Everything a client can read about one image, by name, by id and in listings. */
interface Seen {
  name: { status: number; bytes?: string; headers: Record<string, string | undefined> };
  id: { status: number; bytes?: string; headers: Record<string, string | undefined> };
  derivative: { status: number; bytes?: string; etag?: string };
  metadata: { status: number; body: Record<string, unknown> };
  names: string[] | number;
  details: Array<Record<string, unknown>> | number;
  albums: Array<Record<string, unknown>>;
}

describe('read path caches (issue 13)', function () {
  this.timeout(60_000);
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(async () => svc?.close());

  const get = (url: string) => svc.http.get(url).buffer(true).parse(rawBody);
  const pick = (res: Response) => Object.fromEntries(IMAGE_HEADERS.map((h) => [h, res.headers[h] as string | undefined]));
  const json = (res: Response) => JSON.parse((res.body as Buffer).toString('utf8'));

  /** Reads `album/name` (and the image with `id`) every way a client can, filling every cache on the way. */
  async function see(album: string, name: string, id: string): Promise<Seen> {
    const byName = await get(albumPath(album, name));
    const byId = await get(`/api/v1/images/${id}`);
    const derivative = await get(`${albumPath(album, name)}?w=3&format=png`);
    const metadata = await get(`${albumPath(album, name)}/metadata`);
    const names = await get(`${albumPath(album)}/images`);
    const details = await get(`${albumPath(album)}/images?details=true`);
    const albums = await get('/api/v1/albums?details=true');
    const body = (res: Response) => (res.status === 200 ? sha256(res.body as Buffer) : undefined);
    return {
      name: { status: byName.status, bytes: body(byName), headers: pick(byName) },
      id: { status: byId.status, bytes: body(byId), headers: pick(byId) },
      derivative: { status: derivative.status, bytes: body(derivative), etag: derivative.headers.etag },
      metadata: { status: metadata.status, body: json(metadata) },
      names: names.status === 200 ? json(names).imageList : names.status,
      details: details.status === 200 ? json(details).images : details.status,
      albums: json(albums).albums,
    };
  }

  /** Reads twice: the second answer comes from the caches the first filled, and must be the same. */
  async function seeTwice(album: string, name: string, id: string): Promise<Seen> {
    const first = await see(album, name, id);
    expect(await see(album, name, id), `${album}/${name}: cached answers differ from first answers`).to.deep.equal(first);
    return first;
  }

  /** A fresh album holding `x.png` (and `other.png`), read every way once. */
  async function albumWithImage(album: string, bytes: Buffer): Promise<{ id: string; before: Seen }> {
    await createAlbum(svc.http, album);
    await uploadImage(svc.http, album, 'other.png', await makePng(5, 5));
    const { id } = (await uploadImage(svc.http, album, 'x.png', bytes)).body.image;
    return { id, before: await seeTwice(album, 'x.png', id) };
  }

  describe('every write path invalidates what it changes', () => {
    it('image rename: the old name is gone everywhere, the new one has the same bytes and new headers', async () => {
      const bytes = await pngOfSize(3000);
      const { id, before } = await albumWithImage('rn', bytes);
      await new Promise((resolve) => setTimeout(resolve, 1100)); // a different Last-Modified second
      const renamed = (await svc.http.patch(albumPath('rn', 'x.png')).send({ imageName: 'y.png' }).expect(200)).body.image;

      const old = await see('rn', 'x.png', id);
      expect(old.name.status).to.equal(404);
      expect(old.metadata.status).to.equal(404);
      expect(old.names).to.deep.equal(['other.png', 'y.png']);
      expect((old.details as Array<{ name: string }>).map((d) => d.name)).to.deep.equal(['other.png', 'y.png']);
      expect((await svc.http.get(albumPath('rn', 'x.png')).set('If-None-Match', before.name.headers.etag!)).status, 'no 304 for a name that is gone').to.equal(404);

      const now = await seeTwice('rn', 'y.png', id);
      expect(now.name).to.deep.include({ status: 200, bytes: sha256(bytes) });
      expect(now.name.headers['content-disposition']).to.equal(`inline; filename="y.png"; filename*=UTF-8''y.png`);
      expect(now.name.headers['last-modified']).to.equal(new Date(renamed.modifiedAt).toUTCString()).and.not.equal(before.name.headers['last-modified']);
      expect(now.id).to.deep.include({ status: 200, bytes: sha256(bytes) });
      expect(now.id.headers['content-disposition']).to.match(/filename="y\.png"/);
      expect(now.derivative.bytes).to.equal(before.derivative.bytes);
      expect(now.metadata.body).to.include({ name: 'y.png', id, modifiedAt: renamed.modifiedAt });
      expect((now.details as Array<Record<string, unknown>>).find((d) => d.id === id)).to.include({ name: 'y.png', modifiedAt: renamed.modifiedAt });
    });

    it('image delete: 404 by name, by id and for a conditional request; gone from listings', async () => {
      const { id, before } = await albumWithImage('del', await pngOfSize(3100));
      await svc.http.delete(albumPath('del', 'x.png')).expect(200);
      const after = await see('del', 'x.png', id);
      expect([after.name.status, after.id.status, after.derivative.status, after.metadata.status]).to.deep.equal([404, 404, 404, 404]);
      expect(after.names).to.deep.equal(['other.png']);
      expect((after.details as Array<{ name: string }>).map((d) => d.name)).to.deep.equal(['other.png']);
      for (const url of [albumPath('del', 'x.png'), `/api/v1/images/${id}`]) {
        expect((await svc.http.get(url).set('If-None-Match', before.name.headers.etag!)).status, url).to.equal(404);
        expect((await svc.http.head(url)).status, `HEAD ${url}`).to.equal(404);
      }
    });

    it('re-upload of a deleted name with other bytes: the new bytes, ETag, length and derivative; the old id is gone', async () => {
      const first = await pngOfSize(3200);
      const second = await noisyJpeg(24, 24);
      const { id, before } = await albumWithImage('again', first);
      await svc.http.delete(albumPath('again', 'x.png')).expect(200);
      const newId = (await uploadImage(svc.http, 'again', 'x.png', second)).body.image.id;

      const now = await seeTwice('again', 'x.png', newId);
      expect(now.name).to.deep.include({ status: 200, bytes: sha256(second) });
      expect(now.name.headers).to.include({ etag: `"${sha256(second)}"`, 'content-length': String(second.length), 'content-type': 'image/jpeg' });
      expect(now.derivative.status).to.equal(200);
      expect(now.derivative.bytes).to.not.equal(before.derivative.bytes);
      expect(now.derivative.etag).to.not.equal(before.derivative.etag);
      expect(now.metadata.body).to.include({ id: newId, sha256: sha256(second), size: second.length });
      expect((now.details as Array<Record<string, unknown>>).find((d) => d.name === 'x.png')).to.include({ id: newId, sha256: sha256(second) });
      expect((await get(`/api/v1/images/${id}`)).status, 'the deleted image\'s id').to.equal(404);
      // A client still holding the old ETag gets the new image, not a 304.
      const revalidated = await get(albumPath('again', 'x.png')).set('If-None-Match', before.name.headers.etag!);
      expect(revalidated.status).to.equal(200);
      expect(sha256(revalidated.body as Buffer)).to.equal(sha256(second));
    });

    it('album rename: old paths 404, every answer under the new name says so (metadata, details, album list)', async () => {
      const bytes = await pngOfSize(3300);
      const { id, before } = await albumWithImage('old-album', bytes);
      await svc.http.patch(albumPath('old-album')).send({ albumName: 'new-album' }).expect(200);

      const old = await see('old-album', 'x.png', id);
      expect([old.name.status, old.metadata.status, old.names, old.details]).to.deep.equal([404, 404, 404, 404]);
      expect(old.albums.map((a) => a.name)).to.include('new-album').and.not.include('old-album');

      const now = await seeTwice('new-album', 'x.png', id);
      expect(now.name).to.deep.equal(before.name);
      expect(now.id).to.deep.equal(before.id);
      expect(now.metadata.body).to.include({ album: 'new-album', id });
      expect((now.details as Array<{ album: string }>).map((d) => d.album)).to.deep.equal(['new-album', 'new-album']);
      expect(now.albums.find((a) => a.name === 'new-album')).to.deep.equal({ ...before.albums.find((a) => a.name === 'old-album'), name: 'new-album' });
    });

    it('album rename onto a name that was used before: no page of the earlier album with that name comes back', async () => {
      await createAlbum(svc.http, 'reused');
      await uploadImage(svc.http, 'reused', 'first.png', await pngOfSize(3400));
      const firstPage = await svc.http.get(`${albumPath('reused')}/images?details=true`).expect(200);
      expect(firstPage.body.imageList).to.deep.equal(['first.png']);
      await svc.http.delete(albumPath('reused')).expect(200);
      await createAlbum(svc.http, 'elsewhere');
      await uploadImage(svc.http, 'elsewhere', 'second.png', await pngOfSize(3500));
      await svc.http.patch(albumPath('elsewhere')).send({ albumName: 'reused' }).expect(200);
      const page = await svc.http.get(`${albumPath('reused')}/images?details=true`).expect(200);
      expect(page.body.imageList).to.deep.equal(['second.png']);
      expect(page.body.images.map((i: { album: string }) => i.album)).to.deep.equal(['reused']);
    });

    it('album delete: every path 404s, the album list drops it', async () => {
      const { id } = await albumWithImage('doomed', await pngOfSize(3600));
      await svc.http.delete(albumPath('doomed')).expect(200);
      const after = await see('doomed', 'x.png', id);
      expect([after.name.status, after.id.status, after.metadata.status, after.names, after.details]).to.deep.equal([404, 404, 404, 404, 404]);
      expect(after.albums.map((a) => a.name)).to.not.include('doomed');
      expect((await svc.http.get('/api/v1/albums').expect(200)).body.albumList).to.not.include('doomed');
    });
  });

  describe('listing pages', () => {
    it('a kept page changes with each upload, rename and delete, for every page size and cursor', async () => {
      await createAlbum(svc.http, 'pages');
      const list = async (query: string) => (await svc.http.get(`${albumPath('pages')}/images?${query}`).expect(200)).body;
      const queries = ['', 'limit=2', 'details=true', 'details=1&limit=1'];
      const expectNames = async (names: string[]) => {
        for (let round = 0; round < 2; round++) {
          for (const q of queries) {
            const body = await list(q);
            const limit = /limit=(\d)/.exec(q)?.[1];
            const expected = limit ? names.slice(0, Number(limit)) : names;
            expect(body.imageList, `?${q}`).to.deep.equal(expected);
            if (q.includes('details')) expect(body.images.map((i: { name: string }) => i.name), `?${q}`).to.deep.equal(expected);
          }
          if (names.length > 2) expect((await list(`limit=2&cursor=${(await list('limit=2')).nextCursor}`)).imageList).to.deep.equal(names.slice(2, 4));
        }
      };
      await expectNames([]);
      await uploadImage(svc.http, 'pages', 'b.png', await pngOfSize(3700));
      await expectNames(['b.png']);
      await uploadImage(svc.http, 'pages', 'a.png', await pngOfSize(3701));
      await uploadImage(svc.http, 'pages', 'd.png', await pngOfSize(3702));
      await expectNames(['a.png', 'b.png', 'd.png']);
      await svc.http.patch(albumPath('pages', 'd.png')).send({ imageName: 'c.png' }).expect(200);
      await expectNames(['a.png', 'b.png', 'c.png']);
      await svc.http.delete(albumPath('pages', 'a.png')).expect(200);
      await expectNames(['b.png', 'c.png']);
    });

    it('the album list changes with each album create, rename and delete', async () => {
      const albums = async () => (await svc.http.get('/api/v1/albums?details=true').expect(200)).body.albumList as string[];
      await albums();
      await createAlbum(svc.http, 'zz-listed');
      expect(await albums()).to.include('zz-listed');
      await svc.http.patch(albumPath('zz-listed')).send({ albumName: 'zz-renamed' }).expect(200);
      expect(await albums()).to.include('zz-renamed').and.not.include('zz-listed');
      await svc.http.delete(albumPath('zz-renamed')).expect(200);
      expect(await albums()).to.not.include('zz-renamed');
    });
  });

  describe('answers from memory open no file', () => {
    const layout = () => new Layout(svc.dataDir);

    it('304 for the right ETag (and HEAD) with the image file removed behind the store\'s back', async () => {
      await createAlbum(svc.http, 'nofile');
      const { image } = (await uploadImage(svc.http, 'nofile', 'gone.png', await pngOfSize(3800))).body;
      await fs.rm(layout().imageFile('nofile', 'gone.png'));
      for (const url of [albumPath('nofile', 'gone.png'), `/api/v1/images/${image.id}`]) {
        const res = await svc.http.get(url).set('If-None-Match', `"${image.sha256}"`);
        expect(res.status, url).to.equal(304);
        expect(res.headers.etag).to.equal(`"${image.sha256}"`);
        expect((await svc.http.get(url).set('If-Modified-Since', new Date(Date.parse(image.modifiedAt) + 1000).toUTCString())).status, url).to.equal(304);
        const head = await svc.http.head(url);
        expect(head.status, `HEAD ${url}`).to.equal(200);
        expect(head.headers['content-length']).to.equal(String(image.size));
      }
      // Bytes are needed now: the missing file is a 404 in JSON, as before.
      const res = await svc.http.get(albumPath('nofile', 'gone.png'));
      expect(res.status).to.equal(404);
      expect(res.body.error).to.match(/gone\.png image is not present/);
    });

    it('a small image downloaded once is served from memory, even with its file removed', async () => {
      await createAlbum(svc.http, 'hot');
      const bytes = await pngOfSize(3900);
      await uploadImage(svc.http, 'hot', 'kept.png', bytes);
      const first = await get(albumPath('hot', 'kept.png')).expect(200);
      await fs.rm(layout().imageFile('hot', 'kept.png'));
      const again = await get(albumPath('hot', 'kept.png')).expect(200);
      expect(sha256(again.body as Buffer)).to.equal(sha256(bytes));
      expect(pick(again)).to.deep.equal(pick(first));
      const range = await get(albumPath('hot', 'kept.png')).set('Range', 'bytes=10-19').expect(206);
      expect(range.body as Buffer).to.deep.equal(bytes.subarray(10, 20));
      expect(range.headers['content-range']).to.equal(`bytes 10-19/${bytes.length}`);
    });

    for (const hot of [true, false]) {
      it(`a cached derivative is served without its original: original file removed, derivative still 200 (${hot ? 'bytes in memory' : 'HOT_CACHE_BYTES=0: from the disk cache'})`, async () => {
        const own = hot ? undefined : await startTestService({ config: { images: { ...defaultConfig().images, hotCacheBytes: 0 } } });
        const service = own ?? svc;
        const fetch = (url: string) => service.http.get(url).buffer(true).parse(rawBody);
        try {
          await createAlbum(service.http, 'deriv');
          const { image } = (await uploadImage(service.http, 'deriv', 'src.jpg', await noisyJpeg(40, 30))).body;
          const first = await fetch(`${albumPath('deriv', 'src.jpg')}?w=10&format=webp`).expect(200);
          await fs.rm(new Layout(service.dataDir).imageFile('deriv', 'src.jpg'));
          const { hits, transforms } = service.service.derivatives.stats();
          for (const url of [`${albumPath('deriv', 'src.jpg')}?w=10&format=webp`, `/api/v1/images/${image.id}.webp?w=10`]) {
            const res = await fetch(url).expect(200);
            expect(res.body as Buffer, url).to.deep.equal(first.body);
            expect(res.headers.etag).to.equal(first.headers.etag);
            expect((await service.http.get(url).set('If-None-Match', first.headers.etag)).status).to.equal(304);
          }
          expect(service.service.derivatives.stats()).to.include({ hits: hits + 2, transforms });
          expect((await fetch(`${albumPath('deriv', 'src.jpg')}?w=11&format=webp`)).status, 'a new derivative needs the original').to.equal(404);
        } finally {
          await own?.close();
        }
      });
    }
  });
});

describe('hot-file cache budget (issue 13)', function () {
  this.timeout(60_000);
  const BUDGET = 40_000;
  const MAX_FILE = 8_000;
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ config: { images: { ...defaultConfig().images, hotCacheBytes: BUDGET, hotCacheMaxFileBytes: MAX_FILE } } });
    await createAlbum(svc.http, 'many');
  });
  after(async () => svc?.close());

  const stats = () => svc.service.hot.stats();
  const download = async (name: string) => sha256((await svc.http.get(albumPath('many', name)).buffer(true).parse(rawBody).expect(200)).body as Buffer);

  it(`keeps at most HOT_CACHE_BYTES (${BUDGET}) of many distinct small images, evicting the least recently used, and reports it in /metrics`, async () => {
    const images = await Promise.all(Array.from({ length: 24 }, (_, i) => pngOfSize(5000 + i * 97)));
    for (const [i, bytes] of images.entries()) await uploadImage(svc.http, 'many', `img-${i}.png`, bytes);
    for (let round = 0; round < 2; round++) {
      for (const [i, bytes] of images.entries()) {
        expect(await download(`img-${i}.png`)).to.equal(sha256(bytes));
        expect(stats().bytes, `after img-${i}.png`).to.be.at.most(BUDGET);
      }
    }
    // The last images read, as many as fit: img-19 to img-23 (6,843 to 7,231 bytes).
    const { bytes, entries, evictions } = stats();
    expect({ bytes, entries }).to.deep.equal({ bytes: images.slice(19).reduce((n, b) => n + b.length, 0), entries: 5 });
    expect(evictions).to.equal(24 * 2 - entries);
    const metrics = (await svc.http.get('/metrics').expect(200)).text;
    expect(metrics).to.match(new RegExp(`^imagestore_hot_cache_bytes ${bytes}$`, 'm'));
    expect(metrics).to.match(new RegExp(`^imagestore_hot_cache_entries ${entries}$`, 'm'));

    // The most recent one is a hit; a file above HOT_CACHE_MAX_FILE_BYTES is never kept.
    const before = stats();
    await download('img-23.png');
    expect(stats().hits).to.equal(before.hits + 1);
    const big = await pngOfSize(MAX_FILE + 1);
    await uploadImage(svc.http, 'many', 'big.png', big);
    expect(await download('big.png')).to.equal(sha256(big));
    expect(await download('big.png')).to.equal(sha256(big));
    expect(stats()).to.include({ entries: before.entries, bytes: before.bytes });
  });
});

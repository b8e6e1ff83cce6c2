import { expect } from 'chai';
import sharp from 'sharp';
import { startTestService, type TestService } from '../helpers/service.js';
import { recordEvents } from '../helpers/mqtt.js';
import { waitFor } from '../helpers/wait-for.js';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import { noisyJpeg, pngWithAlpha } from '../helpers/image-fixtures.js';

const ID_URL_CACHE = 'public, max-age=31536000, immutable';

describe('images: ids and HTTP semantics (issue 5)', function () {
  let svc: TestService;
  let jpeg: Buffer;
  /** The stored JPEG's metadata (id, sha256, modifiedAt, …). */
  let image: { id: string; sha256: string; size: number; modifiedAt: string };
  const NAME_URL = albumPath('web', 'photo.jpg');
  before(async () => {
    [svc, jpeg] = await Promise.all([startTestService(), noisyJpeg(64, 48)]);
    await createAlbum(svc.http, 'web');
    image = (await uploadImage(svc.http, 'web', 'photo.jpg', jpeg)).body.image;
  });
  after(async () => svc?.close());

  const get = (url: string) => svc.http.get(url).buffer(true).parse(rawBody);
  const idUrl = (suffix = '') => `/api/v1/images/${image.id}${suffix}`;

  describe('GET /api/v1/images/{id}[.ext]', () => {
    it('serves the original bytes by id, with its type and the immutable Cache-Control', async () => {
      const res = await get(idUrl()).expect(200);
      expect(Buffer.compare(res.body as Buffer, jpeg)).to.equal(0);
      expect(res.headers).to.include({ 'content-type': 'image/jpeg', 'cache-control': ID_URL_CACHE, 'content-length': String(jpeg.length) });
      expect(res.headers.etag).to.equal(`"${sha256(jpeg)}"`);
    });

    const conversions: Array<[string, string, string]> = [
      ['.png', 'image/png', 'png'], ['.webp', 'image/webp', 'webp'], ['.avif', 'image/avif', 'heif'],
      ['.gif', 'image/gif', 'gif'], ['.tiff', 'image/tiff', 'tiff'], ['.jpeg', 'image/jpeg', 'jpeg'],
    ];
    for (const [ext, type, format] of conversions) {
      it(`serves {id}${ext} converted, as ${type}, immutable`, async () => {
        const res = await get(idUrl(ext)).expect(200);
        expect(res.headers).to.include({ 'content-type': type, 'cache-control': ID_URL_CACHE });
        const meta = await sharp(res.body as Buffer).metadata();
        expect(meta).to.include({ format, width: 64, height: 48 });
      });
    }

    it('serves {id}.jpg of a JPEG as the original bytes (nothing to convert)', async () => {
      const res = await get(idUrl('.jpg')).expect(200);
      expect(Buffer.compare(res.body as Buffer, jpeg)).to.equal(0);
    });

    it('takes transform parameters on id URLs too: {id}.webp?w=16', async () => {
      const res = await get(`${idUrl('.webp')}?w=16`).expect(200);
      expect(res.headers['cache-control']).to.equal(ID_URL_CACHE);
      expect(await sharp(res.body as Buffer).metadata()).to.include({ format: 'webp', width: 16, height: 12 });
    });

    it('answers 400 for an unknown extension, an extension plus format, and a malformed id; 404 for an unknown id', async () => {
      expect((await svc.http.get(idUrl('.bmp')).expect(400)).body.error).to.match(/\bformat\b.*"bmp"/);
      expect((await svc.http.get(`${idUrl('.png')}?format=webp`).expect(400)).body.error).to.match(/either an extension or format/);
      expect((await svc.http.get('/api/v1/images/not!an!id').expect(400)).body.error).to.match(/Expected an image id/);
      expect((await svc.http.get('/api/v1/images/AAAAAAAAAAAAAAAA').expect(404)).body).to.deep.equal({ error: 'no image with id AAAAAAAAAAAAAAAA' });
    });

    it('keeps the id through an image rename and an album rename', async () => {
      await createAlbum(svc.http, 'moving');
      const bytes = await pngWithAlpha();
      const { id } = (await uploadImage(svc.http, 'moving', 'a.png', bytes)).body.image;
      await svc.http.patch(albumPath('moving', 'a.png')).send({ imageName: 'b.png' }).expect(200);
      await svc.http.patch(albumPath('moving')).send({ albumName: 'moved' }).expect(200);
      const res = await get(`/api/v1/images/${id}`).expect(200);
      expect(Buffer.compare(res.body as Buffer, bytes)).to.equal(0);
      expect(res.headers['content-disposition']).to.match(/^inline; filename="b\.png"/);
      const meta = await svc.http.get(`${albumPath('moved', 'b.png')}/metadata`).expect(200);
      expect(meta.body).to.include({ id, album: 'moved', name: 'b.png' });
      expect(await sharp((await get(`/api/v1/images/${id}.webp`).expect(200)).body as Buffer).metadata()).to.include({ format: 'webp' });
      await svc.http.get(albumPath('moving', 'a.png')).expect(404);
    });
  });

  describe('headers on every image response', () => {
    it('name URLs revalidate (not immutable); both carry Last-Modified, Accept-Ranges and nosniff', async () => {
      for (const url of [NAME_URL, `${NAME_URL}?w=10`, idUrl(), idUrl('.png')]) {
        const res = await get(url).expect(200);
        expect(res.headers['cache-control'], url).to.equal(url.startsWith('/api/v1/images/') ? ID_URL_CACHE : 'public, max-age=0, must-revalidate');
        expect(res.headers['last-modified'], url).to.equal(new Date(image.modifiedAt).toUTCString());
        expect(res.headers['x-content-type-options'], url).to.equal('nosniff');
        expect(res.headers['accept-ranges'], url).to.equal('bytes');
        expect(res.headers.etag, url).to.match(/^"[^"]+"$/); // strong
      }
    });

    it('Content-Disposition is inline with the name, attachment with ?download=1 (name follows the output format)', async () => {
      expect((await get(NAME_URL).expect(200)).headers['content-disposition']).to.equal(`inline; filename="photo.jpg"; filename*=UTF-8''photo.jpg`);
      expect((await get(`${NAME_URL}?download=1`).expect(200)).headers['content-disposition']).to.equal(`attachment; filename="photo.jpg"; filename*=UTF-8''photo.jpg`);
      expect((await get(`${NAME_URL}?download=true&format=webp`).expect(200)).headers['content-disposition']).to.match(/^attachment; filename="photo\.webp"/);
      expect((await get(`${idUrl('.png')}?download=1`).expect(200)).headers['content-disposition']).to.match(/^attachment; filename="photo\.png"/);
      expect((await get(`${NAME_URL}?download=0`).expect(200)).headers['content-disposition']).to.match(/^inline;/);
    });
  });

  describe('conditional requests', () => {
    for (const [label, url] of [['name URL', NAME_URL], ['id URL', '(id)'], ['derivative', `${NAME_URL}?w=20`]] as const) {
      it(`${label}: 304 for a matching If-None-Match (also in a list, or *), 200 for another ETag`, async () => {
        const target = url === '(id)' ? idUrl() : url;
        const { etag } = (await get(target).expect(200)).headers;
        const notModified = await svc.http.get(target).set('If-None-Match', etag).expect(304);
        expect(notModified.headers.etag).to.equal(etag);
        expect(notModified.text ?? '').to.equal('');
        await svc.http.get(target).set('If-None-Match', `"other", ${etag}`).expect(304);
        await svc.http.get(target).set('If-None-Match', '*').expect(304);
        await get(target).set('If-None-Match', '"other"').expect(200);
      });
    }

    it('304 for If-Modified-Since at or after Last-Modified, 200 before it; If-None-Match wins over If-Modified-Since', async () => {
      const modified = new Date(image.modifiedAt);
      await svc.http.get(NAME_URL).set('If-Modified-Since', modified.toUTCString()).expect(304);
      await svc.http.get(NAME_URL).set('If-Modified-Since', new Date(modified.getTime() + 60_000).toUTCString()).expect(304);
      await get(NAME_URL).set('If-Modified-Since', new Date(modified.getTime() - 60_000).toUTCString()).expect(200);
      await get(NAME_URL).set('If-None-Match', '"other"').set('If-Modified-Since', new Date(modified.getTime() + 60_000).toUTCString()).expect(200);
    });
  });

  describe('ranges', () => {
    it('206 with Content-Range and exactly those bytes for bytes=10-19, bytes=100- and bytes=-5', async () => {
      const size = jpeg.length;
      const cases: Array<[string, number, number]> = [['bytes=10-19', 10, 19], ['bytes=100-', 100, size - 1], ['bytes=-5', size - 5, size - 1], [`bytes=0-${size + 100}`, 0, size - 1]];
      for (const [range, start, end] of cases) {
        const res = await get(NAME_URL).set('Range', range).expect(206);
        expect(res.headers['content-range'], range).to.equal(`bytes ${start}-${end}/${size}`);
        expect(res.headers['content-length'], range).to.equal(String(end - start + 1));
        expect(Buffer.compare(res.body as Buffer, jpeg.subarray(start, end + 1)), range).to.equal(0);
      }
    });

    it('206 on a derivative too (ranges of the transformed bytes)', async () => {
      const whole = (await get(`${idUrl('.png')}?w=30`).expect(200)).body as Buffer;
      const part = await get(`${idUrl('.png')}?w=30`).set('Range', 'bytes=0-7').expect(206);
      expect(part.headers['content-range']).to.equal(`bytes 0-7/${whole.length}`);
      expect(Buffer.compare(part.body as Buffer, whole.subarray(0, 8))).to.equal(0);
    });

    it('416 with Content-Range: bytes */size and a JSON error for a range past the end', async () => {
      const res = await svc.http.get(NAME_URL).set('Range', `bytes=${jpeg.length}-`).expect(416);
      expect(res.headers['content-range']).to.equal(`bytes */${jpeg.length}`);
      expect(res.type).to.equal('application/json');
      expect(res.body.error).to.match(/outside the \d+ bytes of the image/);
    });

    it('200 with the whole body for several ranges, another unit, or an If-Range that does not match', async () => {
      for (const [header, value] of [['Range', 'bytes=0-1,5-6'], ['Range', 'items=0-1']] as const) {
        const res = await get(NAME_URL).set(header, value).expect(200);
        expect(Buffer.compare(res.body as Buffer, jpeg), value).to.equal(0);
      }
      const stale = await get(NAME_URL).set('Range', 'bytes=0-9').set('If-Range', '"stale"').expect(200);
      expect((stale.body as Buffer).length).to.equal(jpeg.length);
      const { etag } = (await get(NAME_URL).expect(200)).headers;
      const fresh = await get(NAME_URL).set('Range', 'bytes=0-9').set('If-Range', etag).expect(206);
      expect((fresh.body as Buffer).length).to.equal(10);
    });
  });

  it('answers 400 for a boolean parameter that is not true, false, 1, 0 or empty (issue 14: one parser for every flag)', async () => {
    for (const url of [`${NAME_URL}?download=yes`, `${idUrl()}?download=2`, '/api/v1/albums?details=yes']) {
      const res = await svc.http.get(url).expect(400);
      expect(res.body.error, url).to.match(/^Expected|details/);
    }
    expect((await get(`${NAME_URL}?download`).expect(200)).headers['content-disposition']).to.match(/^attachment/);
  });

  describe('fetch events (issue 14)', () => {
    it('are published only once the answer is ready: none for a 416 (by name, by id with a conversion)', async () => {
      await waitFor('outbox drained', () => svc.service.pendingEvents() === 0, 5000);
      const events = await recordEvents(svc.service.mqttUrl);
      try {
        await svc.http.get(NAME_URL).set('Range', `bytes=${jpeg.length}-`).expect(416);
        await svc.http.get(idUrl('.webp')).set('Range', 'bytes=999999999-').expect(416);
        await get(NAME_URL).expect(200); // the one event expected
        const got = await events.waitForCount(1);
        await new Promise((resolve) => setTimeout(resolve, 200)); // room for a stray event to arrive
        expect(events.events.map((e) => e.type)).to.deep.equal(['imagestore.image.fetched']);
        expect(got[0].data.image).to.equal('photo.jpg');
      } finally {
        await events.close();
      }
    });
  });

  describe('HEAD', () => {
    it('has the GET headers and no body, and publishes no fetch event (GET does)', async () => {
      // Earlier tests' fetch events must be delivered (to nobody) before subscribing, or they would arrive here.
      await waitFor('outbox drained', () => svc.service.pendingEvents() === 0, 5000);
      const events = await recordEvents(svc.service.mqttUrl);
      try {
        for (const url of [NAME_URL, idUrl(), `${idUrl('.webp')}?w=10`]) {
          const head = await svc.http.head(url).buffer(true).parse(rawBody).expect(200);
          const full = await get(url).expect(200);
          expect((head.body as Buffer | undefined)?.length ?? 0, url).to.equal(0);
          for (const name of ['content-type', 'content-length', 'etag', 'last-modified', 'cache-control', 'content-disposition', 'accept-ranges']) {
            expect(head.headers[name], `${url} ${name}`).to.equal(full.headers[name]);
          }
        }
        const got = await events.waitForCount(3);
        await new Promise((resolve) => setTimeout(resolve, 100)); // room for a stray 4th event to arrive
        expect(events.events.map((e) => e.type)).to.deep.equal(Array(3).fill('imagestore.image.fetched'));
        expect(got.map((e) => e.data.image)).to.deep.equal(['photo.jpg', 'photo.jpg', 'photo.jpg']);
      } finally {
        await events.close();
      }
    });
  });
});

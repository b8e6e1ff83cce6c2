import http from 'node:http';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig } from '../../src/config.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { listTree } from '../helpers/tmp-dir.js';
import { makeJpeg, makePng, pngOfSize } from '../helpers/images.js';
import { waitFor } from '../helpers/wait-for.js';
import { albumPath, createAlbum, downloadImage, rawBody, sha256, uploadImage } from '../helpers/api.js';

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
// Issue 18 added the placeholders (dominantColor, thumbhash) and the perceptual hash (phash).
const IMAGE_KEYS = ['album', 'createdAt', 'dominantColor', 'format', 'hasAlpha', 'height', 'id', 'modifiedAt', 'name', 'orientation', 'pages', 'phash', 'sha256', 'size', 'thumbhash', 'type', 'width'];

/** The UTF-8 name carried by `filename*=UTF-8''…` (RFC 8187), or undefined. */
function extendedFilename(disposition: string): string | undefined {
  const match = /filename\*=UTF-8''([^;\s]+)/.exec(disposition);
  return match ? decodeURIComponent(match[1]) : undefined;
}

describe('image API (real service, real socket)', () => {
  let svc: TestService;
  let albumsDir: string;
  let stagingDir: string;
  before(async () => {
    svc = await startTestService();
    albumsDir = path.join(svc.dataDir, 'image-store');
    stagingDir = path.join(svc.dataDir, '.imagestore', 'tmp');
  });
  after(async () => svc.close());

  const exists = (p: string) => fs.stat(p).then(() => true, () => false);
  /** Staged uploads left behind (the store's own short-lived meta-*.tmp files excluded). */
  const staged = async () => (await fs.readdir(stagingDir)).filter((n) => !n.startsWith('meta-') && !n.startsWith('probe-'));

  describe('POST /api/v1/albums/{albumName}/images', () => {
    it('stores an upload: 201, Location, Go-compatible message, image object, bytes on disk', async () => {
      await createAlbum(svc.http, 'up');
      const png = await makePng(32, 32);
      const res = await svc.http.post(`${albumPath('up')}/images`).attach('file', png, 'table.png').expect(201);
      expect(res.headers.location).to.equal('/api/v1/albums/up/images/table.png');
      expect(res.body.message).to.equal('table.png image added to album up');
      const image = res.body.image;
      expect(Object.keys(image).sort()).to.deep.equal(IMAGE_KEYS);
      expect(image).to.include({ name: 'table.png', album: 'up', size: png.length, type: 'image/png', sha256: sha256(png) });
      expect(image).to.include({ format: 'png', width: 32, height: 32, orientation: 1, hasAlpha: false, pages: 1 });
      expect(image.id).to.match(/^[A-Za-z0-9_-]{8,}$/);
      expect(image.createdAt).to.match(ISO_TIME);
      expect(image.modifiedAt).to.equal(image.createdAt);
      expect(Buffer.compare(await fs.readFile(path.join(albumsDir, 'up', 'table.png')), png)).to.equal(0);
      expect(await staged()).to.deep.equal([]);
    });

    it('keeps only the base name of a client path (forward or back slashes), as the Go service did', async () => {
      await createAlbum(svc.http, 'paths');
      const res = await svc.http.post(`${albumPath('paths')}/images`).attach('file', await makePng(), 'C:\\Users\\me\\pic.png').expect(201);
      expect(res.body.image.name).to.equal('pic.png');
      const unix = await svc.http.post(`${albumPath('paths')}/images`).attach('file', await makePng(5, 5), 'home/me/other.png').expect(201);
      expect(unix.body.image.name).to.equal('other.png');
      expect((await fs.readdir(path.join(albumsDir, 'paths'))).filter((n) => !n.startsWith('.')).sort()).to.deep.equal(['other.png', 'pic.png']);
    });

    it('answers 404 "a album is not present" for an unknown album and keeps no staged file', async () => {
      const res = await svc.http.post(`${albumPath('nowhere')}/images`).attach('file', await makePng(), 'x.png').expect(404);
      expect(res.body).to.deep.equal({ error: 'nowhere album is not present' });
      expect(await exists(path.join(albumsDir, 'nowhere'))).to.equal(false);
      expect(await staged()).to.deep.equal([]);
    });

    it('answers 409 "f image already present" and keeps the first bytes', async () => {
      await createAlbum(svc.http, 'dup');
      const first = await makePng(8, 8, { r: 1, g: 2, b: 3 });
      await uploadImage(svc.http, 'dup', 'f.png', first);
      const res = await svc.http.post(`${albumPath('dup')}/images`).attach('file', await makePng(9, 9), 'f.png').expect(409);
      expect(res.body).to.deep.equal({ error: 'f.png image already present' });
      expect(sha256((await downloadImage(svc.http, 'dup', 'f.png')).bytes)).to.equal(sha256(first));
      expect(await staged()).to.deep.equal([]);
    });

    it('answers 400 for a bad file name or album name', async () => {
      await createAlbum(svc.http, 'names');
      const reserved = await svc.http.post(`${albumPath('names')}/images`).attach('file', await makePng(), '.imagestore').expect(400);
      expect(reserved.body.error).to.include('reserved');
      const dots = await svc.http.post(`${albumPath('names')}/images`).attach('file', await makePng(), '..').expect(400);
      expect(dots.body.error).to.include('must not be "." or ".."');
      const album = await svc.http.post('/api/v1/albums/%2e%2e/images').attach('file', await makePng(), 'x.png').expect(400);
      expect(album.body).to.deep.equal({ error: 'Invalid album name "..": must not be "." or ".."' });
      expect((await svc.http.get(`${albumPath('names')}/images`).expect(200)).body.imageList).to.deep.equal([]);
      expect(await staged()).to.deep.equal([]);
    });

    it('answers 400 for multipart without `file`, with two files, and with an empty file', async () => {
      await createAlbum(svc.http, 'multi');
      const none = await svc.http.post(`${albumPath('multi')}/images`).field('note', 'no file here').expect(400);
      expect(none.body).to.deep.equal({ error: 'expected a file in multipart field "file"' });
      const other = await svc.http.post(`${albumPath('multi')}/images`).attach('picture', await makePng(), 'p.png').expect(400);
      expect(other.body).to.deep.equal({ error: 'expected a file in multipart field "file"' });
      const two = await svc.http.post(`${albumPath('multi')}/images`)
        .attach('file', await makePng(), 'one.png').attach('file', await makePng(4, 4), 'two.png').expect(400);
      expect(two.body).to.deep.equal({ error: 'expected exactly one file, in field "file"' });
      const empty = await svc.http.post(`${albumPath('multi')}/images`).attach('file', Buffer.alloc(0), 'empty.png').expect(400);
      expect(empty.body).to.deep.equal({ error: 'the uploaded file is empty' });
      expect((await svc.http.get(`${albumPath('multi')}/images`).expect(200)).body.imageList).to.deep.equal([]);
      expect(await staged()).to.deep.equal([]);
    });

    it('answers 415 for an upload that is not multipart/form-data', async () => {
      await createAlbum(svc.http, 'json-upload');
      const res = await svc.http.post(`${albumPath('json-upload')}/images`).send({ file: 'x' }).expect(415);
      expect(res.body).to.deep.equal({ error: 'Expected Content-Type multipart/form-data but received "application/json"' });
    });
  });

  describe('GET and HEAD /api/v1/albums/{albumName}/images/{imageName}', () => {
    let png: Buffer;
    let jpeg: Buffer;
    before(async () => {
      await createAlbum(svc.http, 'dl');
      png = await makePng(40, 30, { r: 10, g: 200, b: 10 });
      jpeg = await makeJpeg(30, 40);
      await uploadImage(svc.http, 'dl', 'real-png.jpg', png); // the name lies; the bytes decide
      await uploadImage(svc.http, 'dl', 'photo.jpeg', jpeg);
      await uploadImage(svc.http, 'dl', 'fête 🎉 "quoted".png', png);
    });

    it('serves the bytes unchanged with the sniffed Content-Type (a PNG named .jpg is image/png) and Content-Length', async () => {
      const { res, bytes } = await downloadImage(svc.http, 'dl', 'real-png.jpg');
      expect(Buffer.compare(bytes, png)).to.equal(0);
      expect(res.headers['content-type']).to.equal('image/png');
      expect(res.headers['content-length']).to.equal(String(png.length));
      const other = await downloadImage(svc.http, 'dl', 'photo.jpeg');
      expect(sha256(other.bytes)).to.equal(sha256(jpeg));
      expect(other.res.headers['content-type']).to.equal('image/jpeg');
      expect(other.res.headers['content-length']).to.equal(String(jpeg.length));
    });

    it('names the file in Content-Disposition, with an ASCII fallback and the exact UTF-8 name in filename*', async () => {
      const plain = (await downloadImage(svc.http, 'dl', 'photo.jpeg')).res.headers['content-disposition'];
      expect(plain).to.match(/^(inline|attachment); filename="photo\.jpeg"; filename\*=UTF-8''photo\.jpeg$/);
      const name = 'fête 🎉 "quoted".png';
      const { res, bytes } = await downloadImage(svc.http, 'dl', name);
      expect(Buffer.compare(bytes, png)).to.equal(0);
      const disposition = res.headers['content-disposition'] as string;
      expect(extendedFilename(disposition)).to.equal(name);
      const fallback = /filename="([^"]*)"/.exec(disposition)?.[1];
      expect(fallback).to.be.a('string');
      expect(fallback).to.match(/^[\x20-\x7e]+$/);
      expect(fallback).to.match(/^f_te .*\.png$/);
      expect(disposition).to.match(/^[\x20-\x7e]+$/); // a header value must be ASCII
    });

    it('answers HEAD with the same headers and no body', async () => {
      const get = (await downloadImage(svc.http, 'dl', 'real-png.jpg')).res;
      const head = await svc.http.head(albumPath('dl', 'real-png.jpg')).expect(200);
      expect(head.headers['content-type']).to.equal('image/png');
      expect(head.headers['content-length']).to.equal(String(png.length));
      expect(head.headers['content-disposition']).to.equal(get.headers['content-disposition']);
      expect(head.text ?? '').to.equal('');
    });

    it('answers 404 "i image is not present" and 404 "a album is not present"', async () => {
      const image = await svc.http.get(albumPath('dl', 'missing.png')).expect(404);
      expect(image.body).to.deep.equal({ error: 'missing.png image is not present' });
      const album = await svc.http.get(albumPath('no-album', 'x.png')).expect(404);
      expect(album.body).to.deep.equal({ error: 'no-album album is not present' });
      await svc.http.head(albumPath('dl', 'missing.png')).expect(404);
    });

    it('answers 400 for a bad image name in the path', async () => {
      const res = await svc.http.get(`${albumPath('dl')}/images/%2e%2e`).expect(400);
      expect(res.body).to.deep.equal({ error: 'Invalid image name "..": must not be "." or ".."' });
      const reserved = await svc.http.get(`${albumPath('dl')}/images/.imagestore`).expect(400);
      expect(reserved.body.error).to.include('reserved');
    });
  });

  describe('PATCH /api/v1/albums/{albumName}/images/{imageName}', () => {
    it('renames an image: 200, Go-compatible message, same id and bytes under the new name', async () => {
      await createAlbum(svc.http, 'ren');
      const png = await makePng(12, 12);
      const created = (await uploadImage(svc.http, 'ren', 'old.png', png)).body.image;
      const res = await svc.http.patch(albumPath('ren', 'old.png')).send({ imageName: 'new.png' }).expect(200);
      expect(res.body.message).to.equal('old.png image modified to new.png');
      expect(res.headers.location).to.equal('/api/v1/albums/ren/images/new.png');
      expect(res.body.image).to.include({ id: created.id, name: 'new.png', album: 'ren', sha256: created.sha256, size: created.size, createdAt: created.createdAt });
      expect(Date.parse(res.body.image.modifiedAt)).to.be.at.least(Date.parse(created.modifiedAt));
      expect(Buffer.compare((await downloadImage(svc.http, 'ren', 'new.png')).bytes, png)).to.equal(0);
      const old = await svc.http.get(albumPath('ren', 'old.png')).expect(404);
      expect(old.body).to.deep.equal({ error: 'old.png image is not present' });
      expect((await svc.http.get(`${albumPath('ren')}/images`).expect(200)).body.imageList).to.deep.equal(['new.png']);
    });

    it('renames an image to its own name: 200 and nothing changes', async () => {
      await createAlbum(svc.http, 'ren-same');
      const created = (await uploadImage(svc.http, 'ren-same', 'i.png', await makePng())).body.image;
      const treeBefore = await listTree(path.join(albumsDir, 'ren-same'));
      const res = await svc.http.patch(albumPath('ren-same', 'i.png')).send({ imageName: 'i.png' }).expect(200);
      expect(res.body.message).to.equal('i.png image modified to i.png');
      expect(res.body.image).to.deep.equal(created);
      expect(await listTree(path.join(albumsDir, 'ren-same'))).to.deep.equal(treeBefore);
    });

    it('answers 409 when renaming onto an existing image, and changes nothing on disk', async () => {
      await createAlbum(svc.http, 'ren-clash');
      const a = await makePng(5, 5);
      const b = await makePng(6, 6);
      await uploadImage(svc.http, 'ren-clash', 'a.png', a);
      await uploadImage(svc.http, 'ren-clash', 'b.png', b);
      const treeBefore = await listTree(albumsDir);
      const res = await svc.http.patch(albumPath('ren-clash', 'a.png')).send({ imageName: 'b.png' }).expect(409);
      expect(res.body).to.deep.equal({ error: 'b.png image already present' });
      expect(await listTree(albumsDir)).to.deep.equal(treeBefore);
      expect(sha256((await downloadImage(svc.http, 'ren-clash', 'a.png')).bytes)).to.equal(sha256(a));
      expect(sha256((await downloadImage(svc.http, 'ren-clash', 'b.png')).bytes)).to.equal(sha256(b));
    });

    it('answers 404 for an unknown image or album', async () => {
      await createAlbum(svc.http, 'ren-404');
      const image = await svc.http.patch(albumPath('ren-404', 'i.png')).send({ imageName: 'j.png' }).expect(404);
      expect(image.body).to.deep.equal({ error: 'i.png image is not present' });
      const album = await svc.http.patch(albumPath('ghost', 'i.png')).send({ imageName: 'j.png' }).expect(404);
      expect(album.body).to.deep.equal({ error: 'ghost album is not present' });
    });

    it('answers 400 for a bad new name, 415 for a non-JSON body, 400 for malformed JSON', async () => {
      await createAlbum(svc.http, 'ren-bad');
      await uploadImage(svc.http, 'ren-bad', 'i.png', await makePng());
      const slash = await svc.http.patch(albumPath('ren-bad', 'i.png')).send({ imageName: '../../etc/passwd' }).expect(400);
      expect(slash.body.error).to.include('must not contain "/"');
      const missing = await svc.http.patch(albumPath('ren-bad', 'i.png')).send({ albumName: 'x' }).expect(400);
      expect(missing.body.error).to.match(/^imageName: /);
      const text = await svc.http.patch(albumPath('ren-bad', 'i.png')).set('Content-Type', 'text/plain').send('j.png').expect(415);
      expect(text.body).to.deep.equal({ error: 'Expected Content-Type application/json but received "text/plain"' });
      const malformed = await svc.http.patch(albumPath('ren-bad', 'i.png')).set('Content-Type', 'application/json').send('{"imageName":').expect(400);
      expect(malformed.body.error).to.match(/^invalid JSON body: /);
      expect((await svc.http.get(`${albumPath('ren-bad')}/images`).expect(200)).body.imageList).to.deep.equal(['i.png']);
    });
  });

  describe('DELETE /api/v1/albums/{albumName}/images/{imageName}', () => {
    it('deletes an image: 200, Go-compatible message, gone from listing, download and disk', async () => {
      await createAlbum(svc.http, 'del');
      const created = (await uploadImage(svc.http, 'del', 'i.png', await makePng())).body.image;
      await uploadImage(svc.http, 'del', 'keep.png', await makePng(7, 7));
      const res = await svc.http.delete(albumPath('del', 'i.png')).expect(200);
      expect(res.body).to.deep.equal({ message: 'i.png image deleted from album del', image: created });
      expect(await exists(path.join(albumsDir, 'del', 'i.png'))).to.equal(false);
      expect(await exists(path.join(albumsDir, 'del', '.imagestore', 'meta', 'i.png'))).to.equal(false);
      expect((await svc.http.get(`${albumPath('del')}/images`).expect(200)).body.imageList).to.deep.equal(['keep.png']);
      await svc.http.get(albumPath('del', 'i.png')).expect(404);
      const again = await svc.http.delete(albumPath('del', 'i.png')).expect(404);
      expect(again.body).to.deep.equal({ error: 'i.png image is not present' });
      const album = await svc.http.delete(albumPath('ghost', 'i.png')).expect(404);
      expect(album.body).to.deep.equal({ error: 'ghost album is not present' });
    });

    it('lets a deleted name be uploaded again, with a new id', async () => {
      await createAlbum(svc.http, 'del-again');
      const first = (await uploadImage(svc.http, 'del-again', 'x.png', await makePng())).body.image;
      await svc.http.delete(albumPath('del-again', 'x.png')).expect(200);
      const jpeg = await makeJpeg();
      const second = (await uploadImage(svc.http, 'del-again', 'x.png', jpeg)).body.image;
      expect(second.id).to.not.equal(first.id);
      expect(second.type).to.equal('image/jpeg');
      expect(sha256((await downloadImage(svc.http, 'del-again', 'x.png')).bytes)).to.equal(sha256(jpeg));
    });
  });

  describe('routing errors', () => {
    before(async () => {
      await createAlbum(svc.http, 'routes');
      await uploadImage(svc.http, 'routes', 'i.png', await makePng());
    });
    for (const [method, url] of [
      ['put', '/api/v1/albums/routes/images'],
      ['delete', '/api/v1/albums/routes/images'],
      ['patch', '/api/v1/albums/routes/images'],
      ['put', '/api/v1/albums/routes/images/i.png'],
      ['post', '/api/v1/albums/routes/images/i.png'],
    ] as const) {
      it(`answers 405 with a JSON error for ${method.toUpperCase()} ${url}`, async () => {
        const res = await svc.http[method](url).expect(405).expect('Content-Type', /application\/json/);
        const allow = res.headers.allow as string;
        expect(allow, 'RFC 9110 requires Allow on 405').to.match(/^[A-Z, ]+$/);
        expect(allow.split(', ')).to.not.include(method.toUpperCase());
        expect(res.body).to.deep.equal({ error: `${method.toUpperCase()} is not allowed on ${new URL(url, 'http://x').pathname}; allowed: ${allow}` });
      });
    }

    it('answers 404 with a JSON error below an image path', async () => {
      const res = await svc.http.get('/api/v1/albums/routes/images/i.png/thumbnail/extra').expect(404);
      expect(res.body).to.deep.equal({ error: 'no route for GET /api/v1/albums/routes/images/i.png/thumbnail/extra' });
    });
  });
});

describe('image API limits (service started with small limits)', () => {
  const MAX_UPLOAD_BYTES = 1024;
  const MAX_JSON_BYTES = 128;
  let svc: TestService;
  before(async () => {
    svc = await startTestService({
      config: { limits: { ...defaultConfig().limits, maxUploadBytes: MAX_UPLOAD_BYTES, maxJsonBytes: MAX_JSON_BYTES, maxConcurrentUploads: 1 } },
    });
    await createAlbum(svc.http, 'small');
  });
  after(async () => svc.close());

  const stagedFiles = async () => fs.readdir(path.join(svc.dataDir, '.imagestore', 'tmp'));

  it('answers 413 for an upload over maxUploadBytes, stores nothing and keeps no staged file', async () => {
    const res = await svc.http.post(`${albumPath('small')}/images`).attach('file', Buffer.alloc(MAX_UPLOAD_BYTES + 1, 7), 'big.png').expect(413);
    expect(res.body).to.deep.equal({ error: `body larger than the limit of ${MAX_UPLOAD_BYTES} bytes` });
    expect((await svc.http.get(`${albumPath('small')}/images`).expect(200)).body.imageList).to.deep.equal([]);
    expect(await fs.stat(path.join(svc.dataDir, 'image-store', 'small', 'big.png')).then(() => true, () => false)).to.equal(false);
    await waitFor('staged upload removed', async () => (await stagedFiles()).length === 0, 2000);
  });

  it('accepts an upload of exactly maxUploadBytes', async () => {
    const bytes = await pngOfSize(MAX_UPLOAD_BYTES);
    const res = await uploadImage(svc.http, 'small', 'exact.png', bytes);
    expect(res.body.image).to.include({ size: MAX_UPLOAD_BYTES, type: 'image/png' });
    const got = await svc.http.get(albumPath('small', 'exact.png')).buffer(true).parse(rawBody).expect(200);
    expect(Buffer.compare(got.body as Buffer, bytes)).to.equal(0);
  });

  it('answers 413 for a rename body over maxJsonBytes', async () => {
    await uploadImage(svc.http, 'small', 'r.png', await makePng());
    const res = await svc.http.patch(albumPath('small', 'r.png')).send({ imageName: 'x'.repeat(MAX_JSON_BYTES) }).expect(413);
    expect(res.body).to.deep.equal({ error: `body larger than the limit of ${MAX_JSON_BYTES} bytes` });
    await downloadImage(svc.http, 'small', 'r.png');
  });

  it('answers 503 with Retry-After while maxConcurrentUploads uploads are in progress', async () => {
    // A first upload that sends its headers and part of its file, then waits.
    const boundary = 'imagestore-test-boundary';
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.png"\r\nContent-Type: image/png\r\n\r\n`;
    const png = await makePng();
    const tail = `\r\n--${boundary}--\r\n`;
    const url = new URL(`${albumPath('small')}/images`, svc.service.httpUrl);
    const slow = http.request(url, {
      method: 'POST',
      headers: { 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(head.length + png.length + tail.length) },
    });
    const slowResponse = new Promise<{ status: number; body: string }>((resolve, reject) => {
      slow.on('response', (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      slow.on('error', reject);
    });
    slow.write(head);
    slow.write(png.subarray(0, 10));
    try {
      // Once formidable has opened the staged file, the first upload holds the only slot.
      await waitFor('first upload staged', async () => (await stagedFiles()).length > 0, 5000);
      const res = await svc.http.post(`${albumPath('small')}/images`).attach('file', await makePng(3, 3), 'second.png').expect(503);
      expect(res.headers['retry-after']).to.equal('1');
      expect(res.body).to.deep.equal({ error: 'too many uploads in progress (limit 1); retry shortly' });
    } finally {
      slow.end(Buffer.concat([png.subarray(10), Buffer.from(tail)]));
    }
    const first = await slowResponse;
    expect(first.status).to.equal(201);
    expect(JSON.parse(first.body).message).to.equal('slow.png image added to album small');
    expect(sha256((await downloadImage(svc.http, 'small', 'slow.png')).bytes)).to.equal(sha256(png));
    await uploadImage(svc.http, 'small', 'second.png', await makePng(3, 3)); // the slot is free again
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig } from '../../src/config.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { listTree } from '../helpers/tmp-dir.js';
import { makeJpeg, makePng } from '../helpers/images.js';
import { albumPath, createAlbum, downloadImage, sha256, uploadImage } from '../helpers/api.js';

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MAX_JSON_BYTES = 256;

describe('album API (real service, real socket)', () => {
  let svc: TestService;
  let albumsDir: string;
  before(async () => {
    svc = await startTestService({ config: { limits: { ...defaultConfig().limits, maxJsonBytes: MAX_JSON_BYTES } } });
    albumsDir = path.join(svc.dataDir, 'image-store');
  });
  after(async () => svc.close());

  const exists = (p: string) => fs.stat(p).then(() => true, () => false);

  describe('POST /api/v1/albums', () => {
    it('creates an album: 201, Location, Go-compatible message, directory on disk', async () => {
      const before = Date.now();
      const res = await svc.http.post('/api/v1/albums').send({ albumName: 'holidays' }).expect(201).expect('Content-Type', /application\/json/);
      expect(res.headers.location).to.equal('/api/v1/albums/holidays');
      expect(res.body.message).to.equal('holidays album added');
      expect(res.body.album.name).to.equal('holidays');
      expect(res.body.album.createdAt).to.match(ISO_TIME);
      expect(Date.parse(res.body.album.createdAt)).to.be.within(before - 1000, Date.now() + 1000);
      expect(Object.keys(res.body).sort()).to.deep.equal(['album', 'message']);
      expect(await exists(path.join(albumsDir, 'holidays'))).to.equal(true);
      const list = await svc.http.get('/api/v1/albums').expect(200);
      expect(list.body.albumList).to.include('holidays');
    });

    it('creates an album with a non-ASCII name and percent-encodes it in Location', async () => {
      const res = await svc.http.post('/api/v1/albums').send({ albumName: 'Été à Noël ☃' }).expect(201);
      expect(res.headers.location).to.equal(`/api/v1/albums/${encodeURIComponent('Été à Noël ☃')}`);
      expect(res.body.message).to.equal('Été à Noël ☃ album added');
      expect(await exists(path.join(albumsDir, 'Été à Noël ☃'))).to.equal(true);
      await svc.http.delete(albumPath('Été à Noël ☃')).expect(200);
    });

    it('answers 409 "x album already present" for a taken name and keeps the album', async () => {
      await createAlbum(svc.http, 'twice');
      await uploadImage(svc.http, 'twice', 'keep.png', await makePng());
      const res = await svc.http.post('/api/v1/albums').send({ albumName: 'twice' }).expect(409);
      expect(res.body).to.deep.equal({ error: 'twice album already present' });
      const images = await svc.http.get(`${albumPath('twice')}/images`).expect(200);
      expect(images.body.imageList).to.deep.equal(['keep.png']);
    });

    it('answers 400 for a missing, non-string or invalid albumName, and creates nothing', async () => {
      const treeBefore = await listTree(albumsDir);
      const missing = await svc.http.post('/api/v1/albums').send({ name: 'x' }).expect(400);
      expect(missing.body.error).to.match(/^albumName: /);
      const number = await svc.http.post('/api/v1/albums').send({ albumName: 42 }).expect(400);
      expect(number.body.error).to.match(/^albumName: .*string/);
      const notObject = await svc.http.post('/api/v1/albums').set('Content-Type', 'application/json').send('"x"').expect(400);
      expect(notObject.body).to.have.property('error').that.is.a('string');
      for (const [name, reason] of [['..', 'must not be "." or ".."'], ['a/b', 'must not contain "/" or "\\"'], ['', 'must not be empty'], ['.imagestore', 'reserved']]) {
        const res = await svc.http.post('/api/v1/albums').send({ albumName: name }).expect(400);
        expect(res.body.error, name).to.include(reason);
        expect(Object.keys(res.body)).to.deep.equal(['error']);
      }
      expect(await listTree(albumsDir)).to.deep.equal(treeBefore);
    });

    it('answers 415 for a body that is not JSON', async () => {
      const res = await svc.http.post('/api/v1/albums').set('Content-Type', 'text/plain').send('albumName=x').expect(415);
      expect(res.body).to.deep.equal({ error: 'Expected Content-Type application/json but received "text/plain"' });
      const form = await svc.http.post('/api/v1/albums').type('form').send({ albumName: 'x' }).expect(415);
      expect(form.body.error).to.include('application/x-www-form-urlencoded');
      const none = await svc.http.post('/api/v1/albums').expect(415);
      expect(none.body).to.deep.equal({ error: 'Expected Content-Type application/json but received "nothing"' });
    });

    it('answers 400 for malformed JSON', async () => {
      const res = await svc.http.post('/api/v1/albums').set('Content-Type', 'application/json').send('{"albumName": "x"').expect(400);
      expect(res.body.error).to.match(/^invalid JSON body: /);
    });

    it('answers 413 for a JSON body over limits.maxJsonBytes, and creates nothing', async () => {
      const body = { albumName: 'padded', padding: 'x'.repeat(MAX_JSON_BYTES) };
      const res = await svc.http.post('/api/v1/albums').send(body).expect(413);
      expect(res.body).to.deep.equal({ error: `body larger than the limit of ${MAX_JSON_BYTES} bytes` });
      expect(await exists(path.join(albumsDir, 'padded'))).to.equal(false);
    });
  });

  describe('PATCH /api/v1/albums/{albumName}', () => {
    it('renames an album, keeping its images byte for byte and their ids', async () => {
      await createAlbum(svc.http, 'before');
      const png = await makePng(20, 10);
      const jpeg = await makeJpeg(10, 20);
      const up1 = await uploadImage(svc.http, 'before', 'a.png', png);
      const up2 = await uploadImage(svc.http, 'before', 'b.jpg', jpeg);
      const created = await svc.http.get('/api/v1/albums?details=true').expect(200);
      const createdAt = created.body.albums.find((a: { name: string }) => a.name === 'before').createdAt;

      const res = await svc.http.patch(albumPath('before')).send({ albumName: 'after' }).expect(200);
      expect(res.body).to.deep.equal({ message: 'album before modified to after', album: { name: 'after', createdAt } });
      expect(res.headers.location).to.equal('/api/v1/albums/after');

      expect(await exists(path.join(albumsDir, 'before'))).to.equal(false);
      expect(await exists(path.join(albumsDir, 'after', 'a.png'))).to.equal(true);
      const gone = await svc.http.get(`${albumPath('before')}/images`).expect(404);
      expect(gone.body).to.deep.equal({ error: 'before album is not present' });
      const listed = await svc.http.get(`${albumPath('after')}/images?details=true`).expect(200);
      expect(listed.body.imageList).to.deep.equal(['a.png', 'b.jpg']);
      expect(listed.body.images.map((i: { id: string }) => i.id)).to.deep.equal([up1.body.image.id, up2.body.image.id]);
      expect(listed.body.images.every((i: { album: string }) => i.album === 'after')).to.equal(true);

      expect(sha256((await downloadImage(svc.http, 'after', 'a.png')).bytes)).to.equal(sha256(png));
      expect(sha256((await downloadImage(svc.http, 'after', 'b.jpg')).bytes)).to.equal(sha256(jpeg));
      const oldImage = await svc.http.get(albumPath('before', 'a.png')).expect(404);
      expect(oldImage.body).to.deep.equal({ error: 'before album is not present' });
    });

    it('renames an album to its own name: 200 and nothing changes', async () => {
      await createAlbum(svc.http, 'same');
      await uploadImage(svc.http, 'same', 'x.png', await makePng());
      const treeBefore = await listTree(path.join(albumsDir, 'same'));
      const res = await svc.http.patch(albumPath('same')).send({ albumName: 'same' }).expect(200);
      expect(res.body.message).to.equal('album same modified to same');
      expect(res.body.album.name).to.equal('same');
      expect(await listTree(path.join(albumsDir, 'same'))).to.deep.equal(treeBefore);
    });

    it('answers 409 when renaming onto an existing album, and changes nothing on disk', async () => {
      await createAlbum(svc.http, 'left');
      await createAlbum(svc.http, 'right');
      await uploadImage(svc.http, 'left', 'l.png', await makePng(3, 3));
      await uploadImage(svc.http, 'right', 'r.png', await makePng(4, 4));
      const treeBefore = await listTree(albumsDir);
      const res = await svc.http.patch(albumPath('left')).send({ albumName: 'right' }).expect(409);
      expect(res.body).to.deep.equal({ error: 'right album already present' });
      expect(await listTree(albumsDir)).to.deep.equal(treeBefore);
      expect((await svc.http.get(`${albumPath('left')}/images`).expect(200)).body.imageList).to.deep.equal(['l.png']);
      expect((await svc.http.get(`${albumPath('right')}/images`).expect(200)).body.imageList).to.deep.equal(['r.png']);
    });

    it('answers 404 "a album is not present" for an unknown album', async () => {
      const res = await svc.http.patch(albumPath('ghost')).send({ albumName: 'spirit' }).expect(404);
      expect(res.body).to.deep.equal({ error: 'ghost album is not present' });
      expect(await exists(path.join(albumsDir, 'spirit'))).to.equal(false);
    });

    it('answers 400 for a bad name in the path or in the body', async () => {
      await createAlbum(svc.http, 'source');
      const inPath = await svc.http.patch('/api/v1/albums/%2e%2e').send({ albumName: 'x' }).expect(400);
      expect(inPath.body).to.deep.equal({ error: 'Invalid album name "..": must not be "." or ".."' });
      const slash = await svc.http.patch('/api/v1/albums/a%2Fb').send({ albumName: 'x' }).expect(400);
      expect(slash.body.error).to.include('must not contain "/"');
      const inBody = await svc.http.patch(albumPath('source')).send({ albumName: '../escape' }).expect(400);
      expect(inBody.body.error).to.include('must not contain "/"');
      const missing = await svc.http.patch(albumPath('source')).send({}).expect(400);
      expect(missing.body.error).to.match(/^albumName: /);
      expect(await exists(path.join(albumsDir, 'source'))).to.equal(true);
    });

    it('answers 415 for a non-JSON body and 400 for malformed JSON', async () => {
      await createAlbum(svc.http, 'typed');
      const res = await svc.http.patch(albumPath('typed')).set('Content-Type', 'text/plain').send('new').expect(415);
      expect(res.body.error).to.equal('Expected Content-Type application/json but received "text/plain"');
      const bad = await svc.http.patch(albumPath('typed')).set('Content-Type', 'application/json').send('{albumName: new}').expect(400);
      expect(bad.body.error).to.match(/^invalid JSON body: /);
      const big = await svc.http.patch(albumPath('typed')).send({ albumName: 'x'.repeat(MAX_JSON_BYTES) }).expect(413);
      expect(big.body).to.deep.equal({ error: `body larger than the limit of ${MAX_JSON_BYTES} bytes` });
    });
  });

  describe('DELETE /api/v1/albums/{albumName}', () => {
    it('deletes an album with its images: 200, gone from listing and disk; a second delete is 404', async () => {
      await createAlbum(svc.http, 'doomed');
      await uploadImage(svc.http, 'doomed', 'd.png', await makePng());
      const res = await svc.http.delete(albumPath('doomed')).expect(200);
      expect(res.body).to.deep.equal({ message: 'doomed album deleted' });
      expect(await exists(path.join(albumsDir, 'doomed'))).to.equal(false);
      expect((await svc.http.get('/api/v1/albums').expect(200)).body.albumList).to.not.include('doomed');
      const image = await svc.http.get(albumPath('doomed', 'd.png')).expect(404);
      expect(image.body).to.deep.equal({ error: 'doomed album is not present' });
      const again = await svc.http.delete(albumPath('doomed')).expect(404);
      expect(again.body).to.deep.equal({ error: 'doomed album is not present' });
    });

    it('can create an album again under the name of a deleted one, empty', async () => {
      await createAlbum(svc.http, 'phoenix');
      await uploadImage(svc.http, 'phoenix', 'ash.png', await makePng());
      await svc.http.delete(albumPath('phoenix')).expect(200);
      await createAlbum(svc.http, 'phoenix');
      expect((await svc.http.get(`${albumPath('phoenix')}/images`).expect(200)).body.imageList).to.deep.equal([]);
    });

    it('answers 400 for a bad name in the path', async () => {
      const res = await svc.http.delete('/api/v1/albums/..%5Cx').expect(400);
      expect(res.body.error).to.include('must not contain "/" or "\\"');
    });
  });

  describe('routing errors', () => {
    for (const [method, url] of [
      ['put', '/api/v1/albums'],
      ['delete', '/api/v1/albums'],
      ['patch', '/api/v1/albums'],
      ['get', '/api/v1/albums/holidays'],
      ['put', '/api/v1/albums/holidays'],
      ['post', '/api/v1/albums/holidays'],
    ] as const) {
      it(`answers 405 with a JSON error for ${method.toUpperCase()} ${url}`, async () => {
        const res = await svc.http[method](url).expect(405).expect('Content-Type', /application\/json/);
        const allow = res.headers.allow as string;
        expect(allow, 'RFC 9110 requires Allow on 405').to.match(/^[A-Z, ]+$/);
        expect(allow.split(', ')).to.not.include(method.toUpperCase());
        expect(res.body).to.deep.equal({ error: `${method.toUpperCase()} is not allowed on ${new URL(url, 'http://x').pathname}; allowed: ${allow}` });
      });
    }

    it('answers 404 with a JSON error for an unknown route', async () => {
      const res = await svc.http.get('/api/v1/nothing-here').expect(404).expect('Content-Type', /application\/json/);
      expect(res.body).to.deep.equal({ error: 'no route for GET /api/v1/nothing-here' });
      const v2 = await svc.http.post('/api/v2/albums').send({ albumName: 'x' }).expect(404);
      expect(v2.body).to.deep.equal({ error: 'no route for POST /api/v2/albums' });
    });

    it('echoes a safe client X-Request-Id and makes one up otherwise', async () => {
      const given = await svc.http.get('/api/v1/albums').set('X-Request-Id', 'client-id-42').expect(200);
      expect(given.headers['x-request-id']).to.equal('client-id-42');
      const unsafe = await svc.http.get('/api/v1/albums').set('X-Request-Id', 'bad id with spaces').expect(200);
      expect(unsafe.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
    });
  });
});

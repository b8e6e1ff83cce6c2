import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { thumbHashToAverageRGBA, thumbHashToRGBA } from 'thumbhash';
import { albumPath, createAlbum, rawBody, uploadImage } from '../helpers/api.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { defaultConfig } from '../../src/config.js';
import { ImageStoreClient } from '../../src/client/index.js';

/** A picture with structure at several scales (gradients, shapes), `seed` changing its layout. */
async function scene(seed: number, width = 480, height = 360): Promise<Buffer> {
  const shapes = [0, 1, 2, 3, 4, 5].map((i) => {
    const x = (seed * 97 + i * 131) % (width - 120);
    const y = (seed * 53 + i * 71) % (height - 100);
    const colour = ['#e03020', '#20a040', '#2040d0', '#f0c000', '#202020', '#f0f0f0'][(seed + i) % 6];
    return i % 2 ? `<circle cx="${x + 50}" cy="${y + 50}" r="${40 + ((seed + i) % 30)}" fill="${colour}"/>` : `<rect x="${x}" y="${y}" width="${60 + i * 10}" height="${50 + i * 8}" fill="${colour}"/>`;
  }).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <defs><linearGradient id="g" x1="0" y1="0" x2="${seed % 2}" y2="1"><stop offset="0" stop-color="#88aacc"/><stop offset="1" stop-color="#334455"/></linearGradient></defs>
    <rect width="100%" height="100%" fill="url(#g)"/>${shapes}</svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 90 }).toBuffer();
}

async function meanColour(bytes: Buffer): Promise<number[]> {
  const { channels } = await sharp(bytes).removeAlpha().stats();
  return channels.slice(0, 3).map((c) => c.mean);
}

describe('images: placeholders, duplicates, near duplicates, capture metadata (issue 18)', function () {
  this.timeout(60_000);
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
    await createAlbum(svc.http, 'a');
    await createAlbum(svc.http, 'b');
  });
  after(async () => svc?.close());

  describe('placeholders (item 3)', () => {
    it('an upload gets a ThumbHash whose average colour is the picture\'s, and a dominant colour, in its metadata and in details=true listings', async () => {
      const bytes = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#2060c0' } })
        .composite([{ input: { create: { width: 50, height: 100, channels: 3, background: '#f0e040' } }, left: 150, top: 0 }]).jpeg().toBuffer();
      const { body } = await uploadImage(svc.http, 'a', 'sky.jpg', bytes);
      expect(body.image.thumbhash).to.be.a('string');
      expect(body.image.dominantColor).to.match(/^#[0-9a-f]{6}$/);
      const hash = Buffer.from(body.image.thumbhash, 'base64');
      const average = thumbHashToAverageRGBA(hash);
      const mean = await meanColour(bytes);
      [average.r, average.g, average.b].forEach((v, i) => expect(Math.abs(v * 255 - mean[i]), `channel ${i}`).to.be.below(20));
      const decoded = thumbHashToRGBA(hash);
      expect(decoded.w / decoded.h).to.be.closeTo(2, 0.3);
      const [r, g, b] = [1, 3, 5].map((i) => parseInt(body.image.dominantColor.slice(i, i + 2), 16));
      expect(Math.abs(r - 0x20) + Math.abs(g - 0x60) + Math.abs(b - 0xc0)).to.be.below(30);
      const listing = await svc.http.get(`${albumPath('a')}/images?details=true`).expect(200);
      expect(listing.body.images.find((i: { name: string }) => i.name === 'sky.jpg')).to.include({ thumbhash: body.image.thumbhash, dominantColor: body.image.dominantColor });
    });

    it('the image.created event carries the placeholders', async () => {
      const recorder = await recordEvents(svc.service.mqttUrl);
      try {
        const { body } = await uploadImage(svc.http, 'a', 'event.jpg', await scene(1));
        const events = await recorder.waitForCount(1);
        const created = events.find((e) => e.type === 'imagestore.image.created' && e.data.image === 'event.jpg')!;
        expect(created.data).to.include({ thumbhash: body.image.thumbhash, dominantColor: body.image.dominantColor });
        expect(created.data).to.not.have.property('capture');
      } finally {
        await recorder.close();
      }
    });

    it('UPLOAD_FINGERPRINTS=false: no placeholders nor perceptual hash', async () => {
      const off = await startTestService({ config: { images: { ...defaultConfig().images, fingerprints: false } } });
      try {
        await createAlbum(off.http, 'x');
        const { body } = await uploadImage(off.http, 'x', 'plain.jpg', await scene(2));
        expect(body.image).to.not.have.any.keys('thumbhash', 'dominantColor', 'phash');
      } finally {
        await off.close();
      }
    });
  });

  describe('exact duplicates (item 4)', () => {
    let original: Buffer;
    let first: { id: string };
    before(async () => {
      original = await scene(3);
      first = (await uploadImage(svc.http, 'a', 'first.jpg', original)).body.image;
    });

    it('a second upload of the same bytes says duplicateOf (201 and metadata), and shares the stored bytes (one inode)', async () => {
      const res = await uploadImage(svc.http, 'b', 'second.jpg', original);
      expect(res.body.image.duplicateOf).to.deep.equal([first.id]);
      const meta = await svc.http.get(`${albumPath('b', 'second.jpg')}/metadata`).expect(200);
      expect(meta.body.duplicateOf).to.deep.equal([first.id]);
      const [a, b] = await Promise.all([
        fs.stat(path.join(svc.dataDir, 'image-store', 'a', 'first.jpg')), fs.stat(path.join(svc.dataDir, 'image-store', 'b', 'second.jpg')),
      ]);
      expect(b.ino).to.equal(a.ino);
      const third = await uploadImage(svc.http, 'b', 'third.jpg', original);
      expect(third.body.image.duplicateOf).to.have.members([first.id, res.body.image.id]);
    });

    it('onDuplicate=reject: 409 with the existing image\'s Location, nothing stored; a bad policy is 400', async () => {
      const res = await svc.http.post(`${albumPath('b')}/images?onDuplicate=reject`).attach('file', original, 'again.jpg').expect(409);
      expect(res.headers.location).to.equal('/api/v1/albums/a/images/first.jpg');
      expect(Object.keys(res.body)).to.deep.equal(['error']);
      await svc.http.get(albumPath('b', 'again.jpg')).expect(404);
      const bad = await svc.http.post(`${albumPath('b')}/images?onDuplicate=merge`).attach('file', original, 'again.jpg').expect(400);
      expect(bad.body.error).to.match(/onDuplicate/);
    });

    it('deleting one copy never affects another: the others still download byte-identical and transform', async () => {
      await svc.http.delete(albumPath('a', 'first.jpg')).expect(200);
      for (const name of ['second.jpg', 'third.jpg']) {
        const got = await svc.http.get(albumPath('b', name)).buffer(true).parse(rawBody).expect(200);
        expect(Buffer.compare(got.body as Buffer, original)).to.equal(0);
      }
      await svc.http.get(`${albumPath('b', 'second.jpg')}?w=100&format=webp`).expect(200);
      await svc.http.delete(albumPath('b', 'second.jpg')).expect(200);
      const got = await svc.http.get(albumPath('b', 'third.jpg')).buffer(true).parse(rawBody).expect(200);
      expect(Buffer.compare(got.body as Buffer, original)).to.equal(0);
    });

    it('ON_DUPLICATE=reject makes 409 the default; onDuplicate=allow overrides it', async () => {
      const strict = await startTestService({ config: { images: { ...defaultConfig().images, onDuplicate: 'reject' } } });
      try {
        await createAlbum(strict.http, 'x');
        const bytes = await scene(4);
        await uploadImage(strict.http, 'x', 'one.jpg', bytes);
        await strict.http.post(`${albumPath('x')}/images`).attach('file', bytes, 'two.jpg').expect(409);
        await strict.http.post(`${albumPath('x')}/images?onDuplicate=allow`).attach('file', bytes, 'two.jpg').expect(201);
      } finally {
        await strict.close();
      }
    });
  });

  describe('near duplicates (item 4)', () => {
    it('a resized, re-compressed and slightly cropped copy is found within distance 8; unrelated pictures are not', async () => {
      const source = await scene(5);
      const copy = await sharp(source).extract({ left: 10, top: 8, width: 460, height: 344 }).resize(240).jpeg({ quality: 55 }).toBuffer();
      const original = (await uploadImage(svc.http, 'a', 'near-original.jpg', source)).body.image;
      const near = (await uploadImage(svc.http, 'b', 'near-copy.jpg', copy)).body.image;
      const unrelated = [];
      for (const seed of [6, 7, 8]) unrelated.push((await uploadImage(svc.http, 'b', `other-${seed}.jpg`, await scene(seed))).body.image.id);
      const res = await svc.http.get(`/api/v1/images/${original.id}/similar?maxDistance=8`).expect(200);
      expect(res.body.id).to.equal(original.id);
      const found = res.body.similar.find((s: { id: string }) => s.id === near.id);
      expect(found, JSON.stringify(res.body)).to.include({ album: 'b', name: 'near-copy.jpg' });
      expect(found.distance).to.be.at.most(8);
      for (const id of unrelated) expect(res.body.similar.map((s: { id: string }) => s.id)).to.not.include(id);
      expect(res.body.similar.map((s: { id: string }) => s.id)).to.not.include(original.id);
      // The client's similarImages() asks the same and checks the answer against the wire contract.
      const client = new ImageStoreClient({ baseUrl: svc.service.httpUrl, validateResponses: true });
      expect(await client.similarImages(original.id, { maxDistance: 8 })).to.deep.equal(res.body);
      expect((await client.similarImages(original.id, { maxDistance: 8, limit: 1 })).similar).to.have.length.at.most(1);
    });

    it('404 for an unknown id, 400 for a distance over 16 or a bad limit', async () => {
      await svc.http.get('/api/v1/images/nosuchimage000/similar').expect(404);
      const { body } = await uploadImage(svc.http, 'a', 'q.jpg', await scene(9));
      expect((await svc.http.get(`/api/v1/images/${body.image.id}/similar?maxDistance=17`).expect(400)).body.error).to.match(/maxDistance/);
      await svc.http.get(`/api/v1/images/${body.image.id}/similar?limit=0`).expect(400);
    });
  });

  describe('capture metadata (item 5)', () => {
    it('reads date-time with offset, make, model, lens, exposure and GPS from EXIF; derivatives carry none of it', async () => {
      const bytes = await sharp({ create: { width: 60, height: 40, channels: 3, background: '#808080' } }).jpeg().withExif({
        IFD0: { Make: 'Canon', Model: 'EOS R5' },
        IFD2: { DateTimeOriginal: '2024:05:01 12:34:56', OffsetTimeOriginal: '+02:00', ExposureTime: '1/250', FNumber: '28/10', ISOSpeedRatings: '400', LensModel: 'RF24-105mm F4 L', FocalLength: '50/1' },
        IFD3: { GPSLatitudeRef: 'N', GPSLatitude: '48/1 51/1 24/1', GPSLongitudeRef: 'E', GPSLongitude: '2/1 21/1 3/1' },
      }).toBuffer();
      const { body } = await uploadImage(svc.http, 'a', 'exif.jpg', bytes);
      expect(body.image.capture).to.deep.include({
        capturedAt: '2024-05-01T12:34:56+02:00', make: 'Canon', model: 'EOS R5', lens: 'RF24-105mm F4 L', exposureTime: 0.004, fNumber: 2.8, iso: 400, focalLength: 50,
      });
      expect(body.image.capture.gps.latitude).to.be.closeTo(48.8567, 0.001);
      expect(body.image.capture.gps.longitude).to.be.closeTo(2.3508, 0.001);
      const meta = await svc.http.get(`${albumPath('a', 'exif.jpg')}/metadata`).expect(200);
      expect(meta.body.capture).to.deep.equal(body.image.capture);
      const derivative = await svc.http.get(`${albumPath('a', 'exif.jpg')}?w=30`).buffer(true).parse(rawBody).expect(200);
      expect((await sharp(derivative.body as Buffer).metadata()).exif).to.equal(undefined);
    });

    it('sort=captured lists by capture time (offsets honoured), images without one last, paged by cursor', async () => {
      await createAlbum(svc.http, 'trip');
      const shot = (when: string, offset?: string) => sharp({ create: { width: 8, height: 8, channels: 3, background: '#446688' } }).jpeg()
        .withExif({ IFD2: { DateTimeOriginal: when, ...(offset ? { OffsetTimeOriginal: offset } : {}) } }).toBuffer();
      // a: 10:00 UTC; b: 09:30 UTC (11:30+02:00); c: 2023; d: none.
      for (const [name, bytes] of [['a.jpg', shot('2024:05:01 10:00:00', '+00:00')], ['b.jpg', shot('2024:05:01 11:30:00', '+02:00')], ['c.jpg', shot('2023:01:01 00:00:00')], ['d.jpg', scene(10)]] as const) {
        await uploadImage(svc.http, 'trip', name, await bytes);
      }
      const all = await svc.http.get(`${albumPath('trip')}/images?sort=captured`).expect(200);
      expect(all.body.imageList).to.deep.equal(['c.jpg', 'b.jpg', 'a.jpg', 'd.jpg']);
      const first = await svc.http.get(`${albumPath('trip')}/images?sort=captured&limit=3&details=true`).expect(200);
      expect(first.body.imageList).to.deep.equal(['c.jpg', 'b.jpg', 'a.jpg']);
      expect(first.body.images.map((i: { name: string }) => i.name)).to.deep.equal(first.body.imageList);
      const second = await svc.http.get(`${albumPath('trip')}/images`).query({ sort: 'captured', limit: 3, cursor: first.body.nextCursor }).expect(200);
      expect(second.body).to.deep.equal({ imageList: ['d.jpg'] });
      await svc.http.get(`${albumPath('trip')}/images?sort=captured&cursor=bogus`).expect(400);
      await svc.http.get(`${albumPath('trip')}/images?sort=taken`).expect(400);
      await svc.http.get('/api/v1/albums?sort=captured').expect(400);
    });
  });
});

import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import sharp from 'sharp';
import { defaultConfig } from '../../src/config.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import {
  acceptedFixtures, noisyJpeg, pngBomb, svg, textFile, truncatedJpeg, type NamedFixture,
} from '../helpers/image-fixtures.js';
import { waitFor } from '../helpers/wait-for.js';

/** What sharp itself reads from the bytes, in the service's vocabulary (AVIF is `heif` + `av1` to sharp). */
async function sharpsReading(bytes: Buffer) {
  const meta = await sharp(bytes).metadata();
  return {
    format: meta.format === 'heif' && meta.compression === 'av1' ? 'avif' : meta.format,
    width: meta.width,
    height: meta.pageHeight ?? meta.height,
    orientation: meta.orientation ?? 1,
    hasAlpha: meta.hasAlpha,
    pages: meta.pages ?? 1,
  };
}

/** Values known from how each fixture was made (image-fixtures.ts), independent of sharp's reading. */
const KNOWN: Record<string, { type: string; width: number; height: number; orientation?: number; hasAlpha?: boolean; pages: number }> = {
  jpeg: { type: 'image/jpeg', width: 40, height: 30, orientation: 1, hasAlpha: false, pages: 1 },
  'png with alpha': { type: 'image/png', width: 20, height: 10, orientation: 1, hasAlpha: true, pages: 1 },
  webp: { type: 'image/webp', width: 30, height: 20, orientation: 1, pages: 1 },
  'animated webp': { type: 'image/webp', width: 24, height: 20, pages: 3 },
  'animated gif': { type: 'image/gif', width: 24, height: 20, pages: 3 },
  avif: { type: 'image/avif', width: 32, height: 24, pages: 1 },
  tiff: { type: 'image/tiff', width: 36, height: 28, pages: 1 },
  'jpeg with EXIF orientation 6': { type: 'image/jpeg', width: 48, height: 32, orientation: 6, pages: 1 },
  'CMYK jpeg': { type: 'image/jpeg', width: 40, height: 30, pages: 1 },
};

describe('images: upload validation and metadata (issue 5)', function () {
  let svc: TestService;
  let fixtures: Record<string, NamedFixture>;
  before(async () => {
    [svc, fixtures] = await Promise.all([startTestService(), acceptedFixtures()]);
    await createAlbum(svc.http, 'formats');
  });
  after(async () => svc?.close());

  const stagedFiles = async () =>
    (await fs.readdir(path.join(svc.dataDir, '.imagestore', 'tmp'))).filter((n) => !n.startsWith('meta-') && !n.startsWith('probe-'));

  /** Uploads expecting an error status; checks the `{ error }` body and that nothing was stored under the name. */
  async function rejected(album: string, name: string, bytes: Buffer, status: number): Promise<string> {
    const res = await svc.http.post(`${albumPath(album)}/images`).attach('file', bytes, name).expect(status);
    expect(res.type).to.equal('application/json');
    expect(Object.keys(res.body)).to.deep.equal(['error']);
    await svc.http.get(albumPath(album, name)).expect(404);
    await waitFor('no staged file left', async () => (await stagedFiles()).length === 0, 2000);
    return res.body.error as string;
  }

  describe('each accepted format', () => {
    for (const label of Object.keys(KNOWN)) {
      it(`accepts ${label}: 201 with format, size, width, height, orientation, alpha and pages as sharp reads them`, async () => {
        const { name, bytes } = fixtures[label];
        const res = await uploadImage(svc.http, 'formats', name, bytes);
        const image = res.body.image;
        const expected = await sharpsReading(bytes);
        expect(image).to.include({ ...expected, size: bytes.length, sha256: sha256(bytes), name, album: 'formats' });
        expect(image).to.include(KNOWN[label]);
        expect(image.id).to.match(/^[A-Za-z0-9_-]{8,64}$/);

        const meta = await svc.http.get(`${albumPath('formats', name)}/metadata`).expect(200);
        expect(meta.body).to.deep.equal(image);
        const got = await svc.http.get(albumPath('formats', name)).buffer(true).parse(rawBody).expect(200);
        expect(got.headers['content-type']).to.equal(KNOWN[label].type);
        expect(Buffer.compare(got.body as Buffer, bytes)).to.equal(0);
      });
    }

    // HEIC (decoded by libheif in WebAssembly, fixtures made with heif-enc): images-heic.test.ts.

    it('lists the metadata with ?details=1', async () => {
      await createAlbum(svc.http, 'listed');
      const { name, bytes } = fixtures['animated gif'];
      const up = await uploadImage(svc.http, 'listed', name, bytes);
      const res = await svc.http.get(`${albumPath('listed')}/images`).query({ details: 1 }).expect(200);
      expect(res.body.imageList).to.deep.equal([name]);
      expect(res.body.images).to.deep.equal([up.body.image]);
    });

    it('decides the format from the bytes, not the file name (a JPEG named .png is a JPEG)', async () => {
      const bytes = await noisyJpeg(12, 10);
      const res = await uploadImage(svc.http, 'formats', 'liar.png', bytes);
      expect(res.body.image).to.include({ format: 'jpeg', type: 'image/jpeg', width: 12, height: 10 });
    });
  });

  describe('rejections', () => {
    it('answers 415 for a text file', async () => {
      expect(await rejected('formats', 'notes.jpg', textFile(), 415)).to.match(/not an image.*JPEG, PNG, WebP, GIF, AVIF, TIFF/);
    });

    it('answers 422 for a truncated JPEG', async () => {
      expect(await rejected('formats', 'cut.jpg', await truncatedJpeg(), 422)).to.match(/truncated or corrupt/);
    });

    it('answers 422 for a pixel bomb (a 196-byte PNG declaring 30000x30000), before decoding it', async () => {
      const bomb = pngBomb();
      expect(bomb.length).to.be.below(1024);
      const started = Date.now();
      expect(await rejected('formats', 'bomb.png', bomb, 422)).to.match(/30000x30000 pixels exceeds the limit of 100000000 pixels/);
      expect(Date.now() - started).to.be.below(2000);
    });

    it('answers 415 for an SVG while ALLOW_SVG is off (the default)', async () => {
      expect(await rejected('formats', 'logo.svg', svg(), 415)).to.match(/SVG/);
    });
  });
});

describe('images: upload limits and SVG configuration (issue 5)', () => {
  const MAX_UPLOAD_BYTES = 4096;
  const MAX_INPUT_PIXELS = 1000;
  let svc: TestService;
  before(async () => {
    svc = await startTestService({
      config: {
        limits: { ...defaultConfig().limits, maxUploadBytes: MAX_UPLOAD_BYTES },
        images: { ...defaultConfig().images, maxInputPixels: MAX_INPUT_PIXELS, allowSvg: true },
      },
    });
    await createAlbum(svc.http, 'small');
  });
  after(async () => svc?.close());

  it('answers 413 for a real image over MAX_UPLOAD_BYTES and stores nothing', async () => {
    const big = await noisyJpeg(30, 30);
    const image = Buffer.concat([big, Buffer.alloc(MAX_UPLOAD_BYTES, 0)]); // trailing bytes after EOI: still a valid JPEG
    const res = await svc.http.post(`${albumPath('small')}/images`).attach('file', image, 'big.jpg').expect(413);
    expect(res.body).to.deep.equal({ error: `body larger than the limit of ${MAX_UPLOAD_BYTES} bytes` });
    await svc.http.get(albumPath('small', 'big.jpg')).expect(404);
  });

  it('answers 422 for an image over MAX_INPUT_PIXELS (40x30 > 1000) and accepts one at the limit (40x25)', async () => {
    const over = await svc.http.post(`${albumPath('small')}/images`).attach('file', await noisyJpeg(40, 30), 'over.jpg').expect(422);
    expect(over.body.error).to.equal('image of 40x30 pixels exceeds the limit of 1000 pixels');
    const at = await uploadImage(svc.http, 'small', 'at.jpg', await noisyJpeg(40, 25));
    expect(at.body.image).to.include({ width: 40, height: 25 });
  });

  it('accepts an SVG with ALLOW_SVG on, as image/svg+xml with its size', async () => {
    const res = await uploadImage(svc.http, 'small', 'logo.svg', svg());
    expect(res.body.image).to.include({ format: 'svg', type: 'image/svg+xml', width: 40, height: 20 });
    const got = await svc.http.get(albumPath('small', 'logo.svg')).buffer(true).parse(rawBody).expect(200);
    expect(got.headers['content-type']).to.equal('image/svg+xml');
    expect(got.headers['x-content-type-options']).to.equal('nosniff');
  });
});

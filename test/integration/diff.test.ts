import { expect } from 'chai';
import sharp from 'sharp';
import type { Response } from 'supertest';
import { DiffResponse } from '../../src/contract/schemas.js';
import { createAlbum, rawBody, uploadImage } from '../helpers/api.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService, type TestService } from '../helpers/service.js';

const WIDTH = 320;
const HEIGHT = 240;
/** Gap between the three pictures of output=side-by-side (src/images/diff-render.ts). */
const SIDE_BY_SIDE_GAP = 8;

type Rect = [left: number, top: number, width: number, height: number, colour: string];

/**
 * A photo-like picture: colour gradients, a soft texture, a disc, a tilted
 * rectangle and a curved stroke, then a slight blur (a camera never draws a
 * pixel-sharp edge). With `sharpEdges` the blur is left out, as in a screenshot.
 */
async function photo({ width = WIDTH, height = HEIGHT, sharpEdges = false } = {}): Promise<Buffer> {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      raw[i] = Math.round((255 * x) / width);
      raw[i + 1] = Math.round((255 * y) / height);
      raw[i + 2] = 128 + Math.round(60 * Math.sin(x / 11) * Math.cos(y / 17));
    }
  }
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
    <circle cx="${width * 0.3}" cy="${height * 0.45}" r="${height * 0.2}" fill="#e0c020"/>
    <rect x="${width * 0.6}" y="${height * 0.2}" width="${width * 0.22}" height="${height * 0.45}" fill="#204080" transform="rotate(12 ${width * 0.7} ${height * 0.4})"/>
    <path d="M ${width * 0.1} ${height * 0.9} Q ${width * 0.5} ${height * 0.6} ${width * 0.9} ${height * 0.92}" stroke="#f4f4f4" stroke-width="3" fill="none"/>
  </svg>`;
  const drawn = await sharp(raw, { raw: { width, height, channels: 3 } }).composite([{ input: Buffer.from(svg) }]).png().toBuffer();
  return sharpEdges ? drawn : sharp(drawn).blur(0.8).png().toBuffer();
}

/** `image` with solid rectangles painted on it, as PNG (lossless: the only differences are the rectangles). */
async function paint(image: Buffer, rects: Rect[]): Promise<Buffer> {
  const overlays = rects.map(([left, top, width, height, colour]) => ({ input: { create: { width, height, channels: 3 as const, background: colour } }, left, top }));
  return sharp(image).composite(overlays).png().toBuffer();
}

/** RGBA pixels of any encoded image, with a reader for one pixel. */
async function pixelsOf(image: Buffer): Promise<{ width: number; height: number; at(x: number, y: number): number[] }> {
  const { data, info } = await sharp(image).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  return {
    width: info.width,
    height: info.height,
    at: (x, y) => Array.from(data.subarray((y * info.width + x) * 4, (y * info.width + x) * 4 + 4)),
  };
}

/** An RGBA PNG of `width`×`height` from a function of the pixel position. */
function rgbaPng(width: number, height: number, pixel: (x: number, y: number) => [number, number, number, number]): Promise<Buffer> {
  const data = Buffer.alloc(width * height * 4);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(pixel(x, y), (y * width + x) * 4);
  return sharp(data, { raw: { width, height, channels: 4 } }).png().toBuffer();
}

/** The upright picture stored the way a camera stores it with EXIF `orientation` (pixels transformed back). */
async function storedWithOrientation(upright: Buffer, orientation: 2 | 3 | 6 | 8): Promise<Buffer> {
  const image = sharp(upright);
  if (orientation === 2) image.flop();
  else image.rotate({ 3: 180, 6: 270, 8: 90 }[orientation]);
  return sharp(await image.png().toBuffer()).withMetadata({ orientation }).png().toBuffer();
}

function expectError(res: Response, status: number, ...fragments: string[]): void {
  expect(res.status, JSON.stringify(res.body)).to.equal(status);
  expect(Object.keys(res.body)).to.deep.equal(['error']);
  for (const fragment of fragments) expect(res.body.error).to.include(fragment);
}

describe('image diff (GET/POST /api/v1/diff, real service)', () => {
  let svc: TestService;
  let original: Buffer;
  /** Stored images by name (album "diff"), and their ids. */
  const ids: Record<string, string> = {};

  /** GET /diff?a=diff/{a}&b=diff/{b} plus query; expects 200 JSON. */
  const diff = async (a: string, b: string, query: Record<string, string> = {}) =>
    (await svc.http.get('/api/v1/diff').query({ a: `diff/${a}`, b: `diff/${b}`, ...query }).expect('Content-Type', /json/).expect(200)).body;
  const getPng = (query: Record<string, string>) => svc.http.get('/api/v1/diff').query(query).buffer(true).parse(rawBody);

  before(async () => {
    svc = await startTestService();
    original = await photo();
    await createAlbum(svc.http, 'diff');
    const store = async (name: string, bytes: Buffer) => {
      ids[name] = (await uploadImage(svc.http, 'diff', name, bytes)).body.image.id;
    };
    await store('original.png', original);
    await store('copy.png', Buffer.from(original));
    await store('one-rect.png', await paint(original, [[100, 60, 30, 20, '#ff00ff']]));
    await store('two-rects.png', await paint(original, [[20, 20, 12, 10, '#00ff00'], [200, 150, 40, 30, '#ff00ff']]));
    await store('half.png', await sharp(original).resize(WIDTH / 2, HEIGHT / 2).png().toBuffer());
    await store('original.jpg', await sharp(original).jpeg({ quality: 90 }).toBuffer());
  });
  after(async () => svc.close());

  describe('differences found', () => {
    it('reports no difference, no box and SSIM 1 for two identical images', async () => {
      expect(await diff('original.png', 'copy.png')).to.deep.equal({
        a: { width: WIDTH, height: HEIGHT }, b: { width: WIDTH, height: HEIGHT }, width: WIDTH, height: HEIGHT,
        differentPixels: 0, differentFraction: 0, ssim: 1, boxes: [], truncated: false,
      });
    });

    it('finds a painted rectangle: one box exactly around it, and its pixels counted', async () => {
      const result = await diff('original.png', 'one-rect.png');
      expect(DiffResponse.strict().parse(result), 'the answer has the documented shape (OpenAPI)').to.deep.equal(result);
      expect(result.boxes).to.have.length(1);
      expect(result.boxes[0]).to.include({ x: 100, y: 60, width: 30, height: 20 });
      // pixelmatch's anti-aliasing detector takes some of the rectangle's edge pixels
      // for anti-aliasing and leaves them out by default; includeAA counts them all.
      expect(result.differentPixels).to.be.within(0.9 * 600, 600);
      expect(result.boxes[0].pixels).to.equal(result.differentPixels);
      expect(result.differentFraction).to.equal(result.differentPixels / (WIDTH * HEIGHT));
      expect(result.ssim).to.be.above(0.9).and.below(1);
      const all = await diff('original.png', 'one-rect.png', { includeAA: 'true' });
      expect(all).to.deep.include({ differentPixels: 600, boxes: [{ x: 100, y: 60, width: 30, height: 20, pixels: 600 }] });
    });

    it('finds two separate changes as two boxes, the larger first', async () => {
      const { boxes } = await diff('original.png', 'two-rects.png', { includeAA: 'true' });
      expect(boxes).to.deep.equal([
        { x: 200, y: 150, width: 40, height: 30, pixels: 1200 },
        { x: 20, y: 20, width: 12, height: 10, pixels: 120 },
      ]);
    });

    it('caps the boxes with maxBoxes and says so; merges them with a large mergeDistance', async () => {
      const capped = await diff('original.png', 'two-rects.png', { maxBoxes: '1' });
      expect(capped.boxes).to.have.length(1);
      expect(capped.boxes[0]).to.include({ x: 200, y: 150, width: 40, height: 30 });
      expect(capped.truncated).to.equal(true);
      const merged = await diff('original.png', 'two-rects.png', { mergeDistance: '200', includeAA: 'true' });
      expect(merged.boxes).to.deep.equal([{ x: 20, y: 20, width: 220, height: 160, pixels: 1320 }]);
      expect(merged.truncated).to.equal(false);
    });

    it('with threshold=1 no colour difference counts', async () => {
      expect(await diff('original.png', 'two-rects.png', { threshold: '1' })).to.include({ differentPixels: 0 });
    });

    it('accepts image ids for a and b, alone or mixed with names', async () => {
      const byName = await diff('original.png', 'one-rect.png');
      const byId = (await svc.http.get('/api/v1/diff').query({ a: ids['original.png'], b: ids['one-rect.png'] }).expect(200)).body;
      const mixed = (await svc.http.get('/api/v1/diff').query({ a: 'diff/original.png', b: ids['one-rect.png'] }).expect(200)).body;
      expect(byId).to.deep.equal(byName);
      expect(mixed).to.deep.equal(byName);
    });
  });

  describe('images of different sizes', () => {
    it('answers 422 naming both sizes, for JSON and picture output alike', async () => {
      for (const output of ['json', 'png']) {
        const res = await svc.http.get('/api/v1/diff').query({ a: 'diff/original.png', b: 'diff/half.png', output });
        expectError(res, 422, `${WIDTH}x${HEIGHT}`, `${WIDTH / 2}x${HEIGHT / 2}`, 'resize=fit');
      }
    });

    it('with resize=fit scales b to a and compares', async () => {
      const result = await diff('original.png', 'half.png', { resize: 'fit' });
      expect(result).to.deep.include({ a: { width: WIDTH, height: HEIGHT }, b: { width: WIDTH / 2, height: HEIGHT / 2 }, width: WIDTH, height: HEIGHT });
      // Upscaling loses the finest detail only: a few edge pixels differ, the structure stays.
      expect(result.differentFraction).to.be.below(0.02);
      expect(result.ssim).to.be.above(0.95);
    });
  });

  describe('normalisation before comparing', () => {
    it('finds near-zero difference between a JPEG (q90) of a photo and its PNG', async () => {
      const result = await diff('original.png', 'original.jpg');
      // Measured: 0 pixels differ at the default threshold (0.1).
      expect(result.differentFraction).to.be.below(0.001);
      expect(result.ssim).to.be.above(0.98);
    });

    it('keeps JPEG artefacts under 0.5 % even on pixel-sharp graphics (4:2:0 chroma blurs colour edges)', async () => {
      const graphics = await photo({ sharpEdges: true });
      const res = await svc.http.post('/api/v1/diff')
        .attach('a', graphics, 'a.png')
        .attach('b', await sharp(graphics).jpeg({ quality: 90 }).toBuffer(), 'b.jpg')
        .expect(200);
      // Measured: ~0.1 % (colour edges); a colour-space or decoding mistake would be far above.
      expect(res.body.differentFraction).to.be.below(0.005);
    });

    it('compares lossless WebP and PNG of the same pixels as identical', async () => {
      const res = await svc.http.post('/api/v1/diff')
        .attach('a', original, 'a.png')
        .attach('b', await sharp(original).webp({ lossless: true }).toBuffer(), 'b.webp')
        .expect(200);
      expect(res.body).to.include({ differentPixels: 0, ssim: 1 });
    });

    for (const orientation of [2, 3, 6, 8] as const) {
      it(`applies EXIF orientation ${orientation}: stored transformed with the tag, the picture compares identical`, async () => {
        const stored = await storedWithOrientation(original, orientation);
        expect((await sharp(stored).metadata()).orientation).to.equal(orientation);
        const res = await svc.http.post('/api/v1/diff').attach('a', original, 'a.png').attach('b', stored, 'b.png').expect(200);
        expect(res.body).to.deep.include({ b: { width: WIDTH, height: HEIGHT }, differentPixels: 0, boxes: [] });
      });
    }

    // What "alpha normalised" means here: an image without alpha is an opaque one, the colour
    // hidden under fully transparent pixels does not count, but transparency itself is part of
    // the picture (pixelmatch blends translucent pixels over a checkerboard): a transparent
    // hole differs from the same hole filled with white.
    describe('alpha', () => {
      const opaque = (x: number, y: number): [number, number, number, number] => [x * 4, y * 4, 150, 255];
      const inHole = (x: number, y: number) => x >= 10 && x < 30 && y >= 10 && y < 20;

      it('an RGB image and the same pixels with an opaque alpha channel are identical', async () => {
        const rgba = await rgbaPng(40, 30, opaque);
        const rgb = await sharp(rgba).removeAlpha().png().toBuffer();
        expect((await sharp(rgb).metadata()).hasAlpha).to.equal(false);
        const res = await svc.http.post('/api/v1/diff').attach('a', rgb, 'a.png').attach('b', rgba, 'b.png').expect(200);
        expect(res.body).to.include({ differentPixels: 0, ssim: 1 });
      });

      it('the colour under fully transparent pixels does not count', async () => {
        const hidden = (colour: [number, number, number]) => rgbaPng(40, 30, (x, y) => (inHole(x, y) ? [...colour, 0] : opaque(x, y)));
        const res = await svc.http.post('/api/v1/diff')
          .attach('a', await hidden([255, 0, 0]), 'a.png')
          .attach('b', await hidden([0, 255, 0]), 'b.png')
          .expect(200);
        expect(res.body).to.include({ differentPixels: 0 });
      });

      it('a transparent hole differs from the same hole flattened on white, and only there', async () => {
        const holed = await rgbaPng(40, 30, (x, y) => (inHole(x, y) ? [0, 0, 0, 0] : opaque(x, y)));
        const flattened = await sharp(holed).flatten({ background: '#ffffff' }).png().toBuffer();
        const res = await svc.http.post('/api/v1/diff').query({ includeAA: 'true' }).attach('a', holed, 'a.png').attach('b', flattened, 'b.png').expect(200);
        expect(res.body).to.deep.include({ differentPixels: 200, boxes: [{ x: 10, y: 10, width: 20, height: 10, pixels: 200 }] });
      });
    });
  });

  describe('picture output', () => {
    it('output=png: a PNG of a\'s size, a dimmed, differing pixels red, the box drawn around them', async () => {
      const res = await getPng({ a: 'diff/original.png', b: 'diff/one-rect.png', output: 'png' }).expect(200);
      expect(res.headers['content-type']).to.equal('image/png');
      const json = await diff('original.png', 'one-rect.png');
      expect(res.headers['x-diff-pixels']).to.equal(String(json.differentPixels));
      const png = res.body as Buffer;
      expect(await sharp(png).metadata()).to.include({ format: 'png', width: WIDTH, height: HEIGHT });
      const picture = await pixelsOf(png);
      expect(picture.at(115, 70), 'inside the change').to.deep.equal([255, 0, 0, 255]);
      const [r, g, b] = picture.at(5, 230);
      expect(r, 'far from the change: grey').to.equal(g).and.equal(b);
      expect(r, 'dimmed towards white').to.be.above(180);
      const [br, bg, bb] = picture.at(99, 70); // the box's stroke, just left of the change
      expect(bb, 'box stroke is blue').to.be.above(br + 100).and.above(bg);
    });

    it('output=side-by-side: a, b and the diff in one PNG of three widths plus two gaps', async () => {
      const res = await getPng({ a: 'diff/original.png', b: 'diff/one-rect.png', output: 'side-by-side' }).expect(200);
      expect(res.headers['content-type']).to.equal('image/png');
      const png = res.body as Buffer;
      expect(await sharp(png).metadata()).to.include({ format: 'png', width: WIDTH * 3 + SIDE_BY_SIDE_GAP * 2, height: HEIGHT });
      const picture = await pixelsOf(png);
      const source = await pixelsOf(original);
      expect(picture.at(115, 70), 'a, unchanged').to.deep.equal(source.at(115, 70));
      expect(picture.at(WIDTH + SIDE_BY_SIDE_GAP + 115, 70), 'b, painted magenta').to.deep.equal([255, 0, 255, 255]);
      expect(picture.at(WIDTH + 2, 70), 'the gap is white').to.deep.equal([255, 255, 255, 255]);
      expect(picture.at((WIDTH + SIDE_BY_SIDE_GAP) * 2 + 115, 70), 'the diff, red').to.deep.equal([255, 0, 0, 255]);
    });

    it('output=png of two uploads (POST)', async () => {
      const res = await svc.http.post('/api/v1/diff').query({ output: 'png' })
        .attach('a', original, 'a.png').attach('b', await paint(original, [[10, 10, 5, 5, '#000000']]), 'b.png')
        .buffer(true).parse(rawBody).expect(200);
      expect(await sharp(res.body as Buffer).metadata()).to.include({ format: 'png', width: WIDTH, height: HEIGHT });
    });
  });

  describe('bad requests', () => {
    const query = { a: 'diff/original.png', b: 'diff/copy.png' };
    const cases: Array<[string, Record<string, string | undefined>, string]> = [
      ['threshold above 1', { threshold: '2' }, 'threshold'],
      ['threshold not a number', { threshold: 'abc' }, 'threshold'],
      ['empty threshold', { threshold: '' }, 'threshold'],
      ['unknown output', { output: 'gif' }, 'output'],
      ['unknown resize', { resize: 'bad' }, 'resize'],
      ['includeAA not a boolean', { includeAA: 'maybe' }, 'includeAA'],
      ['maxBoxes 0', { maxBoxes: '0' }, 'maxBoxes'],
      ['negative mergeDistance', { mergeDistance: '-1' }, 'mergeDistance'],
      ['missing a', { a: undefined }, 'a='],
      ['missing b', { b: undefined }, 'b='],
      ['empty image name in a', { a: 'diff/' }, 'image name'],
    ];
    for (const [label, change, name] of cases) {
      it(`400 naming the parameter: ${label}`, async () => {
        const q = Object.fromEntries(Object.entries({ ...query, ...change }).filter(([, v]) => v !== undefined)) as Record<string, string>;
        expectError(await svc.http.get('/api/v1/diff').query(q), 400, name);
      });
    }

    it('404 for an unknown image, an unknown album or an unknown id, in a or in b', async () => {
      expectError(await svc.http.get('/api/v1/diff').query({ a: 'diff/nope.png', b: 'diff/copy.png' }), 404, 'nope.png');
      expectError(await svc.http.get('/api/v1/diff').query({ a: 'diff/copy.png', b: 'nowhere/copy.png' }), 404, 'nowhere');
      expectError(await svc.http.get('/api/v1/diff').query({ a: 'diff/copy.png', b: 'AAAAAAAAAAAAAAAA' }), 404, 'AAAAAAAAAAAAAAAA');
    });

    it('POST: 400 with one file, naming the missing field', async () => {
      expectError(await svc.http.post('/api/v1/diff').attach('a', original, 'a.png'), 400, '"b"');
      expectError(await svc.http.post('/api/v1/diff').attach('file', original, 'a.png').attach('b', original, 'b.png'), 400, '"a"');
    });

    it('POST: 400 with three files', async () => {
      const res = await svc.http.post('/api/v1/diff').attach('a', original, 'a.png').attach('b', original, 'b.png').attach('c', original, 'c.png');
      expectError(res, 400, '2 files');
    });

    it('POST: 415 for a text file, 415 for a body that is not multipart', async () => {
      expectError(await svc.http.post('/api/v1/diff').attach('a', original, 'a.png').attach('b', Buffer.from('just some text\n'), 'b.txt'), 415);
      expectError(await svc.http.post('/api/v1/diff').send({ a: 'diff/original.png', b: 'diff/copy.png' }), 415, 'multipart/form-data');
    });

    it('POST: 422 for a truncated image', async () => {
      const png = await sharp(original).png().toBuffer();
      expectError(await svc.http.post('/api/v1/diff').attach('a', png, 'a.png').attach('b', png.subarray(0, png.length - 200), 'b.png'), 422);
    });

    it('POST: 400 for a bad parameter', async () => {
      expectError(await svc.http.post('/api/v1/diff').query({ threshold: '-0.5' }).attach('a', original, 'a.png').attach('b', original, 'b.png'), 400, 'threshold');
    });
  });

  describe('events', () => {
    it('a diff of stored images publishes image.fetched for a and b; a diff of uploads publishes nothing', async () => {
      const recorder = await recordEvents(svc.service.mqttUrl);
      try {
        // The uploads' diff first: had it published anything, it would arrive before the stored diff's events.
        await svc.http.post('/api/v1/diff').attach('a', original, 'a.png').attach('b', original, 'b.png').expect(200);
        await svc.http.get('/api/v1/diff').query({ a: 'diff/original.png', b: ids['one-rect.png'], output: 'png' }).expect(200);
        const events = await recorder.waitForCount(2);
        expect(events.map((e) => [e.type, e.data.album, e.data.image])).to.deep.equal([
          ['imagestore.image.fetched', 'diff', 'original.png'],
          ['imagestore.image.fetched', 'diff', 'one-rect.png'],
        ]);
        expect(events.map((e) => e.data.id)).to.deep.equal([ids['original.png'], ids['one-rect.png']]);
      } finally {
        await recorder.close();
      }
    });
  });
});

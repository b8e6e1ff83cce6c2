import { expect } from 'chai';
import sharp from 'sharp';
import { startTestService, type TestService } from '../helpers/service.js';
import { albumPath, createAlbum, rawBody, uploadImage } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import {
  animatedGif, animatedWebp, cmykJpeg, jpegWithOrientation6, jpegWithP3Profile, noisyJpeg, pngWithAlpha, quadrantsPng,
} from '../helpers/image-fixtures.js';

type Query = Record<string, string | number>;
type Rgb = [number, number, number];

const RED: Rgb = [255, 0, 0];
const GREEN: Rgb = [0, 255, 0];
const BLUE: Rgb = [0, 0, 255];
const WHITE: Rgb = [255, 255, 255];

/** The colour of one pixel as sharp decodes it (sRGB, first 3 channels). */
async function pixel(bytes: Buffer, x: number, y: number): Promise<Rgb> {
  const { data, info } = await sharp(bytes).extract({ left: x, top: y, width: 1, height: 1 }).raw().toBuffer({ resolveWithObject: true });
  return info.channels >= 3 ? [data[0], data[1], data[2]] : [data[0], data[0], data[0]];
}

/** Asserts two colours are within `tolerance` per channel (lossy formats move colours a little). */
function expectColour(actual: Rgb, expected: Rgb, tolerance = 40, what = 'colour'): void {
  const off = actual.some((v, i) => Math.abs(v - expected[i]) > tolerance);
  expect(off, `${what}: got rgb(${actual.join(',')}), expected about rgb(${expected.join(',')})`).to.equal(false);
}

describe('images: transforms by query parameters (issue 5)', function () {
  let svc: TestService;
  /** 200×100 PNG in four coloured quadrants. */
  const QUAD = albumPath('t', 'quad.png');
  before(async () => {
    svc = await startTestService();
    await createAlbum(svc.http, 't');
    const uploads: Array<[string, Promise<Buffer>]> = [
      ['quad.png', quadrantsPng(200, 100)],
      ['sideways.jpg', jpegWithOrientation6()],
      ['print.jpg', cmykJpeg()],
      ['p3.jpg', jpegWithP3Profile()],
      ['anim.gif', animatedGif()],
      ['anim.webp', animatedWebp()],
      ['alpha.png', pngWithAlpha()],
      ['noise.jpg', noisyJpeg(64, 64)],
    ];
    for (const [name, bytes] of uploads) await uploadImage(svc.http, 't', name, await bytes);
  });
  after(async () => svc?.close());

  /** GET with a query, expecting 200; returns the response, its bytes and sharp's reading of them. */
  async function transform(url: string, query: Query, headers: Record<string, string> = {}) {
    const res = await svc.http.get(url).query(query).set(headers).buffer(true).parse(rawBody);
    expect(res.status, `GET ${url}?${new URLSearchParams(query as Record<string, string>)}: ${res.status} ${String(res.body)}`).to.equal(200);
    const bytes = res.body as Buffer;
    return { res, bytes, meta: await sharp(bytes).metadata() };
  }

  describe('bad parameters: 400 naming the parameter', () => {
    const cases: Array<[Query, RegExp]> = [
      [{ w: 0 }, /\bfor w\b.*"0"/],
      [{ w: 9000 }, /between 1 and 8192 for w\b.*"9000"/],
      [{ w: 'abc' }, /\bfor w\b.*"abc"/],
      [{ w: '1.5' }, /\bfor w\b/],
      [{ h: -1 }, /\bfor h\b/],
      [{ h: 8193 }, /\bfor h\b/],
      [{ fit: 'bad', w: 10 }, /cover, contain, fill, inside, outside for fit\b.*"bad"/],
      [{ fit: 'cover' }, /fit needs w or h/],
      [{ format: 'bmp' }, /\bfor format\b.*"bmp"/],
      [{ q: 0 }, /between 1 and 100 for q\b/],
      [{ q: 101 }, /between 1 and 100 for q\b.*"101"/],
      [{ rotate: 45 }, /multiple of 90 for rotate\b.*"45"/],
      [{ rotate: 'left' }, /\bfor rotate\b/],
      [{ blur: 0 }, /between 0.3 and 100 for blur\b.*"0"/],
      [{ blur: 101 }, /\bfor blur\b/],
      [{ flip: 'maybe' }, /\bfor flip\b.*"maybe"/],
      [{ grayscale: 'yes' }, /\bfor grayscale\b/],
      [{ enlarge: 2, w: 10 }, /\bfor enlarge\b/],
      [{ crop: '1,2,3' }, /x,y,width,height for crop\b/],
      [{ crop: '0,0,0,10' }, /\bfor crop width\b/],
      [{ crop: '150,0,100,10' }, /crop 150,0,100,10 is outside the 200x100 image/],
      [{ crop: '0,90,10,20' }, /crop 0,90,10,20 is outside/],
      [{ width: 10 }, /Unknown parameter "width"/],
    ];
    for (const [query, message] of cases) {
      it(`${new URLSearchParams(query as Record<string, string>)} → 400 ${message}`, async () => {
        const res = await svc.http.get(QUAD).query(query).expect(400);
        expect(res.body).to.have.keys(['error']);
        expect(res.body.error).to.match(message);
      });
    }

    it('w with enlarge that would make the other side over 8192 px → 400 (a 10x1000 image at w=8192 is 8192x819200)', async () => {
      await uploadImage(svc.http, 't', 'tall.png', await makePng(10, 1000));
      const tall = await svc.http.get(albumPath('t', 'tall.png')).query({ w: 8192, enlarge: 1 }).expect(400);
      expect(tall.body.error).to.match(/8192x819200 image; no side may exceed 8192 px/);
      const outside = await svc.http.get(QUAD).query({ w: 10, h: 8192, fit: 'outside', enlarge: 1 }).expect(400);
      expect(outside.body.error).to.match(/16384x8192 image/);
      const inside = await transform(QUAD, { w: 400, h: 8192, fit: 'inside', enlarge: 1 });
      expect([inside.meta.width, inside.meta.height]).to.deep.equal([400, 200]);
    });

    it('w given twice → 400 naming w', async () => {
      const res = await svc.http.get(`${QUAD}?w=10&w=20`).expect(400);
      expect(res.body.error).to.match(/one value for w\b/);
    });
  });

  describe('size and fit (source 200x100)', () => {
    const sizes: Array<[Query, [number, number]]> = [
      [{ w: 100 }, [100, 50]],
      [{ h: 25 }, [50, 25]],
      [{ w: 100, h: 100 }, [100, 100]], // fit defaults to cover
      [{ w: 100, h: 100, fit: 'cover' }, [100, 100]],
      [{ w: 100, h: 100, fit: 'contain' }, [100, 100]],
      [{ w: 100, h: 100, fit: 'fill' }, [100, 100]],
      [{ w: 100, h: 100, fit: 'inside' }, [100, 50]],
      [{ w: 50, h: 50, fit: 'outside' }, [100, 50]],
      [{ w: 400 }, [200, 100]], // no upscaling unless asked
      [{ w: 400, h: 400, fit: 'inside' }, [200, 100]],
      [{ w: 400, enlarge: 1 }, [400, 200]],
      [{ w: 400, h: 400, fit: 'fill', enlarge: 'true' }, [400, 400]],
    ];
    for (const [query, [width, height]] of sizes) {
      it(`${new URLSearchParams(query as Record<string, string>)} → ${width}x${height}`, async () => {
        const { meta, res } = await transform(QUAD, query);
        expect([meta.width, meta.height]).to.deep.equal([width, height]);
        expect(res.headers['content-type']).to.equal('image/png');
        expect(meta.format).to.equal('png');
      });
    }

    it('issue 18: position= picks what fit=cover keeps: west the left half, east the right half, centre the middle', async () => {
      const west = await transform(QUAD, { w: 100, h: 100, position: 'west' });
      expectColour(await pixel(west.bytes, 90, 10), RED, 40, 'west top-right');
      expectColour(await pixel(west.bytes, 90, 90), BLUE, 40, 'west bottom-right');
      const east = await transform(QUAD, { w: 100, h: 100, fit: 'cover', position: 'east' });
      expectColour(await pixel(east.bytes, 10, 10), GREEN, 40, 'east top-left');
      const centre = await transform(QUAD, { w: 100, h: 100, position: 'center' });
      expectColour(await pixel(centre.bytes, 10, 10), RED, 40, 'centre top-left');
      expectColour(await pixel(centre.bytes, 90, 10), GREEN, 40, 'centre top-right');
    });

    it('issue 18: position=attention and entropy crop to the salient part (a red disc on grey, off centre)', async () => {
      const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="100"><rect width="300" height="100" fill="#808080"/><circle cx="255" cy="50" r="35" fill="#ff1010"/></svg>';
      await uploadImage(svc.http, 't', 'salient.png', await sharp(Buffer.from(svg)).png().toBuffer());
      for (const position of ['attention', 'entropy']) {
        const { bytes, meta } = await transform(albumPath('t', 'salient.png'), { w: 100, h: 100, position });
        expect([meta.width, meta.height]).to.deep.equal([100, 100]);
        expectColour(await pixel(bytes, 55, 50), RED, 60, `${position}: the disc is kept`);
      }
      const centre = await transform(albumPath('t', 'salient.png'), { w: 100, h: 100 });
      expectColour(await pixel(centre.bytes, 55, 50), [128, 128, 128], 30, 'a centre crop misses the disc');
    });

    it('fit=contain letterboxes (the picture is inside, padded), fit=cover crops the middle', async () => {
      const contain = await transform(QUAD, { w: 100, h: 100, fit: 'contain' });
      expectColour(await pixel(contain.bytes, 10, 30), RED, 40, 'contain: the picture starts below the top band');
      const cover = await transform(QUAD, { w: 100, h: 100, fit: 'cover' });
      expectColour(await pixel(cover.bytes, 10, 10), RED, 40, 'cover top-left');
      expectColour(await pixel(cover.bytes, 90, 90), WHITE, 40, 'cover bottom-right');
    });
  });

  describe('orientation, rotation, flips, crop', () => {
    it('rotate=90 turns clockwise and swaps the sides: the bottom-left (blue) comes to the top-left', async () => {
      const { bytes, meta } = await transform(QUAD, { rotate: 90 });
      expect([meta.width, meta.height]).to.deep.equal([100, 200]);
      expectColour(await pixel(bytes, 5, 5), BLUE);
      expectColour(await pixel(bytes, 95, 5), RED);
    });

    it('rotate=-90 is 270 clockwise; rotate=180 keeps the sides', async () => {
      const ccw = await transform(QUAD, { rotate: -90 });
      expect([ccw.meta.width, ccw.meta.height]).to.deep.equal([100, 200]);
      expectColour(await pixel(ccw.bytes, 5, 5), GREEN);
      const half = await transform(QUAD, { rotate: 180 });
      expect([half.meta.width, half.meta.height]).to.deep.equal([200, 100]);
      expectColour(await pixel(half.bytes, 5, 5), WHITE);
    });

    it('flip mirrors top to bottom, flop left to right', async () => {
      expectColour(await pixel((await transform(QUAD, { flip: 1 })).bytes, 5, 5), BLUE, 40, 'flip');
      expectColour(await pixel((await transform(QUAD, { flop: '' })).bytes, 5, 5), GREEN, 40, 'flop');
      expectColour(await pixel((await transform(QUAD, { flip: 'true', flop: 'true' })).bytes, 5, 5), WHITE, 40, 'flip+flop');
    });

    it('crop=x,y,w,h extracts that box (the top-right quadrant is green)', async () => {
      const { bytes, meta } = await transform(QUAD, { crop: '100,0,100,50' });
      expect([meta.width, meta.height]).to.deep.equal([100, 50]);
      const stats = await sharp(bytes).stats();
      expect(stats.channels.slice(0, 3).map((c) => [c.min, c.max])).to.deep.equal([[0, 0], [255, 255], [0, 0]]);
    });

    it('applies EXIF orientation 6: a 48x32 stored picture comes out upright 32x48, red on top, with no orientation tag', async () => {
      const stored = (await svc.http.get(`${albumPath('t', 'sideways.jpg')}/metadata`).expect(200)).body;
      expect(stored).to.include({ width: 48, height: 32, orientation: 6 });
      const { bytes, meta } = await transform(albumPath('t', 'sideways.jpg'), { format: 'png' });
      expect([meta.width, meta.height]).to.deep.equal([32, 48]);
      expect(meta.orientation).to.equal(undefined);
      expectColour(await pixel(bytes, 16, 4), RED, 60, 'top');
      expectColour(await pixel(bytes, 16, 44), BLUE, 60, 'bottom');
    });

    it('takes w and crop in upright coordinates for an EXIF-rotated source', async () => {
      const sized = await transform(albumPath('t', 'sideways.jpg'), { w: 16 });
      expect([sized.meta.width, sized.meta.height]).to.deep.equal([16, 24]);
      // 0,30,32,18 fits the upright 32x48 picture only (the stored one is 32 high).
      const cropped = await transform(albumPath('t', 'sideways.jpg'), { crop: '0,30,32,18', format: 'png' });
      expect([cropped.meta.width, cropped.meta.height]).to.deep.equal([32, 18]);
      expectColour(await pixel(cropped.bytes, 16, 12), BLUE, 60);
    });
  });

  describe('colour, quality, blur', () => {
    it('grayscale → one channel, or three equal ones', async () => {
      const { bytes } = await transform(QUAD, { grayscale: 1 });
      const { channels, isOpaque } = await sharp(bytes).stats();
      expect(isOpaque).to.equal(true);
      if (channels.length >= 3) {
        expect(channels[1].mean).to.be.closeTo(channels[0].mean, 1);
        expect(channels[2].mean).to.be.closeTo(channels[0].mean, 1);
      }
      const [r, g, b] = await pixel(bytes, 5, 5);
      expect(r).to.be.closeTo(g, 2).and.closeTo(b, 2);
    });

    it('blur softens the edge between the quadrants', async () => {
      const sharpEdge = await pixel((await transform(QUAD, { format: 'png' })).bytes, 99, 25);
      expectColour(sharpEdge, RED, 0);
      const blurred = await pixel((await transform(QUAD, { blur: 3 })).bytes, 99, 25);
      expect(blurred[0], 'red fades').to.be.below(235);
      expect(blurred[1], 'green bleeds in').to.be.above(20);
    });

    it('q sets the quality: q=10 is smaller than q=95', async () => {
      const low = await transform(albumPath('t', 'noise.jpg'), { q: 10, format: 'jpg' });
      const high = await transform(albumPath('t', 'noise.jpg'), { q: 95, format: 'jpg' });
      expect(low.bytes.length).to.be.below(high.bytes.length * 0.6);
      expect(low.res.headers['content-type']).to.equal('image/jpeg');
    });

    it('turns a CMYK JPEG into sRGB with the right colours (yellow stays yellow)', async () => {
      const { bytes, meta } = await transform(albumPath('t', 'print.jpg'), { w: 20 });
      expect(meta).to.include({ format: 'jpeg', space: 'srgb', channels: 3 });
      expectColour(await pixel(bytes, 2, 7), [250, 200, 0], 50, 'left half');
      expectColour(await pixel(bytes, 17, 7), [0, 120, 200], 50, 'right half');
    });

    it('strips EXIF but keeps the ICC profile, and the colours still read the same through it', async () => {
      const original = await jpegWithP3Profile();
      const { bytes, meta } = await transform(albumPath('t', 'p3.jpg'), { w: 40, format: 'png' });
      expect(meta.exif, 'exif').to.equal(undefined);
      expect(meta.icc, 'icc').to.be.instanceOf(Buffer);
      const [before, after] = [await pixel(original, 5, 15), await pixel(bytes, 5, 15)];
      expectColour(after, before, 12, 'colour through the profile');
    });

    it('strips EXIF from an oriented JPEG (no orientation tag, no EXIF block)', async () => {
      const { meta } = await transform(albumPath('t', 'sideways.jpg'), { w: 20 });
      expect(meta.exif).to.equal(undefined);
      expect(meta.orientation).to.equal(undefined);
    });
  });

  describe('output formats', () => {
    const formats: Array<[string, string, string]> = [
      ['jpg', 'image/jpeg', 'jpeg'], ['jpeg', 'image/jpeg', 'jpeg'], ['png', 'image/png', 'png'], ['webp', 'image/webp', 'webp'],
      ['avif', 'image/avif', 'heif'], ['gif', 'image/gif', 'gif'], ['tiff', 'image/tiff', 'tiff'], ['tif', 'image/tiff', 'tiff'],
    ];
    for (const [param, type, decoded] of formats) {
      it(`format=${param} → ${type}, named .${param === 'jpeg' ? 'jpg' : param === 'tif' ? 'tiff' : param} in Content-Disposition`, async () => {
        const { res, meta } = await transform(QUAD, { format: param, w: 20 });
        expect(res.headers['content-type']).to.equal(type);
        expect(meta.format).to.equal(decoded);
        expect([meta.width, meta.height]).to.deep.equal([20, 10]);
        expect(res.headers['content-disposition']).to.match(/^inline; filename="quad\.(jpg|png|webp|avif|gif|tiff)"/);
      });
    }

    for (const format of ['png', 'webp']) {
      it(`keeps alpha through ${format} output (the right half stays half transparent)`, async () => {
        const { bytes, meta } = await transform(albumPath('t', 'alpha.png'), { format, w: 10 });
        expect(meta.hasAlpha).to.equal(true);
        const { data } = await sharp(bytes).extract({ left: 8, top: 2, width: 1, height: 1 }).raw().toBuffer({ resolveWithObject: true });
        expect(data[3]).to.be.closeTo(128, 10);
      });
    }
  });

  describe('format=auto negotiates with Accept, with Vary: Accept', () => {
    const cases: Array<[string, string]> = [
      ['image/avif,image/webp,image/apng,*/*;q=0.8', 'image/avif'],
      ['image/webp,*/*', 'image/webp'],
      ['image/png,image/*;q=0.8,*/*;q=0.5', 'image/jpeg'],
      ['*/*', 'image/jpeg'],
      ['', 'image/jpeg'],
    ];
    for (const [accept, type] of cases) {
      it(`Accept ${JSON.stringify(accept)} → ${type}`, async () => {
        const headers: Record<string, string> = accept ? { Accept: accept } : {};
        const { res, meta } = await transform(albumPath('t', 'noise.jpg'), { format: 'auto', w: 32 }, headers);
        expect(res.headers['content-type']).to.equal(type);
        expect(meta.format).to.equal(type === 'image/avif' ? 'heif' : type.slice(6));
        expect(res.headers.vary).to.match(/\bAccept\b/);
      });
    }

    it('sends no Vary: Accept when the format was not negotiated', async () => {
      const { res } = await transform(albumPath('t', 'noise.jpg'), { format: 'webp' }, { Accept: 'image/avif' });
      expect(res.headers['content-type']).to.equal('image/webp');
      expect(res.headers.vary ?? '').to.not.match(/\bAccept\b/);
    });

    it('gives each negotiated variant its own ETag', async () => {
      const avif = await transform(albumPath('t', 'noise.jpg'), { format: 'auto' }, { Accept: 'image/avif' });
      const webp = await transform(albumPath('t', 'noise.jpg'), { format: 'auto' }, { Accept: 'image/webp' });
      expect(avif.res.headers.etag).to.not.equal(webp.res.headers.etag);
    });
  });

  describe('animation', () => {
    it('animated GIF → WebP stays animated (3 frames)', async () => {
      const { meta, res } = await transform(albumPath('t', 'anim.gif'), { format: 'webp' });
      expect(res.headers['content-type']).to.equal('image/webp');
      expect(meta.pages).to.equal(3);
    });

    it('animated GIF resized stays an animated GIF, each frame resized', async () => {
      const { meta } = await transform(albumPath('t', 'anim.gif'), { w: 12 });
      expect(meta).to.include({ format: 'gif', pages: 3, width: 12 });
      expect(meta.pageHeight ?? meta.height).to.equal(10);
    });

    it('animated WebP → GIF stays animated; frames keep their order (red, green, blue)', async () => {
      const { bytes, meta } = await transform(albumPath('t', 'anim.webp'), { format: 'gif' });
      expect(meta.pages).to.equal(3);
      const frame = async (page: number) => {
        const { data } = await sharp(bytes, { page }).raw().toBuffer({ resolveWithObject: true });
        return [data[0], data[1], data[2]] as Rgb;
      };
      expectColour(await frame(0), RED, 10, 'frame 0');
      expectColour(await frame(1), GREEN, 10, 'frame 1');
      expectColour(await frame(2), BLUE, 10, 'frame 2');
    });

    it('animated GIF → PNG is the first frame only', async () => {
      const { bytes, meta } = await transform(albumPath('t', 'anim.gif'), { format: 'png' });
      expect(meta.pages ?? 1).to.equal(1);
      expect([meta.width, meta.height]).to.deep.equal([24, 20]);
      expectColour(await pixel(bytes, 3, 3), RED, 10);
    });
  });
});

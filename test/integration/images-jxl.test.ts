import { expect } from 'chai';
import sharp from 'sharp';
import { defaultConfig } from '../../src/config.js';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import { canMakeJxl, encodeJxl } from '../helpers/heif-fixtures.js';
import { startTestService, type TestService } from '../helpers/service.js';

async function pixel(bytes: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * 4;
  return [...data.subarray(i, i + 4)];
}

function near(actual: number[], expected: number[], tolerance = 24): void {
  actual.forEach((v, i) => expect(Math.abs(v - expected[i]), `channel ${i}: ${actual} vs ${expected}`).to.be.at.most(tolerance));
}

describe('images: JPEG XL ingest (issue 18, item 2)', function () {
  this.timeout(60_000);
  let svc: TestService;
  let jxl: Buffer;
  let alpha: Buffer;
  before(async function () {
    if (!canMakeJxl()) {
      console.warn('    skipped: cjxl is missing (apt-get install libjxl-tools; CI installs it)');
      this.skip();
    }
    jxl = await encodeJxl(await sharp({ create: { width: 64, height: 32, channels: 3, background: '#c03020' } })
      .composite([{ input: { create: { width: 16, height: 32, channels: 3, background: '#2040e0' } }, left: 0, top: 0 }]).removeAlpha().png().toBuffer());
    alpha = await encodeJxl(await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 0, g: 200, b: 0, alpha: 0.5 } } }).png().toBuffer(), 0);
    svc = await startTestService();
    await createAlbum(svc.http, 'x');
  });
  after(async () => svc?.close());

  it('accepts a JPEG XL: 201 with image/jxl and its size, downloaded byte-identical, converted from the decoded pixels', async () => {
    const res = await uploadImage(svc.http, 'x', 'a.jxl', jxl);
    expect(res.body.image).to.include({ type: 'image/jxl', format: 'jxl', width: 64, height: 32, hasAlpha: false, pages: 1, sha256: sha256(jxl) });
    expect(res.body.image.thumbhash).to.be.a('string');
    const got = await svc.http.get(albumPath('x', 'a.jxl')).buffer(true).parse(rawBody).expect(200);
    expect(got.headers['content-type']).to.equal('image/jxl');
    expect(Buffer.compare(got.body as Buffer, jxl)).to.equal(0);
    const png = await svc.http.get(`${albumPath('x', 'a.jxl')}?format=png`).buffer(true).parse(rawBody).expect(200);
    expect(await sharp(png.body as Buffer).metadata()).to.include({ format: 'png', width: 64, height: 32 });
    near(await pixel(png.body as Buffer, 4, 16), [0x20, 0x40, 0xe0, 255]);
    near(await pixel(png.body as Buffer, 60, 16), [0xc0, 0x30, 0x20, 255]);
    const webp = await svc.http.get(`${albumPath('x', 'a.jxl')}?w=32&format=auto`).set('Accept', 'image/webp,*/*').buffer(true).parse(rawBody).expect(200);
    expect(webp.headers['content-type']).to.equal('image/webp');
    expect(await sharp(webp.body as Buffer).metadata()).to.include({ width: 32, height: 16 });
  });

  it('JPEG XL out: format=jxl and /images/{id}.jxl encode one (decodable, right size); format=auto prefers it when Accept names it', async () => {
    const png = await sharp({ create: { width: 80, height: 60, channels: 3, background: '#3070b0' } }).png().toBuffer();
    const { body } = await uploadImage(svc.http, 'x', 'source.png', png);
    const out = await svc.http.get(`${albumPath('x', 'source.png')}?w=40&format=jxl`).buffer(true).parse(rawBody).expect(200);
    expect(out.headers['content-type']).to.equal('image/jxl');
    expect([...(out.body as Buffer).subarray(0, 2)]).to.deep.equal([0xff, 0x0a]);
    const back = await uploadImage(svc.http, 'x', 'roundtrip.jxl', out.body as Buffer);
    expect(back.body.image).to.include({ format: 'jxl', width: 40, height: 30 });
    const again = await svc.http.get(`${albumPath('x', 'roundtrip.jxl')}?format=png`).buffer(true).parse(rawBody).expect(200);
    near(await pixel(again.body as Buffer, 20, 15), [0x30, 0x70, 0xb0, 255]);
    const byId = await svc.http.get(`/api/v1/images/${body.image.id}.jxl`).buffer(true).parse(rawBody).expect(200);
    expect(byId.headers['content-type']).to.equal('image/jxl');
    const auto = await svc.http.get(`${albumPath('x', 'source.png')}?format=auto&w=20`).set('Accept', 'image/jxl,image/avif,image/webp,*/*').buffer(true).parse(rawBody).expect(200);
    expect(auto.headers['content-type']).to.equal('image/jxl');
    const chromium = await svc.http.get(`${albumPath('x', 'source.png')}?format=auto&w=20`).set('Accept', 'image/avif,image/webp,*/*').buffer(true).parse(rawBody).expect(200);
    expect(chromium.headers['content-type']).to.equal('image/avif');
  });

  it('keeps alpha: a PNG conversion is half transparent green', async () => {
    const res = await uploadImage(svc.http, 'x', 'alpha.jxl', alpha);
    expect(res.body.image).to.include({ width: 40, height: 30, hasAlpha: true });
    const png = await svc.http.get(`${albumPath('x', 'alpha.jxl')}?format=png`).buffer(true).parse(rawBody).expect(200);
    near(await pixel(png.body as Buffer, 20, 15), [0, 200, 0, 128]);
  });

  it('a truncated or corrupt JPEG XL gets 422, nothing stored', async () => {
    for (const [name, bytes] of [['cut.jxl', jxl.subarray(0, Math.floor(jxl.length / 2))], ['bad.jxl', Buffer.concat([jxl.subarray(0, 12), Buffer.alloc(200, 0x5a)])]] as const) {
      const res = await svc.http.post(`${albumPath('x')}/images`).attach('file', bytes, name).expect(422);
      expect(Object.keys(res.body)).to.deep.equal(['error']);
      await svc.http.get(albumPath('x', name)).expect(404);
    }
  });

  it('over MAX_INPUT_PIXELS: refused from the header with 422', async () => {
    const small = await startTestService({ config: { images: { ...defaultConfig().images, maxInputPixels: 1000 } } });
    try {
      await createAlbum(small.http, 'x');
      const res = await small.http.post(`${albumPath('x')}/images`).attach('file', jxl, 'big.jxl').expect(422);
      expect(res.body.error).to.match(/64x32 pixels exceeds the limit of 1000 pixels/);
    } finally {
      await small.close();
    }
  });
});

import { expect } from 'chai';
import sharp from 'sharp';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import { canMakeHeic, encodeHeic, withClaimedSize, withIrot90 } from '../helpers/heif-fixtures.js';
import { startTestService, type TestService } from '../helpers/service.js';

const SAFARI_ACCEPT = 'image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5';
const CHROMIUM_ACCEPT = 'image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8';

/** 64×32: red, with a blue band over its left 16 columns. */
async function redWithBlueLeft(): Promise<Buffer> {
  return sharp({ create: { width: 64, height: 32, channels: 3, background: '#c03020' } })
    .composite([{ input: { create: { width: 16, height: 32, channels: 3, background: '#2040e0' } }, left: 0, top: 0 }])
    .removeAlpha().png().toBuffer();
}

async function pixel(bytes: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * 4;
  return [...data.subarray(i, i + 4)];
}

function near(actual: number[], expected: number[], tolerance = 24): void {
  actual.forEach((v, i) => expect(Math.abs(v - expected[i]), `channel ${i}: ${actual} vs ${expected}`).to.be.at.most(tolerance));
}

describe('images: HEIC ingest (issue 18, item 1)', function () {
  this.timeout(60_000);
  let svc: TestService;
  let plain: Buffer;
  let rotated: Buffer;
  let alpha: Buffer;
  before(async function () {
    if (!canMakeHeic()) {
      console.warn('    skipped: heif-enc is missing (apt-get install libheif-examples; CI installs it)');
      this.skip();
    }
    plain = await encodeHeic(await redWithBlueLeft());
    rotated = withIrot90(plain);
    alpha = await encodeHeic(await sharp({ create: { width: 40, height: 30, channels: 4, background: { r: 0, g: 200, b: 0, alpha: 0.5 } } }).png().toBuffer());
    svc = await startTestService();
    await createAlbum(svc.http, 'phone');
  });
  after(async () => svc?.close());

  it('accepts a HEIC: 201 with image/heic and the decoder\'s facts, downloaded byte-identical as image/heic', async () => {
    const res = await uploadImage(svc.http, 'phone', 'plain.heic', plain);
    expect(res.body.image).to.include({ type: 'image/heic', format: 'heic', width: 64, height: 32, orientation: 1, hasAlpha: false, pages: 1, sha256: sha256(plain) });
    const got = await svc.http.get(albumPath('phone', 'plain.heic')).buffer(true).parse(rawBody).expect(200);
    expect(got.headers['content-type']).to.equal('image/heic');
    expect(Buffer.compare(got.body as Buffer, plain)).to.equal(0);
  });

  it('converts and transforms from the decoded pixels: w=32 as WebP and PNG, pixels as in the source', async () => {
    const webp = await svc.http.get(`${albumPath('phone', 'plain.heic')}?w=32&format=webp`).buffer(true).parse(rawBody).expect(200);
    expect(webp.headers['content-type']).to.equal('image/webp');
    expect(await sharp(webp.body as Buffer).metadata()).to.include({ format: 'webp', width: 32, height: 16 });
    const png = await svc.http.get(`${albumPath('phone', 'plain.heic')}?format=png`).buffer(true).parse(rawBody).expect(200);
    expect(await sharp(png.body as Buffer).metadata()).to.include({ format: 'png', width: 64, height: 32, hasAlpha: false });
    near(await pixel(png.body as Buffer, 4, 16), [0x20, 0x40, 0xe0, 255]);
    near(await pixel(png.body as Buffer, 60, 16), [0xc0, 0x30, 0x20, 255]);
    const cropped = await svc.http.get(`${albumPath('phone', 'plain.heic')}?crop=16,0,48,32&w=24&grayscale`).buffer(true).parse(rawBody).expect(200);
    expect(await sharp(cropped.body as Buffer).metadata()).to.include({ format: 'jpeg', width: 24, height: 16 });
  });

  it('applies irot: a HEIC turned 90° anticlockwise is 32×64, its blue band at the bottom', async () => {
    const res = await uploadImage(svc.http, 'phone', 'rotated.heic', rotated);
    expect(res.body.image).to.include({ width: 32, height: 64, orientation: 1 });
    const png = await svc.http.get(`${albumPath('phone', 'rotated.heic')}?format=png`).buffer(true).parse(rawBody).expect(200);
    expect(await sharp(png.body as Buffer).metadata()).to.include({ width: 32, height: 64 });
    near(await pixel(png.body as Buffer, 16, 60), [0x20, 0x40, 0xe0, 255]);
    near(await pixel(png.body as Buffer, 16, 4), [0xc0, 0x30, 0x20, 255]);
  });

  it('keeps alpha: hasAlpha, and a PNG conversion is half transparent green', async () => {
    const res = await uploadImage(svc.http, 'phone', 'alpha.heic', alpha);
    expect(res.body.image).to.include({ width: 40, height: 30, hasAlpha: true });
    const png = await svc.http.get(`${albumPath('phone', 'alpha.heic')}?w=20&format=png`).buffer(true).parse(rawBody).expect(200);
    expect(await sharp(png.body as Buffer).metadata()).to.include({ width: 20, height: 15, hasAlpha: true });
    near(await pixel(png.body as Buffer, 10, 7), [0, 200, 0, 128]);
  });

  it('format=auto never sends HEIC: JPEG XL to Safari, AVIF to Chromium, JPEG (PNG with alpha) to a client taking only HEIC', async () => {
    for (const [accept, type] of [[SAFARI_ACCEPT, 'image/jxl'], [CHROMIUM_ACCEPT, 'image/avif']]) {
      const res = await svc.http.get(`${albumPath('phone', 'plain.heic')}?format=auto`).set('Accept', accept).buffer(true).parse(rawBody).expect(200);
      expect(res.headers['content-type'], accept).to.equal(type);
    }
    const jpeg = await svc.http.get(`${albumPath('phone', 'plain.heic')}?format=auto`).set('Accept', 'image/heic,*/*;q=0.5').buffer(true).parse(rawBody).expect(200);
    expect(jpeg.headers['content-type']).to.equal('image/jpeg');
    const png = await svc.http.get(`${albumPath('phone', 'alpha.heic')}?format=auto&w=10`).set('Accept', 'image/heic').buffer(true).parse(rawBody).expect(200);
    expect(png.headers['content-type']).to.equal('image/png');
  });

  it('a multi-image HEIC: pages counts its images, the primary one is the picture', async () => {
    const second = await sharp({ create: { width: 20, height: 20, channels: 3, background: '#00ff00' } }).png().toBuffer();
    const multi = await encodeHeic(await redWithBlueLeft(), second);
    const res = await uploadImage(svc.http, 'phone', 'multi.heic', multi);
    expect(res.body.image).to.include({ pages: 2, width: 64, height: 32 });
    const png = await svc.http.get(`${albumPath('phone', 'multi.heic')}?format=png`).buffer(true).parse(rawBody).expect(200);
    expect(await sharp(png.body as Buffer).metadata()).to.include({ width: 64, height: 32 });
  });

  it('a truncated or corrupt HEIC gets 422, and nothing is stored', async () => {
    for (const [name, bytes] of [['cut.heic', plain.subarray(0, plain.length - 60)], ['garbled.heic', Buffer.concat([plain.subarray(0, plain.length - 200), Buffer.alloc(200, 0x55)])]] as const) {
      const res = await svc.http.post(`${albumPath('phone')}/images`).attach('file', bytes, name).expect(422);
      expect(Object.keys(res.body)).to.deep.equal(['error']);
      expect(res.body.error).to.not.match(/\//);
      await svc.http.get(albumPath('phone', name)).expect(404);
    }
  });

  it('a HEIC pixel bomb (header claims 30000×30000) is refused from its header with 422', async () => {
    const res = await svc.http.post(`${albumPath('phone')}/images`).attach('file', withClaimedSize(plain, 30000, 30000), 'bomb.heic').expect(422);
    expect(res.body.error).to.match(/30000x30000 pixels exceeds the limit/);
  });
});

import { expect } from 'chai';
import sharp from 'sharp';
import { defaultConfig } from '../../src/config.js';
import { albumPath, createAlbum, rawBody, sha256, uploadImage } from '../helpers/api.js';
import { noisyJpeg, svg } from '../helpers/image-fixtures.js';
import { startTestService, type TestService } from '../helpers/service.js';

describe('image delivery choices: original bytes when they satisfy, white behind JPEG, sandboxed SVG', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ config: { images: { ...defaultConfig().images, allowSvg: true } } });
    await createAlbum(svc.http, 'c');
  });
  after(async () => svc.close());

  it('format=auto for a client taking neither AVIF nor WebP sends the original bytes, with Vary: Accept, and runs no transform', async () => {
    const jpeg = await noisyJpeg(64, 48);
    await uploadImage(svc.http, 'c', 'n.jpg', jpeg);
    const before = svc.service.derivatives.stats().transforms;
    const res = await svc.http.get(`${albumPath('c', 'n.jpg')}?format=auto`).set('Accept', 'image/jpeg,image/*;q=0.8').buffer(true).parse(rawBody).expect(200);
    expect(sha256(res.body as Buffer)).to.equal(sha256(jpeg));
    expect(res.headers.vary).to.match(/Accept/);
    expect(svc.service.derivatives.stats().transforms).to.equal(before);
    const webp = await svc.http.get(`${albumPath('c', 'n.jpg')}?format=auto`).set('Accept', 'image/webp').buffer(true).parse(rawBody).expect(200);
    expect(webp.headers['content-type']).to.equal('image/webp');
  });

  it('converting an image with transparency to JPEG puts white, not black, behind it', async () => {
    // Left half opaque red, right half fully transparent (black RGB under alpha 0).
    const [width, height] = [20, 10];
    const pixels = Buffer.alloc(width * height * 4);
    for (let i = 0; i < width * height; i += 1) pixels.set(i % width < width / 2 ? [255, 0, 0, 255] : [0, 0, 0, 0], i * 4);
    const png = await sharp(pixels, { raw: { width, height, channels: 4 } }).png().toBuffer();
    const meta = await sharp(png).metadata();
    await uploadImage(svc.http, 'c', 'alpha.png', png);
    const res = await svc.http.get(`${albumPath('c', 'alpha.png')}?format=jpeg`).buffer(true).parse(rawBody).expect(200);
    const { data, info } = await sharp(res.body as Buffer).raw().toBuffer({ resolveWithObject: true });
    // Find a pixel that is fully transparent in the source and check it came out white.
    const { data: src } = await sharp(png).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    let checked = 0;
    for (let i = 0; i < (meta.width ?? 0) * (meta.height ?? 0) && checked < 5; i++) {
      if (src[i * 4 + 3] !== 0 || i % width < width / 2 + 4) continue; // away from the edge, where JPEG blurs colours
      const [r, g, b] = [data[i * info.channels], data[i * info.channels + 1], data[i * info.channels + 2]];
      expect(Math.min(r, g, b), `pixel ${i}`).to.be.greaterThan(245);
      checked += 1;
    }
    expect(checked, 'the fixture has fully transparent pixels').to.be.greaterThan(0);
  });

  it('answers 304 to a revalidation that also says Cache-Control: no-cache (as fetch() sends it)', async () => {
    const jpeg = await noisyJpeg(32, 32);
    await uploadImage(svc.http, 'c', 'etag.jpg', jpeg);
    const first = await svc.http.get(albumPath('c', 'etag.jpg')).expect(200);
    await svc.http.get(albumPath('c', 'etag.jpg')).set('If-None-Match', first.headers.etag).set('Cache-Control', 'no-cache').expect(304);
    await svc.http.get(albumPath('c', 'etag.jpg')).set('If-None-Match', `W/${first.headers.etag}`).expect(304);
    await svc.http.get(albumPath('c', 'etag.jpg')).set('If-None-Match', '"other"').expect(200);
  });

  it('serves an SVG (allowed by config) with a sandboxing Content-Security-Policy', async () => {
    await uploadImage(svc.http, 'c', 'v.svg', svg());
    const res = await svc.http.get(albumPath('c', 'v.svg')).expect(200);
    expect(res.headers['content-type']).to.match(/^image\/svg\+xml/);
    expect(res.headers['content-security-policy']).to.match(/^sandbox;/);
    expect(res.headers['x-content-type-options']).to.equal('nosniff');
  });
});

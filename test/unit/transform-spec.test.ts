import { expect } from 'chai';
import { ValidationError } from '../../src/errors.js';
import { MAX_OUTPUT_SIDE, negotiateFormat, parseTransformSpec, specKey, type TransformSpec } from '../../src/images/transform-spec.js';

type Query = Record<string, string | string[] | undefined>;

/** The ValidationError parseTransformSpec throws for `query`; fails the test when it accepts it. */
function rejection(query: Query): ValidationError {
  try {
    parseTransformSpec(query);
  } catch (err) {
    expect(err).to.be.instanceOf(ValidationError);
    expect((err as ValidationError).status).to.equal(400);
    return err as ValidationError;
  }
  expect.fail(`expected ${JSON.stringify(query)} to be rejected`);
}

describe('parseTransformSpec', () => {
  it('returns undefined when nothing is asked (empty query, only download/expires/sig, only no-op values)', () => {
    expect(parseTransformSpec({})).to.equal(undefined);
    expect(parseTransformSpec({ download: '1', expires: '123', sig: 'abc' })).to.equal(undefined);
    expect(parseTransformSpec({ flip: '0', flop: 'false', grayscale: '0', enlarge: 'false', rotate: '0' })).to.equal(undefined);
    expect(parseTransformSpec({ rotate: '-0', w: undefined })).to.equal(undefined);
  });

  it('reads every parameter into a spec', () => {
    const spec = parseTransformSpec({
      w: '320', h: '200', fit: 'inside', enlarge: '1', format: 'webp', q: '80', rotate: '90', flip: '', flop: 'true', grayscale: '1', blur: '1.5', crop: '10,20,300,400',
    });
    expect(spec).to.deep.equal({
      width: 320, height: 200, fit: 'inside', enlarge: true, format: 'webp', quality: 80, rotate: 90, flip: true, flop: true, grayscale: true, blur: 1.5,
      crop: { left: 10, top: 20, width: 300, height: 400 },
    });
  });

  it('accepts every fit with w or h', () => {
    for (const fit of ['cover', 'contain', 'fill', 'inside', 'outside']) expect(parseTransformSpec({ w: '10', fit })).to.deep.equal({ width: 10, fit });
  });

  it('maps format aliases: jpg → jpeg, tif → tiff, and takes auto', () => {
    const formats: Array<[string, string]> = [['jpg', 'jpeg'], ['jpeg', 'jpeg'], ['png', 'png'], ['webp', 'webp'], ['avif', 'avif'], ['gif', 'gif'], ['tif', 'tiff'], ['tiff', 'tiff'], ['auto', 'auto']];
    for (const [raw, format] of formats) expect(parseTransformSpec({ format: raw }), raw).to.deep.equal({ format });
  });

  it('normalises rotate to 90, 180 or 270 clockwise', () => {
    const angles: Array<[string, number | undefined]> = [['90', 90], ['180', 180], ['270', 270], ['-90', 270], ['-180', 180], ['-270', 90], ['0', undefined]];
    for (const [raw, rotate] of angles) expect(parseTransformSpec({ rotate: raw })?.rotate, raw).to.equal(rotate);
  });

  it('takes the bounds of w, h, q and blur, and nothing past them', () => {
    expect(parseTransformSpec({ w: '1', h: String(MAX_OUTPUT_SIDE) })).to.deep.equal({ width: 1, height: 8192 });
    expect(parseTransformSpec({ q: '1' })).to.deep.equal({ quality: 1 });
    expect(parseTransformSpec({ q: '100' })).to.deep.equal({ quality: 100 });
    expect(parseTransformSpec({ blur: '0.3' })).to.deep.equal({ blur: 0.3 });
    expect(parseTransformSpec({ blur: '100' })).to.deep.equal({ blur: 100 });
    expect(rejection({ w: '8193' }).message).to.equal('Expected integer between 1 and 8192 for w but received "8193"');
    expect(rejection({ q: '101' }).message).to.equal('Expected integer between 1 and 100 for q but received "101"');
    expect(rejection({ blur: '0.29' }).message).to.equal('Expected number between 0.3 and 100 for blur but received "0.29"');
    expect(rejection({ blur: '100.5' }).message).to.match(/for blur/);
  });

  it('issue 18: position with w, h and fit=cover or contain (centre spelled either way); smart strategies with cover only', () => {
    expect(parseTransformSpec({ w: '10', h: '10', position: 'attention' })).to.deep.equal({ width: 10, height: 10, position: 'attention' });
    expect(parseTransformSpec({ w: '10', h: '10', fit: 'contain', position: 'north' })).to.include({ position: 'north' });
    expect(parseTransformSpec({ w: '10', h: '10', position: 'center' })).to.include({ position: 'centre' });
    expect(rejection({ w: '10', h: '10', position: 'middle' }).message).to.match(/^Expected one of centre, .*attention for position but received "middle"$/);
    expect(rejection({ w: '10', position: 'entropy' }).message).to.match(/position needs both w and h/);
    expect(rejection({ w: '10', h: '10', fit: 'fill', position: 'east' }).message).to.match(/position needs fit=cover or fit=contain/);
    expect(rejection({ w: '10', h: '10', fit: 'contain', position: 'entropy' }).message).to.match(/needs fit=cover/);
    expect(specKey({ width: 10, height: 10, position: 'entropy', format: 'png' })).to.not.equal(specKey({ width: 10, height: 10, format: 'png' }));
  });

  it('names the parameter in every rejection', () => {
    const cases: Array<[Query, RegExp]> = [
      [{ w: '0' }, /^Expected integer between 1 and 8192 for w but received "0"$/],
      [{ w: 'abc' }, /for w but received "abc"/],
      [{ w: '' }, /for w but received ""/],
      [{ w: '1e3' }, /for w but received "1e3"/],
      [{ w: '0x10' }, /for w\b/],
      [{ w: ' 10' }, /for w\b/],
      [{ w: '99999999999999999999' }, /for w\b/],
      [{ h: '-5' }, /for h but received "-5"/],
      [{ fit: 'stretch', w: '1' }, /^Expected one of cover, contain, fill, inside, outside for fit but received "stretch"$/],
      [{ fit: 'cover' }, /^fit needs w or h$/],
      [{ format: 'bmp' }, /for format but received "bmp"/],
      [{ format: 'JPG' }, /for format but received "JPG"/],
      [{ q: '50.5' }, /for q\b/],
      [{ rotate: '45' }, /^Expected a multiple of 90 for rotate but received "45"$/],
      [{ rotate: '360' }, /for rotate\b/],
      [{ blur: '0' }, /for blur but received "0"/],
      [{ blur: '-1' }, /for blur\b/],
      [{ blur: '.5' }, /for blur\b/],
      [{ blur: 'NaN' }, /for blur\b/],
      [{ flip: 'yes' }, /^Expected true, false, 1, 0 or nothing for flip but received "yes"$/],
      [{ flop: '2' }, /for flop\b/],
      [{ grayscale: 'on' }, /for grayscale\b/],
      [{ enlarge: 'x', w: '1' }, /for enlarge\b/],
      [{ crop: '1,2,3' }, /^Expected x,y,width,height for crop but received "1,2,3"$/],
      [{ crop: '1,2,3,4,5' }, /for crop\b/],
      [{ crop: '-1,0,10,10' }, /for crop x\b/],
      [{ crop: '0,a,10,10' }, /for crop y\b/],
      [{ crop: '0,0,0,10' }, /for crop width\b/],
      [{ crop: '0,0,10,0' }, /for crop height\b/],
      [{ w: ['1', '2'] }, /^Expected one value for w but received 2$/],
      [{ width: '10' }, /^Unknown parameter "width"; expected w, h, fit/],
      [{ W: '10' }, /Unknown parameter "W"/],
    ];
    for (const [query, message] of cases) expect(rejection(query).message, JSON.stringify(query)).to.match(message);
  });
});

describe('negotiateFormat (format=auto)', () => {
  const cases: Array<[string, string]> = [
    ['image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8', 'avif'], // Chrome
    ['image/webp,*/*', 'webp'], // older Firefox
    ['IMAGE/WEBP', 'webp'],
    ['image/avif;q=0.5, image/webp', 'avif'],
    ['image/png,image/*;q=0.8,*/*;q=0.5', 'jpeg'], // Safari before AVIF
    ['*/*', 'jpeg'],
    ['image/*', 'jpeg'],
    ['', 'jpeg'],
    ['image/avifx, image/webpish', 'jpeg'],
    ['image/avif;q=0, image/webp', 'webp'], // q=0: not acceptable
    ['image/avif; q=0.000, image/webp;q=0', 'jpeg'],
    // Issue 18: JPEG XL first when named (Safari 17), passed over when refused.
    ['image/webp,image/avif,image/jxl,image/heic,image/heic-sequence,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5', 'jxl'],
    ['image/jxl;q=0, image/avif', 'avif'],
  ];
  for (const [accept, format] of cases) {
    it(`${JSON.stringify(accept)} → ${format}`, () => {
      expect(negotiateFormat(accept, 'jpeg')).to.equal(format);
    });
  }

  it('issue 18: passes over JPEG XL when it may not be made (no encoder)', () => {
    expect(negotiateFormat('image/jxl,image/webp', 'jpeg', (format) => format !== 'jxl')).to.equal('webp');
  });

  it('falls back to the original format, whatever it is', () => {
    expect(negotiateFormat('*/*', 'gif')).to.equal('gif');
    expect(negotiateFormat('image/webp', 'png')).to.equal('webp');
  });
});

describe('specKey', () => {
  it('is the same for the same spec whatever the key order, and differs when any value differs', () => {
    const a: TransformSpec & { format: 'webp' } = { width: 10, height: 20, fit: 'cover', format: 'webp', quality: 80 };
    const b: TransformSpec & { format: 'webp' } = { quality: 80, format: 'webp', fit: 'cover', height: 20, width: 10 };
    expect(specKey(a)).to.equal(specKey(b));
    const variants = [{ ...a, width: 11 }, { ...a, quality: 81 }, { ...a, fit: 'fill' as const }, { ...a, format: 'avif' as const }, { ...a, rotate: 90 as const }, { ...a, crop: { left: 0, top: 0, width: 1, height: 1 } }];
    const keys = new Set([specKey(a), ...variants.map((v) => specKey(v))]);
    expect(keys.size).to.equal(variants.length + 1);
  });

  it('treats equivalent query spellings as one spec', () => {
    const key = (q: Query) => specKey({ ...parseTransformSpec(q)!, format: 'png' });
    expect(key({ w: '10', rotate: '-90', flip: '1' })).to.equal(key({ flip: 'true', rotate: '270', w: '010' }));
  });
});

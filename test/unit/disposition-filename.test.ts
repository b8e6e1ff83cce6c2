import { expect } from 'chai';
import { dispositionFilename } from '../../src/middleware/disposition-filename.js';

describe('dispositionFilename (issue 12: escaped quotes in upload file names)', () => {
  const cases: Array<[string, string | undefined]> = [
    ['form-data; name="file"; filename="photo.png"', 'photo.png'],
    ['form-data; name="file"; filename="a\\"b.png"', 'a"b.png'],
    ['form-data; name="file"; filename="say \\"cheese\\".png"; size=3', 'say "cheese".png'],
    ['form-data; name="file"; filename="back\\\\slash.png"', 'back\\slash.png'],
    ['form-data; name="file"; filename="C:\\Users\\me\\photo.png"', 'C:\\Users\\me\\photo.png'],
    ['form-data; name="file"; filename="pct%22quote.png"', 'pct"quote.png'],
    ['form-data; name="file"; filename=token.png', 'token.png'],
    ['form-data; name="file"; FILENAME = "spaced.png"', 'spaced.png'],
    ['form-data; name="file"; filename="unterminated.png', 'unterminated.png'],
    ['form-data; name="file"; filename=""', ''],
    ['form-data; name="x; filename=\\"inner.png\\""; filename="outer.png"', 'outer.png'],
    ["form-data; name=\"file\"; filename*=UTF-8''star.png", undefined],
    ['form-data; name="file"', undefined],
  ];
  for (const [header, expected] of cases) {
    it(`${header} -> ${JSON.stringify(expected)}`, () => expect(dispositionFilename(header)).to.equal(expected));
  }
  it('is undefined without a header', () => expect(dispositionFilename(undefined)).to.equal(undefined));
});

import { expect } from 'chai';
import { checkName, MAX_NAME_BYTES, RESERVED_PREFIX } from '../../src/albums/names.js';
import { ValidationError } from '../../src/errors.js';

/** The ValidationError checkName throws for `raw`; fails the test when it accepts it. */
function rejection(raw: unknown, kind: 'album' | 'image' = 'album'): ValidationError {
  try {
    checkName(kind, raw);
  } catch (err) {
    expect(err).to.be.instanceOf(ValidationError);
    expect((err as ValidationError).status).to.equal(400);
    return err as ValidationError;
  }
  expect.fail(`expected ${JSON.stringify(raw)} to be rejected`);
}

describe('checkName', () => {
  it('accepts ordinary names and returns them unchanged', () => {
    for (const name of ['holidays', 'table.jpg', 'My Photos 2024', 'été', '写真', 'a', '.hidden', 'x.imagestore', '...', 'a..b', '😀.png']) {
      expect(checkName('album', name), name).to.equal(name);
    }
  });

  it('names the field when the value is not a string', () => {
    expect(rejection(undefined).message).to.equal('Expected string for albumName but received nothing');
    expect(rejection(42, 'image').message).to.equal('Expected string for imageName but received number');
    expect(rejection(null).message).to.equal('Expected string for albumName but received object');
    expect(rejection(['a']).message).to.equal('Expected string for albumName but received object');
  });

  const rejected: Array<[string, string, RegExp]> = [
    ['empty', '', /^Invalid album name "": must not be empty$/],
    ['"."', '.', /must not be "\." or "\.\."$/],
    ['".."', '..', /must not be "\." or "\.\."$/],
    ['a slash', 'a/b', /must not contain "\/" or "\\"$/],
    ['a leading slash', '/etc', /must not contain "\/"/],
    ['a backslash', 'a\\b', /must not contain "\/" or "\\"$/],
    ['a parent path', '../x', /must not contain "\/"/],
    ['NUL', 'a\u0000b', /must not contain control characters$/],
    ['a newline', 'a\nb', /must not contain control characters$/],
    ['a tab', 'a\tb', /must not contain control characters$/],
    ['DEL', 'a\u007fb', /must not contain control characters$/],
    ['a C1 control (NEL)', 'a\u0085b', /must not contain control characters$/],
    ['leading white space', ' a', /must not start or end with white space$/],
    ['trailing white space', 'a ', /must not start or end with white space$/],
    ['a trailing no-break space', 'a\u00a0', /must not start or end with white space$/],
    ['only spaces', '   ', /must not start or end with white space$/],
  ];
  for (const [what, raw, message] of rejected) {
    it(`rejects ${what}`, () => {
      expect(rejection(raw).message).to.match(message);
    });
  }

  it('says which kind of name was wrong', () => {
    expect(rejection('a/b', 'image').message).to.match(/^Invalid image name "a\/b": /);
    expect(rejection('a/b', 'album').message).to.match(/^Invalid album name "a\/b": /);
  });

  it('rejects text that is not valid Unicode (a lone surrogate)', () => {
    expect(rejection('a\ud800b').message).to.equal('Invalid album name: not valid Unicode');
  });

  describe('Unicode normalisation', () => {
    it('returns the NFC form, so NFD (macOS) and NFC spellings are the same name', () => {
      const nfd = 'Cafe\u0301';
      const nfc = 'Caf\u00e9';
      expect(checkName('image', nfd)).to.equal(nfc);
      expect(checkName('image', nfc)).to.equal(nfc);
    });

    it('applies the byte limit to the NFC form (300 bytes as NFD, 200 as NFC: accepted)', () => {
      const nfd = 'e\u0301'.repeat(100); // 300 bytes as given, 200 bytes in NFC
      expect(Buffer.byteLength(nfd)).to.equal(300);
      expect(checkName('album', nfd)).to.equal('\u00e9'.repeat(100));
    });
  });

  describe(`length limit (${MAX_NAME_BYTES} bytes of UTF-8, not characters)`, () => {
    it('accepts exactly 255 bytes', () => {
      for (const name of ['a'.repeat(255), '€'.repeat(85), `${'😀'.repeat(63)}abc`, `${'é'.repeat(127)}a`]) {
        expect(Buffer.byteLength(name)).to.equal(255);
        expect(checkName('image', name)).to.equal(name);
      }
    });

    it('rejects 256 bytes, however few characters that is', () => {
      for (const name of ['a'.repeat(256), 'é'.repeat(128), '€'.repeat(86), '😀'.repeat(64)]) {
        expect(Buffer.byteLength(name)).to.be.within(256, 258);
        expect(rejection(name).message).to.match(/must be at most 255 bytes in UTF-8$/);
      }
    });

    it('shortens a long name in the message', () => {
      const message = rejection('x'.repeat(300)).message;
      expect(message).to.equal(`Invalid album name "${'x'.repeat(61)}...": must be at most 255 bytes in UTF-8`);
    });
  });

  describe(`reserved prefix ${RESERVED_PREFIX}`, () => {
    for (const name of ['.imagestore', '.imagestore-tmp', '.imagestore.json', '.ImageStore', '.IMAGESTORE2']) {
      it(`rejects ${name}`, () => {
        expect(rejection(name, 'image').message).to.equal(`Invalid image name ${JSON.stringify(name)}: names starting with ".imagestore" are reserved`);
      });
    }

    it('accepts names that only contain it or nearly start with it', () => {
      for (const name of ['x.imagestore', '.imagestor', 'imagestore', '..imagestore']) expect(checkName('album', name)).to.equal(name);
    });
  });
});

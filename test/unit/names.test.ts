import { expect } from 'chai';
import { checkName, checkNewName, MAX_NAME_BYTES, RESERVED_PREFIX } from '../../src/albums/names.js';
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

  describe('invisible and bidirectional control characters in new names (issue 12)', () => {
    const refused: Array<[string, string, string]> = [
      ['a right-to-left override', 'photo\u202Egnp.exe', 'U+202E'],
      ['a zero-width space', 'hol\u200Bidays', 'U+200B'],
      ['a zero-width joiner between plain letters', 'a\u200Db', 'U+200D'],
      ['a leading zero-width non-joiner', '\u200Cabc', 'U+200C'],
      ['a trailing zero-width joiner', 'abc\u200D', 'U+200D'],
      ['a doubled zero-width non-joiner', '\u0645\u200C\u200C\u06CC', 'U+200C'],
      ['a left-to-right mark', '\u200Eleading', 'U+200E'],
      ['a right-to-left isolate', 'x\u2067y\u2069', 'U+2067'],
      ['a word joiner', 'a\u2060b', 'U+2060'],
      ['a byte order mark', 'b\uFEFFom.png', 'U+FEFF'],
      ['a soft hyphen', 'soft\u00ADhyphen', 'U+00AD'],
      ['a line separator', 'a\u2028b', 'U+2028'],
      ['a paragraph separator', 'a\u2029b', 'U+2029'],
      ['a Hangul filler', 'a\u3164b', 'U+3164'],
      ['a tag character', 'flag\u{E0067}', 'U+E0067'],
      ['an Arabic letter mark', 'a\u061Cb', 'U+061C'],
    ];
    for (const [what, name, code] of refused) {
      it(`refuses ${what} (${code}) in a new name`, () => {
        let error: unknown;
        try {
          checkNewName('image', name);
        } catch (err) {
          error = err;
        }
        expect(error, name).to.be.instanceOf(ValidationError);
        const message = (error as ValidationError).message;
        expect(message).to.match(new RegExp(`^Invalid image name ".*": must not contain invisible or bidirectional control characters \\(${code.replace('+', '\\+')}\\)$`));
        // The message shows the character escaped: a raw U+202E would reorder the message itself.
        expect(message).to.not.match(/[\u200B-\u200F\u202A-\u202E\u2060\u2066-\u2069\uFEFF]/);
      });
    }

    it('accepts the joiners where writing needs them: Persian words, Indic conjuncts, emoji ZWJ sequences', () => {
      for (const name of ['\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645', '\u0915\u094D\u200D\u0937', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}.png', '\u2764\uFE0F\u200D\u{1F525}']) {
        expect(checkNewName('album', name), name).to.equal(name);
      }
    });

    it('shows the escaped character in the message', () => {
      expect(() => checkNewName('album', 'photo\u202Egnp.exe')).to.throw(ValidationError, 'Invalid album name "photo\\u202egnp.exe": must not contain invisible or bidirectional control characters (U+202E)');
    });

    it('still accepts ordinary names, spaces inside, accents, CJK, emoji and variation selectors', () => {
      for (const name of ['holidays', 'My Photos 2024', 'été', '写真', '😀.png', '\u2764\uFE0F.png', 'a\u00A0b', 'Ålesund']) {
        expect(checkNewName('album', name), name).to.equal(name);
      }
    });

    it('applies checkName\'s rules too', () => {
      expect(() => checkNewName('album', '../x')).to.throw(ValidationError, /must not contain "\/"/);
      expect(checkNewName('image', 'Cafe\u0301')).to.equal('Caf\u00e9');
    });

    it('lets checkName (lookups) take such names, so names stored before can still be renamed or deleted', () => {
      expect(checkName('album', 'hol\u200Bidays')).to.equal('hol\u200Bidays');
    });
  });
});

import { expect } from 'chai';
import { decodeCursor, encodeCursor, SortedNames } from '../../src/albums/sorted-names.js';
import { ValidationError } from '../../src/errors.js';

/** Every name, read page by page with `limit`, following nextCursor; also returns the page count. */
function readAll(names: SortedNames, limit: number): { items: string[]; pages: number } {
  const items: string[] = [];
  let cursor: string | undefined;
  for (let pages = 1; pages <= 1000; pages += 1) {
    const page = names.page({ limit, cursor });
    expect(page.items.length).to.be.at.most(limit);
    items.push(...page.items);
    if (page.nextCursor === undefined) return { items, pages };
    cursor = page.nextCursor;
  }
  throw new Error('paging did not end');
}

const numbered = (n: number) => Array.from({ length: n }, (_, i) => `img-${String(i).padStart(3, '0')}.png`);

describe('SortedNames', () => {
  it('keeps names sorted by UTF-16 code units and drops duplicates', () => {
    const names = new SortedNames(['b', 'B', 'a', 'é', '10', '9', 'a']);
    expect(names.all()).to.deep.equal(['10', '9', 'B', 'a', 'b', 'é']);
    expect(names.size).to.equal(6);
  });

  it('adds in order, once', () => {
    const names = new SortedNames(['b', 'd']);
    names.add('c');
    names.add('a');
    names.add('e');
    names.add('c');
    expect(names.all()).to.deep.equal(['a', 'b', 'c', 'd', 'e']);
  });

  it('deletes, and ignores names it does not have', () => {
    const names = new SortedNames(['a', 'b', 'c']);
    names.delete('b');
    names.delete('zzz');
    names.delete('');
    expect(names.all()).to.deep.equal(['a', 'c']);
  });

  it('answers has() for present, deleted and never-added names', () => {
    const names = new SortedNames(['a', 'c']);
    names.add('b');
    names.delete('c');
    expect([names.has('a'), names.has('b'), names.has('c'), names.has('d'), names.has('')]).to.deep.equal([true, true, false, false, false]);
  });

  it('all() is a copy', () => {
    const names = new SortedNames(['a']);
    names.all().push('b');
    expect(names.all()).to.deep.equal(['a']);
  });

  describe('page', () => {
    it('returns every name and no cursor without a limit', () => {
      expect(new SortedNames(numbered(5)).page()).to.deep.equal({ items: numbered(5) });
    });

    it('returns an empty page and no cursor for an empty set', () => {
      expect(new SortedNames().page({ limit: 10 })).to.deep.equal({ items: [] });
    });

    it('gives the first `limit` names and a cursor when there are more', () => {
      const page = new SortedNames(numbered(10)).page({ limit: 3 });
      expect(page.items).to.deep.equal(numbered(3));
      expect(page.nextCursor).to.equal(encodeCursor('img-002.png'));
    });

    it('walks every name exactly once with the cursors, the last page without a cursor', () => {
      expect(readAll(new SortedNames(numbered(25)), 7)).to.deep.equal({ items: numbered(25), pages: 4 });
    });

    it('gives no cursor on a last page that is exactly full', () => {
      expect(readAll(new SortedNames(numbered(21)), 7)).to.deep.equal({ items: numbered(21), pages: 3 });
    });

    it('continues after the cursor name even if that name was deleted meanwhile', () => {
      const names = new SortedNames(numbered(6));
      const first = names.page({ limit: 3 });
      names.delete('img-002.png');
      names.delete('img-003.png');
      expect(names.page({ limit: 3, cursor: first.nextCursor })).to.deep.equal({ items: ['img-004.png', 'img-005.png'] });
    });

    it('shows names added after the cursor, and not those added before it', () => {
      const names = new SortedNames(['b', 'd', 'f']);
      const first = names.page({ limit: 1 });
      names.add('a');
      names.add('e');
      expect(names.page({ cursor: first.nextCursor }).items).to.deep.equal(['d', 'e', 'f']);
    });

    it('pages through non-ASCII names', () => {
      const all = ['Zoë', 'café', 'naïve', '写真', '😀'];
      expect(readAll(new SortedNames(all), 2).items).to.deep.equal([...all].sort());
    });
  });

  describe('cursors', () => {
    it('round-trip any name, and are URL-safe', () => {
      for (const name of ['a', 'img-001.png', 'é + ü', '写真/..', '😀?&=#', 'x'.repeat(255)]) {
        const cursor = encodeCursor(name);
        expect(cursor).to.match(/^[A-Za-z0-9_-]+$/);
        expect(decodeCursor(cursor)).to.equal(name);
      }
    });

    const forged: Array<[string, string]> = [
      ['empty', ''],
      ['not base64url', 'abc!'],
      ['standard base64 with padding', 'YQ=='],
      ['standard base64 alphabet', 'a+b/'],
      ['a non-canonical encoding of "a"', 'YR'],
      ['invalid UTF-8 (0xff)', '_w'],
      ['a single character', 'Y'],
    ];
    for (const [what, cursor] of forged) {
      it(`rejects a forged cursor: ${what}`, () => {
        expect(() => decodeCursor(cursor)).to.throw(ValidationError, /^Invalid cursor: expected a value from nextCursor but received /);
        expect(() => new SortedNames(['a']).page({ cursor })).to.throw(ValidationError, /^Invalid cursor/);
      });
    }

    it('quotes at most 80 characters of a forged cursor in the message', () => {
      const cursor = `${'!'.repeat(200)}`;
      expect(() => decodeCursor(cursor)).to.throw(`received ${JSON.stringify('!'.repeat(80))}`);
    });
  });
});

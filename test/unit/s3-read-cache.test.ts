import { expect } from 'chai';
import type { StoredImageMeta } from '../../src/albums/image-meta.js';
import { S3ReadCache } from '../../src/albums/s3/s3-read-cache.js';

function meta(name: string, id = `id-${name}`): StoredImageMeta {
  return { id, name, size: 10, type: 'image/png', sha256: 'a'.repeat(64), createdAt: '2026-01-01T00:00:00.000Z', modifiedAt: '2026-01-01T00:00:00.000Z' };
}

describe('S3ReadCache', function () {
  let now = 0;
  const make = (options: { budgetBytes?: number; ttlMs?: number; strict?: boolean } = {}) => {
    const cache = new S3ReadCache({ budgetBytes: 1024 * 1024, ttlMs: 1000, strict: false, ...options, now: () => now });
    cache.setFollowing(true);
    return cache;
  };
  beforeEach(() => {
    now = 10_000;
  });

  it('keeps its entries within the byte budget, least recently used out first', function () {
    const cache = make({ budgetBytes: 4000 });
    for (let i = 0; i < 100; i++) {
      cache.setImage('album', `img-${i}`, { meta: meta(`img-${i}`), etag: `"${i}"` });
      expect(cache.stats().bytes).to.be.at.most(4000);
    }
    const kept = cache.stats().entries;
    expect(kept).to.be.within(2, 99);
    expect(cache.image('album', 'img-99')).to.not.equal(undefined);
    expect(cache.image('album', 'img-0')).to.equal(undefined);
  });

  it('trusts nothing before it follows the event stream, after it stops, in strict mode, or past the TTL', function () {
    const cache = new S3ReadCache({ budgetBytes: 1 << 20, ttlMs: 1000, strict: false, now: () => now });
    cache.setImage('a', 'x', { meta: meta('x'), etag: '"1"' });
    expect(cache.image('a', 'x'), 'not following yet').to.equal(undefined);
    expect(cache.version('a')).to.equal(undefined);
    cache.setFollowing(true);
    cache.setImage('a', 'x', { meta: meta('x'), etag: '"1"' });
    expect(cache.image('a', 'x')?.etag).to.equal('"1"');
    now += 1001;
    expect(cache.image('a', 'x'), 'past the TTL').to.equal(undefined);
    cache.setImage('a', 'x', { meta: meta('x'), etag: '"1"' });
    cache.setFollowing(false);
    expect(cache.image('a', 'x'), 'the stream stopped').to.equal(undefined);
    cache.setFollowing(true);
    expect(cache.image('a', 'x'), 'events may have been missed in the gap').to.equal(undefined);

    const strict = make({ strict: true });
    strict.setImage('a', 'x', { meta: meta('x'), etag: '"1"' });
    expect(strict.image('a', 'x')).to.equal(undefined);
    expect(strict.version('a')).to.equal(undefined);
  });

  it('drops what a change event names (image, both names of a rename, a whole album) and moves the versions', function () {
    const cache = make();
    for (const name of ['x', 'y', 'z']) cache.setImage('a', name, { meta: meta(name), etag: '"1"' });
    cache.setImage('b', 'x', { meta: meta('x'), etag: '"1"' });
    cache.setMarker('a', { createdAt: 'then' });
    const versions = new Set([cache.version('a'), cache.version('b'), cache.version()]);
    cache.changed({ type: 'imagestore.image.fetched', data: { album: 'a', image: 'x' } });
    expect(cache.image('a', 'x'), 'a fetch changes nothing').to.not.equal(undefined);
    cache.changed({ type: 'imagestore.image.renamed', data: { album: 'a', image: 'y', previousName: 'x' } });
    expect(cache.image('a', 'x')).to.equal(undefined);
    expect(cache.image('a', 'y')).to.equal(undefined);
    expect(cache.image('a', 'z')).to.not.equal(undefined);
    expect(versions.has(cache.version('a'))).to.equal(false);
    versions.add(cache.version('a'));
    cache.changed({ type: 'imagestore.album.renamed', data: { album: 'c', previousName: 'a' } });
    expect(cache.image('a', 'z')).to.equal(undefined);
    expect(cache.marker('a')).to.equal(undefined);
    expect(cache.image('b', 'x'), 'another album is untouched').to.not.equal(undefined);
    expect(versions.has(cache.version('a'))).to.equal(false);
    expect(versions.has(cache.version())).to.equal(false);
    expect(cache.stats().events).to.equal(2);
  });

  it('gives a listing\'s object versions the last word: a matching entry is trusted again, another is dropped', function () {
    const cache = make();
    cache.setImage('a', 'same', { meta: meta('same'), etag: '"1"' });
    cache.setImage('a', 'other', { meta: meta('other'), etag: '"1"', lastModified: 5000 });
    now += 1001; // past the TTL: not trusted until revalidated
    cache.observe('a', 'same', { etag: '"1"', lastModified: 9000 });
    cache.observe('a', 'other', { etag: '"1"', lastModified: 6000 }); // rewritten with the same bytes
    expect(cache.image('a', 'same')?.lastModified).to.equal(9000);
    expect(cache.imageToRevalidate('a', 'other')).to.equal(undefined);
  });

  it('does not keep a read\'s answer when an event about its album overtook it', function () {
    const cache = make();
    const stamp = cache.stamp('a');
    cache.changed({ type: 'imagestore.image.deleted', data: { album: 'a', image: 'x' } }); // arrives while the GET is in flight
    cache.setImage('a', 'x', { meta: meta('x'), etag: '"old"' }, stamp);
    expect(cache.image('a', 'x')).to.equal(undefined);
    cache.setImage('a', 'x', { meta: meta('x'), etag: '"new"' }, cache.stamp('a'));
    expect(cache.image('a', 'x')?.etag).to.equal('"new"');
  });
});

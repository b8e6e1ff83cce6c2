import { expect } from 'chai';
import { buildEvent } from '../../src/notifier/events.js';
import { encodeTopicLevel, topicsFor } from '../../src/notifier/topics.js';

describe('structured topics (issue 4)', () => {
  it('puts album, image and import events on their levels, and every event on imagestore/notifier', () => {
    const album = buildEvent({ type: 'imagestore.album.renamed', album: 'new', previousName: 'old' }, '/s');
    const image = buildEvent({ type: 'imagestore.image.fetched', album: 'a', image: 'b.jpg' }, '/s');
    const job = buildEvent({ type: 'imagestore.import.completed', album: 'a', jobId: 'imp_1', counts: { queued: 0, downloading: 0, stored: 1, failed: 0, cancelled: 0 } }, '/s');
    expect(topicsFor(album)).to.deep.equal(['imagestore/notifier', 'imagestore/v1/albums/new/renamed']);
    expect(topicsFor(image)).to.deep.equal(['imagestore/notifier', 'imagestore/v1/albums/a/images/b.jpg/fetched']);
    expect(topicsFor(job)).to.deep.equal(['imagestore/notifier', 'imagestore/v1/albums/a/imports/imp_1/completed']);
  });

  for (const [name, level] of [
    ['a/b', 'a%2Fb'], ['+', '%2B'], ['#', '%23'], ['50%', '50%25'], ['my album', 'my%20album'], ['café', 'caf%C3%A9'],
    ['日本', '%E6%97%A5%E6%9C%AC'], ['$SYS', '%24SYS'], ['emoji 🎉', 'emoji%20%F0%9F%8E%89'],
  ] as const) {
    it(`encodes ${JSON.stringify(name)} as one safe level ${level}, and decodes back`, () => {
      const encoded = encodeTopicLevel(name);
      expect(encoded).to.equal(level);
      expect(encoded).to.not.match(/[/+#\u0000-\u001f\u007f-\uffff]/);
      expect(decodeURIComponent(encoded)).to.equal(name);
    });
  }

  it('keeps the level count fixed whatever the names are', () => {
    const event = buildEvent({ type: 'imagestore.image.created', album: 'x/+/#', image: '../#/+' }, '/s');
    const [, structured] = topicsFor(event);
    expect(structured.split('/')).to.have.length(7);
    expect(structured).to.equal('imagestore/v1/albums/x%2F%2B%2F%23/images/..%2F%23%2F%2B/created');
  });
});

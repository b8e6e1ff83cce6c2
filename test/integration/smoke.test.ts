import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { recordEvents } from '../helpers/mqtt.js';
import { makePng } from '../helpers/images.js';

describe('smoke: upload then download through a real socket and a real broker', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService();
  });
  after(async () => svc.close());

  it('stores, serves and announces an image', async () => {
    const events = await recordEvents(svc.service.mqttUrl);
    try {
      await svc.http.post('/api/v1/albums').send({ albumName: 'holidays' }).expect(201);
      const png = await makePng();
      await svc.http.post('/api/v1/albums/holidays/images').attach('file', png, 'table.png').expect(201);
      const res = await svc.http.get('/api/v1/albums/holidays/images/table.png').buffer(true).expect(200);
      expect(Buffer.compare(res.body as Buffer, png)).to.equal(0);
      const got = await events.waitForCount(3);
      expect(got.map((e) => e.type)).to.deep.equal(['imagestore.album.created', 'imagestore.image.created', 'imagestore.image.fetched']);
      expect(got[1].data.message).to.equal('table.png image added to album holidays');
    } finally {
      await events.close();
    }
  });
});

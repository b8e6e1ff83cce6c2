import { expect } from 'chai';
import { loadConfig, type Config } from '../../src/config.js';
import { albumPath, createAlbum, downloadImage, uploadImage } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { requireS3, TestBucket } from '../helpers/s3.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Nodes on one bucket (STORAGE=s3, one prefix) and one broker (Debian's mosquitto, as a
 * deployment of several nodes has): each node keeps metadata in memory, and the event
 * stream keeps it coherent. A read on node B after a 2xx on node A is fresh once A's event has reached B
 * (B's imagestore_s3_cache_events_total shows it); with S3_STRICT_READS=true it is fresh
 * at once, even on a node that receives no events at all.
 */
describe('S3 nodes on one bucket and one broker: cached metadata stays coherent', function () {
  this.timeout(60_000);
  let bucket: TestBucket | undefined;
  let broker: Mosquitto | undefined;
  const nodes: TestService[] = [];
  let a: TestService;
  let b: TestService;
  let strict: TestService;

  function s3Config(endpoint: string, prefix: string, env: Record<string, string>): Partial<Config> {
    const s3 = bucket!.settings(prefix);
    const { imageDbDir: _ignored, ...config } = loadConfig({
      HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', LOG_LEVEL: 'silent', STORAGE: 's3', S3_ENDPOINT: endpoint, S3_BUCKET: s3.bucket,
      S3_REGION: s3.region, S3_ACCESS_KEY_ID: s3.accessKeyId!, S3_SECRET_ACCESS_KEY: s3.secretAccessKey!, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: prefix,
      ...env,
    });
    return config;
  }

  before(async function () {
    const endpoint = await requireS3(this);
    bucket = await TestBucket.create(endpoint);
    const prefix = TestBucket.prefix();
    broker = await startMosquitto();
    a = await startTestService({ config: s3Config(endpoint, prefix, { MQTT_URL: broker.url, MQTT_CLIENT_ID: 'node-a' }) });
    nodes.push(a);
    b = await startTestService({ config: s3Config(endpoint, prefix, { MQTT_URL: broker.url, MQTT_CLIENT_ID: 'node-b' }) });
    nodes.push(b);
    // No broker at all (port 1): this node hears of no change, so only strict reads keep it right.
    strict = await startTestService({ config: s3Config(endpoint, prefix, { MQTT_URL: 'mqtt://127.0.0.1:1', MQTT_CLIENT_ID: 'node-strict', S3_STRICT_READS: 'true' }) });
    nodes.push(strict);
    for (const node of [a, b]) await waitFor('the node subscribed to the event stream', () => following(node));
  });
  after(async function () {
    for (const node of nodes.splice(0)) await node.close();
    await broker?.close();
    await bucket?.destroy();
  });

  async function s3Requests(node: TestService): Promise<number> {
    return Number(/^imagestore_s3_requests_total (\d+)/m.exec((await node.http.get('/metrics').expect(200)).text)?.[1]);
  }

  async function following(node: TestService): Promise<boolean> {
    return /^imagestore_s3_cache_following 1$/m.test((await node.http.get('/metrics').expect(200)).text);
  }

  async function cacheEvents(node: TestService): Promise<number | undefined> {
    const text = (await node.http.get('/metrics').expect(200)).text;
    const match = /^imagestore_s3_cache_events_total (\d+)/m.exec(text);
    return match ? Number(match[1]) : undefined;
  }

  /** Runs a change on node A, then waits until its `events` change events have reached node B. */
  async function onA(events: number, change: () => Promise<unknown>): Promise<void> {
    const before = (await cacheEvents(b))!;
    await change();
    await waitFor(`node A's ${events} event(s) at node B`, async () => (await cacheEvents(b))! >= before + events);
  }

  async function id(node: TestService, album: string, name: string): Promise<string | number> {
    const res = await node.http.get(`${albumPath(album, name)}/metadata`);
    return res.status === 200 ? res.body.id : res.status;
  }

  it('a re-upload, rename or delete on node A is never served stale by node B once the event is in, nor ever by a strict node', async function () {
    await onA(1, () => createAlbum(a.http, 'shared'));
    const first = await makePng(7, 7);
    const v1 = (await uploadImage(a.http, 'shared', 'pic.png', first)).body.image;
    // Both readers have the image's metadata in memory now.
    for (const node of [b, strict]) {
      expect((await downloadImage(node.http, 'shared', 'pic.png')).bytes).to.deep.equal(first);
      expect(await id(node, 'shared', 'pic.png')).to.equal(v1.id);
    }
    expect((await b.http.get(`${albumPath('shared')}/images`).query({ details: 'true' }).expect(200)).body.images[0].id).to.equal(v1.id);
    // Node B answers from memory now (metadata cache, and the hot-file cache for the small bytes): no request to the bucket.
    const sent = await s3Requests(b);
    expect((await downloadImage(b.http, 'shared', 'pic.png')).bytes).to.deep.equal(first);
    expect(await s3Requests(b)).to.equal(sent);

    // Re-upload: a new image (new id, new bytes) under the same name.
    const second = await makePng(9, 9);
    let v2: { id: string } | undefined;
    const readStrict = async () => {
      expect(await id(strict, 'shared', 'pic.png')).to.equal(v2!.id);
      expect((await downloadImage(strict.http, 'shared', 'pic.png')).bytes).to.deep.equal(second);
    };
    await onA(2, async () => {
      await a.http.delete(albumPath('shared', 'pic.png')).expect(200);
      v2 = (await uploadImage(a.http, 'shared', 'pic.png', second)).body.image;
      await readStrict(); // right after A's 2xx, before B may have the event
    });
    expect(await id(b, 'shared', 'pic.png')).to.equal(v2!.id);
    expect((await downloadImage(b.http, 'shared', 'pic.png')).bytes).to.deep.equal(second);
    expect((await b.http.get(`${albumPath('shared')}/images`).query({ details: 'true' }).expect(200)).body.images[0].id).to.equal(v2!.id);

    // Rename.
    await onA(1, async () => {
      await a.http.patch(albumPath('shared', 'pic.png')).send({ imageName: 'moved.png' }).expect(200);
      expect(await id(strict, 'shared', 'pic.png')).to.equal(404);
      expect(await id(strict, 'shared', 'moved.png')).to.equal(v2!.id);
    });
    expect(await id(b, 'shared', 'pic.png')).to.equal(404);
    expect(await id(b, 'shared', 'moved.png')).to.equal(v2!.id);
    expect((await b.http.get(`${albumPath('shared')}/images`).expect(200)).body.imageList).to.deep.equal(['moved.png']);

    // Delete.
    await onA(1, async () => {
      await a.http.delete(albumPath('shared', 'moved.png')).expect(200);
      await strict.http.get(albumPath('shared', 'moved.png')).expect(404);
    });
    await b.http.get(albumPath('shared', 'moved.png')).expect(404);
    expect((await b.http.get(`${albumPath('shared')}/images`).expect(200)).body.imageList).to.deep.equal([]);

    // Album rename and delete.
    await onA(1, () => a.http.patch(albumPath('shared')).send({ albumName: 'renamed' }).expect(200));
    await b.http.get(`${albumPath('shared')}/images`).expect(404);
    await strict.http.get(`${albumPath('shared')}/images`).expect(404);
    await onA(1, () => a.http.delete(albumPath('renamed')).expect(200));
    await b.http.get(`${albumPath('renamed')}/images`).expect(404);
    await strict.http.get(`${albumPath('renamed')}/images`).expect(404);
  });

  it('trusts nothing it cached while the event stream has a gap: a change made meanwhile is read from the bucket', async function () {
    await onA(1, () => createAlbum(a.http, 'gap'));
    const first = await makePng(5, 5);
    await onA(1, () => uploadImage(a.http, 'gap', 'g.png', first));
    expect((await downloadImage(b.http, 'gap', 'g.png')).bytes).to.deep.equal(first);
    await broker!.stop();
    await waitFor('node B sees the broker gone', async () => !(await following(b)));
    // A's events wait in its outbox; B must not answer from what it cached before the gap.
    await a.http.delete(albumPath('gap', 'g.png')).expect(200);
    const second = await makePng(6, 6);
    await uploadImage(a.http, 'gap', 'g.png', second);
    expect((await downloadImage(b.http, 'gap', 'g.png')).bytes).to.deep.equal(second);
    await broker!.restart();
    await waitFor('node B follows again', () => following(b), 15_000);
    expect((await downloadImage(b.http, 'gap', 'g.png')).bytes).to.deep.equal(second);
  });
});

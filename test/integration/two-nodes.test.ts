import { expect } from 'chai';
import mqtt from 'mqtt';
import sharp from 'sharp';
import type { StoreEvent } from '../../src/notifier/events.js';
import { makePng } from '../helpers/images.js';
import { startMosquitto, type Mosquitto } from '../helpers/mosquitto.js';
import { requireS3, TestBucket } from '../helpers/s3.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/**
 * Issue 9: two imagestore processes on one bucket (the real S3 server of
 * S3_TEST_ENDPOINT) and one external broker (Debian's mosquitto), each with its
 * own data dir (outbox, staging, cache) and node id.
 */
describe('two nodes on one bucket and one broker (issue 9)', function () {
  this.timeout(90_000);
  let bucket: TestBucket | undefined;
  let broker: Mosquitto | undefined;
  const nodes: SpawnedService[] = [];
  const dirs: string[] = [];
  const events: StoreEvent[] = [];
  let subscriber: mqtt.MqttClient | undefined;

  before(async function () {
    const endpoint = await requireS3(this);
    bucket = await TestBucket.create(endpoint);
    const prefix = TestBucket.prefix();
    const s3 = bucket.settings(prefix);
    broker = await startMosquitto();
    subscriber = await mqtt.connectAsync(broker.url, { clientId: 'two-nodes', clean: false });
    subscriber.on('message', (_t, payload) => events.push(JSON.parse(payload.toString()) as StoreEvent));
    await subscriber.subscribeAsync('imagestore/notifier', { qos: 1 });
    for (const node of ['node-a', 'node-b']) {
      const dataDir = await makeTmpDir();
      dirs.push(dataDir);
      nodes.push(await spawnService({
        dataDir,
        env: {
          NODE_ID: node, MQTT_URL: broker.url, STORAGE: 's3', S3_ENDPOINT: endpoint, S3_BUCKET: s3.bucket, S3_REGION: s3.region,
          S3_ACCESS_KEY_ID: s3.accessKeyId!, S3_SECRET_ACCESS_KEY: s3.secretAccessKey!, S3_FORCE_PATH_STYLE: 'true', S3_PREFIX: prefix,
        },
      }));
    }
  });

  after(async () => {
    await subscriber?.endAsync(true);
    for (const node of nodes) await node.stop();
    await broker?.close();
    await bucket?.destroy();
    for (const dir of dirs) await removeDir(dir);
  });

  const [a, b] = [0, 1];
  const url = (node: number, path: string) => `${nodes[node].http}/api/v1${path}`;
  const json = (node: number, path: string, method: string, body: unknown) =>
    fetch(url(node, path), { method, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  const upload = async (node: number, album: string, name: string, bytes: Buffer) => {
    const form = new FormData();
    form.append('file', new Blob([bytes]), name);
    return fetch(url(node, `/albums/${album}/images`), { method: 'POST', body: form });
  };

  it('serves through one node what was stored through the other, and sees its renames and deletes', async () => {
    expect((await json(a, '/albums', 'POST', { albumName: 'shared' })).status).to.equal(201);
    const png = await makePng(64, 48);
    expect((await upload(a, 'shared', 'one.png', png)).status).to.equal(201);

    const listed = (await (await fetch(url(b, "/albums/shared/images"))).json()) as { imageList: string[] };
    expect(listed.imageList).to.deep.equal(['one.png']);
    const bytes = Buffer.from(await (await fetch(url(b, '/albums/shared/images/one.png'))).arrayBuffer());
    expect(Buffer.compare(bytes, png)).to.equal(0);
    const thumb = await fetch(url(b, '/albums/shared/images/one.png?w=16&format=webp'));
    expect(thumb.status).to.equal(200);
    expect(await sharp(Buffer.from(await thumb.arrayBuffer())).metadata()).to.include({ format: 'webp', width: 16 });

    expect((await json(b, '/albums/shared/images/one.png', 'PATCH', { imageName: 'two.png' })).status).to.equal(200);
    expect((await fetch(url(a, '/albums/shared/images/one.png'))).status).to.equal(404);
    expect((await fetch(url(a, '/albums/shared/images/two.png'))).status).to.equal(200);
    expect((await fetch(url(a, '/albums/shared/images/two.png'), { method: 'DELETE' })).status).to.equal(200);
    expect(((await (await fetch(url(b, "/albums/shared/images"))).json()) as { imageList: string[] }).imageList).to.deep.equal([]);
  });

  it('does not let a second node overwrite a name the first one created', async () => {
    await json(a, '/albums', 'POST', { albumName: 'clash' });
    const first = await makePng(8, 8, { r: 1, g: 2, b: 3 });
    const second = await makePng(8, 8, { r: 200, g: 100, b: 50 });
    expect((await upload(a, 'clash', 'same.png', first)).status).to.equal(201);
    const again = await upload(b, 'clash', 'same.png', second);
    expect(again.status).to.equal(409);
    const stored = Buffer.from(await (await fetch(url(b, '/albums/clash/images/same.png'))).arrayBuffer());
    expect(Buffer.compare(stored, first)).to.equal(0);
    expect((await json(b, '/albums', 'POST', { albumName: 'clash' })).status).to.equal(409);
  });

  it('delivers the events of both nodes to one subscriber, each naming its node in source', async () => {
    await json(a, '/albums', 'POST', { albumName: 'from-a' });
    await json(b, '/albums', 'POST', { albumName: 'from-b' });
    const created = () => events.filter((e) => e.type === 'imagestore.album.created');
    await waitFor('both album events', () => ['from-a', 'from-b'].every((n) => created().some((e) => e.data.album === n)), 15_000);
    const sourceOf = (album: string) => created().find((e) => e.data.album === album)!.source;
    expect(sourceOf('from-a')).to.equal('/imagestore/node-a');
    expect(sourceOf('from-b')).to.equal('/imagestore/node-b');
    // Everything acknowledged in this file arrived: 5 album creations, 3 uploads, a rename, a delete, fetches.
    expect(new Set(events.map((e) => e.id)).size).to.equal(events.length);
    expect(events.filter((e) => e.type === 'imagestore.image.created')).to.have.length(2);
  });
});

import { expect } from 'chai';
import { buildEvent, NOTIFIER_TOPIC, type EventInput } from '../../src/notifier/events.js';
import { publish, spawnSubscriber, startTestBroker, waitFor, type SpawnedSubscriber, type TestBroker } from './helpers.js';

const created: EventInput = { type: 'imagestore.image.created', album: 'holidays', image: 'table.jpg', size: 1234, contentType: 'image/jpeg' };
const event = (input: EventInput = created) => buildEvent(input, '/imagestore/test', 'req-1');

describe('subscriber process (real aedes broker, real mqtt client)', function () {
  let broker: TestBroker;
  let running: SpawnedSubscriber[] = [];

  /** Spawns a subscriber on `url`, remembered so that afterEach stops it, and waits until it has subscribed. */
  async function start(url: string, ...args: string[]): Promise<SpawnedSubscriber> {
    const sub = spawnSubscriber(['--url', url, ...args]);
    running.push(sub);
    await sub.waitForLog('subscribed');
    return sub;
  }
  const lines = (sub: SpawnedSubscriber, count: number) => waitFor(`${count} stdout line(s)`, () => sub.stdout.length >= count && sub.stdout);

  before(async () => {
    broker = await startTestBroker();
  });
  afterEach(async () => {
    await Promise.all(running.map((sub) => sub.stop()));
    running = [];
  });
  after(async () => {
    await broker?.close();
  });

  it('prints one readable line per event on stdout, logs only on stderr', async () => {
    const sub = await start(broker.url);
    const e = event();
    await publish(broker.url, NOTIFIER_TOPIC, e, event({ type: 'imagestore.album.created', album: 'work' }));
    const [first, second] = await lines(sub, 2);
    expect(first).to.equal(`${e.time} image.created album=holidays image=table.jpg — ${e.data.message}`);
    expect(second).to.match(/^\S+Z album\.created album=work — /);
    expect(sub.stderr.length).to.be.above(0);
    for (const line of sub.stderr) expect(JSON.parse(line)).to.have.property('msg');
  });

  it('prints the event JSON, one per line, with --json', async () => {
    const sub = await start(broker.url, '--json');
    const e = event();
    await publish(broker.url, NOTIFIER_TOPIC, e);
    const [line] = await lines(sub, 1);
    expect(JSON.parse(line)).to.deep.equal(e);
  });

  it('prints only the albums and types asked for', async () => {
    const sub = await start(broker.url, '--album', 'holidays', '--type', 'image.deleted');
    const wanted = event({ type: 'imagestore.image.deleted', album: 'holidays', image: 'table.jpg' });
    const otherType = event();
    const otherAlbum = event({ type: 'imagestore.image.deleted', album: 'work', image: 'table.jpg' });
    await publish(broker.url, NOTIFIER_TOPIC, otherType, otherAlbum, wanted);
    // QoS 1 from one publisher arrives in order: once `wanted` is printed, the others were seen and dropped.
    await lines(sub, 1);
    expect(sub.stdout).to.deep.equal([`${wanted.time} image.deleted album=holidays image=table.jpg — ${wanted.data.message}`]);
  });

  it('logs invalid payloads as warnings and keeps going', async () => {
    const sub = await start(broker.url);
    const e = event();
    await publish(broker.url, NOTIFIER_TOPIC, 'not json', { specversion: '1.0', id: 'x' }, e);
    await lines(sub, 1);
    expect(sub.stdout).to.have.length(1);
    const warnings = await sub.waitForLog('invalid event ignored', 2);
    expect(warnings.map((w) => w.level)).to.deep.equal([40, 40]);
    expect(warnings[0].reason).to.match(/is not JSON/);
    expect(warnings[1].reason).to.match(/expected source to be a non-empty string/);
    expect(sub.child.exitCode).to.equal(null);
  });

  it('reconnects and subscribes again when the broker comes back on the same port', async () => {
    const first = await startTestBroker();
    let second: TestBroker | undefined;
    try {
      const sub = await start(first.url);
      await publish(first.url, NOTIFIER_TOPIC, event());
      await lines(sub, 1);
      await first.close();
      await sub.waitForLog('offline');
      second = await startTestBroker(first.port);
      await sub.waitForLog('subscribed', 2);
      const e = event({ type: 'imagestore.image.deleted', album: 'holidays', image: 'table.jpg' });
      await publish(second.url, NOTIFIER_TOPIC, e);
      const all = await lines(sub, 2);
      expect(all[1]).to.equal(`${e.time} image.deleted album=holidays image=table.jpg — ${e.data.message}`);
      expect((await sub.waitForLog('reconnecting')).length).to.be.above(0);
    } finally {
      await first.close();
      await second?.close();
    }
  });

  it('exits 0 on SIGTERM', async () => {
    const sub = await start(broker.url);
    expect(await sub.stop()).to.equal(0);
    expect(sub.stderr.some((l) => JSON.parse(l).msg === 'closed')).to.equal(true);
  });

  it('prints every config problem without a stack and exits 1', async () => {
    const sub = spawnSubscriber(['--url', 'http://x', '--type', 'nope']);
    running.push(sub);
    expect(await sub.exited).to.equal(1);
    const err = sub.stderr.join('\n');
    expect(err).to.match(/invalid --url: expected mqtt:\/\/, mqtts:\/\/, ws:\/\/ or wss:\/\/ URL, got "http:\/\/x"/);
    expect(err).to.match(/invalid --type: .* got "nope"/);
    expect(err).to.not.match(/\n\s+at /);
    expect(sub.stdout).to.deep.equal([]);
  });

  it('prints usage and exits 0 with --help', async () => {
    const sub = spawnSubscriber(['--help']);
    running.push(sub);
    expect(await sub.exited).to.equal(0);
    expect(sub.stdout[0]).to.match(/^Usage: /);
  });
});

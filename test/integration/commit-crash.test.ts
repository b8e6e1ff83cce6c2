import { promises as fs } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import mqtt from 'mqtt';
import { fsck } from '../../src/albums/fs/fsck.js';
import { Layout } from '../../src/albums/layout.js';
import type { EventType, StoreEvent } from '../../src/notifier/events.js';
import { changesToRedo, scanJournal } from '../../src/notifier/outbox.js';
import { sha256 } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

// Issue 13 item 2 / issue 16 item 1: the event journal is the commit point of every change,
// proven by a SIGKILL at every step of it (CRASH_POINT). For each change and step, the real
// service makes the change and kills itself at that step; it is started again (in this process,
// which is faster to start and recovers with the same code), and then:
//  - the change happened completely, and its event reached a real MQTT subscriber (a persistent
//    session on the embedded broker), when the kill came after its commit record; or it did not
//    happen at all, and no event was published, when the kill came before;
//  - the store is consistent: fsck (with content check) finds nothing, and the journal has
//    nothing left to redo once the service has stopped.
// A SIGKILL keeps the page cache, so this proves the order of the steps and recovery's redo,
// not the fsyncs (that needs a power cut; test/unit/fs-redo.test.ts covers lost writes).

const API = '/api/v1';
type State = 'done' | 'not-done';

interface Http {
  (method: string, url: string, body?: unknown): Promise<Response>;
  json<T>(url: string): Promise<{ status: number; body: T }>;
  bytes(url: string): Promise<{ status: number; body: Buffer }>;
}

function client(base: string): Http {
  const call = async (method: string, url: string, body?: unknown): Promise<Response> => {
    const form = body instanceof FormData;
    return fetch(`${base}${API}${url}`, {
      method,
      body: form ? body : body === undefined ? undefined : JSON.stringify(body),
      headers: form || body === undefined ? {} : { 'content-type': 'application/json' },
    });
  };
  return Object.assign(call, {
    async json<T>(url: string) {
      const res = await call('GET', url);
      return { status: res.status, body: (await res.json()) as T };
    },
    async bytes(url: string) {
      const res = await call('GET', url);
      return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
    },
  });
}

function uploadForm(name: string, bytes: Buffer): FormData {
  const form = new FormData();
  form.append('file', new Blob([bytes], { type: 'image/png' }), name);
  return form;
}

/** A persistent session (fixed client id, no clean start, QoS 1) on the service's broker, recording events by id. */
async function subscribe(url: string, clientId: string, events: Map<string, StoreEvent>): Promise<mqtt.MqttClient> {
  const sub = mqtt.connect(url, { clientId, clean: false, reconnectPeriod: 0 });
  sub.on('message', (_topic, payload) => {
    const event = JSON.parse(payload.toString()) as StoreEvent;
    events.set(event.id, event);
  });
  sub.on('error', () => undefined); // the broker dies with the service
  await new Promise<void>((resolve, reject) => sub.once('connect', () => resolve()).once('error', reject));
  await sub.subscribeAsync('imagestore/notifier', { qos: 1 });
  return sub;
}

let png: Buffer;

interface Scenario {
  change: 'upload' | 'image-rename' | 'image-delete' | 'album-create' | 'album-rename' | 'album-delete';
  event: EventType;
  /** Told apart in the test's title when a change has several scenarios. */
  label?: string;
  /** The setup reaches the same crash point this many times first. */
  reachedInSetup?: number;
  /** Acknowledged changes made before the one under test. */
  setup(http: Http): Promise<void>;
  /** The request of the change under test (its answer never comes: the process dies). */
  run(http: Http): Promise<Response>;
  /** Which of the two states the store shows; fails on anything else (a change made in part). */
  state(http: Http): Promise<State>;
  /** The event the change announces, as the subscriber must see it. */
  eventData: Record<string, unknown>;
}

async function albums(http: Http): Promise<string[]> {
  return (await http.json<{ albumList: string[] }>('/albums')).body.albumList;
}

async function images(http: Http, album: string): Promise<string[] | undefined> {
  const res = await http.json<{ imageList: string[]; images: Array<{ name: string; sha256: string }> }>(`/albums/${album}/images?details=true`);
  if (res.status === 404) return undefined;
  expect(res.status).to.equal(200);
  expect(res.body.images.map((i) => i.name), 'every listed image has its metadata').to.deep.equal(res.body.imageList);
  for (const info of res.body.images) expect(info.sha256, `${album}/${info.name} metadata`).to.equal(sha256(png));
  return res.body.imageList;
}

/** The image downloads whole, with the bytes that were uploaded. */
async function downloads(http: Http, album: string, name: string): Promise<boolean> {
  const got = await http.bytes(`/albums/${album}/images/${name}`);
  if (got.status === 404) return false;
  expect(got.status).to.equal(200);
  expect(sha256(got.body), `${album}/${name} bytes`).to.equal(sha256(png));
  return true;
}

const withImage = async (http: Http) => {
  expect((await http('POST', '/albums', { albumName: 'al' })).status).to.equal(201);
  expect((await http('POST', '/albums/al/images', uploadForm('a.png', png))).status).to.equal(201);
};

const scenarios: Scenario[] = [
  {
    change: 'upload', event: 'imagestore.image.created', eventData: { album: 'al', image: 'a.png' },
    setup: async (http) => {
      expect((await http('POST', '/albums', { albumName: 'al' })).status).to.equal(201);
    },
    run: (http) => http('POST', '/albums/al/images', uploadForm('a.png', png)),
    async state(http) {
      const names = await images(http, 'al');
      const got = await downloads(http, 'al', 'a.png');
      expect(names).to.deep.equal(got ? ['a.png'] : []);
      return got ? 'done' : 'not-done';
    },
  },
  {
    // Issue 18: the bytes are already stored, so apply links the new name to the stored copy (one inode).
    change: 'upload', label: 'a duplicate', reachedInSetup: 1, event: 'imagestore.image.created', eventData: { album: 'al', image: 'b.png' },
    setup: withImage,
    run: (http) => http('POST', '/albums/al/images', uploadForm('b.png', png)),
    async state(http) {
      const names = await images(http, 'al');
      const got = await downloads(http, 'al', 'b.png');
      expect(await downloads(http, 'al', 'a.png'), 'the stored copy is untouched').to.equal(true);
      expect(names).to.deep.equal(got ? ['a.png', 'b.png'] : ['a.png']);
      return got ? 'done' : 'not-done';
    },
  },
  {
    change: 'image-rename', event: 'imagestore.image.renamed', eventData: { album: 'al', image: 'b.png', previousName: 'a.png' },
    setup: withImage,
    run: (http) => http('PATCH', '/albums/al/images/a.png', { imageName: 'b.png' }),
    async state(http) {
      const names = await images(http, 'al');
      const [a, b] = [await downloads(http, 'al', 'a.png'), await downloads(http, 'al', 'b.png')];
      expect(a !== b, 'exactly one of the two names').to.equal(true);
      expect(names).to.deep.equal([b ? 'b.png' : 'a.png']);
      return b ? 'done' : 'not-done';
    },
  },
  {
    change: 'image-delete', event: 'imagestore.image.deleted', eventData: { album: 'al', image: 'a.png' },
    setup: withImage,
    run: (http) => http('DELETE', '/albums/al/images/a.png'),
    async state(http) {
      const names = await images(http, 'al');
      const got = await downloads(http, 'al', 'a.png');
      expect(names).to.deep.equal(got ? ['a.png'] : []);
      return got ? 'not-done' : 'done';
    },
  },
  {
    change: 'album-create', event: 'imagestore.album.created', eventData: { album: 'al' },
    setup: async () => undefined,
    run: (http) => http('POST', '/albums', { albumName: 'al' }),
    async state(http) {
      const list = await albums(http);
      const names = await images(http, 'al');
      expect(list).to.deep.equal(names ? ['al'] : []);
      if (names) expect(names).to.deep.equal([]);
      return names ? 'done' : 'not-done';
    },
  },
  {
    change: 'album-rename', event: 'imagestore.album.renamed', eventData: { album: 'bl', previousName: 'al' },
    setup: withImage,
    run: (http) => http('PATCH', '/albums/al', { albumName: 'bl' }),
    async state(http) {
      const list = await albums(http);
      expect(list).to.have.length(1);
      expect(await images(http, list[0])).to.deep.equal(['a.png']);
      expect(await downloads(http, list[0], 'a.png')).to.equal(true);
      return list[0] === 'bl' ? 'done' : 'not-done';
    },
  },
  {
    change: 'album-delete', event: 'imagestore.album.deleted', eventData: { album: 'al' },
    setup: withImage,
    run: (http) => http('DELETE', '/albums/al'),
    async state(http) {
      const list = await albums(http);
      const names = await images(http, 'al');
      expect(list).to.deep.equal(names ? ['al'] : []);
      if (names) {
        expect(names).to.deep.equal(['a.png']);
        expect(await downloads(http, 'al', 'a.png')).to.equal(true);
      }
      return names ? 'not-done' : 'done';
    },
  },
];

/** The steps of every change; album creates and renames are one rename, with no middle. */
const STEPS: Array<{ step: string; expected: State; only?: Scenario['change'][] }> = [
  { step: 'before-commit', expected: 'not-done' },
  { step: 'after-commit', expected: 'done' },
  { step: 'mid-apply', expected: 'done', only: ['upload', 'image-rename', 'image-delete', 'album-delete'] },
  { step: 'after-apply', expected: 'done' },
];

describe('commit path: SIGKILL at every step of every change (issue 13 item 2, issue 16 item 1)', function () {
  this.timeout(60_000);
  let dataDir: string;
  let svc: SpawnedService | undefined;
  let restarted: TestService | undefined;
  const subs: mqtt.MqttClient[] = [];

  before(async () => {
    png = await makePng(12, 12);
  });
  beforeEach(async () => {
    dataDir = path.join(await makeTmpDir('imagestore-commit-crash-'), 'data');
  });
  afterEach(async () => {
    for (const sub of subs.splice(0)) await sub.endAsync(true).catch(() => undefined);
    await svc?.kill();
    await restarted?.stop();
    [svc, restarted] = [undefined, undefined];
    await removeDir(path.dirname(dataDir));
  });

  /** Starts the service that will crash; events its broker delivers to the persistent session `clientId` go into `events`. */
  async function start(clientId: string, events: Map<string, StoreEvent>, env: Record<string, string>): Promise<SpawnedService> {
    svc = await spawnService({ dataDir, env });
    subs.push(await subscribe(svc.mqtt, clientId, events));
    return svc;
  }

  /** Starts the service again after the crash (recovery), the subscriber's session with it. */
  async function restart(clientId: string, events: Map<string, StoreEvent>): Promise<TestService> {
    restarted = await startTestService({ dataDir });
    subs.push(await subscribe(restarted.service.mqttUrl, clientId, events));
    return restarted;
  }

  /** Stops the service cleanly, then checks the data dir as `npm run fsck` would, and that nothing is left to redo. */
  async function stopAndCheck(): Promise<void> {
    for (const sub of subs.splice(0)) await sub.endAsync(true);
    await restarted!.stop();
    restarted = undefined;
    const layout = new Layout(dataDir);
    const report = await fsck(dataDir, { repair: false, verifyContent: true });
    expect(report.problems, 'fsck after recovery and a clean stop').to.deep.equal([]);
    const scan = await scanJournal(layout.outboxDir, false);
    expect(scan.problems, 'journal damage').to.deep.equal([]);
    expect(await changesToRedo(layout.outboxDir, scan), 'changes not checkpointed at a clean stop').to.deep.equal([]);
    expect(await fs.readdir(layout.stagedDir), 'staged uploads left').to.deep.equal([]);
  }


  for (const scenario of scenarios) {
    for (const { step, expected, only } of STEPS) {
      if (only && !only.includes(scenario.change)) continue;
      const point = `${scenario.change}:${step}`;
      it(`${point}${scenario.label ? ` (${scenario.label})` : ''}: ${expected === 'done' ? 'the change is made whole and its event delivered' : 'nothing changes and no event is published'}`, async () => {
        const events = new Map<string, StoreEvent>();
        const clientId = `commit-crash-${point.replace(':', '-')}${scenario.label ? '-dup' : ''}`;
        const first = await start(clientId, events, { CRASH_POINT: `${point}@${(scenario.reachedInSetup ?? 0) + 1}` });
        await scenario.setup(client(first.http));
        const answer = await scenario.run(client(first.http)).then((res) => res.status, () => 'no answer');
        expect(await first.exited, `the service killed itself at ${point} (answer: ${answer})`).to.deep.equal({ code: null, signal: 'SIGKILL' });
        expect(answer).to.equal('no answer');

        const second = await restart(clientId, events);
        const http = client(second.service.httpUrl);
        await waitFor('every journaled event delivered', () => second.service.pendingEvents() === 0);
        // The change's own event (a setup may have published others of its type).
        const ofChange = () => [...events.values()].filter((e) => e.type === scenario.event && Object.entries(scenario.eventData).every(([k, v]) => (e.data as unknown as Record<string, unknown>)[k] === v));
        if (expected === 'done') await waitFor(`the ${scenario.event} event`, () => ofChange().length > 0);
        expect(await scenario.state(http), 'the store after restart').to.equal(expected);
        expect(ofChange().length, `${scenario.event} events`).to.equal(expected === 'done' ? 1 : 0);
        if (expected === 'done') expect(ofChange()[0].data).to.include(scenario.eventData);
        await stopAndCheck();
      });
    }
  }

  for (const point of ['checkpoint:after-flush', 'checkpoint:after-record']) {
    it(`${point}: acknowledged changes are kept with their events, and the next checkpoint completes`, async () => {
      const events = new Map<string, StoreEvent>();
      const clientId = `commit-crash-${point.replace(':', '-')}`;
      // The second change applied starts a checkpoint, which kills the process at the point.
      const first = await start(clientId, events, { CRASH_POINT: point, CHECKPOINT_MAX_CHANGES: '2', CHECKPOINT_INTERVAL_MS: '600000' });
      const http = client(first.http);
      expect((await http('POST', '/albums', { albumName: 'al' })).status).to.equal(201);
      const upload = await http('POST', '/albums/al/images', uploadForm('a.png', png)).then((res) => res.status, () => 'no answer');
      expect(await first.exited).to.deep.equal({ code: null, signal: 'SIGKILL' });
      expect([201, 'no answer']).to.include(upload);

      const second = await restart(clientId, events);
      await waitFor('every journaled event delivered', () => second.service.pendingEvents() === 0);
      await waitFor('both events', () => events.size >= 2);
      expect([...events.values()].map((e) => e.type).sort()).to.deep.equal(['imagestore.album.created', 'imagestore.image.created']);
      expect(await images(client(second.service.httpUrl), 'al')).to.deep.equal(['a.png']);
      expect(await downloads(client(second.service.httpUrl), 'al', 'a.png')).to.equal(true);
      await stopAndCheck();
    });
  }
});

import net from 'node:net';
import { expect } from 'chai';
import mqtt from 'mqtt';
import { albumPath } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { startServiceWithEnv, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait-for.js';

const ADMIN_KEY = 'metrics-test-admin-key-4e81c7';
const admin = { Authorization: `Bearer ${ADMIN_KEY}` };

/** One sample line: `name{labels} value`. */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** One metric family: its `# HELP`, `# TYPE` and samples. */
interface Family {
  help?: string;
  type?: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE_LINE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\["\\n])*)"(,|$)/;
const TYPES = ['counter', 'gauge', 'histogram', 'summary', 'untyped'];

/** A sample value as Prometheus reads it (Go's ParseFloat: NaN and Inf in any case; prom-client writes "Nan"). */
function parseValue(text: string, line: string): number {
  if (/^[+]?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`not a number in ${JSON.stringify(line)}`);
  return Number(text);
}

/**
 * Parses the Prometheus text exposition format (0.0.4) strictly: every line
 * is empty, `# HELP name text`, `# TYPE name type`, or `name{label="value",…} value`,
 * and every sample belongs to a family whose TYPE came before it (histogram
 * and summary samples carry _bucket/_sum/_count). Throws on anything else.
 */
function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string) => families.get(name) ?? families.set(name, { samples: [] }).get(name)!;
  expect(text.endsWith('\n'), 'ends with a newline').to.equal(true);
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue; // the format allows empty lines
    if (line.startsWith('#')) {
      const meta = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
      if (!meta) throw new Error(`bad comment line ${JSON.stringify(line)}`);
      const [, kind, name, rest] = meta;
      if (kind === 'HELP') family(name).help = rest;
      else if (TYPES.includes(rest) && families.get(name)?.type === undefined) family(name).type = rest;
      else throw new Error(`bad or repeated TYPE in ${JSON.stringify(line)}`);
      continue;
    }
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`bad sample line ${JSON.stringify(line)}`);
    const [, name, labelText = '', valueText] = match;
    const labels: Record<string, string> = {};
    for (let rest = labelText; rest !== '';) {
      const label = LABEL.exec(rest);
      if (!label) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels[label[1]] = label[2].replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
      rest = rest.slice(label[0].length);
    }
    const base = [name, name.replace(/_(bucket|sum|count)$/, '')].find((n) => families.get(n)?.type !== undefined);
    if (base === undefined) throw new Error(`sample before its # TYPE: ${JSON.stringify(line)}`);
    families.get(base)!.samples.push({ name, labels, value: parseValue(valueText, line) });
  }
  return families;
}

/** A scrape of /metrics, with a lookup of one sample's value (0 when absent). */
interface Scrape {
  families: Map<string, Family>;
  value(name: string, labels?: Record<string, string>): number;
}

function scrapeOf(families: Map<string, Family>): Scrape {
  return {
    families,
    value(name, labels = {}) {
      const base = name.replace(/_(bucket|sum|count)$/, '');
      const samples = (families.get(name) ?? families.get(base))?.samples ?? [];
      const hit = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      return hit?.value ?? 0;
    },
  };
}


describe('metrics (GET /metrics, Prometheus text)', function () {
  this.timeout(20_000);
  let svc: TestService;
  let png: Buffer;
  before(async () => {
    png = await makePng(32, 24);
    svc = await startServiceWithEnv({ API_KEYS: `admin:${ADMIN_KEY}` });
  });
  after(async () => svc?.close());

  async function scrape(): Promise<Scrape> {
    const res = await svc.http.get('/metrics').set(admin).expect(200);
    expect(res.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4; charset=utf-8$/);
    return scrapeOf(parsePrometheus(res.text));
  }

  it('parses as Prometheus text: every family typed and documented, histograms consistent', async () => {
    await svc.http.get('/api/v1/albums').set(admin).expect(200);
    const { families } = await scrape();
    for (const [name, family] of families) {
      expect(family.type, name).to.be.oneOf(TYPES);
      expect(family.help, name).to.be.a('string').and.not.equal('');
      if (family.type === 'counter') for (const s of family.samples) expect(s.value, `${name} is not negative`).to.be.at.least(0);
    }
    const histogram = families.get('imagestore_http_request_duration_seconds');
    expect(histogram?.type).to.equal('histogram');
    const series = histogram!.samples.filter((s) => s.name.endsWith('_count') && s.labels.route === '/api/v1/albums' && s.labels.method === 'GET');
    expect(series).to.have.length(1);
    const { labels } = series[0];
    const buckets = histogram!.samples.filter((s) => s.name.endsWith('_bucket') && s.labels.route === labels.route && s.labels.method === labels.method && s.labels.status === labels.status);
    expect(buckets.at(-1)?.labels.le).to.equal('+Inf');
    expect(buckets.at(-1)?.value).to.equal(series[0].value);
    for (let i = 1; i < buckets.length; i += 1) expect(buckets[i].value).to.be.at.least(buckets[i - 1].value);
  });

  it('includes the process and Node.js defaults', async () => {
    const { families } = await scrape();
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
      expect(families.has(name), name).to.equal(true);
    }
  });

  it('counts requests by route pattern and status, with latency and bytes, and never uses names as labels', async () => {
    const before = await scrape();
    await svc.http.post('/api/v1/albums').set(admin).send({ albumName: 'metered-album' }).expect(201);
    await svc.http.post('/api/v1/albums').set(admin).send({ albumName: 'metered-album' }).expect(409);
    await svc.http.post(`${albumPath('metered-album')}/images`).set(admin).attach('file', png, 'metered.png').expect(201);
    await svc.http.get(albumPath('metered-album', 'metered.png')).set(admin).expect(200);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string>) => after.value(name, labels) - before.value(name, labels);

    expect(delta('imagestore_http_requests_total', { method: 'POST', route: '/api/v1/albums', status: '201' })).to.equal(1);
    expect(delta('imagestore_http_requests_total', { method: 'POST', route: '/api/v1/albums', status: '409' })).to.equal(1);
    const download = { method: 'GET', route: '/api/v1/albums/:albumName/images/:imageName', status: '200' };
    expect(delta('imagestore_http_requests_total', download)).to.equal(1);
    expect(delta('imagestore_http_request_duration_seconds_count', download)).to.equal(1);
    expect(delta('imagestore_http_request_duration_seconds_sum', download)).to.be.above(0);
    expect(delta('imagestore_http_request_bytes_total', { route: '/api/v1/albums/:albumName/images' })).to.be.above(png.length);
    expect(delta('imagestore_http_response_bytes_total', { route: download.route })).to.equal(png.length);

    const labelValues = [...after.families.values()].flatMap((f) => f.samples.flatMap((s) => Object.values(s.labels)));
    expect(labelValues.filter((v) => v.includes('metered'))).to.deep.equal([]);
  });

  it('counts requests refused by the key check too', async () => {
    const before = await scrape();
    await svc.http.get('/api/v1/albums').expect(401);
    const after = await scrape();
    const total = (s: Scrape) => [...s.families.get('imagestore_http_requests_total')!.samples].filter((x) => x.labels.status === '401').reduce((n, x) => n + x.value, 0);
    expect(total(after) - total(before)).to.equal(1);
  });

  it('reports albums and images stored, transforms and derivative-cache hits', async () => {
    const before = await scrape();
    await svc.http.post('/api/v1/albums').set(admin).send({ albumName: 'gallery' }).expect(201);
    await svc.http.post(`${albumPath('gallery')}/images`).set(admin).attach('file', png, 'a.png').expect(201);
    await svc.http.post(`${albumPath('gallery')}/images`).set(admin).attach('file', png, 'b.png').expect(201);
    const afterUpload = await scrape();
    expect(afterUpload.value('imagestore_albums') - before.value('imagestore_albums')).to.equal(1);
    expect(afterUpload.value('imagestore_images') - before.value('imagestore_images')).to.equal(2);

    const thumb = `${albumPath('gallery', 'a.png')}?w=8&format=webp`;
    await svc.http.get(thumb).set(admin).expect(200);
    const afterFirst = await scrape();
    expect(afterFirst.value('imagestore_transforms_total') - afterUpload.value('imagestore_transforms_total')).to.equal(1);
    expect(afterFirst.value('imagestore_derivative_cache_misses_total') - afterUpload.value('imagestore_derivative_cache_misses_total')).to.equal(1);
    expect(afterFirst.value('imagestore_derivative_cache_bytes')).to.be.above(0);

    await svc.http.get(thumb).set(admin).expect(200);
    const afterSecond = await scrape();
    expect(afterSecond.value('imagestore_transforms_total') - afterFirst.value('imagestore_transforms_total')).to.equal(0);
    expect(afterSecond.value('imagestore_derivative_cache_hits_total') - afterFirst.value('imagestore_derivative_cache_hits_total')).to.equal(1);

    await svc.http.delete(albumPath('gallery', 'b.png')).set(admin).expect(200);
    expect((await scrape()).value('imagestore_images') - before.value('imagestore_images')).to.equal(1);
  });

  it('counts events published and broker clients connected', async () => {
    // Start from a quiet outbox, so the events of earlier tests are not counted here.
    const before = await waitFor('an empty outbox', async () => {
      const now = await scrape();
      return now.value('imagestore_outbox_pending_events') === 0 && now;
    }, 5000, 50);
    const client = mqtt.connect(svc.service.mqttUrl, { username: 'm', password: ADMIN_KEY, reconnectPeriod: 0, connectTimeout: 5000 });
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve());
        client.once('error', reject);
      });
      const connected = await scrape();
      expect(connected.value('imagestore_broker_clients') - before.value('imagestore_broker_clients')).to.equal(1);
      await svc.http.post('/api/v1/albums').set(admin).send({ albumName: 'announced' }).expect(201);
      await svc.http.patch(albumPath('announced')).set(admin).send({ albumName: 'renamed' }).expect(200);
      // Each change is one event; it counts once delivered (PUBACK), when the outbox has nothing left.
      const delivered = await waitFor('two more events delivered', async () => {
        const now = await scrape();
        return now.value('imagestore_events_published_total') - before.value('imagestore_events_published_total') >= 2 && now;
      }, 5000, 50);
      expect(delivered.value('imagestore_events_published_total') - before.value('imagestore_events_published_total')).to.equal(2);
      expect(delivered.value('imagestore_outbox_pending_events')).to.equal(0);
    } finally {
      await client.endAsync(true);
    }
    await waitFor('the client to be gone', async () => (await scrape()).value('imagestore_broker_clients') === before.value('imagestore_broker_clients'), 3000, 50);
  });
});

describe('metrics with the broker down', function () {
  this.timeout(20_000);

  it('shows the events waiting in the outbox, none published', async () => {
    // A port nothing listens on: the external broker is "down" for the whole test.
    const probe = net.createServer().listen(0, '127.0.0.1');
    await new Promise((resolve) => probe.once('listening', resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const svc = await startServiceWithEnv({ MQTT_URL: `mqtt://127.0.0.1:${port}`, SHUTDOWN_TIMEOUT_MS: '100' });
    try {
      await svc.http.post('/api/v1/albums').send({ albumName: 'waiting' }).expect(201);
      await svc.http.post('/api/v1/albums').send({ albumName: 'waiting-too' }).expect(201);
      const res = await svc.http.get('/metrics').expect(200);
      const metrics = scrapeOf(parsePrometheus(res.text));
      expect(metrics.value('imagestore_outbox_pending_events')).to.equal(2);
      expect(metrics.value('imagestore_events_published_total')).to.equal(0);
      expect(metrics.value('imagestore_broker_clients')).to.equal(0);
    } finally {
      await svc.close();
    }
  });
});

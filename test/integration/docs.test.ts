import type { ImportService } from '../../src/imports/import-service.js';
import type { Metrics } from '../../src/metrics.js';
import type { ImageDelivery } from '../../src/images/image-delivery.js';
import type { ImageEngine } from '../../src/images/image-engine.js';
import { expect } from 'chai';
import type { AlbumService } from '../../src/services/album-service.js';
import { eventSchema, messageKey } from '../../src/docs/asyncapi.js';
import { EVENT_TYPES, NOTIFIER_TOPIC, type EventType } from '../../src/notifier/events.js';
import type { ReadinessChecks } from '../../src/routes/health.js';
import { buildRouter } from '../../src/routes/index.js';
import type { DiffPool } from '../../src/images/diff-pool.js';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { defaultConfig } from '../../src/config.js';
import { makePng } from '../helpers/images.js';
import { waitFor } from '../helpers/wait-for.js';
import { recordEvents } from '../helpers/mqtt.js';
import { startTestService, type TestService } from '../helpers/service.js';
import type { EventFeed } from '../../src/events/event-feed.js';
import type { EventStreams } from '../../src/events/event-streams.js';
import type { WebhookService } from '../../src/events/webhooks/webhook-service.js';

interface Operation {
  operationId: string;
  parameters?: Array<{ name: string; in: string }>;
  requestBody?: { content: Record<string, unknown> };
  responses: Record<string, { description?: string; content?: Record<string, unknown> }>;
}
interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, Operation>>;
}
interface JsonSchema {
  properties?: Record<string, JsonSchema>;
  required?: string[];
  const?: unknown;
}
/** Parsed JSON documents, read loosely: the assertions check the shape. */
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const HTTP_METHODS = ['get', 'put', 'post', 'patch', 'delete', 'options', 'head', 'trace'];

/**
 * Router routes that are deliberately not in the OpenAPI document: the static
 * files of Swagger UI itself (names fixed by swagger-ui-dist, not an API), the gallery's assets, and
 * GET / when it is a redirect for browsers (routes/home.ts, UI_ENABLED=false; otherwise it is the gallery, documented).
 * /swagger, /openapi.json and /asyncapi.json are documented under the `docs` tag.
 */
const UNDOCUMENTED = ['get /swagger/initializer.js', 'get /swagger/{asset}', 'get /ui/{file}'];

/** `/albums/:albumName` → `/albums/{albumName}` */
const toOpenApiPath = (routerPath: string) => routerPath.replace(/:(\w+)/g, '{$1}');
/** `/albums/{albumName}` → `/albums/:albumName` */
const toRouterPath = (openApiPath: string) => openApiPath.replace(/\{(\w+)\}/g, ':$1');

/** Every `method path` the router serves, in OpenAPI form; HEAD is left out where koa-router added it for a GET. */
function routerOperations(config: TestService['config']): string[] {
  // The walk only reads the route table: no handler runs, so the services are never called.
  const router = buildRouter({
    config, albums: {} as AlbumService, delivery: {} as ImageDelivery, engine: {} as ImageEngine, diffs: {} as DiffPool, imports: {} as ImportService,
    readiness: {} as ReadinessChecks, metrics: {} as Metrics, version: '0.0.0', docs: { openApi: {}, asyncApi: {} },
    events: { feed: {} as EventFeed, streams: {} as EventStreams, webhooks: {} as WebhookService },
  });
  const ops = new Set<string>();
  for (const layer of router.stack) {
    const methods = layer.methods.map((m) => m.toLowerCase());
    for (const method of methods) {
      if (method === 'head' && methods.includes('get')) continue;
      ops.add(`${method} ${toOpenApiPath(layer.path as string)}`);
    }
  }
  return [...ops].sort();
}

function documentedOperations(doc: OpenApiDoc): Array<[string, Operation]> {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).filter(([method]) => HTTP_METHODS.includes(method)).map(([method, op]): [string, Operation] => [`${method} ${path}`, op]),
  );
}

/** Keys of `value` (and of its nested objects) that `schema` does not list, as dotted paths. */
function undocumentedKeys(value: Json, schema: JsonSchema, prefix = ''): string[] {
  return Object.entries(value).flatMap(([key, child]) => {
    const sub = schema.properties?.[key];
    if (!sub) return [`${prefix}${key}`];
    return child && typeof child === 'object' && !Array.isArray(child) ? undocumentedKeys(child, sub, `${prefix}${key}.`) : [];
  });
}

/** Required keys (at the top and in nested objects) that `value` lacks. */
function missingKeys(value: Json, schema: JsonSchema, prefix = ''): string[] {
  const missing = (schema.required ?? []).filter((key) => !(key in value)).map((key) => `${prefix}${key}`);
  const nested = Object.entries(schema.properties ?? {})
    .filter(([key]) => value[key] && typeof value[key] === 'object')
    .flatMap(([key, sub]) => missingKeys(value[key], sub, `${prefix}${key}.`));
  return [...missing, ...nested];
}

/** Every `$ref` string anywhere in `node`. */
function refsIn(node: unknown): string[] {
  if (Array.isArray(node)) return node.flatMap(refsIn);
  if (!node || typeof node !== 'object') return [];
  return Object.entries(node).flatMap(([key, child]) => (key === '$ref' && typeof child === 'string' ? [child] : refsIn(child)));
}

function resolvePointer(doc: unknown, ref: string): unknown {
  return ref
    .slice(2)
    .split('/')
    .reduce<unknown>((node, part) => (node && typeof node === 'object' ? (node as Json)[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), doc);
}

describe('API documents (OpenAPI and AsyncAPI)', () => {
  let svc: TestService;
  let openApi: OpenApiDoc;
  let asyncApi: Json;

  before(async () => {
    svc = await startTestService({ config: { imports: { ...defaultConfig().imports, allowHosts: ['127.0.0.1'], timeoutMs: 5000 } } });
    openApi = (await svc.http.get('/openapi.json').expect(200).expect('Content-Type', /application\/json/)).body;
    asyncApi = (await svc.http.get('/asyncapi.json').expect(200).expect('Content-Type', /application\/json/)).body;
  });
  after(async () => svc?.close());

  describe('GET /openapi.json against the router', () => {
    it('is shaped like OpenAPI 3.1: version, info, paths, unique operationIds, a described response on every operation', () => {
      expect(openApi.openapi).to.equal('3.1.0');
      expect(openApi.info.title).to.equal('imagestore');
      expect(openApi.info.version).to.equal('test');
      expect(openApi.paths).to.be.an('object').that.is.not.empty;
      const ops = documentedOperations(openApi);
      expect(ops.length).to.be.greaterThan(10);
      for (const [name, op] of ops) {
        expect(name, name).to.match(/^\w+ \//);
        expect(op.operationId, `${name} operationId`).to.be.a('string').that.is.not.empty;
        const statuses = Object.keys(op.responses ?? {});
        expect(statuses, `${name} responses`).to.not.be.empty;
        for (const status of statuses) {
          expect(status, `${name} status`).to.match(/^[1-5]\d\d$/);
          expect(op.responses[status].description, `${name} ${status} description`).to.be.a('string').that.is.not.empty;
        }
      }
      const ids = ops.map(([, op]) => op.operationId);
      expect(new Set(ids).size, 'operationIds are unique').to.equal(ids.length);
    });

    it('documents every route the router serves (except the listed Swagger UI assets)', () => {
      const documented = new Set(documentedOperations(openApi).map(([name]) => name));
      const served = routerOperations(svc.config);
      expect(served, 'the exclusion list names real routes').to.include.members(UNDOCUMENTED);
      const undocumented = served.filter((op) => !documented.has(op) && !UNDOCUMENTED.includes(op));
      expect(undocumented, 'routes missing from OPERATIONS in src/docs/openapi.ts').to.deep.equal([]);
    });

    it('has a router route for every documented operation', () => {
      const served = new Set(routerOperations(svc.config));
      const missing = documentedOperations(openApi).map(([name]) => name).filter((name) => !served.has(name));
      expect(missing, 'documented operations the router does not serve').to.deep.equal([]);
    });

    it('declares exactly the path parameters of each documented path', () => {
      for (const [name, op] of documentedOperations(openApi)) {
        const inPath = [...name.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
        const declared = (op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort();
        expect(declared, name).to.deep.equal(inPath);
      }
    });

    it('answers each documented operation over HTTP with one of its documented statuses, never a router miss', async () => {
      for (const [name, op] of documentedOperations(openApi)) {
        const [method, path] = name.split(' ');
        // An endless stream: probed with a malformed cursor, which is refused before the stream starts.
        if (op.responses['200']?.content?.['text/event-stream']) {
          const res = await svc.http.get(`${path}?after=notanumber`);
          expect(Object.keys(op.responses), `${name}: answered ${res.status}`).to.include(String(res.status));
          continue;
        }
        // Names that do not exist: no operation changes anything, yet each reaches its handler.
        const url = toRouterPath(path).replace(/:(\w+)/g, 'docs-probe-missing');
        let req = svc.http[method as 'get'](url);
        if (op.requestBody?.content['application/json']) req = req.send({});
        const res = await req;
        expect(res.body?.error ?? '', `${name}: reached a handler`).to.not.match(/^no route/);
        expect(Object.keys(op.responses), `${name}: answered ${res.status} ${JSON.stringify(res.body)}`).to.include(String(res.status));
      }
    });

    it('links the AsyncAPI document from the description Swagger UI shows', () => {
      expect(openApi.info.description).to.include('](/asyncapi.json)');
    });
  });

  describe('GET /asyncapi.json', () => {
    it('is an AsyncAPI 3.1 document: channel imagestore/notifier, embedded mqtt broker on 1883, QoS 1 publish operation', () => {
      expect(asyncApi.asyncapi).to.equal('3.1.0');
      expect(asyncApi.info).to.include({ title: 'imagestore events', version: 'test' });
      expect(asyncApi.channels.notifier.address).to.equal(NOTIFIER_TOPIC);
      const server = asyncApi.servers.embedded;
      expect(server.protocol).to.equal('mqtt');
      expect(server.host).to.equal('{host}:{port}');
      expect(server.variables.port.default).to.equal('1883');
      const operation = asyncApi.operations.publishStoreEvent;
      expect(operation.action).to.equal('send');
      expect(operation.channel).to.deep.equal({ $ref: '#/channels/notifier' });
      expect(operation.bindings.mqtt).to.include({ qos: 1, retain: false });
    });

    it('lists MQTT over WebSocket on the HTTP port, and an event really arrives there', async () => {
      const server = asyncApi.servers.embeddedWebSocket;
      expect(server).to.include({ protocol: 'ws', pathname: svc.config.mqtt.wsPath, host: '{host}:{port}' });
      expect(asyncApi.channels.notifier.servers).to.deep.include({ $ref: '#/servers/embeddedWebSocket' });
      const events = await recordEvents(`ws://${new URL(svc.service.httpUrl).host}${server.pathname}`);
      try {
        await svc.http.post('/api/v1/albums').send({ albumName: 'docs-ws' }).expect(201);
        const [event] = await events.waitForCount(1);
        expect(event).to.include({ type: 'imagestore.album.created', subject: 'albums/docs-ws' });
      } finally {
        await events.close();
      }
    });

    it('resolves every $ref inside the document', () => {
      const refs = refsIn(asyncApi);
      expect(refs.length).to.be.greaterThan(EVENT_TYPES.length * 2);
      const broken = refs.filter((ref) => !ref.startsWith('#/') || resolvePointer(asyncApi, ref) === undefined);
      expect(broken).to.deep.equal([]);
    });

    for (const type of EVENT_TYPES) {
      it(`describes ${type} on the channel and the operation, with an example its schema accepts`, () => {
        const key = messageKey(type);
        expect(asyncApi.channels.notifier.messages[key]).to.deep.equal({ $ref: `#/components/messages/${key}` });
        expect(asyncApi.operations.publishStoreEvent.messages).to.deep.include({ $ref: `#/channels/notifier/messages/${key}` });
        const message = asyncApi.components.messages[key];
        expect(message.name).to.equal(type);
        expect(message.contentType).to.equal('application/cloudevents+json');
        expect(message.payload.properties.type.const).to.equal(type);
        const example = message.examples[0].payload;
        expect(example.type).to.equal(type);
        expect(eventSchema(type).safeParse(example).error).to.equal(undefined);
        expect(missingKeys(example, message.payload), 'required keys missing from the example').to.deep.equal([]);
        expect(undocumentedKeys(example, message.payload), 'example keys not in the schema').to.deep.equal([]);
      });
    }

    it('matches the events the service really publishes, one of each type', async () => {
      const events = await recordEvents(svc.service.mqttUrl);
      try {
        const album = '/api/v1/albums/docs-events';
        await svc.http.post('/api/v1/albums').send({ albumName: 'docs-events' }).expect(201);
        await svc.http.post(`${album}/images`).attach('file', await makePng(), 'a.png').expect(201);
        await svc.http.get(`${album}/images/a.png`).expect(200);
        await svc.http.patch(`${album}/images/a.png`).send({ imageName: 'b.png' }).expect(200);
        await svc.http.delete(`${album}/images/b.png`).expect(200);
        await svc.http.patch(album).send({ albumName: 'docs-events-2' }).expect(200);
        await svc.http.delete('/api/v1/albums/docs-events-2').expect(200);
        // Import jobs: one that completes (a PNG from a local server), one that fails (an address the
        // SSRF guard refuses before connecting), one cancelled while its download hangs.
        await svc.http.post('/api/v1/albums').send({ albumName: 'docs-imports' }).expect(201);
        const png = await makePng();
        const hanging: http.ServerResponse[] = [];
        const server = http.createServer((req, res) => (req.url === '/hang.png' ? hanging.push(res) : res.end(png)));
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        try {
          const imports = '/api/v1/albums/docs-imports/imports';
          const done = await svc.http.post(imports).send({ urls: [`${base}/ok.png`] }).expect(202);
          await svc.http.post(imports).send({ urls: ['http://169.254.169.254/refused.png'] }).expect(202);
          const hang = await svc.http.post(imports).send({ urls: [`${base}/hang.png`] }).expect(202);
          await waitFor('the hanging download', () => hanging.length === 1);
          await svc.http.delete(`/api/v1/imports/${hang.body.job.id}`).expect(200);
          await waitFor('the first import', async () => (await svc.http.get(`/api/v1/imports/${done.body.job.id}`)).body.state === 'done');
        } finally {
          for (const res of hanging) res.destroy();
          server.closeAllConnections();
          server.close();
        }
        await waitFor('one event of each type', () => EVENT_TYPES.every((type) => events.events.some((e) => e.type === type)));
        // Keep one event per type (an import emits a progress event per item, an upload an image event too).
        const got = EVENT_TYPES.map((type) => events.events.find((e) => e.type === type)!);
        expect(got.map((e) => e.type)).to.have.members([...EVENT_TYPES]);
        for (const { topic, ...event } of got) {
          expect(topic).to.equal(asyncApi.channels.notifier.address);
          const schema: JsonSchema = asyncApi.components.messages[messageKey(event.type as EventType)].payload;
          expect(eventSchema(event.type).safeParse(event).error, event.type).to.equal(undefined);
          expect(missingKeys(event, schema), `${event.type}: required keys missing`).to.deep.equal([]);
          expect(undocumentedKeys(event, schema), `${event.type}: keys sent but not documented`).to.deep.equal([]);
        }
      } finally {
        await events.close();
      }
    });
  });
});

describe('API documents in PRODMODE', () => {
  let svc: TestService;
  before(async () => {
    svc = await startTestService({ config: { prodMode: true } });
  });
  after(async () => svc?.close());

  for (const path of ['/openapi.json', '/asyncapi.json', '/swagger', '/swagger/swagger-ui-bundle.js']) {
    it(`answers GET ${path} with a JSON 404`, async () => {
      const res = await svc.http.get(path).expect(404).expect('Content-Type', /application\/json/);
      expect(res.body).to.deep.equal({ error: `no route for GET ${path}` });
    });
  }

  it('still serves the API', async () => {
    const res = await svc.http.get('/api/v1/albums').expect(200);
    expect(res.body.albumList).to.deep.equal([]);
  });
});

import { Writable } from 'node:stream';
import { expect } from 'chai';
import mqtt from 'mqtt';
import pino from 'pino';
import sharp from 'sharp';
import supertest, { type Response, type Test } from 'supertest';
import { loadConfig, type Config } from '../../src/config.js';
import { operation, type OperationId } from '../../src/contract/operations.js';
import { OPERATIONS, type OperationDoc } from '../../src/docs/openapi.js';
import { AlbumNameBody, ImageNameBody, SignUrlBody } from '../../src/contract/schemas.js';
import { roleAllows, type Role } from '../../src/security/api-keys.js';
import { signPath } from '../../src/security/signed-url.js';
import { startService } from '../../src/server.js';
import { albumPath, rawBody } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const KEYS: Record<Role, string> = {
  read: 'auth-test-read-key-7f3a9c21',
  write: 'auth-test-write-key-4be18d07',
  admin: 'auth-test-admin-key-e2c95b63',
};
const WRONG_KEY = 'auth-test-wrong-key-0d6f2a94';
const SIGNING_SECRET = 'auth-test-url-signing-secret-91c4e7a2b8d0';
type Principal = 'none' | 'wrong' | Role;
const PRINCIPALS: Principal[] = ['none', 'wrong', 'read', 'write', 'admin'];

/** The environment of a service with the three keys and a signing secret (plus `env`). */
function securedEnv(env: Record<string, string> = {}): Record<string, string> {
  return {
    HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0', LOG_LEVEL: 'silent', SHUTDOWN_TIMEOUT_MS: '3000',
    API_KEYS: Object.entries(KEYS).map(([role, key]) => `${role}:${key}`).join(','),
    URL_SIGNING_SECRET: SIGNING_SECRET,
    // These tests send far more wrong keys and forged signatures than the default limit allows
    // from one address; auth-failure-limit.test.ts tests the limit.
    AUTH_FAILURE_LIMIT: '0',
    ...env,
  };
}

/** Starts the whole service with a configuration loaded from `env`, on a fresh temp data dir. */
async function startWithEnv(env: Record<string, string>): Promise<TestService> {
  const dataDir = await makeTmpDir();
  const config: Config = { ...loadConfig(env), imageDbDir: dataDir };
  return startTestService({ dataDir, config });
}

/**
 * The role each operation needs: the operation table's (src/contract/operations.ts), which the auth
 * middleware decides from too. This file checks that the running service holds to it, for every
 * operation and every principal.
 */
function neededRole(op: OperationDoc): Role | 'open' {
  return operation(op.operationId as OperationId).role;
}

/** The exact success status of the operations this file knows how to call successfully; others must get a documented answer from the route. */
const SUCCESS: Record<string, number> = {
  listAlbums: 200, createAlbum: 201, renameAlbum: 200, deleteAlbum: 200, listImages: 200, uploadImage: 201, getImage: 200,
  getImageMetadata: 200, getImageById: 200, renameImage: 200, deleteImage: 200, diffStored: 200, diffUploaded: 200,
  listImports: 200, signUrl: 201, fsck: 200, metrics: 200, livez: 200, healthz: 200, readyz: 200, getOpenApi: 200,
  getAsyncApi: 200, swaggerUi: 200, gallery: 200, startSession: 200, endSession: 204,
};

/** An album with one image, made with the admin key, that a call's path parameters point at. */
interface Fixture {
  album: string;
  image: string;
  id: string;
}

function authorization(principal: Principal): Record<string, string> {
  if (principal === 'none') return {};
  return { Authorization: `Bearer ${principal === 'wrong' ? WRONG_KEY : KEYS[principal]}` };
}

describe('API keys and roles on every route', function () {
  this.timeout(20_000);
  let svc: TestService;
  let open: TestService;
  let png: Buffer;
  let fixtures = 0;

  before(async () => {
    png = await makePng(24, 16);
    [svc, open] = await Promise.all([startWithEnv(securedEnv()), startWithEnv(securedEnv({ API_KEYS: '', URL_SIGNING_SECRET: '' }))]);
  });
  after(async () => {
    await Promise.all([svc?.close(), open?.close()]);
  });

  async function makeFixture(service: TestService, prefix: string): Promise<Fixture> {
    fixtures += 1;
    const album = `${prefix}-${fixtures}`;
    const admin = authorization('admin');
    await service.http.post('/api/v1/albums').set(admin).send({ albumName: album }).expect(201);
    const res = await service.http.post(`${albumPath(album)}/images`).set(admin).attach('file', png, 'pic.png').expect(201);
    return { album, image: 'pic.png', id: res.body.image.id as string };
  }

  /** Calls `op` as `principal`, with its path parameters, query and body filled in from `fx`; `tag` names what the call creates. */
  function call(service: TestService, op: OperationDoc, fx: Fixture, principal: Principal, tag: string): Test {
    const params: Record<string, string> = { albumName: fx.album, imageName: fx.image, idWithExtension: fx.id };
    const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? 'no-such-thing'));
    let req = service.http[op.method](path).set(authorization(principal));
    if (op.operationId === 'diffStored') req = req.query({ a: `${fx.album}/${fx.image}`, b: fx.id });
    // The live stream never ends: a malformed cursor makes the route answer (400) once the key is checked.
    if (op.operationId === 'streamEvents') req = req.query({ after: 'not-a-sequence' });
    if (op.jsonBody === AlbumNameBody) req = req.send({ albumName: `${tag}-new` });
    else if (op.jsonBody === ImageNameBody) req = req.send({ imageName: `${tag}-new.png` });
    else if (op.jsonBody === SignUrlBody) req = req.send({ path: albumPath(fx.album, fx.image) });
    else if (op.jsonBody) req = req.send({});
    if (op.multipart) for (const field of op.fileFields ?? ['file']) req = req.attach(field, png, `${tag}-${field}.png`);
    return req;
  }

  /** The route itself answered: its documented success, or (for operations without one here) a documented non-auth 4xx. */
  function expectRouteAnswer(op: OperationDoc, res: Response, who: string, success = SUCCESS[op.operationId]): void {
    const what = `${op.operationId} as ${who}: ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`;
    if (success !== undefined) {
      expect(res.status, what).to.equal(success);
    } else {
      expect(Object.keys(op.responses).map(Number), what).to.include(res.status);
      expect([401, 403, 429], what).not.to.include(res.status);
      expect(res.status, what).to.be.below(500);
    }
  }

  function expectRefused(res: Response, principal: Principal, need: Role, who: string): void {
    const what = `${who}: ${res.status} ${JSON.stringify(res.body)}`;
    if (principal === 'none' || principal === 'wrong') {
      expect(res.status, what).to.equal(401);
      expect(res.headers['www-authenticate'], what).to.match(/^Bearer realm="imagestore"/);
      expect(res.body.error, what).to.match(principal === 'none' ? /API key is required/ : /API key is not valid/);
    } else {
      expect(res.status, what).to.equal(403);
      expect(res.headers['www-authenticate'], what).to.equal(undefined);
      expect(res.body, what).to.deep.equal({ error: `this operation needs the ${need} role; the key has ${principal}` });
    }
  }

  /** A fixture for one call: shared by the calls that only read, fresh for each call that changes something. */
  async function fixtureFor(service: TestService, op: OperationDoc, shared: Fixture): Promise<Fixture> {
    return op.method === 'get' ? shared : makeFixture(service, op.operationId);
  }

  describe('with keys configured', () => {
    let untouched: Fixture;
    before(async () => {
      untouched = await makeFixture(svc, 'untouched');
    });

    for (const op of OPERATIONS) {
      const need = neededRole(op);
      it(`${op.method.toUpperCase()} ${op.path} (${op.operationId}) is ${need === 'open' ? 'open to all' : `for the ${need} role and above`}`, async () => {
        for (const principal of PRINCIPALS) {
          const allowed = need === 'open' || (principal !== 'none' && principal !== 'wrong' && roleAllows(principal, need));
          const who = `${op.operationId} as ${principal}`;
          if (allowed) {
            const fx = await fixtureFor(svc, op, untouched);
            expectRouteAnswer(op, await call(svc, op, fx, principal, `${op.operationId}-${principal}`), principal);
          } else {
            expectRefused(await call(svc, op, untouched, principal, `${op.operationId}-denied`), principal, need as Role, who);
          }
        }
        // The refused calls changed nothing: the album they aimed at still holds its image, and nothing was created.
        const admin = authorization('admin');
        const images = await svc.http.get(`${albumPath(untouched.album)}/images`).set(admin).expect(200);
        expect(images.body.imageList).to.deep.equal(['pic.png']);
        const albums = await svc.http.get('/api/v1/albums').set(admin).expect(200);
        expect((albums.body.albumList as string[]).filter((name) => name.includes('-denied'))).to.deep.equal([]);
      });
    }

    it('HEAD of an image needs read, like GET', async () => {
      const path = albumPath(untouched.album, untouched.image);
      expect((await svc.http.head(path)).status).to.equal(401);
      const res = await svc.http.head(path).set(authorization('read')).expect(200);
      expect(res.headers['content-length']).to.equal(String(png.length));
    });

    it('accepts the Bearer scheme in any case and refuses other schemes, a key in the query, and extra tokens', async () => {
      await svc.http.get('/api/v1/albums').set('Authorization', `bearer ${KEYS.read}`).expect(200);
      await svc.http.get('/api/v1/albums').set('Authorization', `BEARER   ${KEYS.read}`).expect(200);
      const basic = await svc.http.get('/api/v1/albums').set('Authorization', `Basic ${Buffer.from(`x:${KEYS.admin}`).toString('base64')}`).expect(401);
      expect(basic.body).to.deep.equal({ error: 'expected Authorization: Bearer <key>' });
      expect(basic.headers['www-authenticate']).to.match(/^Bearer /);
      await svc.http.get('/api/v1/albums').query({ key: KEYS.admin, access_token: KEYS.admin }).expect(401);
      await svc.http.get('/api/v1/albums').set('Authorization', `Bearer ${KEYS.admin} ${KEYS.admin}`).expect(401);
      await svc.http.get('/api/v1/albums').set('Authorization', 'Bearer ').expect(401);
    });

    it('applies the admin rules to every spelling the router serves: any letter case, a trailing slash (write key: 403)', async () => {
      const fx = await makeFixture(svc, 'spelling');
      const spellings: Array<['get' | 'delete', string, number]> = [
        ['get', '/METRICS', 403], ['get', '/Metrics/', 403], ['get', '/API/V1/ADMIN/FSCK', 403], ['get', '/api/v1/admin/fsck/', 403],
        ['delete', `/API/v1/albums/${fx.album}`, 403], ['delete', `/api/v1/ALBUMS/${fx.album}/`, 403],
        // Percent-encoded letters do not reach these routes at all.
        ['get', '/%6Detrics', 404], ['get', '/api/v1/%61dmin/fsck', 404], ['delete', `/api/v1/%61lbums/${fx.album}`, 404],
      ];
      for (const [method, path, status] of spellings) {
        const res = await svc.http[method](path).set(authorization('write'));
        expect(res.status, `${method.toUpperCase()} ${path}: ${JSON.stringify(res.body)}`).to.equal(status);
      }
      await svc.http.get(`${albumPath(fx.album)}/images`).set(authorization('read')).expect(200, { imageList: ['pic.png'] });
    });

    it('answers 401 before looking at the route: an unknown path or a wrong method is not revealed without a key', async () => {
      const res = await svc.http.get('/api/v1/no-such-route').expect(401);
      expect(res.body.error).to.match(/API key is required/);
      await svc.http.get('/api/v1/no-such-route').set(authorization('read')).expect(404);
    });
  });

  describe('with no keys configured (open, as the Go service)', () => {
    let shared: Fixture;
    before(async () => {
      shared = await makeFixture(open, 'shared');
    });

    for (const op of OPERATIONS) {
      it(`${op.method.toUpperCase()} ${op.path} (${op.operationId}) answers without a key`, async () => {
        const fx = await fixtureFor(open, op, shared);
        // No URL_SIGNING_SECRET in this service: making a signed URL is the route's documented 501; no keys, no session either.
        const success = op.operationId === 'signUrl' || op.operationId === 'startSession' ? 501 : SUCCESS[op.operationId];
        expectRouteAnswer(op, await call(open, op, fx, 'none', `${op.operationId}-open`), 'anyone', success);
      });
    }

    it('ignores an Authorization header it cannot check', async () => {
      await open.http.get('/api/v1/albums').set('Authorization', `Bearer ${WRONG_KEY}`).expect(200);
    });
  });

  describe('signed URLs', () => {
    let fx: Fixture;
    let other: Fixture;
    /** A signed URL made by the service for `path` (with its query), with the read key. */
    async function signed(path: string, expiresInSeconds?: number): Promise<string> {
      const res = await svc.http.post('/api/v1/signed-urls').set(authorization('read')).send({ path, expiresInSeconds }).expect(201);
      expect(res.body.url).to.be.a('string');
      expect(Date.parse(res.body.expires)).to.be.closeTo(Date.now() + (expiresInSeconds ?? 3600) * 1000, 5000);
      return res.body.url as string;
    }
    const download = (path: string) => svc.http.get(path).buffer(true).parse(rawBody);

    before(async () => {
      fx = await makeFixture(svc, 'signed');
      other = await makeFixture(svc, 'signed-other');
    });

    it('downloads an image with no key, byte for byte, until it expires; HEAD too', async () => {
      const url = await signed(albumPath(fx.album, fx.image), 120);
      const res = await download(url).expect(200);
      expect(res.headers['content-type']).to.equal('image/png');
      expect(Buffer.compare(res.body as Buffer, png)).to.equal(0);
      const head = await svc.http.head(url).expect(200);
      expect(head.headers['content-length']).to.equal(String(png.length));
    });

    it('covers the transform parameters and the by-id URLs', async () => {
      const url = await signed(`/api/v1/images/${fx.id}.webp?w=12`);
      const res = await download(url).expect(200);
      expect(res.headers['content-type']).to.equal('image/webp');
      const meta = await sharp(res.body as Buffer).metadata();
      expect([meta.format, meta.width]).to.deep.equal(['webp', 12]);
    });

    it('refuses an expired URL with 401', async () => {
      const expired = signPath(SIGNING_SECRET, albumPath(fx.album, fx.image), {}, Math.floor(Date.now() / 1000) - 5);
      const res = await svc.http.get(expired).expect(401);
      expect(res.body).to.deep.equal({ error: 'the signed URL has expired' });
      expect(res.headers['www-authenticate']).to.match(/^Bearer /);
    });

    it('refuses a URL whose path, parameters, expiry or signature was changed, with 401', async () => {
      const url = await signed(`${albumPath(fx.album, fx.image)}?w=8`);
      const [path, query] = url.split('?');
      const params = new URLSearchParams(query);
      const change = (name: string, value: string) => {
        const copy = new URLSearchParams(params);
        copy.set(name, value);
        return `${path}?${copy.toString()}`;
      };
      const sig = params.get('sig') as string;
      const tampered = {
        'another image': url.replace(albumPath(fx.album, fx.image), albumPath(other.album, other.image)),
        'its metadata': url.replace(path, `${path}/metadata`),
        'the width': change('w', '9'),
        'an added parameter': `${url}&download=1`,
        'a later expiry': change('expires', String(Number(params.get('expires')) + 3600)),
        'the signature': change('sig', `${sig.slice(0, 10)}${sig[10] === 'x' ? 'y' : 'x'}${sig.slice(11)}`),
      };
      for (const [what, forged] of Object.entries(tampered)) {
        const res = await svc.http.get(forged);
        expect(res.status, what).to.equal(401);
        expect(res.body, what).to.deep.equal({ error: 'the signed URL signature is invalid' });
      }
      await download(url).expect(200);
    });

    it('grants GET and HEAD only: the same URL cannot rename or delete', async () => {
      const url = await signed(albumPath(fx.album, fx.image));
      expect((await svc.http.delete(url)).status).to.equal(401);
      expect((await svc.http.patch(url).send({ imageName: 'stolen.png' })).status).to.equal(401);
      const albumUrl = await signed(albumPath(fx.album, fx.image));
      expect((await svc.http.delete(albumUrl.replace(`/images/${fx.image}`, ''))).status).to.equal(401);
      await svc.http.get(`${albumPath(fx.album)}/images`).set(authorization('read')).expect(200, { imageList: ['pic.png'] });
    });

    it('serve a name only while it holds the image they were made for: not after a delete and re-create (issue 12)', async () => {
      const bound = await makeFixture(svc, 'signed-rebound');
      const path = albumPath(bound.album, bound.image);
      const url = await signed(`${path}?w=8`);
      expect(new URLSearchParams(url.split('?')[1]).get('imageId'), 'the id is in the signed URL').to.equal(bound.id);
      await download(url).expect(200);
      // Made before this check existed: a genuine signature, but bound to nothing.
      const unbound = signPath(SIGNING_SECRET, path, {}, Math.floor(Date.now() / 1000) + 600);
      expect((await svc.http.get(unbound)).status, 'an unbound URL by name').to.equal(404);

      await svc.http.delete(path).set(authorization('write')).expect(200);
      expect((await svc.http.get(url)).status, 'deleted').to.equal(404);
      const replacement = await makePng(20, 12);
      await svc.http.post(`${albumPath(bound.album)}/images`).set(authorization('write')).attach('file', replacement, bound.image).expect(201);
      for (const method of ['get', 'head'] as const) {
        const res = await svc.http[method](url);
        expect(res.status, `${method} after re-create`).to.equal(404);
      }
      const res = await svc.http.get(url).expect(404);
      expect(res.body).to.deep.equal({ error: 'pic.png image is not the one this signed URL was made for (it was deleted or replaced); make a new signed URL' });
      // A URL made now is bound to the new image, and serves it.
      const fresh = await download(await signed(path)).expect(200);
      expect(Buffer.compare(fresh.body as Buffer, replacement)).to.equal(0);
    });

    it('refuse to sign a URL by name for an image that is not there, and bind to the real id whatever imageId is given', async () => {
      const missing = await svc.http.post('/api/v1/signed-urls').set(authorization('read')).send({ path: albumPath(fx.album, 'no-such.png') });
      expect(missing.status).to.equal(404);
      const url = await signed(`${albumPath(fx.album, fx.image)}?imageId=${other.id}`);
      expect(new URLSearchParams(url.split('?')[1]).getAll('imageId')).to.deep.equal([fx.id]);
      await download(url).expect(200);
    });

    it('are made for image URLs only, by a key holder', async () => {
      await svc.http.post('/api/v1/signed-urls').send({ path: albumPath(fx.album, fx.image) }).expect(401);
      for (const path of ['/metrics', '/api/v1/admin/fsck', `${albumPath(fx.album)}/images`, `${albumPath(fx.album, fx.image)}/metadata`, '/api/v1/albums']) {
        const res = await svc.http.post('/api/v1/signed-urls').set(authorization('admin')).send({ path });
        expect(res.status, path).to.equal(400);
        expect(res.body.error, path).to.match(/^path: expected an image URL path/);
      }
    });
  });
});

describe('API keys in logs', function () {
  this.timeout(20_000);

  it('never writes a key (right or wrong, over HTTP or MQTT) to the log, even at debug level', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    const dataDir = await makeTmpDir();
    const config: Config = { ...loadConfig(securedEnv({ LOG_LEVEL: 'debug' })), imageDbDir: dataDir };
    const service = await startService(config, pino({ level: 'debug' }, sink), 'test');
    try {
      const http = supertest(service.httpUrl);
      for (const role of ['read', 'write', 'admin'] as const) await http.get('/api/v1/albums').set(authorization(role)).expect(200);
      await http.post('/api/v1/albums').set(authorization('read')).send({ albumName: 'logged' }).expect(403);
      await http.post('/api/v1/albums').set(authorization('write')).send({ albumName: 'logged' }).expect(201);
      await http.get('/api/v1/albums').set(authorization('wrong')).expect(401);
      await http.get('/api/v1/albums').set('Authorization', `Basic ${KEYS.admin}`).expect(401);
      await http.get(`/api/v1/albums?key=${KEYS.admin}`).expect(401);
      await http.get('/metrics').set(authorization('admin')).expect(200);
      for (const password of [KEYS.read, WRONG_KEY]) {
        const client = mqtt.connect(service.mqttUrl, { username: 'logger', password, reconnectPeriod: 0, connectTimeout: 3000 });
        await new Promise<void>((resolve) => {
          client.once('connect', () => resolve());
          client.once('error', () => resolve());
          client.once('close', () => resolve());
        });
        await client.endAsync(true);
      }
    } finally {
      await service.close();
      await removeDir(dataDir);
    }
    const text = lines.join('');
    // The log did record the traffic (so the check below looks at something).
    expect(text).to.include('"status":401');
    expect(text).to.include('"status":403');
    expect(text).to.include('/api/v1/albums');
    for (const key of [...Object.values(KEYS), WRONG_KEY]) expect(text).not.to.include(key);
  });
});

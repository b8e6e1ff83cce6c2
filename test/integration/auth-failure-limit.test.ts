import http from 'node:http';
import { expect } from 'chai';
import { loadConfig, type Config } from '../../src/config.js';
import { signPath } from '../../src/security/signed-url.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir } from '../helpers/tmp-dir.js';

// Issue 12, item 9 (HTTP half): failed authentication was never limited, so keys and
// signatures could be guessed as fast as the service answers (50 wrong keys, 50 × 401, even
// with RATE_LIMIT=5, since the rate limit runs after auth). Clients are told apart by address:
// the service listens on 127.0.0.1 and each client below binds its own 127.0.0.x.

const READ_KEY = 'failure-test-read-key-5a1e93c7';
const SECRET = 'failure-test-url-signing-secret-2b7f0d4e9a61';
const LIMIT = 5;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: { error?: string };
}

/** A request from `from` (a loopback address) to the service. */
function call(base: string, from: string, path: string, key?: string): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const headers = key === undefined ? {} : { Authorization: `Bearer ${key}` };
    const req = http.request({ host: hostname, port, path, headers, localAddress: from, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${path}: no answer within 5 s`)));
    req.end();
  });
}

describe('failed authentication is limited per client address (issue 12, item 9)', function () {
  this.timeout(30_000);
  let svc: TestService;
  const get = (from: string, path: string, key?: string) => call(svc.service.httpUrl, from, path, key);

  before(async () => {
    const env = {
      HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0', LOG_LEVEL: 'silent',
      API_KEYS: `read:${READ_KEY}`, URL_SIGNING_SECRET: SECRET,
      AUTH_FAILURE_LIMIT: String(LIMIT), AUTH_FAILURE_WINDOW_MS: '60000', RATE_LIMIT: '1000',
    };
    const dataDir = await makeTmpDir();
    const config: Config = { ...loadConfig(env), imageDbDir: dataDir };
    svc = await startTestService({ dataDir, config });
  });
  after(async () => svc?.close());

  it(`answers 429 with Retry-After after ${LIMIT} wrong keys, without looking at the key (50 guesses: ${LIMIT} × 401)`, async () => {
    const from = '127.0.0.2';
    const statuses: number[] = [];
    for (let i = 0; i < 50; i += 1) {
      const res = await get(from, '/api/v1/albums', `wrong-key-${i}-0123456789abcdef`);
      statuses.push(res.status);
      if (res.status === 429) {
        const retry = Number(res.headers['retry-after']);
        expect(retry, 'Retry-After').to.be.within(1, 60);
        expect(res.body.error).to.match(/^too many failed authentications from this address; retry in \d+ s$/);
      }
    }
    expect(statuses).to.deep.equal([...Array(LIMIT).fill(401), ...Array(50 - LIMIT).fill(429)]);
    // The right key from the same address is refused too: checking it would tell a guess that hits.
    expect((await get(from, '/api/v1/albums', READ_KEY)).status).to.equal(429);
    expect((await get(from, '/api/v1/albums')).status).to.equal(429);
    // Health checks and the API documents need no key and stay open.
    for (const path of ['/livez', '/healthz', '/readyz', '/openapi.json']) expect((await get(from, path)).status, path).to.equal(200);
  });

  it('leaves other addresses alone: a good key works, and wrong keys there have their own count', async () => {
    expect((await get('127.0.0.3', '/api/v1/albums', READ_KEY)).status).to.equal(200);
    for (let i = 0; i < LIMIT; i += 1) expect((await get('127.0.0.3', '/api/v1/albums', `another-wrong-key-${i}-0123`)).status).to.equal(401);
    expect((await get('127.0.0.3', '/api/v1/albums', READ_KEY)).status).to.equal(429);
    expect((await get('127.0.0.4', '/api/v1/albums', READ_KEY)).status).to.equal(200);
  });

  it('counts forged signed URLs, but not requests without a key nor expired genuine signatures', async () => {
    const from = '127.0.0.5';
    const now = Math.floor(Date.now() / 1000);
    const expired = signPath(SECRET, '/api/v1/images/AAAAAAAAAAAAAAAA', {}, now - 10);
    for (let i = 0; i < LIMIT * 3; i += 1) {
      expect((await get(from, '/api/v1/albums')).status, 'no key').to.equal(401);
      expect((await get(from, expired)).status, 'expired signature').to.equal(401);
    }
    expect((await get(from, '/api/v1/albums', READ_KEY)).status).to.equal(200);
    const forged = `${expired.replace(/expires=\d+/, `expires=${now + 600}`)}`;
    const statuses = [];
    for (let i = 0; i < LIMIT + 2; i += 1) statuses.push((await get(from, forged)).status);
    expect(statuses).to.deep.equal([...Array(LIMIT).fill(401), 429, 429]);
  });
});

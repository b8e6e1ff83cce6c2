import { expect } from 'chai';
import { chromium, type Browser } from 'playwright-core';
import { albumPath } from '../helpers/api.js';
import { makePng } from '../helpers/images.js';
import { startServiceWithEnv, type TestService } from '../helpers/service.js';
import { waitFor } from '../helpers/wait-for.js';

const READ_KEY = 'web-test-read-key-2a7c5e19';
const WRITE_KEY = 'web-test-write-key-6f03b8d2';
const ALLOWED_ORIGIN = 'https://app.example.com';
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];


const read = { Authorization: `Bearer ${READ_KEY}` };
const write = { Authorization: `Bearer ${WRITE_KEY}` };

describe('web hardening', function () {
  this.timeout(20_000);
  let svc: TestService;
  before(async () => {
    svc = await startServiceWithEnv({ API_KEYS: `read:${READ_KEY},write:${WRITE_KEY}`, CORS_ORIGINS: `${ALLOWED_ORIGIN}, http://localhost:8080` });
    await svc.http.post('/api/v1/albums').set(write).send({ albumName: 'web' }).expect(201);
    await svc.http.post(`${albumPath('web')}/images`).set(write).attach('file', await makePng(), 'pic.png').expect(201);
  });
  after(async () => svc?.close());

  describe('CORS allow-list', () => {
    it('answers a preflight from an allowed origin with the CORS headers, no key needed', async () => {
      const res = await svc.http.options('/api/v1/albums')
        .set('Origin', ALLOWED_ORIGIN).set('Access-Control-Request-Method', 'POST').set('Access-Control-Request-Headers', 'authorization, content-type')
        .expect(204);
      expect(res.headers['access-control-allow-origin']).to.equal(ALLOWED_ORIGIN);
      expect(res.headers['access-control-allow-methods']?.split(',')).to.include.members(['GET', 'POST', 'PATCH', 'DELETE']);
      expect(res.headers['access-control-allow-headers']?.toLowerCase().split(',')).to.include.members(['authorization', 'content-type']);
      expect(res.headers['access-control-max-age']).to.equal('600');
      expect(res.headers.vary).to.match(/Origin/);
    });

    it('gives a refused origin no Access-Control-Allow-Origin', async () => {
      for (const origin of ['https://evil.example.com', 'https://app.example.com.evil.example', 'null', 'http://app.example.com']) {
        const res = await svc.http.options('/api/v1/albums').set('Origin', origin).set('Access-Control-Request-Method', 'DELETE');
        expect(res.status, origin).to.be.below(500);
        expect(res.headers['access-control-allow-origin'], origin).to.equal(undefined);
        expect(res.headers['access-control-allow-methods'], origin).to.equal(undefined);
      }
    });

    it('lets an allowed origin read answers, errors included (a 401 the page can show), and the exposed headers', async () => {
      const ok = await svc.http.get('/api/v1/albums').set(read).set('Origin', ALLOWED_ORIGIN).expect(200);
      expect(ok.headers['access-control-allow-origin']).to.equal(ALLOWED_ORIGIN);
      expect(ok.headers['access-control-expose-headers']?.split(',')).to.include.members(['X-Request-Id', 'ETag', 'Retry-After']);
      const denied = await svc.http.get('/api/v1/albums').set('Origin', 'http://localhost:8080').expect(401);
      expect(denied.headers['access-control-allow-origin']).to.equal('http://localhost:8080');
      const refused = await svc.http.get('/api/v1/albums').set(read).set('Origin', 'https://evil.example.com').expect(200);
      expect(refused.headers['access-control-allow-origin']).to.equal(undefined);
    });
  });

  describe('security headers', () => {
    it('sends a Content-Security-Policy and the other helmet headers on answers and errors', async () => {
      for (const [what, res] of [
        ['an API answer', await svc.http.get('/api/v1/albums').set(read).expect(200)],
        ['a 401', await svc.http.get('/api/v1/albums').expect(401)],
        ['a 404', await svc.http.get('/api/v1/albums/none/images').set(read).expect(404)],
        ['Swagger UI', await svc.http.get('/swagger').expect(200)],
      ] as const) {
        const csp = res.headers['content-security-policy'] ?? '';
        expect(csp, what).to.include("default-src 'self'");
        expect(csp, what).to.include("script-src 'self'");
        expect(csp, what).to.include("object-src 'none'");
        expect(csp, what).to.include("frame-ancestors 'none'");
        expect(csp, what).not.to.match(/script-src[^;]*'unsafe-inline'/);
        expect(res.headers['x-content-type-options'], what).to.equal('nosniff');
        expect(res.headers['x-frame-options'], what).to.equal('SAMEORIGIN');
        expect(res.headers['referrer-policy'], what).to.equal('no-referrer');
        expect(res.headers['cross-origin-opener-policy'], what).to.equal('same-origin');
        expect(res.headers['x-powered-by'], what).to.equal(undefined);
        // Plain HTTP: no HSTS (it would pin a development host to HTTPS).
        expect(res.headers['strict-transport-security'], what).to.equal(undefined);
      }
    });

    it('serves images with nosniff and a cross-origin resource policy so other sites can embed them', async () => {
      const res = await svc.http.get(albumPath('web', 'pic.png')).set(read).expect(200);
      expect(res.headers['content-type']).to.equal('image/png');
      expect(res.headers['x-content-type-options']).to.equal('nosniff');
      expect(res.headers['cross-origin-resource-policy']).to.equal('cross-origin');
    });

    it('lets Swagger UI render and call the API with a key entered in "Authorize", with no CSP violation', async function () {
      this.timeout(30_000);
      let browser: Browser | undefined;
      try {
        browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
        const context = await browser.newContext();
        // Nothing may leave 127.0.0.1 (the page must work offline).
        await context.route('**/*', (route) => (new URL(route.request().url()).hostname === '127.0.0.1' ? route.continue() : route.abort()));
        const page = await context.newPage();
        page.setDefaultTimeout(8_000);
        const consoleErrors: string[] = [];
        page.on('console', (msg) => {
          if (msg.type() === 'error') consoleErrors.push(msg.text());
        });
        page.on('pageerror', (err) => consoleErrors.push(err.message));
        // Page-side code as strings: this project compiles without the DOM types.
        await page.addInitScript(`window.cspViolations = [];
          document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));`);
        const violations = () => page.evaluate('window.cspViolations') as Promise<string[]>;
        const response = await page.goto(`${svc.service.httpUrl}/swagger`);
        expect(response?.headers()['content-security-policy']).to.include("script-src 'self'");
        await page.locator('.opblock').first().waitFor();

        await page.locator('.auth-wrapper button.authorize').click();
        await page.locator('input[aria-label="auth-bearer-value"]').fill(READ_KEY);
        await page.locator('.auth-btn-wrapper button.authorize').click();
        await page.locator('.auth-btn-wrapper button.btn-done').click();

        const block = page.locator('#operations-albums-listAlbums');
        await block.locator('.opblock-summary-control').click();
        await block.locator('button.try-out__btn').click();
        const [request] = await Promise.all([
          page.waitForRequest((r) => r.url() === `${svc.service.httpUrl}/api/v1/albums`),
          block.locator('button.execute').click(),
        ]);
        expect(request.headers().authorization).to.equal(`Bearer ${READ_KEY}`);
        const answer = block.locator('.live-responses-table tbody .response');
        await answer.waitFor();
        expect((await answer.locator('.response-col_status').innerText()).trim()).to.equal('200');
        expect(JSON.parse(await answer.locator('.response-col_description pre').first().innerText()).albumList).to.deep.equal(['web']);

        expect(await violations(), 'securitypolicyviolation events').to.deep.equal([]);
        expect(consoleErrors.filter((text) => /Content Security Policy|Refused to/i.test(text)), 'CSP console errors').to.deep.equal([]);

        // The detector works: an inline script is refused by the policy and reported.
        await page.evaluate(`{ const script = document.createElement('script');
          script.textContent = 'window.inlineRan = true';
          document.body.appendChild(script); }`);
        const reported = await waitFor('the inline script to be reported', async () => (await violations()).length > 0 && violations(), 3000);
        expect(reported[0]).to.match(/^script-src(-elem)? inline$/);
        expect(await page.evaluate('window.inlineRan')).to.equal(undefined);
      } finally {
        await browser?.close();
      }
    });
  });
});

describe('rate limit', function () {
  this.timeout(20_000);
  const LIMIT = 5;

  describe('per API key', () => {
    let svc: TestService;
    before(async () => {
      svc = await startServiceWithEnv({ API_KEYS: `read:${READ_KEY},write:${WRITE_KEY}`, RATE_LIMIT: String(LIMIT), RATE_LIMIT_WINDOW_MS: '60000' });
    });
    after(async () => svc?.close());

    it(`answers 429 with Retry-After after ${LIMIT} requests in the window`, async () => {
      for (let i = 1; i <= LIMIT; i += 1) {
        const res = await svc.http.get('/api/v1/albums').set(read).expect(200);
        expect(res.headers['ratelimit-limit']).to.equal(String(LIMIT));
        expect(res.headers['ratelimit-remaining']).to.equal(String(LIMIT - i));
      }
      const res = await svc.http.get('/api/v1/albums').set(read).expect(429);
      const retryAfter = Number(res.headers['retry-after']);
      expect(retryAfter).to.be.within(1, 60);
      expect(res.body.error).to.match(new RegExp(`^rate limit of ${LIMIT} requests per 60 s exceeded; retry in \\d+ s$`));
      // Every kind of request of that key counts, changes included.
      await svc.http.post('/api/v1/albums').set(write).send({ albumName: 'limited' }).expect(201);
      await svc.http.get('/api/v1/albums/limited/images').set(read).expect(429);
    });

    it('counts each key on its own', async () => {
      for (let i = 1; i < LIMIT; i += 1) await svc.http.get('/api/v1/albums').set(write).expect(200);
      await svc.http.get('/api/v1/albums').set(write).expect(429);
    });

    it('never limits the health checks', async () => {
      for (let i = 0; i < LIMIT * 3; i += 1) {
        await svc.http.get(['/livez', '/healthz', '/readyz'][i % 3]).expect(200);
      }
    });
  });

  describe('per client address (no keys)', () => {
    let svc: TestService;
    before(async () => {
      svc = await startServiceWithEnv({ RATE_LIMIT: String(LIMIT), RATE_LIMIT_WINDOW_MS: '2000' });
    });
    after(async () => svc?.close());

    it('limits anonymous clients by address and lets them in again when the window ends', async () => {
      // All at once, so they fall in one (short) window even on a slow machine.
      const answers = await Promise.all(Array.from({ length: LIMIT + 1 }, () => svc.http.get('/api/v1/albums')));
      expect(answers.map((res) => res.status).sort()).to.deep.equal([...Array(LIMIT).fill(200), 429]);
      expect(answers.find((res) => res.status === 429)?.headers['retry-after']).to.be.oneOf(['1', '2']);
      await svc.http.get('/livez').expect(200);
      await waitFor('the next window', async () => (await svc.http.get('/api/v1/albums')).status === 200, 5000, 100);
    });
  });
});

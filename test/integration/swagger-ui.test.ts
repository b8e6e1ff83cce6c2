import { expect } from 'chai';
import { chromium, type Browser, type Page } from 'playwright-core';
import { OPERATIONS } from '../../src/docs/openapi.js';
import { startTestService, type TestService } from '../helpers/service.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SCREENSHOT = '/tmp/swagger.png';

/** True for requests that stay on this machine: the service on 127.0.0.1, or inline data. */
function isLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1';
}

describe('Swagger UI in headless Chromium', function () {
  this.timeout(20_000);
  let svc: TestService;
  let browser: Browser | undefined;
  let page: Page;
  const requested: string[] = [];
  const blocked: string[] = [];

  before(async () => {
    svc = await startTestService();
    for (const albumName of ['ui-holidays', 'ui-zoo']) await svc.http.post('/api/v1/albums').send({ albumName }).expect(201);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1600 } });
    // Anything leaving 127.0.0.1 is refused and remembered: the UI must work offline.
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (isLocal(url)) return route.continue();
      blocked.push(url);
      return route.abort();
    });
    page = await context.newPage();
    page.setDefaultTimeout(5_000);
    page.on('request', (request) => requested.push(request.url()));
    await page.goto(`${svc.service.httpUrl}/swagger`);
    await page.locator('.opblock').first().waitFor();
  });

  after(async () => {
    await browser?.close();
    await svc?.close();
  });

  it('lists every documented operation with its summary', async () => {
    for (const op of OPERATIONS) {
      const block = page.locator(`#operations-${op.tags[0]}-${op.operationId}`);
      await block.waitFor();
      expect(await block.locator('.opblock-summary-path').getAttribute('data-path'), op.operationId).to.equal(op.path);
      expect(await block.locator('.opblock-summary-method').innerText(), op.operationId).to.equal(op.method.toUpperCase());
      expect(await block.locator('.opblock-summary-description').innerText(), op.operationId).to.equal(op.summary);
    }
    // Plus the webhook callbacks the document declares (Swagger UI lists them in a Webhooks section).
    const document = (await svc.http.get('/openapi.json').expect(200)).body as { webhooks?: Record<string, unknown> };
    const callbacks = Object.keys(document.webhooks ?? {}).length;
    expect(callbacks).to.be.greaterThan(0);
    expect(await page.locator('.opblock').count()).to.equal(OPERATIONS.length + callbacks);
  });

  it('links the AsyncAPI document from the API description', async () => {
    const link = page.locator('.information-container a[href="/asyncapi.json"]');
    await link.waitFor();
    expect(await link.innerText()).to.equal('AsyncAPI document');
  });

  it('runs "Try it out" / "Execute" on GET /api/v1/albums and shows the 200 answer with albumList', async () => {
    const block = page.locator('#operations-albums-listAlbums');
    await block.locator('.opblock-summary-control').click();
    await block.locator('button.try-out__btn').click();
    await block.locator('button.execute').click();
    const answer = block.locator('.live-responses-table tbody .response');
    await answer.waitFor();
    expect((await answer.locator('.response-col_status').innerText()).trim()).to.equal('200');
    const body = JSON.parse(await answer.locator('.response-col_description pre').first().innerText());
    expect(body.albumList).to.deep.equal(['ui-holidays', 'ui-zoo']);
    expect(requested).to.include(`${svc.service.httpUrl}/api/v1/albums`);
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('loads everything from the service itself (works offline)', () => {
    expect(requested.some((url) => url.endsWith('/swagger/swagger-ui-bundle.js'))).to.equal(true);
    expect(requested.some((url) => url.endsWith('/openapi.json'))).to.equal(true);
    expect(blocked, 'requests that left 127.0.0.1').to.deep.equal([]);
    expect(requested.filter((url) => !isLocal(url)), 'requests that left 127.0.0.1').to.deep.equal([]);
  });
});

import { writeFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import sharp from 'sharp';
import WebSocket from 'ws';
import { buildGallery } from '../../scripts/build-gallery.mjs';
import { newImageId } from '../../src/albums/image-meta.js';
import { Layout } from '../../src/albums/layout.js';
import { albumPath, createAlbum, uploadImage } from '../helpers/api.js';
import { makeJpeg, makePng } from '../helpers/images.js';
import { startServiceWithEnv, startTestService, type TestService } from '../helpers/service.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { removeDir } from '../helpers/tmp-dir.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
/** Screenshots of the main views, for a person to look at (gitignored). */
const SHOTS = path.join(REPO_ROOT, 'test-output', 'gallery');
const READ_KEY = 'gallery-read-key-0123456789';
const WRITE_KEY = 'gallery-write-key-0123456789';

/** True for requests that stay on this machine. */
function isLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'data:' || protocol === 'blob:' || hostname === '127.0.0.1';
}

/** Polls `check` every 25 ms until it is true, for at most `ms`; answers how long it took. */
async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  for (;;) {
    if (await check()) return Date.now() - start;
    if (Date.now() - start > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The parts of an <img> element the tests read (the tests compile without the DOM library). */
type Img = { complete: boolean; naturalWidth: number };

/** Tiles whose thumbnail has loaded and decoded (a broken image has naturalWidth 0). */
function loadedThumbnails(page: Page): Promise<number> {
  return page.locator('.tile img').evaluateAll((imgs) => imgs.filter((img) => (img as unknown as Img).complete && (img as unknown as Img).naturalWidth > 0).length);
}

describe('web gallery in headless Chromium (issue 17)', function () {
  this.timeout(60_000);
  let browser: Browser;
  const blocked: string[] = [];

  /** A fresh context (own cookies and sessionStorage) that refuses anything off 127.0.0.1 and records CSP violations. */
  async function newPage(viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; page: Page; violations: string[] }> {
    const context = await browser.newContext({ viewport });
    await context.route('**/*', (route) => {
      const url = route.request().url();
      if (isLocal(url)) return route.continue();
      blocked.push(url);
      return route.abort();
    });
    const page = await context.newPage();
    page.setDefaultTimeout(20_000);
    const violations: string[] = [];
    page.on('console', (msg) => {
      if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text());
    });
    await page.exposeFunction('reportViolation', (text: string) => violations.push(text));
    await page.addInitScript({ content: "document.addEventListener('securitypolicyviolation', (e) => window.reportViolation(e.violatedDirective + ' ' + e.blockedURI));" });
    return { context, page, violations };
  }

  before(async function () {
    this.timeout(120_000);
    await buildGallery();
    await mkdir(SHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await browser?.close();
  });
  afterEach(async function () {
    // What the page showed when a test failed, for whoever reads the failure.
    if (this.currentTest?.state !== 'failed') return;
    for (const [i, page] of browser.contexts().flatMap((c) => c.pages()).entries()) {
      await page.screenshot({ path: path.join(SHOTS, `failed-${this.currentTest.title.slice(0, 40).replace(/\W+/g, '-')}-${i}.png`) }).catch(() => undefined);
    }
  });

  describe('without API keys', () => {
    let svc: TestService;
    let page: Page;
    let violations: string[];
    before(async () => {
      svc = await startTestService();
      ({ page, violations } = await newPage());
    });
    after(async () => {
      await svc?.close();
    });

    it('is served at / with an initial JS + CSS under 100 KB gzipped', async () => {
      const res = await svc.http.get('/').expect(200).expect('Content-Type', /text\/html/);
      const assets = [...res.text.matchAll(/(?:src|href)="(\/ui\/[^"]+)"/g)].map((m) => m[1]);
      expect(assets.some((a) => a.endsWith('.js'))).to.equal(true);
      expect(assets.some((a) => a.endsWith('.css'))).to.equal(true);
      let gzipped = 0;
      for (const asset of assets) {
        const body = await readFile(path.join(REPO_ROOT, 'dist', 'gallery', asset));
        gzipped += gzipSync(body, { level: 9 }).length;
        await svc.http.get(asset).expect(200).expect('Cache-Control', /immutable/);
      }
      expect(gzipped).to.be.below(100 * 1024);
      await svc.http.get('/ui/nothing.js').expect(404);
    });

    it('creates an album, uploads three files (the text file\'s error is shown) and shows the thumbnails', async () => {
      await page.goto(`${svc.service.httpUrl}/`);
      await page.getByLabel('New album').fill('trip');
      await page.getByRole('button', { name: 'Create' }).click();
      await page.getByRole('link', { name: 'trip', exact: true }).click();
      await page.getByRole('heading', { name: 'trip' }).waitFor();
      await page.locator('input[type=file]').setInputFiles([
        { name: 'a-red.png', mimeType: 'image/png', buffer: await makePng(64, 48, { r: 220, g: 40, b: 40 }) },
        { name: 'b-blue.jpg', mimeType: 'image/jpeg', buffer: await makeJpeg(64, 48, { r: 40, g: 40, b: 220 }) },
        { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('not a picture\n') },
      ]);
      const failure = page.locator('.upload.failed .error');
      await failure.waitFor();
      expect(await failure.innerText()).to.match(/notes\.txt|not an image/i).and.match(/not an image/i);
      await within(10_000, 'two thumbnails', async () => (await loadedThumbnails(page)) === 2);
      expect(await page.locator('.upload.done').count()).to.equal(2);
      expect(await page.getByRole('button', { name: 'Retry failed' }).count()).to.equal(1);
      await page.screenshot({ path: path.join(SHOTS, 'album-with-upload-error.png') });
    });

    it('opens an image, moves with the keyboard, renames and deletes it', async () => {
      await page.getByRole('link', { name: 'a-red.png' }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByRole('heading', { name: 'a-red.png' }).waitFor();
      await dialog.getByText('64 × 48').waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'image-view.png') });
      await page.keyboard.press('ArrowRight');
      await dialog.getByRole('heading', { name: 'b-blue.jpg' }).waitFor();
      await page.keyboard.press('ArrowLeft');
      await dialog.getByRole('heading', { name: 'a-red.png' }).waitFor();
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'detached' });

      await page.getByRole('link', { name: 'b-blue.jpg' }).click();
      page.once('dialog', (d) => void d.accept('c-blue.jpg'));
      await dialog.getByRole('button', { name: 'Rename' }).click();
      await dialog.getByRole('heading', { name: 'c-blue.jpg' }).waitFor();
      await svc.http.get(albumPath('trip', 'c-blue.jpg')).expect(200);
      page.once('dialog', (d) => void d.accept());
      await dialog.getByRole('button', { name: 'Delete' }).click();
      await within(5_000, 'the deleted image gone from the grid', async () => (await page.locator('.tile[aria-label="c-blue.jpg"]').count()) === 0);
      await svc.http.get(albumPath('trip', 'c-blue.jpg')).expect(404);
    });

    it('shows an upload and a delete made by another client within 1 s', async () => {
      // A fresh load (a goto that changes only the hash stays in the page).
      await page.goto('about:blank');
      await page.goto(`${svc.service.httpUrl}/#/a/trip`);
      await page.locator('.tile[aria-label="a-red.png"]').waitFor();
      await within(10_000, 'the live connection', async () => (await page.locator('.console .dot.on').count()) === 1);
      // The service has the SSE stream: the page uses it, not the MQTT fallback.
      expect(await page.locator('.console').textContent()).to.contain('(SSE)');
      await uploadImage(svc.http, 'trip', 'from-elsewhere.png', await makePng(32, 32, { r: 20, g: 160, b: 60 }));
      const shown = await within(1_000, 'the other client\'s upload', async () => (await page.locator('.tile[aria-label="from-elsewhere.png"]').count()) === 1);
      await svc.http.delete(albumPath('trip', 'from-elsewhere.png')).expect(200);
      const gone = await within(1_000, 'the other client\'s delete', async () => (await page.locator('.tile[aria-label="from-elsewhere.png"]').count()) === 0);
      expect(shown).to.be.below(1_000);
      expect(gone).to.be.below(1_000);
      await page.locator('.console summary').click();
      await page.locator('.event-list li', { hasText: 'image.deleted' }).first().waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'album-live-events.png') });
    });

    it('compares two images: figures, region boxes over image a, the diff picture', async () => {
      // a-red.png with a blue square: one region to box.
      const patched = await sharp(await makePng(64, 48, { r: 220, g: 40, b: 40 })).composite([{ input: await makePng(16, 12, { r: 20, g: 20, b: 200 }), left: 36, top: 20 }]).png().toBuffer();
      await uploadImage(svc.http, 'trip', 'd-red.png', patched);
      await page.goto(`${svc.service.httpUrl}/#/c/trip/a-red.png/d-red.png`);
      await page.getByText('Similarity (SSIM)').waitFor();
      await page.locator('.box').first().waitFor();
      await within(10_000, 'the diff picture', () => page.getByAltText('Difference picture').evaluate((img) => (img as unknown as Img).naturalWidth > 0));
      await page.screenshot({ path: path.join(SHOTS, 'compare.png') });
    });

    it('lists the albums with their counts, and follows the albums list on a phone-sized screen', async () => {
      const phone = await newPage({ width: 390, height: 800 });
      await phone.page.goto(`${svc.service.httpUrl}/`);
      await phone.page.getByText('2 images').waitFor();
      await phone.page.screenshot({ path: path.join(SHOTS, 'albums-phone.png') });
      await phone.context.close();
      expect(violations).to.deep.equal([]);
      expect(blocked, 'requests that left 127.0.0.1').to.deep.equal([]);
    });
  });

  describe('a 20,000-image album', () => {
    const COUNT = 20_000;
    let svc: TestService | undefined;
    let dataDir: string | undefined;
    after(async () => {
      await svc?.stop();
      if (dataDir) await removeDir(dataDir);
    });

    it('scrolls to the end with fewer than 500 grid nodes in the DOM at any time', async function () {
      this.timeout(180_000);
      // Made through the store, not the browser: one upload, then its file and metadata copied under
      // 19,999 more names (new ids) straight into the data dir, which the next start reads.
      const first = await startTestService();
      dataDir = first.dataDir;
      await createAlbum(first.http, 'huge');
      await uploadImage(first.http, 'huge', 'photo-00000.png', await makePng(8, 8, { r: 90, g: 120, b: 200 }));
      await first.stop();
      const layout = new Layout(dataDir);
      const png = await readFile(path.join(layout.albumsDir, 'huge', 'photo-00000.png'));
      const meta = JSON.parse(await readFile(layout.imageMetaFile('huge', 'photo-00000.png'), 'utf8'));
      for (let i = 1; i < COUNT; i += 1) {
        const name = `photo-${String(i).padStart(5, '0')}.png`;
        writeFileSync(path.join(layout.albumsDir, 'huge', name), png);
        writeFileSync(layout.imageMetaFile('huge', name), JSON.stringify({ ...meta, name, id: newImageId() }));
      }
      svc = await startTestService({ dataDir });

      const { page, context } = await newPage();
      await page.goto(`${svc.service.httpUrl}/#/a/huge`);
      await page.locator('.tile[aria-label="photo-00000.png"]').waitFor();
      const grid = page.locator('.grid-scroll');
      // Scrolled in the page, two screens a frame (a fling, or the scrollbar dragged down), counting the grid's
      // nodes every frame, until the last image is drawn; bounded by a frame count.
      // (A string: tsx would wrap a nested function in a helper the page does not have.)
      let most = await page.evaluate<number>(`new Promise((resolve) => {
        const el = document.querySelector('.grid-scroll');
        let most = 0, frames = 0;
        const frame = () => {
          most = Math.max(most, el.querySelectorAll('*').length);
          el.scrollTop += el.clientHeight * 2;
          frames += 1;
          if (el.querySelector('[aria-label="photo-19999.png"]') || frames > 20000) resolve(most);
          else requestAnimationFrame(frame);
        };
        requestAnimationFrame(frame);
      })`);
      await page.locator('.tile[aria-label="photo-19999.png"]').waitFor();
      expect(await page.getByText(`${COUNT.toLocaleString('en-US')} images`).count()).to.equal(1);
      await within(60_000, 'the last thumbnails', async () => (await loadedThumbnails(page)) > 10);
      most = Math.max(most, await grid.evaluate((el) => el.querySelectorAll('*').length));
      expect(most).to.be.above(10).and.below(500);
      await page.screenshot({ path: path.join(SHOTS, 'album-20000-end.png') });
      await context.close();
    });
  });

  describe('with API keys on', () => {
    let svc: TestService;
    before(async () => {
      svc = await startServiceWithEnv({ API_KEYS: `read:${READ_KEY},write:${WRITE_KEY}` });
      const auth = { Authorization: `Bearer ${WRITE_KEY}` };
      await svc.http.post('/api/v1/albums').set(auth).send({ albumName: 'secret' }).expect(201);
      await svc.http.post(`${albumPath('secret')}/images`).set(auth).attach('file', await makePng(40, 30), 'one.png').expect(201);
    });
    after(async () => {
      await svc?.close();
    });

    it('asks for a key; a read key shows the images without any write control, and no CSP violation', async () => {
      const { page, context, violations } = await newPage();
      await page.goto(`${svc.service.httpUrl}/`);
      await page.getByLabel('API key').fill('not-a-key-of-this-service');
      await page.getByRole('button', { name: 'Open the gallery' }).click();
      await page.getByRole('alert').getByText(/not valid/).waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'key-prompt.png') });
      await page.getByLabel('API key').fill(READ_KEY);
      await page.getByRole('button', { name: 'Open the gallery' }).click();
      await page.getByRole('link', { name: 'secret', exact: true }).click();
      await within(10_000, 'the thumbnail through the session cookie', async () => (await loadedThumbnails(page)) === 1);
      expect(await page.getByRole('button', { name: /Create|Rename|Delete|Upload/ }).count()).to.equal(0);
      expect(await page.getByText('Upload images').count()).to.equal(0);
      await page.getByRole('link', { name: 'one.png' }).click();
      await page.getByRole('dialog').getByText('40 × 30').waitFor();
      expect(await page.getByRole('dialog').getByRole('button', { name: /Rename|Delete/ }).count()).to.equal(0);
      // Live over MQTT-WS with the key as password: another client's upload shows up.
      await page.keyboard.press('Escape');
      await within(10_000, 'the live connection', async () => (await page.locator('.console .dot.on').count()) === 1);
      await svc.http.post(`${albumPath('secret')}/images`).set({ Authorization: `Bearer ${WRITE_KEY}` }).attach('file', await makePng(40, 30, { r: 1, g: 2, b: 3 }), 'two.png').expect(201);
      await within(1_000, 'the other client\'s upload', async () => (await page.locator('.tile[aria-label="two.png"]').count()) === 1);
      // Reloading keeps the key for the tab: no prompt again.
      await page.reload();
      await page.locator('.tile[aria-label="two.png"]').waitFor();
      expect(await page.getByLabel('API key').count()).to.equal(0);
      await page.screenshot({ path: path.join(SHOTS, 'read-key-album.png') });
      expect(violations).to.deep.equal([]);
      await context.close();
    });

    it('gives a write key the write controls', async () => {
      const { page, context, violations } = await newPage();
      await page.goto(`${svc.service.httpUrl}/`);
      await page.getByLabel('API key').fill(WRITE_KEY);
      await page.getByRole('button', { name: 'Open the gallery' }).click();
      await page.getByRole('button', { name: 'Create' }).waitFor();
      await page.getByRole('link', { name: 'secret', exact: true }).click();
      await page.getByText('Upload images').waitFor();
      expect(violations).to.deep.equal([]);
      await context.close();
    });

    it('lets the session cookie read, never change (no CSRF possible), and not outlive DELETE /api/v1/session', async () => {
      const start = await svc.http.post('/api/v1/session').set({ Authorization: `Bearer ${WRITE_KEY}` }).expect(200);
      expect(start.body.role).to.equal('write');
      const setCookie = String(start.headers['set-cookie']);
      expect(setCookie).to.match(/HttpOnly/).and.match(/SameSite=Strict/);
      const cookie = setCookie.split(';')[0];
      await svc.http.get(`${albumPath('secret')}/images`).set('Cookie', cookie).expect(200);
      await svc.http.get(albumPath('secret', 'one.png')).set('Cookie', cookie).expect(200);
      await svc.http.delete(albumPath('secret', 'one.png')).set('Cookie', cookie).expect(401);
      await svc.http.post('/api/v1/albums').set('Cookie', cookie).send({ albumName: 'csrf' }).expect(401);
      await svc.http.get('/metrics').set('Cookie', cookie).expect(401);
      await svc.http.get(`${albumPath('secret')}/images`).set('Cookie', `${cookie.split('=')[0]}=1.forged`).expect(401);
      await svc.http.post('/api/v1/session').expect(401);
      const end = await svc.http.delete('/api/v1/session').expect(204);
      expect(String(end.headers['set-cookie'])).to.match(/Max-Age=0/);
    });
  });

  describe('around the page', () => {
    it('is not served with UI_ENABLED=false: / sends a browser to the API docs instead', async () => {
      const svc = await startServiceWithEnv({ UI_ENABLED: 'false' });
      try {
        await svc.http.get('/').expect(302).expect('Location', '/swagger');
        const index = await readFile(path.join(REPO_ROOT, 'dist', 'gallery', 'index.html'), 'utf8');
        await svc.http.get(/src="(\/ui\/[^"]+)"/.exec(index)![1]).expect(404);
      } finally {
        await svc.close();
      }
    });

    it('lets the service\'s own pages open MQTT over WebSocket when CORS_ORIGINS lists only others', async () => {
      const svc = await startServiceWithEnv({ CORS_ORIGINS: 'https://app.example.com' });
      const upgrade = (origin: string) => new Promise<number>((resolve) => {
        const ws = new WebSocket(`${svc.service.httpUrl.replace('http', 'ws')}/mqtt`, 'mqtt', { origin });
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('error', () => resolve(0));
      });
      try {
        expect(await upgrade(svc.service.httpUrl)).to.equal(101);
        expect(await upgrade('https://app.example.com')).to.equal(101);
        expect(await upgrade('https://evil.example.com')).to.equal(403);
      } finally {
        await svc.close();
      }
    });
  });
});

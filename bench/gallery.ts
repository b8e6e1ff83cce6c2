/**
 * Issue 17 (run by hand, never in CI): the web gallery in headless Chromium (Debian's /usr/bin/chromium),
 * against the compiled service on loopback.
 *   a. time from navigation to the first 50 thumbnails painted, album of 1,000 vs of 20,000 images
 *      (target < 1 s, and no worse at 20,000): the first visit (thumbnails made by the service: cold
 *      derivatives) and later visits (cached derivatives; a fresh browser context each time, so the
 *      browser's own cache never answers); the two albums alternate within each round;
 *   b. JS heap (after a forced GC) once the 20,000-image album is open, after scrolling through it to
 *      the end, and after scrolling back to the top.
 * The albums are made through the store (one upload each, then files and metadata copied into the
 * data dir under new names and ids, read at the next start); the first 50 of each album are distinct
 * photo-like 400×300 JPEGs (bench/fixtures.ts), different between the albums.
 *
 *   npm run build && npx tsx bench/gallery.ts [--rounds 5]
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { newImageId } from '../src/albums/image-meta.js';
import { Layout } from '../src/albums/layout.js';
import { smallJpegs } from './fixtures.js';
import { createAlbum, loadAverage, machineInfo, median, printSection, round, startService, uploadImage, type Service } from './lib.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '5' } } });
const ROUNDS = Number(args.rounds);
const ALBUMS = [{ name: 'a1000', count: 1_000 }, { name: 'a20000', count: 20_000 }];
const FIRST = 50;
const VIEWPORT = { width: 1600, height: 1200 }; // 10 columns × 7 rows of tiles in view: the first 50 are all visible
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const names = (count: number) => Array.from({ length: count }, (_, i) => `photo-${String(i).padStart(5, '0')}.jpg`);

async function fill(service: Service): Promise<void> {
  const pictures = await smallJpegs(FIRST * ALBUMS.length);
  for (const [a, album] of ALBUMS.entries()) {
    await createAlbum(service.api, album.name);
    await uploadImage(service.api, album.name, names(1)[0], pictures[a * FIRST]);
  }
  const dataDir = service.dataDir;
  await service.stop();
  const layout = new Layout(dataDir);
  for (const [a, album] of ALBUMS.entries()) {
    const first = names(1)[0];
    const meta = JSON.parse(await readFile(layout.imageMetaFile(album.name, first), 'utf8'));
    await mkdir(path.dirname(layout.imageMetaFile(album.name, first)), { recursive: true });
    for (const [i, name] of names(album.count).entries()) {
      if (i === 0) continue;
      const bytes = pictures[a * FIRST + (i % FIRST)];
      await writeFile(path.join(layout.albumsDir, album.name, name), bytes);
      // The metadata of the first upload, under this name and a new id; size and hash made right.
      await writeFile(layout.imageMetaFile(album.name, name), JSON.stringify({ ...meta, name, id: newImageId(), size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') }));
    }
  }
}

/**
 * Opens the album in a fresh context. Answers ms from navigation start until the grid's first tiles
 * were drawn (the page's own work: HTML, script, the first listing page) and until FIRST thumbnails
 * had loaded and a frame was painted.
 */
async function firstThumbnails(browser: Browser, url: string): Promise<{ grid: number; thumbs: number }> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  try {
    const page = await context.newPage();
    await page.goto(url);
    // (A string: tsx would wrap a nested function in a helper the page does not have.)
    return await page.evaluate<{ grid: number; thumbs: number }>(`new Promise((resolve, reject) => {
      const deadline = performance.now() + 60000;
      let grid;
      const check = () => {
        if (grid === undefined && document.querySelector('.tile')) grid = performance.now();
        const done = [...document.querySelectorAll('.tile img')].filter((i) => i.complete && i.naturalWidth > 0).length;
        if (done >= ${FIRST}) requestAnimationFrame(() => resolve({ grid, thumbs: performance.now() }));
        else if (performance.now() > deadline) reject(new Error('thumbnails not loaded in 60 s'));
        else requestAnimationFrame(check);
      };
      check();
    })`);
  } finally {
    await context.close();
  }
}

async function heap(browser: Browser, url: string): Promise<{ open: number; end: number; top: number; scrolledMs: number }> {
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  const used = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    return (await cdp.send('Runtime.getHeapUsage')).usedSize / 2 ** 20;
  };
  await page.goto(url);
  await page.locator('.tile').first().waitFor();
  await page.waitForTimeout(1000);
  const open = await used();
  const t0 = Date.now();
  await page.evaluate(`new Promise((resolve) => {
    const el = document.querySelector('.grid-scroll');
    let frames = 0;
    const frame = () => {
      el.scrollTop += el.clientHeight;
      frames += 1;
      if (el.querySelector('[aria-label="photo-19999.jpg"]') || frames > 50000) resolve(frames);
      else requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  })`);
  const scrolledMs = Date.now() - t0;
  await page.waitForTimeout(1000);
  const end = await used();
  await page.evaluate(`document.querySelector('.grid-scroll').scrollTop = 0`);
  await page.waitForTimeout(1000);
  const top = await used();
  await context.close();
  return { open, end, top, scrolledMs };
}

async function main(): Promise<void> {
  const first = await startService();
  process.stderr.write('filling the albums…\n');
  await fill(first);
  let service: Service;
  try {
    service = await startService({ env: { IMAGE_DB_DIR: first.dataDir }, startTimeoutMs: 120_000 });
  } catch (err) {
    await first.close();
    throw err;
  }
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
  try {
    const times: Record<string, number[]> = Object.fromEntries(ALBUMS.map((a) => [a.name, []]));
    const grids: Record<string, number[]> = Object.fromEntries(ALBUMS.map((a) => [a.name, []]));
    for (let r = 0; r < ROUNDS + 1; r += 1) {
      const order = r % 2 === 0 ? ALBUMS : [...ALBUMS].reverse();
      for (const album of order) {
        const { grid, thumbs } = await firstThumbnails(browser, `${service.url}/#/a/${album.name}`);
        times[album.name].push(thumbs);
        grids[album.name].push(grid);
        process.stderr.write(`round ${r} ${album.name}: grid ${round(grid, 0)} ms, thumbnails ${round(thumbs, 0)} ms\n`);
      }
    }
    const h = await heap(browser, `${service.url}/#/a/a20000`);
    const row = (a: (typeof ALBUMS)[number]) => {
      const [cold, ...warm] = times[a.name];
      return `| ${a.count.toLocaleString('en-US')} | ${round(median(grids[a.name]), 0)} | ${round(cold, 0)} | ${round(median(warm), 0)} | ${round(Math.min(...warm), 0)}–${round(Math.max(...warm), 0)} |`;
    };
    const [small, large] = ALBUMS.map((a) => median(times[a.name].slice(1)));
    printSection(`### Gallery: first ${FIRST} thumbnails painted, and JS heap over a 20,000-image album (issue 17)

${machineInfo()}; load average at the end ${loadAverage()}. Headless Chromium ${browser.version()}, viewport ${VIEWPORT.width}×${VIEWPORT.height}, compiled service on loopback.
Command: \`npm run build && npx tsx bench/gallery.ts --rounds ${ROUNDS}\`

| album (images) | grid drawn, median ms (all visits) | ${FIRST} thumbnails, first visit, ms (cold derivatives) | ${FIRST} thumbnails, later visits, median ms (${ROUNDS}) | range |
|---|---|---|---|---|
${ALBUMS.map(row).join('\n')}

Later visits, 20,000 / 1,000: **${round(large / small, 2)}×**.

JS heap (used, after a forced GC), 20,000-image album: open ${round(h.open, 1)} MiB, after scrolling to the end ${round(h.end, 1)} MiB (the scroll took ${h.scrolledMs} ms, one screen a frame), back at the top ${round(h.top, 1)} MiB.
`);
  } finally {
    await browser.close();
    await service.close();
    await first.close(); // the filled data dir
  }
}

await main();

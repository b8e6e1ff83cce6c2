import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import Router from '@koa/router';
import type { Context } from 'koa';
import { NotConfiguredError } from '../errors.js';

/** Where `npm run build` puts the gallery (scripts/build-gallery.mjs): dist/gallery of the package, from src/ or dist/src/ alike. */
export const GALLERY_DIR = path.join(path.dirname(createRequire(import.meta.url).resolve('imagestore/package.json')), 'dist', 'gallery');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
};

interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
}

/**
 * The web gallery: `GET /` is its page, `GET /ui/{file}` its scripts and styles.
 * The files are read and gzipped once, on the first request, and served from memory;
 * the built asset names carry a content hash, so they are cached for good and the page never is.
 * @param dir the built gallery (index.html and ui/), default GALLERY_DIR
 */
export function galleryRoutes({ dir = GALLERY_DIR }: { dir?: string } = {}): Router {
  const router = new Router();
  let loading: Promise<Map<string, Asset>> | undefined;
  const assets = () => {
    loading ??= loadAssets(dir).catch((err: unknown) => {
      loading = undefined; // a build made after the start is picked up
      throw err;
    });
    return loading;
  };
  router.get('/', async (ctx) => {
    send(ctx, (await assets()).get('index.html'), 'no-cache');
  });
  router.get('/ui/:file', async (ctx, next) => {
    const asset = (await assets()).get(`ui/${ctx.params.file}`);
    if (!asset) return next();
    send(ctx, asset, 'public, max-age=31536000, immutable');
  });
  return router;
}

function send(ctx: Context, asset: Asset | undefined, cacheControl: string): void {
  if (!asset) throw new NotConfiguredError('the gallery is not built: run npm run build');
  ctx.type = asset.type;
  ctx.set('Cache-Control', cacheControl);
  ctx.vary('Accept-Encoding');
  if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
    ctx.set('Content-Encoding', 'gzip');
    ctx.body = asset.gzip;
  } else ctx.body = asset.body;
}

async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  try {
    const names = ['index.html', ...(await readdir(path.join(dir, 'ui'))).map((name) => `ui/${name}`)];
    for (const name of names) {
      const type = TYPES[path.extname(name)];
      if (!type) continue; // source maps and the like are not served
      const body = await readFile(path.join(dir, name));
      assets.set(name, { type, body, gzip: gzipSync(body, { level: 9 }) });
    }
  } catch {
    throw new NotConfiguredError('the gallery is not built: run npm run build');
  }
  return assets;
}

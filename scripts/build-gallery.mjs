// Builds the web gallery (web/src) into dist/gallery: index.html and ui/ with content-hashed
// names. esbuild bundles and minifies; the MQTT client (mqtt.js, ~90 KB gzipped) is a chunk of
// its own that the page loads only when the service has no SSE event stream.
// Run by `npm run build`; the browser tests call buildGallery() themselves.
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Builds the gallery.
 * @param {{ outDir?: string }} [options] default dist/gallery
 * @returns {Promise<{ outDir: string, initial: string[] }>} the files the page loads first
 */
export async function buildGallery({ outDir = path.join(ROOT, 'dist', 'gallery') } = {}) {
  const uiDir = path.join(outDir, 'ui');
  await rm(outDir, { recursive: true, force: true });
  await mkdir(uiDir, { recursive: true });
  const result = await build({
    entryPoints: { gallery: path.join(ROOT, 'web/src/main.ts') },
    bundle: true,
    splitting: true,
    format: 'esm',
    minify: true,
    target: ['es2022'],
    outdir: uiDir,
    entryNames: '[name]-[hash]',
    chunkNames: '[name]-[hash]',
    assetNames: '[name]-[hash]',
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const outputs = Object.entries(result.metafile.outputs);
  const js = outputs.find(([, o]) => o.entryPoint?.endsWith('web/src/main.ts'))?.[0];
  const css = outputs.find(([file]) => file.endsWith('.css'))?.[0];
  if (!js || !css) throw new Error('gallery build: entry script or stylesheet missing');
  const name = (file) => path.basename(file);
  const html = (await readFile(path.join(ROOT, 'web/index.html'), 'utf8'))
    .replace('%SCRIPT%', `/ui/${name(js)}`)
    .replace('%STYLE%', `/ui/${name(css)}`);
  await writeFile(path.join(outDir, 'index.html'), html);
  return { outDir, initial: ['index.html', `ui/${name(js)}`, `ui/${name(css)}`] };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildGallery();
}

import { createReadStream, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import { operation } from '../contract/operations.js';

/** Where docs/events.md is served. */
export const EVENTS_DOC_PATH = operation('getEventsDoc').path;

/**
 * swagger-ui-dist's directory. Found without importing the package: its main module
 * evaluates the whole browser bundle in Node, which costs ~40 MB of resident memory.
 */
const SWAGGER_UI_DIR = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));

/** docs/events.md of the repository (or package), from src/routes and from dist/src/routes; undefined when absent. */
const EVENTS_DOC = ['../../docs/events.md', '../../../docs/events.md'].map((p) => fileURLToPath(new URL(p, import.meta.url))).find((p) => existsSync(p));

/** Swagger UI's files we serve, from the local swagger-ui-dist package (no CDN: works offline). */
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};

const INDEX_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>imagestore API</title>
  <link rel="stylesheet" href="/swagger/swagger-ui.css">
  <link rel="stylesheet" href="/swagger/index.css">
  <link rel="icon" type="image/png" href="/swagger/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/swagger/swagger-ui-bundle.js"></script>
  <script src="/swagger/swagger-ui-standalone-preset.js"></script>
  <script src="/swagger/initializer.js"></script>
</body>
</html>
`;

// A file of its own rather than an inline script, so a strict Content-Security-Policy can forbid inline scripts.
const INITIALIZER_JS = `window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    // No badge fetched from validator.swagger.io: the page must work offline and not leak the spec URL.
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout'
  });
};
`;

/** The documents served by docsRoutes, built once at start. */
export interface DocsDocuments {
  /** OpenAPI 3.1 document of the REST API, served at /openapi.json and shown by Swagger UI. */
  openApi: Record<string, unknown>;
  /** AsyncAPI 3.1 document of the MQTT events, served at /asyncapi.json. */
  asyncApi: Record<string, unknown>;
}

/**
 * GET /openapi.json, GET /asyncapi.json and Swagger UI at /swagger. Not mounted in PRODMODE.
 * @param documents the OpenAPI and AsyncAPI documents
 */
export function docsRoutes({ openApi, asyncApi }: DocsDocuments): Router {
  const router = new Router();
  const assetDir = SWAGGER_UI_DIR;
  const openApiJson = JSON.stringify(openApi);
  const asyncApiJson = JSON.stringify(asyncApi);

  router.get('/openapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = openApiJson;
  });
  router.get('/asyncapi.json', (ctx) => {
    ctx.type = 'application/json';
    ctx.body = asyncApiJson;
  });
  router.get(EVENTS_DOC_PATH, (ctx, next) => {
    if (!EVENTS_DOC) return next();
    ctx.type = 'text/markdown; charset=utf-8';
    ctx.body = createReadStream(EVENTS_DOC);
  });
  router.get('/swagger', (ctx) => {
    ctx.type = 'text/html; charset=utf-8';
    ctx.body = INDEX_HTML;
  });
  router.get('/swagger/initializer.js', (ctx) => {
    ctx.type = 'text/javascript; charset=utf-8';
    ctx.body = INITIALIZER_JS;
  });
  router.get('/swagger/:asset', (ctx, next) => {
    const type = ASSETS[ctx.params.asset];
    if (!type) return next();
    ctx.type = type;
    ctx.set('Cache-Control', 'public, max-age=86400');
    ctx.body = createReadStream(path.join(assetDir, ctx.params.asset));
  });
  return router;
}

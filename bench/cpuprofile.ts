/**
 * Reads a V8 `.cpuprofile` (`node --cpu-prof`) and sums the main thread's time in
 * a time window by module (self time) and by component (inclusive: a sample
 * counts for a component when any frame of its stack belongs to it), for
 * bench/profile.ts. Builtins without a script (JSON.stringify, RegExp, Promise
 * internals) are folded into the module of the nearest caller that has one.
 */
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Where time went, in µs of main-thread time, within one window. */
export interface ProfileSummary {
  /** Sampled time in the window (µs), idle included. */
  totalUs: number;
  idleUs: number;
  /** Self time by module (npm package, src/ file, node: area, or a V8 state such as the garbage collector). */
  modules: Map<string, number>;
  /** Self time by function (`name (module:line)`). */
  functions: Map<string, number>;
  /** Inclusive time by component (see COMPONENTS): overlapping (a middleware's `await next()` runs the rest of the chain on its stack). */
  components: Map<string, number>;
  /** Self time by part (see PARTS): a partition of the busy time, sums to it. */
  parts: Map<string, number>;
}

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/** The module a frame belongs to: an npm package, a src/ file, a node: area, or undefined (no script: a builtin). */
export function moduleOf({ url, functionName }: CallFrame): string | undefined {
  if (SPECIAL.has(functionName)) return functionName;
  if (!url) return undefined;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const src = /\/dist\/(src\/.+)\.js$/.exec(url);
  if (src) return src[1];
  if (url.includes('/bench/')) return 'bench instrumentation';
  const node = /^node:(.+)$/.exec(url)?.[1];
  if (node) return `node: ${nodeArea(node)}`;
  return url.replace(/^file:\/\//, '');
}

function nodeArea(id: string): string {
  if (/^internal\/fs|^fs$/.test(id)) return 'fs';
  if (/_http_|^http$|internal\/http/.test(id)) return 'http';
  if (/^net$|stream_base|internal\/net|^dns$/.test(id)) return 'net';
  if (/streams|^stream$/.test(id)) return 'streams';
  if (/crypto/.test(id)) return 'crypto';
  if (/task_queues|timers|async_hooks|promise|microtask/.test(id)) return 'event loop, timers, promises';
  if (/^events$|internal\/events/.test(id)) return 'events';
  if (/url|querystring/.test(id)) return 'url';
  if (/buffer/.test(id)) return 'buffer';
  return id.replace(/^internal\//, '');
}

/** Components whose inclusive time the breakdown reports, by what their frames look like. */
export const COMPONENTS: Array<[string, (f: CallFrame, module: string | undefined) => boolean]> = [
  ['Koa core (koa, koa-compose, delegates, ...)', (_f, m) => /^(koa|koa-compose|delegates|on-finished|statuses|http-errors|content-type|type-is|accepts|cookies|fresh|vary|encodeurl|escape-html|depd|destroy|only|media-typer|mime-types|negotiator|koa-convert|http-assert|cache-content-type)$/.test(m ?? '')],
  ['@koa/router (path-to-regexp)', (_f, m) => /^(@koa\/router|path-to-regexp)$/.test(m ?? '')],
  ['request id (randomUUID, pino child)', (f) => f.functionName === 'requestIdMiddleware'],
  ['pino logger (child + one line per request)', (_f, m) => /^(pino|sonic-boom|pino-std-serializers|fast-redact|quick-format-unescaped|on-exit-leak-free|safe-stable-stringify|atomic-sleep|thread-stream|real-require|@pinojs\/.+)$/.test(m ?? '')],
  ['access log middleware', (_f, m) => m === 'src/middleware/access-log'],
  ['prom-client histogram + counters', (_f, m) => m === 'prom-client' || m === 'tdigest' || m === 'bintrees' || m === 'src/metrics'],
  ['helmet + CORS headers', (_f, m) => /^(helmet|koa-helmet|@koa\/cors|src\/middleware\/web-hardening)$/.test(m ?? '')],
  ['auth, rate limit, min body rate, error handler', (_f, m) => /^src\/middleware\/(auth|rate-limit|min-body-rate|error-handler)$/.test(m ?? '')],
  ['fetch/change event (journal append, dispatcher, aedes publish)', (f, m) => /^src\/notifier\//.test(m ?? '') || /^(aedes|aedes-packet|aedes-persistence|aedes-persistence-level|mqemitter|mqtt-packet|fastfall|fastparallel|fastseries|reusify|hyperid|retimer|uuid|level|classic-level|abstract-level)$/.test(m ?? '') || f.functionName === 'announceFetch'],
  ['JSON.stringify (any caller)', (f) => f.functionName === 'stringify' && !f.url],
  ['JSON.parse (any caller)', (f) => f.functionName === 'parse' && !f.url],
  ['koa-body + formidable (multipart parse)', (_f, m) => /^(koa-body|formidable|co-body|raw-body|dezalgo|hexoid|once|wrappy|asap)$/.test(m ?? '')],
  ['sha256 (crypto hash update/digest)', (f, m) => m === 'node: crypto' && /update|digest|Hash/.test(f.functionName)],
  ['sharp (JS side; decoding runs on libvips threads)', (_f, m) => m === 'sharp' || m === 'src/images/inspect' || m === 'src/images/transform' || m === 'src/images/engine-slots'],
  ['fs (node fs API, JS side; the calls run on libuv threads)', (_f, m) => m === 'node: fs'],
  ['store (src/albums)', (_f, m) => /^src\/albums\//.test(m ?? '')],
  ['routes + send-image + delivery', (_f, m) => /^src\/(routes|images\/image-delivery|images\/derivative-cache|images\/transform-spec)/.test(m ?? '')],
  ['node http (parser, headers, outgoing)', (_f, m) => m === 'node: http'],
  ['node net + streams (socket writes)', (_f, m) => m === 'node: net' || m === 'node: streams'],
  ['garbage collector', (f) => f.functionName === '(garbage collector)'],
];

/**
 * Parts of the main thread's own (self) time, by the module of the running
 * function (builtins count for their caller's module; node's own modules count for
 * pino when pino called them: the log line's synchronous write); the first match
 * wins, the rest is "other".
 */
const PINO = /^(pino|sonic-boom|pino-std-serializers|fast-redact|quick-format-unescaped|on-exit-leak-free|safe-stable-stringify|atomic-sleep|thread-stream|@pinojs\/.+)$/;

export const PARTS: Array<[string, RegExp]> = [
  ['node fs calls (binding: hand-off to the libuv pool)', /^node: fs$/],
  ['node net, streams (socket writes: writev)', /^node: (net|streams)$/],
  ['node http (parser, headers)', /^node: http$/],
  ['node crypto (sha256 of uploads, randomUUID)', /^node: crypto$|^@noble\//],
  ['node event loop, timers, promises, events, buffers', /^node: (event loop, timers, promises|events|buffer|process\/per_thread)$/],
  ['Koa core (koa, koa-compose, delegates, ...)', /^(koa|koa-compose|delegates|on-finished|statuses|http-errors|content-type|type-is|accepts|cookies|fresh|vary|encodeurl|escape-html|depd|destroy|only|media-typer|mime-types|negotiator|koa-convert|http-assert|cache-content-type|content-disposition)$/],
  ['@koa/router', /^(@koa\/router|path-to-regexp)$/],
  ['helmet, @koa/cors', /^(helmet|koa-helmet|@koa\/cors)$/],
  ['our middleware (request id, access log, auth, rate limit, min body rate, error handler, web hardening)', /^src\/middleware\//],
  ['pino (child loggers, one line per request and its write(2) to stdout)', PINO],
  ['prom-client (histogram, counters)', /^(prom-client|tdigest|bintrees|src\/metrics)$/],
  ['fetch/change event (src/notifier, aedes, mqtt-packet, ...)', /^(src\/notifier\/.+|aedes.*|mqemitter|mqtt-packet|fastfall|fastparallel|fastseries|reusify|hyperid|retimer|qlobber|uuid|level|classic-level|abstract-level)$/],
  ['koa-body, formidable (multipart)', /^(koa-body|formidable|co-body|raw-body|dezalgo|hexoid|once|wrappy|asap)$/],
  ['sharp (JS side)', /^(sharp|src\/images\/(inspect|transform|engine-slots))$/],
  ['store (src/albums)', /^src\/albums\//],
  ['routes, delivery, derivative cache, schemas (zod)', /^(src\/routes\/.+|src\/images\/.+|zod)$/],
  ['V8 garbage collector', /^\(garbage collector\)$/],
  ['V8/native outside JavaScript ("(program)")', /^\(program\)$/],
];

/** Sums the samples of `file` whose timestamps fall in [fromUs, toUs) (CLOCK_MONOTONIC µs, as process.hrtime). */
export function summariseProfile(file: string, fromUs: number, toUs: number): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Per node: its module (builtins take their caller's) and the components on its stack.
  const moduleCache = new Map<number, string>();
  const moduleOfNode = (id: number): string => {
    const cached = moduleCache.get(id);
    if (cached !== undefined) return cached;
    const own = moduleOf(byId.get(id)!.callFrame);
    const p = parent.get(id);
    const result = own ?? (p !== undefined ? moduleOfNode(p) : '(builtins)');
    moduleCache.set(id, result);
    return result;
  };
  const componentCache = new Map<number, Set<string>>();
  const componentsOf = (id: number): Set<string> => {
    const cached = componentCache.get(id);
    if (cached) return cached;
    const p = parent.get(id);
    const set = new Set(p !== undefined ? componentsOf(p) : []);
    const frame = byId.get(id)!.callFrame;
    const m = moduleOf(frame);
    for (const [name, match] of COMPONENTS) if (match(frame, m)) set.add(name);
    componentCache.set(id, set);
    return set;
  };
  // The nearest caller outside node's own modules: a log line's write(2) is pino's, not the store's.
  const userCache = new Map<number, string | undefined>();
  const userModuleOf = (id: number): string | undefined => {
    if (userCache.has(id)) return userCache.get(id);
    const m = moduleOf(byId.get(id)!.callFrame);
    const p = parent.get(id);
    const result = m && !m.startsWith('node: ') && !m.startsWith('(') ? m : p !== undefined ? userModuleOf(p) : undefined;
    userCache.set(id, result);
    return result;
  };
  const partOf = (id: number, module: string): string => {
    const owner = module.startsWith('node: ') ? userModuleOf(id) : undefined;
    const byOwner = owner && PINO.test(owner) ? PARTS.find(([, re]) => re.test(owner)) : undefined;
    return (byOwner ?? PARTS.find(([, re]) => re.test(module)))?.[0] ?? 'other';
  };
  const summary: ProfileSummary = { totalUs: 0, idleUs: 0, modules: new Map(), functions: new Map(), components: new Map(), parts: new Map() };
  const bump = (map: Map<string, number>, key: string, us: number) => map.set(key, (map.get(key) ?? 0) + us);
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    if (t < fromUs || t >= toUs || us <= 0) continue;
    const id = profile.samples[i];
    const frame = byId.get(id)!.callFrame;
    summary.totalUs += us;
    if (frame.functionName === '(idle)') {
      summary.idleUs += us;
      continue;
    }
    const module = moduleOfNode(id);
    bump(summary.modules, module, us);
    const where = frame.url ? `${module}:${frame.lineNumber + 1}` : `builtin, from ${module}`;
    bump(summary.functions, `${frame.functionName || '(anonymous)'} (${where})`, us);
    for (const c of componentsOf(id)) bump(summary.components, c, us);
    bump(summary.parts, partOf(id, module), us);
  }
  return summary;
}

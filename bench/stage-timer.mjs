/**
 * Wall time per stage of each request, for bench/profile.ts (never loaded by the
 * product): `node --import ./bench/stage-timer.mjs dist/src/main.js`.
 *
 * A measuring copy of the service without touching src/: this preload imports the
 * compiled modules by the same URLs main.js will (so it gets the same module
 * instances) and wraps class methods on their prototypes (AlbumService.addImage,
 * FsAlbumStore.commitImage, KeyedLock.with, Outbox.append, ...) and node's
 * fs.promises, FileHandle and fs.writeSync. No AsyncLocalStorage (its promise hooks
 * made the service 4× slower): an upload's stages are tied to their request through
 * the request id (the preload gives every request an X-Request-Id, which the
 * service adopts and passes to addImage and to the event), and the synchronous
 * call chain (addImage -> inspect, change -> commitImage -> KeyedLock.with). Spans
 * and file operations are summed per window: each SIGUSR2 starts the next one.
 * Plain JavaScript so that the service runs without a TypeScript loader. It depends
 * on the internal names of the build it measures: a name not found is reported
 * (`missing`), not measured wrongly.
 *
 * Requests sent with an `X-Bench-Phase` header are recorded one by one with it.
 * Environment: STAGE_TIMER_OUT (file written at exit, JSON), STAGE_TIMER_DIST (the
 * build's dist directory; default ./dist).
 */
import fs, { promises as fsp } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const dist = path.resolve(process.env.STAGE_TIMER_DIST ?? 'dist');
const out = process.env.STAGE_TIMER_OUT;
const now = () => performance.now();
const missing = [];

/** Per window: spans and file operations, { label: { n, ms } }. */
const windows = [{ spans: {}, ops: {} }];
/** Finished requests with a phase: { phase, method, url, t0, total, status, marks: { 'label.start', 'label.end' }, spans: { label: ms } }. */
const finished = [];
/** Requests in progress, by request id. */
const byReqId = new Map();
/** The request whose synchronous call chain is running (set around addImage and change's `make`). */
let current;
let nextId = 0;

function add(bucket, key, ms) {
  const entry = (bucket[key] ??= { n: 0, ms: 0 });
  entry.n += 1;
  entry.ms += ms;
}

/** Times `run` (until its promise settles) as `label`: in the window's `kind` bucket, and in `rec` if given. */
function timed(kind, label, rec, run) {
  const t = now();
  const done = () => {
    const ms = now() - t;
    add(windows.at(-1)[kind], label, ms);
    if (rec) {
      rec.spans[label] = (rec.spans[label] ?? 0) + ms;
      rec.marks[`${label}.start`] ??= t;
      rec.marks[`${label}.end`] = t + ms;
    }
  };
  let result;
  try {
    result = run();
  } catch (err) {
    done();
    throw err;
  }
  if (result && typeof result.then === 'function') return result.finally(done);
  done();
  return result;
}

/** Wraps target[name]; `recOf(args)` finds the request a call belongs to (optional). */
function wrap(target, name, label, { kind = 'spans', recOf } = {}) {
  const original = target?.[name];
  if (typeof original !== 'function') {
    missing.push(typeof label === 'string' ? label : name);
    return;
  }
  target[name] = function (...args) {
    return timed(kind, typeof label === 'function' ? label(args) : label, recOf?.(args, this), () => original.apply(this, args));
  };
}

// Every request gets an id the service adopts (request-id.ts takes a safe X-Request-Id), and a record.
const emit = http.Server.prototype.emit;
http.Server.prototype.emit = function (event, req, res, ...rest) {
  if (event === 'request') {
    const id = (req.headers['x-request-id'] ??= `stage-${++nextId}`);
    const phase = req.headers['x-bench-phase'];
    if (phase !== undefined) {
      const rec = { phase, method: req.method, url: req.url, t0: now(), marks: {}, spans: {} };
      byReqId.set(id, rec);
      res.once('finish', () => {
        rec.total = now() - rec.t0;
        rec.status = res.statusCode;
        finished.push(rec);
        byReqId.delete(id);
      });
    }
  }
  return emit.call(this, event, req, res, ...rest);
};

// File operations: count and wall time (thread-pool queueing included).
for (const op of ['open', 'rename', 'link', 'rm', 'unlink', 'stat', 'lstat', 'readFile', 'writeFile', 'mkdir', 'readdir']) wrap(fsp, op, `fs.${op}`, { kind: 'ops' });
const probe = await fsp.open(process.execPath, 'r');
const FileHandle = Object.getPrototypeOf(probe);
await probe.close();
for (const op of ['sync', 'datasync', 'read', 'write', 'writev', 'writeFile', 'readFile', 'stat', 'truncate']) wrap(FileHandle, op, `handle.${op}`, { kind: 'ops' });
// FileHandle.close is an instance property: wrap it on each handle fs.promises.open returns.
const open = fsp.open;
fsp.open = async function (...args) {
  const handle = await open.apply(this, args);
  wrap(handle, 'close', 'handle.close', { kind: 'ops' });
  return handle;
};
// pino writes each line synchronously (sonic-boom: fs.writeSync on stdout).
wrap(fs, 'writeSync', 'fs.writeSync (log lines)', { kind: 'ops' });

const load = async (file) => import(pathToFileURL(path.join(dist, file)).href).catch(() => ({}));
const { AlbumService } = await load('src/services/album-service.js');
const { FsAlbumStore } = await load('src/albums/fs/fs-store.js');
const { KeyedLock } = await load('src/lib/keyed-lock.js');
const { Outbox } = await load('src/notifier/outbox.js');
const { OutboxNotifier } = await load('src/notifier/outbox-notifier.js');
const { ImageDelivery } = await load('src/images/image-delivery.js');
const { DerivativeCache } = await load('src/images/derivative-cache.js');

const recOfCtx = (ctx) => (ctx?.reqId ? byReqId.get(ctx.reqId) : undefined);
const addImage = AlbumService?.prototype.addImage;
if (addImage) {
  AlbumService.prototype.addImage = function (...args) {
    // The inspector is a constructor argument (a closure): wrap it on the instance, once.
    if (this.inspect && !this.inspect.stageTimed) {
      const inspect = this.inspect;
      this.inspect = Object.assign((file) => timed('spans', 'inspect', current, () => inspect(file)), { stageTimed: true });
    }
    const rec = recOfCtx(args[3]);
    current = rec;
    try {
      return timed('spans', 'addImage', rec, () => addImage.apply(this, args));
    } finally {
      current = undefined;
    }
  };
} else missing.push('AlbumService.addImage');
const change = OutboxNotifier?.prototype.change;
if (change) {
  OutboxNotifier.prototype.change = function (make, eventOf, ctx, ...rest) {
    const rec = recOfCtx(ctx);
    const made = () => {
      current = rec;
      try {
        return make();
      } finally {
        current = undefined;
      }
    };
    return timed('spans', 'change', rec, () => change.call(this, made, eventOf, ctx, ...rest));
  };
} else missing.push('OutboxNotifier.change');
const lockWith = KeyedLock?.prototype.with;
if (lockWith) {
  KeyedLock.prototype.with = function (keys, fn) {
    const rec = current;
    const called = now();
    return lockWith.call(this, keys, () => {
      const wait = now() - called;
      add(windows.at(-1).spans, 'lock wait', wait);
      if (rec) rec.spans['lock wait'] = (rec.spans['lock wait'] ?? 0) + wait;
      return timed('spans', 'lock held', rec, fn);
    });
  };
} else missing.push('KeyedLock.with');
wrap(Outbox?.prototype, 'admit', 'journal admit');
wrap(Outbox?.prototype, 'append', ([, durable]) => (durable ? 'journal append (durable)' : 'journal append (fetch)'), { recOf: ([event]) => (event?.reqid ? byReqId.get(event.reqid) : undefined) });
wrap(AlbumService?.prototype, 'announceFetch', 'fetch event (announceFetch)');
wrap(AlbumService?.prototype, 'openImage', 'AlbumService.openImage (open, metadata)');
wrap(AlbumService?.prototype, 'listImages', 'listImages');
wrap(FsAlbumStore?.prototype, 'commitImage', 'commitImage');
wrap(FsAlbumStore?.prototype, 'openImage', 'openImage (open + metadata)');
wrap(ImageDelivery?.prototype, 'body', 'delivery.body');
wrap(DerivativeCache?.prototype, 'get', 'derivative cache get');

process.on('SIGUSR2', () => windows.push({ spans: {}, ops: {} }));
process.on('exit', () => {
  if (out) fs.writeFileSync(out, JSON.stringify({ missing, requests: finished, windows }));
});

import Router from '@koa/router';
import type { Context } from 'koa';
import { storageError } from '../errors.js';

/** What /readyz checks; each check throws when not ready. */
export interface ReadinessChecks {
  storeWritable(): Promise<void>;
  brokerReachable(): boolean;
  /** Events waiting in the outbox, reported for operators. */
  pendingEvents(): number;
}

/**
 * /livez (alias /healthz): the process answers, with its version. /readyz: the store is writable and the
 * broker reachable. /api/v1/version: which service and version answers.
 */
export function healthRoutes(checks: ReadinessChecks, version: string): Router {
  const router = new Router();
  const live = (ctx: Context) => {
    ctx.body = { status: 'ok', version };
  };
  router.get('/livez', live);
  router.get('/healthz', live);
  router.get('/api/v1/version', (ctx) => {
    ctx.body = { name: 'imagestore', version };
  });
  router.get('/readyz', async (ctx) => {
    // The check's own message names files: say only what kind of failure it is.
    const store = await checks.storeWritable().then(() => 'ok', (err: Error) => `not writable: ${storageError(err)?.message ?? 'write failed'}`);
    const broker = checks.brokerReachable() ? 'ok' : 'unreachable';
    const ready = store === 'ok' && broker === 'ok';
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ok' : 'not ready', checks: { store, broker }, pendingEvents: checks.pendingEvents() };
  });
  return router;
}

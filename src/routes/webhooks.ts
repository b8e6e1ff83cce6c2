import Router from '@koa/router';
import { z } from 'zod';
import { jsonBody } from '../middleware/body.js';
import { EVENT_TYPES, parseSequence } from '../notifier/events.js';
import type { WebhookService } from '../events/webhooks/webhook-service.js';
import { ValidationError } from '../errors.js';
import { parseWith } from './schemas.js';

const Url = z.string().max(2048).regex(/^https?:\/\//i, 'expected an http or https URL').describe('Where events are POSTed');
const Types = z.array(z.enum(EVENT_TYPES)).max(EVENT_TYPES.length).describe('Event types sent; empty or absent: all');
const Albums = z.array(z.string().min(1).max(255)).max(1000).describe('Albums whose events are sent; empty or absent: all');

/** Body of POST /api/v1/webhooks. */
export const WebhookCreateBody = z.object({ url: Url, types: Types.optional(), albums: Albums.optional(), enabled: z.boolean().optional() }).strict();
/** Body of PATCH /api/v1/webhooks/{id}. */
export const WebhookUpdateBody = WebhookCreateBody.partial().strict();
/** Body of POST /api/v1/webhooks/{id}/redeliver. */
export const RedeliverBody = z.object({ sequence: z.string().max(16).describe('The event to send again') }).strict();

/**
 * Webhook management (admin role, see middleware/auth.ts): register, list, show, change and
 * delete endpoints, rotate the secret, read the delivery log, redeliver an event, send a test
 * ping. The secret is in the answer of the registration and of a rotation only.
 */
export function webhookRoutes({ webhooks, maxJsonBytes }: { webhooks: WebhookService; maxJsonBytes: number }): Router {
  const router = new Router();
  const body = jsonBody(maxJsonBytes);
  router.post('/webhooks', body, async (ctx) => {
    const input = parseWith(WebhookCreateBody, ctx.request.body, 'body');
    const { endpoint, secret } = await webhooks.create(input);
    ctx.status = 201;
    ctx.set('Location', `/api/v1/webhooks/${endpoint.id}`);
    ctx.body = { webhook: endpoint, secret };
  });
  router.get('/webhooks', (ctx) => {
    ctx.body = { webhooks: webhooks.list() };
  });
  router.get('/webhooks/:id', (ctx) => {
    ctx.body = { webhook: webhooks.get(ctx.params.id) };
  });
  router.patch('/webhooks/:id', body, async (ctx) => {
    ctx.body = { webhook: await webhooks.update(ctx.params.id, parseWith(WebhookUpdateBody, ctx.request.body, 'body')) };
  });
  router.delete('/webhooks/:id', async (ctx) => {
    await webhooks.delete(ctx.params.id);
    ctx.body = { message: `webhook ${ctx.params.id} deleted` };
  });
  router.post('/webhooks/:id/rotate-secret', async (ctx) => {
    ctx.body = await webhooks.rotateSecret(ctx.params.id);
  });
  router.get('/webhooks/:id/deliveries', (ctx) => {
    ctx.body = { deliveries: webhooks.deliveries(ctx.params.id) };
  });
  router.post('/webhooks/:id/ping', async (ctx) => {
    ctx.body = { result: await webhooks.ping(ctx.params.id) };
  });
  router.post('/webhooks/:id/redeliver', body, async (ctx) => {
    const { sequence } = parseWith(RedeliverBody, ctx.request.body, 'body');
    const seq = parseSequence(sequence);
    if (seq === undefined || seq < 1) throw new ValidationError(`Expected a sequence number for sequence but received ${JSON.stringify(sequence)}`);
    ctx.body = { result: await webhooks.redeliver(ctx.params.id, seq) };
  });
  return router;
}

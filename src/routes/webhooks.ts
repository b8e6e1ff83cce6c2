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

/** An endpoint's opt-in to batched delivery. */
const Batch = z.object({
  maxEvents: z.number().int().min(1).max(1000).default(100).describe('Events per request at most'),
  maxDelayMs: z.number().int().min(0).max(5000).default(0)
    .describe('How long a batch that is not full may wait for more events after its first one is there; 0: send what is there now'),
}).strict().describe('Opt in to batches: each request POSTs the events available after the cursor (up to maxEvents, in order) as application/cloudevents-batch+json. null (PATCH) opts out; absent: one event per request');

/** Body of POST /api/v1/webhooks. */
export const WebhookCreateBody = z.object({ url: Url, types: Types.optional(), albums: Albums.optional(), enabled: z.boolean().optional(), batch: Batch.nullable().optional() }).strict();
/** Body of PATCH /api/v1/webhooks/{id}. */
export const WebhookUpdateBody = WebhookCreateBody.partial().strict();
/** Body of POST /api/v1/webhooks/{webhookId}/redeliver. */
export const RedeliverBody = z.object({ sequence: z.string().max(16).describe('The event to send again') }).strict();

/** A webhook endpoint as answered: never its secret. */
export const WebhookObject = z.object({
  id: z.string(), url: z.string(), types: z.array(z.enum(EVENT_TYPES)).optional(), albums: z.array(z.string()).optional(),
  enabled: z.boolean(), batch: z.object({ maxEvents: z.number().int(), maxDelayMs: z.number().int() }).optional().describe('Set when the endpoint takes batches'),
  disabledReason: z.string().optional().describe('Why the service disabled it (410 from the receiver, failing for WEBHOOK_DISABLE_AFTER)'),
  createdAt: z.string(), failingSince: z.string().optional().describe('Start of the current run of failed deliveries'),
  cursor: z.string().describe('Sequence of the last event handled for this endpoint'),
});
export const WebhookResponse = z.object({ webhook: WebhookObject });
export const WebhookCreatedResponse = WebhookResponse.extend({ secret: z.string().describe('whsec_… signing secret: shown this once') });
export const WebhookListResponse = z.object({ webhooks: z.array(WebhookObject) });
export const RotatedSecretResponse = z.object({ secret: z.string(), previousValidUntil: z.string().describe('The previous secrets keep signing until then (WEBHOOK_SECRET_GRACE)') });
export const SendResultObject = z.object({
  status: z.number().int().optional().describe('The receiver\'s HTTP status; absent when it did not answer'), error: z.string().optional(), latencyMs: z.number(),
  retryAfterMs: z.number().optional(),
});
export const SendResultResponse = z.object({ result: SendResultObject });
export const DeliveryListResponse = z.object({
  deliveries: z.array(z.object({
    at: z.string(), eventId: z.string().describe('The webhook-id sent: the event\'s id, or for a batch <first event\'s id>_<last event\'s id>'),
    sequence: z.string().optional().describe('The event\'s sequence; for a batch, its first event\'s'), lastSequence: z.string().optional().describe('A batch: its last event\'s sequence'),
    type: z.string().describe('The event\'s type; batch for a batch'), events: z.number().int().describe('Events in the request: 1 unless batched'),
    outcome: z.enum(['delivered', 'retrying', 'disabled', 'test', 'redelivery']), status: z.number().int().optional(), attempts: z.number().int(),
    latencyMs: z.number(), error: z.string().optional(),
  })).describe('Newest first; the last 100 attempts since the start'),
});

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
  router.get('/webhooks/:webhookId', (ctx) => {
    ctx.body = { webhook: webhooks.get(ctx.params.webhookId) };
  });
  router.patch('/webhooks/:webhookId', body, async (ctx) => {
    ctx.body = { webhook: await webhooks.update(ctx.params.webhookId, parseWith(WebhookUpdateBody, ctx.request.body, 'body')) };
  });
  router.delete('/webhooks/:webhookId', async (ctx) => {
    await webhooks.delete(ctx.params.webhookId);
    ctx.body = { message: `webhook ${ctx.params.webhookId} deleted` };
  });
  router.post('/webhooks/:webhookId/rotate-secret', async (ctx) => {
    ctx.body = await webhooks.rotateSecret(ctx.params.webhookId);
  });
  router.get('/webhooks/:webhookId/deliveries', (ctx) => {
    ctx.body = { deliveries: webhooks.deliveries(ctx.params.webhookId) };
  });
  router.post('/webhooks/:webhookId/ping', async (ctx) => {
    ctx.body = { result: await webhooks.ping(ctx.params.webhookId) };
  });
  router.post('/webhooks/:webhookId/redeliver', body, async (ctx) => {
    const { sequence } = parseWith(RedeliverBody, ctx.request.body, 'body');
    const seq = parseSequence(sequence);
    if (seq === undefined || seq < 1) throw new ValidationError(`Expected a sequence number for sequence but received ${JSON.stringify(sequence)}`);
    ctx.body = { result: await webhooks.redeliver(ctx.params.webhookId, seq) };
  });
  return router;
}

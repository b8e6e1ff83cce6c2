import type { HttpClient } from './http.js';

/**
 * An endpoint's opt-in to batches: each request carries the events available after its cursor (up to
 * `maxEvents`, in order) as a JSON array (`application/cloudevents-batch+json`).
 */
export interface WebhookBatch {
  /** 1-1000; default 100. */
  maxEvents?: number;
  /** How long a batch that is not full may wait for more events, 0-5000 ms; default 0 (send what is there now). */
  maxDelayMs?: number;
}

/** A webhook endpoint as the service shows it (never its secret). */
export interface Webhook {
  id: string;
  url: string;
  types?: string[];
  albums?: string[];
  enabled: boolean;
  /** Set when the endpoint takes batches. */
  batch?: Required<WebhookBatch>;
  disabledReason?: string;
  createdAt: string;
  failingSince?: string;
  /** Sequence of the last event handled for it. */
  cursor: string;
}

/** Fields of a registration or a change. */
export interface WebhookInput {
  url?: string;
  types?: string[];
  albums?: string[];
  enabled?: boolean;
  /** Opt in to batches; null (on a change) opts out. */
  batch?: WebhookBatch | null;
}

/** How a receiver answered a ping or a redelivery. */
export interface SendResult {
  status?: number;
  error?: string;
  latencyMs: number;
}

/** One line of an endpoint's delivery log. */
export interface WebhookDelivery {
  at: string;
  /** The webhook-id sent: the event's id, or for a batch `<first event's id>_<last event's id>`. */
  eventId: string;
  /** The event's sequence; for a batch, its first event's. */
  sequence?: string;
  /** A batch: its last event's sequence. */
  lastSequence?: string;
  /** The event's type; `batch` for a batch. */
  type: string;
  /** Events in the request: 1 unless batched. */
  events: number;
  outcome: 'delivered' | 'retrying' | 'disabled' | 'test' | 'redelivery';
  status?: number;
  attempts: number;
  latencyMs: number;
  error?: string;
}

const path = (id?: string, rest = '') => `/api/v1/webhooks${id === undefined ? '' : `/${encodeURIComponent(id)}`}${rest}`;

/** POST /webhooks (admin): the endpoint and its secret, shown this once. */
export function createWebhook(http: HttpClient, input: WebhookInput & { url: string }, signal?: AbortSignal): Promise<{ webhook: Webhook; secret: string }> {
  return http.json({ method: 'POST', path: path(), json: input, signal });
}

/** GET /webhooks (admin). */
export async function listWebhooks(http: HttpClient, signal?: AbortSignal): Promise<Webhook[]> {
  return (await http.json<{ webhooks: Webhook[] }>({ method: 'GET', path: path(), signal })).webhooks;
}

/** GET /webhooks/{id} (admin). */
export async function getWebhook(http: HttpClient, id: string, signal?: AbortSignal): Promise<Webhook> {
  return (await http.json<{ webhook: Webhook }>({ method: 'GET', path: path(id), signal })).webhook;
}

/** PATCH /webhooks/{id} (admin); enabling resumes from its cursor. */
export async function updateWebhook(http: HttpClient, id: string, input: WebhookInput, signal?: AbortSignal): Promise<Webhook> {
  return (await http.json<{ webhook: Webhook }>({ method: 'PATCH', path: path(id), json: input, signal })).webhook;
}

/** DELETE /webhooks/{id} (admin). */
export async function deleteWebhook(http: HttpClient, id: string, signal?: AbortSignal): Promise<{ message: string }> {
  return http.json({ method: 'DELETE', path: path(id), signal });
}

/** POST /webhooks/{id}/rotate-secret (admin): the new secret; the old one signs until previousValidUntil. */
export function rotateWebhookSecret(http: HttpClient, id: string, signal?: AbortSignal): Promise<{ secret: string; previousValidUntil: string }> {
  return http.json({ method: 'POST', path: path(id, '/rotate-secret'), signal });
}

/** GET /webhooks/{id}/deliveries (admin): the latest attempts, newest first. */
export async function listWebhookDeliveries(http: HttpClient, id: string, signal?: AbortSignal): Promise<WebhookDelivery[]> {
  return (await http.json<{ deliveries: WebhookDelivery[] }>({ method: 'GET', path: path(id, '/deliveries'), signal })).deliveries;
}

/** POST /webhooks/{id}/ping (admin): a signed test event, now. */
export async function pingWebhook(http: HttpClient, id: string, signal?: AbortSignal): Promise<SendResult> {
  return (await http.json<{ result: SendResult }>({ method: 'POST', path: path(id, '/ping'), signal })).result;
}

/** POST /webhooks/{id}/redeliver (admin): one journaled event again, now. */
export async function redeliverWebhookEvent(http: HttpClient, id: string, sequence: string, signal?: AbortSignal): Promise<SendResult> {
  return (await http.json<{ result: SendResult }>({ method: 'POST', path: path(id, '/redeliver'), json: { sequence }, signal })).result;
}

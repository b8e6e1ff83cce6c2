import http from 'node:http';
import https from 'node:https';
import { checkTargetUrl, guardedLookup } from '../../imports/ssrf-guard.js';
import { signatureHeader } from './signing.js';

/** The outcome of one POST to a receiver. */
export interface SendResult {
  /** HTTP status; undefined when there was no answer (refused, timed out, connection error). */
  status?: number;
  /** The receiver's Retry-After, in ms. */
  retryAfterMs?: number;
  error?: string;
  latencyMs: number;
}

/** Options of the sender. */
export interface SenderOptions {
  /** Hosts exempt from the SSRF guard (WEBHOOK_ALLOW_HOSTS). */
  allowHosts: ReadonlySet<string>;
  /** Longest wait for the whole answer (WEBHOOK_TIMEOUT_MS). */
  timeoutMs: number;
}

/** Content type of one structured CloudEvent (CloudEvents HTTP binding, structured mode). */
export const CLOUDEVENT_CONTENT_TYPE = 'application/cloudevents+json; charset=utf-8';
/** Content type of a JSON array of structured CloudEvents (CloudEvents HTTP binding, batched mode). */
export const CLOUDEVENT_BATCH_CONTENT_TYPE = 'application/cloudevents-batch+json; charset=utf-8';

/** Bytes of a receiver's answer read at most (it is only looked at for errors). */
const MAX_ANSWER_BYTES = 4096;

/**
 * Posts signed webhook requests (Standard Webhooks headers, structured or batched CloudEvents body) through
 * keep-alive connections, with the SSRF guard of imports at connect time (also on a DNS change)
 * and a timeout on the whole exchange. Redirects are not followed: a 3xx is a failed delivery,
 * so no redirect can lead a request to an address the guard refuses.
 */
export class WebhookSender {
  private readonly agents = {
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
    https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
  };
  private readonly lookup;

  constructor(private readonly options: SenderOptions) {
    this.lookup = guardedLookup(options.allowHosts);
  }

  /**
   * Sends `body` (a CloudEvent, or a batch of them with CLOUDEVENT_BATCH_CONTENT_TYPE) to `url`,
   * signed with `secrets` (newest first).
   * @param id `webhook-id`: the same on every retry of the same body
   */
  async send(url: string, id: string, body: string, secrets: string[], contentType = CLOUDEVENT_CONTENT_TYPE): Promise<SendResult> {
    const started = performance.now();
    const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
    let target: URL;
    try {
      target = new URL(url);
      checkTargetUrl(target, this.options.allowHosts);
    } catch (err) {
      return { error: (err as Error).message, latencyMs: elapsed() };
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const headers = {
      'Content-Type': contentType,
      'Content-Length': String(Buffer.byteLength(body)),
      'User-Agent': 'imagestore-webhooks/1',
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signatureHeader(secrets, id, timestamp, body),
    };
    const client = target.protocol === 'https:' ? https : http;
    const agent = target.protocol === 'https:' ? this.agents.https : this.agents.http;
    return new Promise<SendResult>((resolve) => {
      const req = client.request(target, { method: 'POST', agent, headers, lookup: this.lookup, signal: AbortSignal.timeout(this.options.timeoutMs) }, (res) => {
        let read = 0;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (read < MAX_ANSWER_BYTES) chunks.push(chunk);
          read += chunk.length;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const ok = status >= 200 && status < 300;
          resolve({
            status,
            retryAfterMs: retryAfterMs(res.headers['retry-after']),
            error: ok ? undefined : `receiver answered ${status}${chunks.length ? `: ${Buffer.concat(chunks).toString('utf8', 0, 200)}` : ''}`,
            latencyMs: elapsed(),
          });
        });
        res.on('error', (err) => resolve({ status: res.statusCode, error: describe(err, this.options.timeoutMs), latencyMs: elapsed() }));
      });
      req.on('error', (err) => resolve({ error: describe(err, this.options.timeoutMs), latencyMs: elapsed() }));
      req.end(body);
    });
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }
}

function describe(err: Error, timeoutMs: number): string {
  if (err.name === 'AbortError' || err.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return err.message;
}

/** Retry-After in seconds or as an HTTP date, in ms; undefined when absent or not understood. */
function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

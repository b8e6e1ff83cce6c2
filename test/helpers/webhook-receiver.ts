import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a receiver got. */
export interface ReceivedHook {
  headers: Record<string, string>;
  body: string;
  /** performance.now() when the body was read. */
  at: number;
}

/** How the receiver answers its n-th request (1-based): status (default 200), headers, a delay before answering. */
export type ReceiverPlan = (n: number, hook: ReceivedHook) => { status?: number; headers?: Record<string, string>; delayMs?: number };

/** A real webhook receiver on 127.0.0.1 that records every request and answers by plan. */
export interface WebhookReceiver {
  url: string;
  port: number;
  received: ReceivedHook[];
  /** Requests answered with a 2xx, in the order answered. */
  accepted: ReceivedHook[];
  close(): Promise<void>;
}

/**
 * Starts a receiver on 127.0.0.1 (`port` 0: ephemeral).
 * @param plan how to answer each request; default: 204 at once
 */
export async function startReceiver(plan: ReceiverPlan = () => ({}), port = 0): Promise<WebhookReceiver> {
  const received: ReceivedHook[] = [];
  const accepted: ReceivedHook[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const hook: ReceivedHook = { headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString('utf8'), at: performance.now() };
      received.push(hook);
      const { status = 204, headers = {}, delayMs = 0 } = plan(received.length, hook);
      const answer = () => {
        timers.delete(timer);
        if (res.destroyed) return;
        if (status >= 200 && status < 300) accepted.push(hook);
        res.writeHead(status, headers).end();
      };
      const timer = setTimeout(answer, delayMs);
      timers.add(timer);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${actual}/hook`,
    port: actual,
    received,
    accepted,
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

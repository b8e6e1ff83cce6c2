/**
 * Issue 16, benchmark (run by hand, never in CI): events over HTTP side by side with MQTT, in one
 * run. The service (dist, a child process) journals events at a fixed rate (open loop: request i
 * at t0 + i/rate, at most --inflight at once): downloads (`fetch`: one imagestore.image.fetched
 * each) or uploads (`upload`). One consumer process holds, at the same time, an MQTT subscriber
 * (embedded aedes broker), a webhook receiver registered with the service, and --sse Server-Sent
 * Events clients. Latency: from the 2xx of the request (response fully read) to the receipt of its
 * event (matched by reqid; process.hrtime, one monotonic clock for the machine), per transport:
 * p50 / p99 / max, and events lost (acknowledged but never received). Also the service's RSS
 * before and at its peak while the streams run.
 *
 *   npm run build && npx tsx bench/events-http.ts [--source fetch|upload] [--rate 1000] [--seconds 20] [--sse 100] [--inflight 128]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { createAlbum, loadAverage, machineInfo, memoryOf, percentile, round, sampleRss, sleep, startService, uploadImage } from './lib.js';

const { values: args } = parseArgs({
  options: {
    consumer: { type: 'string' },
    source: { type: 'string', default: 'fetch' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '20' },
    sse: { type: 'string', default: '100' },
    inflight: { type: 'string', default: '128' },
  },
});

const now = () => Number(process.hrtime.bigint()) / 1e6;
const TRANSPORTS = ['mqtt', 'webhook', 'sse'] as const;
type Transport = (typeof TRANSPORTS)[number];
type ToConsumer = { acks: Array<[string, number]> };
type FromConsumer = { ready: true; receiverUrl: string } | { results: Record<Transport, Summary> };
interface Summary { p50: number; p99: number; max: number; lost: number; duplicates: number; receipts: number }

/** The consumer process: an MQTT subscriber, a webhook receiver and `sse` SSE clients, recording receipt times by reqid. */
async function consumerMain(spec: string): Promise<void> {
  const { mqttUrl, api, sse } = JSON.parse(spec) as { mqttUrl: string; api: string; sse: number };
  const first = { mqtt: new Map<string, number>(), webhook: new Map<string, number>() };
  const duplicates = { mqtt: 0, webhook: 0, sse: 0 };
  /** Per SSE client: reqid → receipt time. */
  const streams: Array<Map<string, number>> = [];
  const reqidOf = (text: string) => {
    const at = text.indexOf('"reqid":"');
    return at === -1 ? undefined : text.slice(at + 9, text.indexOf('"', at + 9));
  };
  const record = (map: Map<string, number>, reqid: string | undefined, kind: Transport, at: number) => {
    if (reqid === undefined) return;
    if (map.has(reqid)) duplicates[kind] += 1;
    else map.set(reqid, at);
  };

  const client = mqtt.connect(mqttUrl, { clientId: `bench-http-${process.pid}`, clean: true });
  client.on('message', (_t, payload) => record(first.mqtt, reqidOf(payload.toString()), 'mqtt', now()));
  await new Promise<void>((resolve) => client.once('connect', () => resolve()));
  await client.subscribeAsync('imagestore/notifier', { qos: 1 });

  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => {
      record(first.webhook, reqidOf(Buffer.concat(chunks).toString()), 'webhook', now());
      res.writeHead(204).end();
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');

  const agent = new http.Agent({ keepAlive: true, maxSockets: sse + 10 });
  await Promise.all(Array.from({ length: sse }, () => new Promise<void>((resolve, reject) => {
    const seen = new Map<string, number>();
    streams.push(seen);
    http.get(`${api}/events/stream?type=imagestore.image.fetched,imagestore.image.created`, { agent }, (res) => {
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const at = now();
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          record(seen, reqidOf(buffer.slice(0, end)), 'sse', at);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
        }
      });
      resolve();
    }).on('error', reject);
  })));
  process.send!({ ready: true, receiverUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook` } satisfies FromConsumer);

  const [{ acks }] = (await once(process, 'message')) as [ToConsumer];
  const summarise = (maps: Array<Map<string, number>>, kind: Transport): Summary => {
    const latencies: number[] = [];
    let lost = 0;
    for (const map of maps) {
      for (const [reqid, ackAt] of acks) {
        const at = map.get(reqid);
        if (at === undefined) lost += 1;
        else latencies.push(Math.max(0, at - ackAt));
      }
    }
    return { p50: round(percentile(latencies, 50)), p99: round(percentile(latencies, 99)), max: round(latencies.reduce((m, v) => Math.max(m, v), 0)), lost, duplicates: duplicates[kind], receipts: latencies.length };
  };
  process.send!({ results: { mqtt: summarise([first.mqtt], 'mqtt'), webhook: summarise([first.webhook], 'webhook'), sse: summarise(streams, 'sse') } } satisfies FromConsumer);
  await client.endAsync();
  process.exit(0);
}

async function main(): Promise<void> {
  const rate = Number(args.rate);
  const seconds = Number(args.seconds);
  const sseClients = Number(args.sse);
  const inflight = Number(args.inflight);
  const source = args.source === 'upload' ? 'upload' : 'fetch';
  console.log(`${machineInfo()}\nload before: ${loadAverage()}`);
  const svc = await startService({ env: { WEBHOOK_ALLOW_HOSTS: '127.0.0.1', LOG_LEVEL: 'warn' } });
  let consumer: ChildProcess | undefined;
  try {
    await createAlbum(svc.api, 'bench');
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c33' } }).png().toBuffer();
    await uploadImage(svc.api, 'bench', 'a.png', png, 'image/png');

    consumer = fork(fileURLToPath(import.meta.url), ['--consumer', JSON.stringify({ mqttUrl: svc.mqttUrl, api: svc.api, sse: sseClients })], { execArgv: ['--import', 'tsx'] });
    const [ready] = (await once(consumer, 'message')) as [FromConsumer];
    if (!('ready' in ready)) throw new Error('consumer not ready');
    const hook = await fetch(`${svc.api}/webhooks`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: ready.receiverUrl, types: ['imagestore.image.fetched', 'imagestore.image.created'] }),
    });
    if (hook.status !== 201) throw new Error(`webhook registration: ${hook.status} ${await hook.text()}`);
    await sleep(500);
    const rssBefore = memoryOf(svc.pid).rssMiB;
    const rss = sampleRss(svc.pid, 200);

    const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
    const acks: Array<[string, number]> = [];
    let failed = 0;
    let active = 0;
    const total = Math.round(rate * seconds);
    const t0 = now();
    const send = (i: number) => new Promise<void>((resolve) => {
      const reqid = `bench-${i}`;
      const done = (ok: boolean) => {
        active -= 1;
        if (ok) acks.push([reqid, now()]);
        else failed += 1;
        resolve();
      };
      active += 1;
      if (source === 'fetch') {
        http.get(`${svc.api}/albums/bench/images/a.png`, { agent, headers: { 'X-Request-Id': reqid } }, (res) => {
          res.resume().on('end', () => done(res.statusCode === 200));
        }).on('error', () => done(false));
      } else {
        const boundary = `b${i}`;
        const body = Buffer.concat([
          Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="u${i}.png"\r\nContent-Type: image/png\r\n\r\n`), png, Buffer.from(`\r\n--${boundary}--\r\n`),
        ]);
        const req = http.request(`${svc.api}/albums/bench/images`, {
          method: 'POST', agent, headers: { 'X-Request-Id': reqid, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': body.length },
        }, (res) => res.resume().on('end', () => done(res.statusCode === 201)));
        req.on('error', () => done(false));
        req.end(body);
      }
    });
    const pending: Array<Promise<void>> = [];
    let skipped = 0;
    for (let i = 0; i < total; i += 1) {
      const due = t0 + (i * 1000) / rate;
      const wait = due - now();
      if (wait > 1) await sleep(wait);
      if (active >= inflight) {
        skipped += 1; // open loop: a request that cannot start on time is counted, not queued
        continue;
      }
      pending.push(send(i));
    }
    await Promise.all(pending);
    const achieved = acks.length / ((now() - t0) / 1000);
    // Every transport gets the time to finish (bounded): the webhook endpoint is done when its cursor reaches the head.
    const head = Number(((await (await fetch(`${svc.api}/events?limit=1`)).json()) as { head: string }).head);
    const drainStart = now();
    while (now() - drainStart < 120_000) {
      const { webhooks } = (await (await fetch(`${svc.api}/webhooks`)).json()) as { webhooks: Array<{ cursor: string }> };
      if (Number(webhooks[0].cursor) >= head) break;
      await sleep(250);
    }
    const drainMs = round(now() - drainStart, 0);
    await sleep(2000);
    const peak = rss.stop();
    consumer.send({ acks } satisfies ToConsumer);
    const [answer] = (await once(consumer, 'message')) as [FromConsumer];
    if (!('results' in answer)) throw new Error('no results');
    console.log(`\nsource ${source}, target ${rate}/s for ${seconds} s, achieved ${round(achieved, 0)}/s (${acks.length} acknowledged, ${failed} failed, ${skipped} not sent: ${inflight} in flight), ${sseClients} SSE clients`);
    console.log(`webhook endpoint caught up ${drainMs} ms after the last acknowledgement`);
    console.log(`service RSS: ${rssBefore} MiB before, peak ${peak.peakSampleMiB} MiB (growth ${round(peak.peakSampleMiB - rssBefore, 1)} MiB); load after: ${loadAverage()}\n`);
    console.log('| transport | receipts | p50 ms | p99 ms | max ms | lost | duplicates |');
    console.log('|---|---|---|---|---|---|---|');
    for (const t of TRANSPORTS) {
      const r = answer.results[t];
      console.log(`| ${t === 'sse' ? `SSE ×${sseClients}` : t === 'mqtt' ? 'MQTT (aedes)' : 'webhook'} | ${r.receipts} | ${r.p50} | ${r.p99} | ${r.max} | ${r.lost} | ${r.duplicates} |`);
    }
  } finally {
    consumer?.kill();
    await svc.close();
  }
}

if (args.consumer) await consumerMain(args.consumer);
else await main();

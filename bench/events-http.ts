/**
 * Issue 16, benchmark (run by hand, never in CI): events over HTTP side by side with MQTT, in one
 * run. The service (dist, a child process) journals events at a fixed rate (open loop: request i
 * at t0 + i/rate, at most --inflight at once): downloads (`fetch`: one imagestore.image.fetched
 * each) or uploads (`upload`). One consumer process holds, at the same time, an MQTT subscriber
 * (embedded aedes broker), webhook receivers registered with the service (--webhooks: `single`, one
 * event per request; `batch`, an endpoint opted in to batches of --batch-max events), and --sse
 * Server-Sent Events clients. Latency: from the 2xx of the request (response fully read) to the receipt of its
 * event (matched by reqid; process.hrtime, one monotonic clock for the machine), per transport:
 * p50 / p99 / max, and events lost (acknowledged but never received). Also the service's RSS
 * before and at its peak while the streams run, and where its memory is (V8 heap and external, from
 * /metrics, sampled every second).
 *
 *   npm run build && npx tsx bench/events-http.ts [--source fetch|upload] [--rate 1000] [--seconds 20] [--sse 100] [--inflight 128]
 *     [--webhooks single,batch] [--batch-max 100] [--heapsnapshot DIR]
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
    webhooks: { type: 'string', default: 'single,batch' },
    'batch-max': { type: 'string', default: '100' },
    /** A directory: the service writes a heap snapshot there after the drain (after a full GC: what is retained). */
    heapsnapshot: { type: 'string' },
  },
});

const now = () => Number(process.hrtime.bigint()) / 1e6;
const TRANSPORTS = ['mqtt', 'webhook', 'webhook-batch', 'sse'] as const;
type Transport = (typeof TRANSPORTS)[number];
type ToConsumer = { acks: Array<[string, number]> };
type FromConsumer = { ready: true; receiverUrl: string } | { results: Record<Transport, Summary> };
const LABELS: Record<Transport, string> = { mqtt: 'MQTT (aedes)', webhook: 'webhook, one event per request', 'webhook-batch': 'webhook, batches', sse: 'SSE' };
interface Summary { p50: number; p99: number; max: number; lost: number; duplicates: number; receipts: number }

/** The consumer process: an MQTT subscriber, a webhook receiver and `sse` SSE clients, recording receipt times by reqid. */
async function consumerMain(spec: string): Promise<void> {
  const { mqttUrl, api, sse } = JSON.parse(spec) as { mqttUrl: string; api: string; sse: number };
  const first = { mqtt: new Map<string, number>(), webhook: new Map<string, number>(), 'webhook-batch': new Map<string, number>() };
  const duplicates = { mqtt: 0, webhook: 0, 'webhook-batch': 0, sse: 0 };
  const batches = { requests: 0, events: 0 };
  /** Per SSE client: reqid → receipt time. */
  const streams: Array<Map<string, number>> = [];
  const reqidOf = (text: string, from = 0) => {
    const at = text.indexOf('"reqid":"', from);
    return at === -1 ? undefined : text.slice(at + 9, text.indexOf('"', at + 9));
  };
  const reqidsOf = (text: string) => {
    const ids: string[] = [];
    for (let at = text.indexOf('"reqid":"'); at !== -1; at = text.indexOf('"reqid":"', at + 9)) ids.push(reqidOf(text, at)!);
    return ids;
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
      const at = now();
      const body = Buffer.concat(chunks).toString();
      if (req.url === '/batch') {
        const ids = reqidsOf(body);
        batches.requests += 1;
        batches.events += ids.length;
        for (const id of ids) record(first['webhook-batch'], id, 'webhook-batch', at);
      } else {
        record(first.webhook, reqidOf(body), 'webhook', at);
      }
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
  process.send!({ ready: true, receiverUrl: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}` } satisfies FromConsumer);

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
  if (batches.requests > 0) console.log(`batched receiver: ${batches.requests} requests, ${round(batches.events / batches.requests, 1)} events per request on average`);
  process.send!({
    results: { mqtt: summarise([first.mqtt], 'mqtt'), webhook: summarise([first.webhook], 'webhook'), 'webhook-batch': summarise([first['webhook-batch']], 'webhook-batch'), sse: summarise(streams, 'sse') },
  } satisfies FromConsumer);
  await client.endAsync();
  process.exit(0);
}

/** The service's V8 heap (used, total) and external memory, in MiB, from its Prometheus metrics. */
async function heapOf(url: string): Promise<{ heapUsed: number; heapTotal: number; external: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const mib = (name: string) => round(Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? Number.NaN) / 2 ** 20, 1);
  return { heapUsed: mib('nodejs_heap_size_used_bytes'), heapTotal: mib('nodejs_heap_size_total_bytes'), external: mib('nodejs_external_memory_bytes') };
}

async function main(): Promise<void> {
  const rate = Number(args.rate);
  const seconds = Number(args.seconds);
  const sseClients = Number(args.sse);
  const inflight = Number(args.inflight);
  const source = args.source === 'upload' ? 'upload' : 'fetch';
  const webhookKinds = (args.webhooks ?? '').split(',').map((k) => k.trim()).filter((k) => k === 'single' || k === 'batch');
  console.log(`${machineInfo()}\nload before: ${loadAverage()}`);
  const svc = await startService({
    env: { WEBHOOK_ALLOW_HOSTS: '127.0.0.1', LOG_LEVEL: 'warn' },
    nodeArgs: args.heapsnapshot ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${args.heapsnapshot}`] : [],
  });
  let consumer: ChildProcess | undefined;
  try {
    await createAlbum(svc.api, 'bench');
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#c33' } }).png().toBuffer();
    await uploadImage(svc.api, 'bench', 'a.png', png, 'image/png');

    consumer = fork(fileURLToPath(import.meta.url), ['--consumer', JSON.stringify({ mqttUrl: svc.mqttUrl, api: svc.api, sse: sseClients })], { execArgv: ['--import', 'tsx'] });
    const [ready] = (await once(consumer, 'message')) as [FromConsumer];
    if (!('ready' in ready)) throw new Error('consumer not ready');
    for (const kind of webhookKinds) {
      const hook = await fetch(`${svc.api}/webhooks`, {
        method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          url: `${ready.receiverUrl}/${kind}`, types: ['imagestore.image.fetched', 'imagestore.image.created'],
          ...(kind === 'batch' ? { batch: { maxEvents: Number(args['batch-max']) } } : {}),
        }),
      });
      if (hook.status !== 201) throw new Error(`webhook registration: ${hook.status} ${await hook.text()}`);
    }
    await sleep(500);
    const rssBefore = memoryOf(svc.pid).rssMiB;
    const heapBefore = await heapOf(svc.url);
    const rss = sampleRss(svc.pid, 200);
    const heapPeak = { heapUsed: 0, heapTotal: 0, external: 0 };
    const heapSampler = setInterval(() => {
      void heapOf(svc.url).then((h) => {
        for (const k of Object.keys(heapPeak) as Array<keyof typeof heapPeak>) heapPeak[k] = Math.max(heapPeak[k], h[k]);
      }, () => undefined);
    }, 1000);

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
      if (webhooks.every((w) => Number(w.cursor) >= head)) break;
      await sleep(250);
    }
    const drainMs = round(now() - drainStart, 0);
    await sleep(2000);
    const peak = rss.stop();
    clearInterval(heapSampler);
    const heapAfter = await heapOf(svc.url);
    if (args.heapsnapshot) {
      process.kill(svc.pid, 'SIGUSR2');
      await sleep(20_000); // written synchronously by the service; it answers nothing meanwhile
      console.log(`heap snapshot requested into ${args.heapsnapshot}`);
    }
    consumer.send({ acks } satisfies ToConsumer);
    const [answer] = (await once(consumer, 'message')) as [FromConsumer];
    if (!('results' in answer)) throw new Error('no results');
    console.log(`\nsource ${source}, target ${rate}/s for ${seconds} s, achieved ${round(achieved, 0)}/s (${acks.length} acknowledged, ${failed} failed, ${skipped} not sent: ${inflight} in flight), ${sseClients} SSE clients`);
    console.log(`webhook endpoints (${webhookKinds.join(', ')}) caught up ${drainMs} ms after the last acknowledgement`);
    console.log(`service RSS: ${rssBefore} MiB before, peak ${peak.peakSampleMiB} MiB (growth ${round(peak.peakSampleMiB - rssBefore, 1)} MiB); load after: ${loadAverage()}`);
    console.log(`service memory (MiB, /metrics): V8 heap used ${heapBefore.heapUsed} before, peak ${heapPeak.heapUsed}, ${heapAfter.heapUsed} after the drain; `
      + `heap total ${heapBefore.heapTotal} / ${heapPeak.heapTotal} / ${heapAfter.heapTotal}; external (incl. buffers) ${heapBefore.external} / ${heapPeak.external} / ${heapAfter.external}\n`);
    console.log('| transport | receipts | p50 ms | p99 ms | max ms | lost | duplicates |');
    console.log('|---|---|---|---|---|---|---|');
    for (const t of TRANSPORTS) {
      if ((t === 'webhook' && !webhookKinds.includes('single')) || (t === 'webhook-batch' && !webhookKinds.includes('batch'))) continue;
      const r = answer.results[t];
      const label = t === 'sse' ? `SSE ×${sseClients}` : t === 'webhook-batch' ? `webhook, batches of ≤ ${args['batch-max']}` : LABELS[t];
      console.log(`| ${label} | ${r.receipts} | ${r.p50} | ${r.p99} | ${r.max} | ${r.lost} | ${r.duplicates} |`);
    }
  } finally {
    consumer?.kill();
    await svc.close();
  }
}

if (args.consumer) await consumerMain(args.consumer);
else await main();

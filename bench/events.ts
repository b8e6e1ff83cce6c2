/**
 * Issue 4, benchmark (run by hand, never in CI): end-to-end event latency, from
 * the HTTP answer of an upload (client side, response fully received) to a
 * subscriber's receipt of its `imagestore.image.created` event, at fixed upload
 * rates (open loop: request i is sent at t0 + i/rate, at most --inflight at once),
 * for the embedded aedes broker and for Debian's mosquitto as an external broker
 * (MQTT_URL); then a ramp to the highest rate sustained with zero loss (the
 * achieved rate stays ≥ 90 % of the target and every acknowledged upload's event
 * arrives, deduplicated by event id).
 *
 * The subscriber is a separate process (this file with --subscriber), subscribed
 * to imagestore/notifier at QoS 1; both processes take times from
 * process.hrtime (CLOCK_MONOTONIC, one clock for the whole machine).
 *
 *   npm run build && npx tsx bench/events.ts [--brokers aedes,mosquitto,mosquitto-nodelay] [--rates 100,1000] [--seconds 10] [--ramp 200,400,600,800,1000,1250,1500,2000] [--ramp-seconds 5] [--inflight 256] [--albums 16]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import sharp from 'sharp';
import { startMosquitto, type Mosquitto } from '../test/helpers/mosquitto.js';
import { childPidsNamed, cpuTimeMs, createAlbum, loadAverage, machineInfo, percentile, round, sleep, startService, uploadImage, type Service } from './lib.js';

const { values: args } = parseArgs({
  options: {
    subscriber: { type: 'string' },
    brokers: { type: 'string', default: 'aedes,mosquitto,mosquitto-nodelay' },
    sources: { type: 'string', default: 'upload,fetch' },
    rates: { type: 'string', default: '100,1000' },
    seconds: { type: 'string', default: '10' },
    ramp: { type: 'string', default: '25,50,75,100,125,150,200,300,500,1000' },
    'fetch-ramp': { type: 'string', default: '500,1000,1500,2000,3000,4000' },
    'ramp-seconds': { type: 'string', default: '5' },
    inflight: { type: 'string', default: '256' },
    albums: { type: 'string', default: '16' },
    env: { type: 'string', default: '' },
  },
});

/** What the subscriber tells the parent. */
type SubscriberMessage = { ready: true } | { received: Array<[string, number]>; duplicates: number; total: number };

/**
 * Subscriber process: records the receipt time of each event by the request id
 * that caused it (`reqid`, which the client chose with X-Request-Id; first copy),
 * and counts duplicates by event id.
 */
async function subscriberMain(url: string): Promise<void> {
  const receivedAt = new Map<string, number>();
  const seenEvents = new Set<string>();
  let duplicates = 0;
  const client = mqtt.connect(url, { clientId: `bench-sub-${process.pid}`, clean: true, reconnectPeriod: 200 });
  client.on('message', (_topic, payload) => {
    const at = Number(process.hrtime.bigint()) / 1e6;
    const event = JSON.parse(payload.toString()) as { id: string; type: string; reqid?: string };
    if (seenEvents.has(event.id)) {
      duplicates += 1;
      return;
    }
    seenEvents.add(event.id);
    if (event.reqid && !receivedAt.has(event.reqid)) receivedAt.set(event.reqid, at);
  });
  await once(client as unknown as NodeJS.EventEmitter, 'connect');
  await client.subscribeAsync('imagestore/notifier', { qos: 1 });
  process.send!({ ready: true } satisfies SubscriberMessage);
  process.on('message', (msg: { ids: string[] }) => {
    const received: Array<[string, number]> = [];
    for (const id of msg.ids) {
      const at = receivedAt.get(id);
      if (at !== undefined) received.push([id, at]);
    }
    process.send!({ received, duplicates, total: receivedAt.size } satisfies SubscriberMessage);
  });
  process.on('disconnect', () => void client.endAsync(true).then(() => process.exit(0)));
}

/** The subscriber child and a way to ask it which ids arrived (and when). */
async function startSubscriber(url: string): Promise<{ child: ChildProcess; query(ids: string[]): Promise<Extract<SubscriberMessage, { received: unknown }>>; stop(): Promise<void> }> {
  const child = fork(fileURLToPath(import.meta.url), ['--subscriber', url], { execArgv: process.execArgv, stdio: 'inherit' });
  const [first] = (await Promise.race([once(child, 'message'), sleep(15_000).then(() => [undefined])])) as [SubscriberMessage | undefined];
  if (!first || !('ready' in first)) throw new Error('the subscriber did not connect within 15 s');
  return {
    child,
    async query(ids) {
      child.send({ ids });
      const [reply] = (await once(child, 'message')) as [SubscriberMessage];
      if (!('received' in reply)) throw new Error('unexpected subscriber message');
      return reply;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.disconnect();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await once(child, 'exit');
      clearTimeout(timer);
    },
  };
}

/** Small distinct PNGs (32×32, ~100-300 bytes) to upload. */
async function smallPngs(count: number): Promise<Buffer[]> {
  return Promise.all(
    Array.from({ length: count }, (_, i) =>
      sharp({ create: { width: 32, height: 32, channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
        .composite([{ input: { create: { width: 8, height: 8, channels: 3, background: { r: 255 - i, g: i, b: 128 } } }, left: i % 24, top: (i * 7) % 24 }])
        .png()
        .toBuffer(),
    ),
  );
}

/**
 * What each request is: `upload` POSTs a small PNG (an `imagestore.image.created`
 * event, journaled with fsync); `fetch` GETs a small stored image (an
 * `imagestore.image.fetched` event, journaled without fsync): the event pipeline
 * at rates the upload path cannot reach here.
 */
type Source = 'upload' | 'fetch';

interface RunResult {
  target: number;
  seconds: number;
  sent: number;
  acked: number;
  rejected: Record<string, number>;
  achieved: number;
  lost: number;
  duplicates: number;
  latencies: number[];
  httpLatencies: number[];
  /** Longest a request waited behind the in-flight bound (ms after its scheduled time). */
  maxStartLagMs: number;
  cpu: Record<string, number>;
  waitedForEventsMs: number;
}

/**
 * Uploads at `rate` per second for `seconds` (open loop, at most `inflight` at once),
 * then waits (≤ 20 s) until the subscriber has every acknowledged upload's event.
 */
async function runAtRate(
  service: Service, subscriber: Awaited<ReturnType<typeof startSubscriber>>, pngs: Buffer[], rate: number, seconds: number,
  inflight: number, albums: number, tag: string, cpuPids: Record<string, number>, source: Source,
): Promise<RunResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inflight });
  const total = Math.round(rate * seconds);
  const answers = new Map<string, number>(); // request id -> time the answer was received (ms, monotonic)
  const httpLatencies: number[] = [];
  const rejected: Record<string, number> = {};
  let active = 0;
  let wake: (() => void) | undefined;
  let maxStartLagMs = 0;
  let lastAnswer = 0;
  const boundary = 'benchboundary7f3a';
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);

  const upload = (i: number) =>
    new Promise<void>((resolve) => {
      const reqId = `${tag}-${i}`;
      const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${reqId}.png"\r\nContent-Type: image/png\r\n\r\n`);
      const png = pngs[i % pngs.length];
      const started = Number(process.hrtime.bigint()) / 1e6;
      const req =
        source === 'upload'
          ? http.request(`${service.api}/albums/a${i % albums}/images`, {
            method: 'POST', agent,
            headers: { 'x-request-id': reqId, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': head.length + png.length + tail.length },
          })
          : http.request(`${service.api}/albums/a${i % albums}/images/small.png`, { method: 'GET', agent, headers: { 'x-request-id': reqId } });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const at = Number(process.hrtime.bigint()) / 1e6;
          if (res.statusCode === (source === 'upload' ? 201 : 200)) {
            answers.set(reqId, at);
            httpLatencies.push(at - started);
            lastAnswer = at;
          } else {
            rejected[String(res.statusCode)] = (rejected[String(res.statusCode)] ?? 0) + 1;
          }
          resolve();
        });
      });
      req.on('error', (err) => {
        rejected[err.message] = (rejected[err.message] ?? 0) + 1;
        resolve();
      });
      if (source === 'upload') req.end(Buffer.concat([head, png, tail]));
      else req.end();
    });

  const cpu0 = Object.fromEntries(Object.entries(cpuPids).map(([k, pid]) => [k, pid === process.pid ? selfCpuMs() : cpuTimeMs(pid)]));
  const pending: Array<Promise<void>> = [];
  const t0 = Number(process.hrtime.bigint()) / 1e6;
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rate;
    let now = Number(process.hrtime.bigint()) / 1e6;
    if (due > now + 1) {
      await sleep(Math.floor(due - now));
      now = Number(process.hrtime.bigint()) / 1e6;
    }
    while (active >= inflight) await new Promise<void>((resolve) => (wake = resolve));
    now = Number(process.hrtime.bigint()) / 1e6;
    maxStartLagMs = Math.max(maxStartLagMs, now - due);
    active += 1;
    pending.push(
      upload(i).finally(() => {
        active -= 1;
        const w = wake;
        wake = undefined;
        w?.();
      }),
    );
  }
  await Promise.all(pending);
  const wall = (lastAnswer || Number(process.hrtime.bigint()) / 1e6) - t0;
  const cpu = Object.fromEntries(
    Object.entries(cpuPids).map(([k, pid]) => [k, ((pid === process.pid ? selfCpuMs() : cpuTimeMs(pid)) - cpu0[k]) / wall]),
  );
  agent.destroy();

  // Wait (bounded) for every acknowledged upload's event.
  const ids = [...answers.keys()];
  const waitStart = Date.now();
  let reply = await subscriber.query(ids);
  while (reply.received.length < ids.length && Date.now() - waitStart < 20_000) {
    await sleep(100);
    reply = await subscriber.query(ids);
  }
  const latencies = reply.received.map(([id, at]) => at - answers.get(id)!);
  return {
    target: rate, seconds, sent: total, acked: ids.length, rejected, achieved: (ids.length * 1000) / wall,
    lost: ids.length - reply.received.length, duplicates: reply.duplicates, latencies, httpLatencies, maxStartLagMs, cpu,
    waitedForEventsMs: Date.now() - waitStart,
  };
}

function selfCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

const ms = (n: number) => (Number.isFinite(n) ? round(n, 2).toFixed(2) : '–');

function row(broker: string, source: Source, r: RunResult): string {
  const rejected = Object.entries(r.rejected).map(([k, v]) => `${v}× ${k}`).join(', ') || '0';
  const cpu = Object.entries(r.cpu).map(([k, v]) => `${k} ${Math.round(v * 100)}%`).join(', ');
  return `| ${broker} | ${source} | ${r.target}/s × ${r.seconds} s | ${Math.round(r.achieved)}/s | ${r.acked} | ${rejected} | **${r.lost}** | ${r.duplicates} | ${ms(percentile(r.latencies, 50))} | **${ms(percentile(r.latencies, 99))}** | ${ms(Math.max(...r.latencies))} | ${ms(percentile(r.httpLatencies, 50))} / ${ms(percentile(r.httpLatencies, 99))} | ${Math.round(r.maxStartLagMs)} | ${cpu} |`;
}

async function main(): Promise<void> {
  const header = machineInfo();
  const brokers = args.brokers.split(',');
  const sources = args.sources.split(',') as Source[];
  const rates = args.rates.split(',').map(Number);
  const ramps = { upload: args.ramp, fetch: args['fetch-ramp'] };
  const seconds = Number(args.seconds);
  const rampSeconds = Number(args['ramp-seconds']);
  const inflight = Number(args.inflight);
  const albums = Number(args.albums);
  const extraEnv = Object.fromEntries(args.env.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const pngs = await smallPngs(64);
  const fixed: string[] = [];
  const rampRows: string[] = [];
  const best: string[] = [];
  const loads: string[] = [];

  for (const broker of brokers) {
    let mosquitto: Mosquitto | undefined;
    if (broker.startsWith('mosquitto')) mosquitto = await startMosquitto();
    if (mosquitto && broker === 'mosquitto-nodelay') {
      // TCP_NODELAY on mosquitto's client sockets: without it, Nagle holds the second of two back-to-back
      // PUBACKs until the service's delayed ACK (~40 ms on Linux), and the dispatcher waits for that batch.
      await appendFile(path.join(mosquitto.dir, 'mosquitto.conf'), 'set_tcp_nodelay true\n');
      await mosquitto.restart();
    }
    const service = await startService({ env: { ...(mosquitto ? { MQTT_URL: mosquitto.url } : {}), ...extraEnv } });
    const subscriber = await startSubscriber(service.mqttUrl);
    const cpuPids: Record<string, number> = { service: service.pid, client: process.pid, subscriber: subscriber.child.pid! };
    const mosquittoPid = mosquitto ? childPidsNamed(process.pid, 'mosquitto')[0] : undefined;
    if (mosquittoPid) cpuPids.mosquitto = mosquittoPid;
    try {
      for (let a = 0; a < albums; a++) {
        await createAlbum(service.api, `a${a}`);
        await uploadImage(service.api, `a${a}`, 'small.png', pngs[a % pngs.length]);
      }
      for (const source of sources) {
        // Warm-up: 1 s at 100/s (not reported).
        await runAtRate(service, subscriber, pngs, 100, 1, inflight, albums, `${broker}-${source}-warm`, cpuPids, source);
        for (const rate of rates) {
          loads.push(`${broker} ${source} ${rate}/s: ${loadAverage()}`);
          const r = await runAtRate(service, subscriber, pngs, rate, seconds, inflight, albums, `${broker}-${source}-r${rate}`, cpuPids, source);
          fixed.push(row(broker, source, r));
          process.stderr.write(`${fixed.at(-1)}\n`);
        }
        let highest = 0;
        const steps = ramps[source].split(',').filter(Boolean).map(Number);
        for (const rate of steps) {
          const r = await runAtRate(service, subscriber, pngs, rate, rampSeconds, inflight, albums, `${broker}-${source}-ramp${rate}`, cpuPids, source);
          rampRows.push(row(broker, source, r));
          process.stderr.write(`${rampRows.at(-1)}\n`);
          if (r.lost > 0 || r.achieved < 0.9 * rate) break;
          highest = rate;
        }
        best.push(`- ${broker}, ${source}: highest rate sustained with zero loss: **${highest ? `${highest}/s` : `below ${steps[0]}/s`}**${highest === steps.at(-1) ? ' (the last step tried)' : ''}.`);
      }
    } finally {
      await subscriber.stop();
      await service.close();
      await mosquitto?.close();
    }
  }

  const tableHead = [
    '| broker | events from | target | achieved | acked requests | rejected | lost events | duplicates | event latency p50 ms | p99 ms | max ms | HTTP latency p50 / p99 ms | max send lag ms | CPU (share of one core) |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  const lines = [
    '### Event latency and highest loss-free rate (issue 4, item 7)',
    '',
    header,
    `- Load average at each fixed-rate run: ${loads.join(' | ')}`,
    `- Command: \`npm run build && npx tsx bench/events.ts --brokers ${args.brokers} --sources ${args.sources} --rates ${args.rates} --seconds ${seconds} --ramp ${args.ramp} --fetch-ramp ${args['fetch-ramp']} --ramp-seconds ${rampSeconds} --inflight ${inflight} --albums ${albums}${args.env ? ` --env ${args.env}` : ''}\``,
    '- Events from `upload`: each request uploads a small PNG (an `imagestore.image.created` event, journaled and fsynced before the 201). From `fetch`: each request GETs a stored 32×32 PNG (an `imagestore.image.fetched` event, journaled without fsync): the same outbox → dispatcher → broker → subscriber path at rates the upload path cannot reach on this machine. Each request carries its own X-Request-Id; the subscriber matches events by their `reqid`.',
    `- Uploads: 32×32 PNGs (64 distinct, ~100-300 bytes) as multipart POST /api/v1/albums/a{i mod ${albums}}/images over keep-alive connections, open loop (request i sent at t0 + i/rate), at most ${inflight} in flight. Service: \`node dist/src/main.js\`, LOG_LEVEL=warn, defaults otherwise (e.g. MAX_CONCURRENT_UPLOADS=32 → 503 beyond that).`,
    '- Latency = subscriber receipt (separate process, QoS 1 subscription to imagestore/notifier, mqtt.js) − the moment the client had the whole 201 answer; both from CLOCK_MONOTONIC. Negative values mean the event arrived before the answer (it is journaled before the answer and may be published first).',
    '- mosquitto: Debian /usr/sbin/mosquitto 2.0.11 as our child (test/helpers/mosquitto.ts startMosquitto: 127.0.0.1, persistence off, otherwise default settings), service with MQTT_URL. `mosquitto-nodelay`: the same plus `set_tcp_nodelay true` in its configuration.',
    '',
    '#### Fixed rates',
    '',
    ...tableHead,
    ...fixed,
    '',
    '#### Ramp (a step passes when the achieved rate is ≥ 90 % of the target and no event is lost; stops at the first failing step)',
    '',
    ...tableHead,
    ...rampRows,
    '',
    ...best,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

if (args.subscriber) await subscriberMain(args.subscriber);
else await main();

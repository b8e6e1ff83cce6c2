/**
 * Issue 12, soak (run by hand, never in CI): the compiled service under a mixed hostile load for
 * --minutes (default 10) while ordinary clients keep using it, and what it costs the service:
 * RSS over time, event-loop delay p99 (prom-client's nodejs_eventloop_lag_p99_seconds, scraped
 * every 5 s: each scrape covers the interval since the previous one), /livez latency seen by a
 * client, 5xx answers, and events lost (an acknowledged change whose event never reached a QoS 1
 * subscriber). Targets: RSS flat within 1.5x (end vs after the first minute), event-loop delay
 * p99 < 50 ms, 0 lost.
 *
 * Ordinary load (from 127.0.0.1, admin key): uploads, renames, deletes, downloads (originals,
 * cached transforms, id URLs) and listings. Hostile load (from 127.0.0.2-4, so per-address limits
 * never hit the ordinary clients): oversized MQTT CONNECTs over TCP and over the /mqtt WebSocket,
 * QoS 1 subscribers that never read, piles of offline persistent sessions, wrong API keys over
 * HTTP and MQTT, trickling request bodies, bodies that lie about their Content-Encoding, diffs at
 * and over the pixel cap, AVIF transforms over the budget, and detail listings of a 5,000-image album.
 *
 *   npm run build && npx tsx bench/soak.ts [--minutes 10] [--env KEY=VALUE,...]
 */
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import sharp from 'sharp';
import WebSocket from 'ws';
import { smallJpegs } from './fixtures.js';
import { loadAverage, machineInfo, memoryOf, percentile, round, sleep, startService, type Service } from './lib.js';

const { values: args } = parseArgs({
  options: {
    /** The service's log (LOG_LEVEL=warn unless --env sets it) goes to this file. */
    log: { type: 'string', default: '' },
    /** Node options for the service, space-separated (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof). */
    'node-args': { type: 'string', default: '' },
    /** Only these loads (comma-separated names of the table below, e.g. upload,offline-session); all by default. */
    only: { type: 'string', default: '' },
    /** Another build of the service (path to its dist/src/main.js). */
    main: { type: 'string', default: '' },
    minutes: { type: 'string', default: '10' },
    env: { type: 'string', default: '' },
  },
});
const durationMs = Number(args.minutes) * 60_000;
const ADMIN_KEY = `admin-${randomBytes(12).toString('hex')}`;
const READ_KEY = `read-${randomBytes(12).toString('hex')}`;
/** Hostile clients come from other loopback addresses, one per kind of abuse, so that per-address limits meant for one kind never hide another. */
const GUESSER = '127.0.0.2';
const TRICKLER = '127.0.0.3';
const MQTT_ABUSER = '127.0.0.4';

/** Counts of answers by operation and status class. */
const answers = new Map<string, Map<string, number>>();
function count(op: string, status: number | string): void {
  const bucket = typeof status === 'number' ? `${status}` : status;
  const byStatus = answers.get(op) ?? new Map<string, number>();
  byStatus.set(bucket, (byStatus.get(bucket) ?? 0) + 1);
  answers.set(op, byStatus);
}

let stopping = false;
/** Runs `act` every `everyMs` until the soak ends; errors are counted, never thrown. */
async function every(name: string, everyMs: number, act: () => Promise<void>): Promise<void> {
  if (args.only && !args.only.split(',').includes(name)) return;
  while (!stopping) {
    const started = Date.now();
    await act().catch((err: Error) => count(name, `error: ${err.message.slice(0, 60)}`));
    await sleep(Math.max(0, everyMs - (Date.now() - started)));
  }
}

async function request(service: Service, op: string, path: string, init: RequestInit = {}, key = ADMIN_KEY): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${key}`);
  const res = await fetch(`${service.api}${path}`, { ...init, headers, signal: AbortSignal.timeout(60_000) });
  count(op, res.status);
  return res;
}

/** A multipart body with one file in field "file". */
function multipart(name: string, bytes: Buffer): { body: Buffer; type: string } {
  const boundary = `soak${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${name}"\r\nContent-Type: image/jpeg\r\n\r\n`);
  return { body: Buffer.concat([head, bytes, Buffer.from(`\r\n--${boundary}--\r\n`)]), type: `multipart/form-data; boundary=${boundary}` };
}

/** A TCP connection to 127.0.0.1:`port` from `from` (another loopback address). */
function connectFrom(from: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, localAddress: from }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** What the ordinary clients changed and got a 2xx for: request id -> event type expected. */
const acknowledged = new Map<string, string>();
const received = new Set<string>();
let subscriberDisconnects = 0;
/** Journal positions of the events received: a gap is an event the subscriber never got. */
const sequences = new Set<number>();
const receivedIds = new Set<string>();

/** The events the journal holds (GET /api/v1/events, issue 16) that the subscriber never received, by type. */
async function journaledNotReceived(service: Service): Promise<string> {
  let after = '0';
  const notReceived = new Map<string, string[]>();
  let held = 0;
  for (let page = 0; page < 10_000; page++) {
    const res = await fetch(`${service.api}/events?after=${after}&limit=1000`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    if (res.status !== 200) return `GET /api/v1/events answered ${res.status}: no journal check.`;
    const body = (await res.json()) as { events: Array<{ id: string; type: string; sequence: string; reqid?: string }>; next: string };
    for (const event of body.events) {
      held += 1;
      if (!receivedIds.has(event.id)) notReceived.set(event.type, [...(notReceived.get(event.type) ?? []), `${event.sequence}:${event.reqid ?? ''}`]);
    }
    if (body.events.length === 0 || body.next === after) break;
    after = body.next;
  }
  const summary = [...notReceived.entries()].map(([type, list]) => `${type} ${list.length} (e.g. ${list.slice(0, 3).join(', ')})`).join('; ');
  return `Journal: ${held} events held; not received by the subscriber: ${summary || 'none'}.`;
}

/** Sequences missing between the first and the last event received (events carry `sequence` since issue 16). */
function sequenceGaps(): string {
  if (sequences.size === 0) return 'No event carried a sequence (a build before issue 16).';
  const sorted = [...sequences].sort((a, b) => a - b);
  const missing: number[] = [];
  for (let seq = sorted[0]; seq <= sorted.at(-1)!; seq++) if (!sequences.has(seq)) missing.push(seq);
  return `Sequences received ${sorted[0]}-${sorted.at(-1)}: ${missing.length} missing${missing.length ? ` (first: ${missing.slice(0, 10).join(', ')})` : ''}.`;
}

async function main(): Promise<void> {
  const header = machineInfo();
  const extraEnv = Object.fromEntries(args.env.split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const service = await startService({
    env: { API_KEYS: `admin:${ADMIN_KEY},read:${READ_KEY}`, LOG_LEVEL: 'warn', ...extraEnv },
    logFile: args.log || undefined, main: args.main || undefined, nodeArgs: args['node-args'].split(' ').filter(Boolean),
  });
  const log = (message: string) => process.stderr.write(`[soak ${new Date().toISOString()}] ${message}\n`);
  try {
    // The subscriber that must get every event: persistent session, QoS 1, read key.
    const subscriber = mqtt.connect(service.mqttUrl, { clientId: 'soak-subscriber', clean: false, password: READ_KEY, username: 'soak', reconnectPeriod: 500 });
    // Each loss of the connection is a chance to lose in-flight messages: counted for the report.
    subscriber.on('close', () => (subscriberDisconnects += 1));
    subscriber.on('message', (_topic, payload) => {
      const event = JSON.parse(payload.toString()) as { type: string; reqid?: string; sequence?: string };
      if (event.reqid) received.add(`${event.reqid} ${event.type}`);
      if (event.sequence) sequences.add(Number(event.sequence));
      receivedIds.add((event as { id?: string }).id ?? '');
    });
    await new Promise<void>((resolve, reject) => subscriber.once('connect', () => resolve()).once('error', reject));
    await subscriber.subscribeAsync('imagestore/notifier', { qos: 1 });

    log('preparing: albums, images, a 5,000-image album, large inputs');
    const jpegs = await smallJpegs(20);
    for (const album of ['a0', 'a1', 'a2', 'a3', 'big']) await request(service, 'setup', '/albums', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ albumName: album }) });
    const big = Array.from({ length: 5000 }, (_, i) => i);
    await Promise.all(Array.from({ length: 16 }, async () => {
      for (let i = big.pop(); i !== undefined; i = big.pop()) {
        const { body, type } = multipart(`img-${i}.jpg`, jpegs[i % jpegs.length]);
        await request(service, 'setup', '/albums/big/images', { method: 'POST', headers: { 'content-type': type }, body });
      }
    }));
    // 25 MP inputs for diffs at the cap, 100 MP for the over-cap diff and the AVIF budget (flat colours: small files).
    const png = (w: number, h: number, r: number) => sharp({ create: { width: w, height: h, channels: 3, background: { r, g: 80, b: 160 } } }).png().toBuffer();
    const [atCapA, atCapB, overCap] = await Promise.all([png(5000, 5000, 10), png(5000, 5000, 200), png(10000, 10000, 10)]);
    const { body: hugeBody, type: hugeType } = multipart('huge.png', overCap);
    await request(service, 'setup', '/albums/a0/images', { method: 'POST', headers: { 'content-type': hugeType }, body: hugeBody });

    const names = new Map<string, string[]>([['a0', []], ['a1', []], ['a2', []], ['a3', []]]);
    let serial = 0;
    const ordinary = [
      every('upload', 100, async () => {
        const album = `a${serial % 4}`;
        const name = `u-${serial++}.jpg`;
        const reqId = `soak-up-${serial}`;
        const { body, type } = multipart(name, jpegs[serial % jpegs.length]);
        const res = await request(service, 'upload', `/albums/${album}/images`, { method: 'POST', headers: { 'content-type': type, 'x-request-id': reqId }, body });
        if (res.status === 201) {
          acknowledged.set(`${reqId} imagestore.image.created`, `${album}/${name}`);
          names.get(album)!.push(name);
        }
      }),
      every('rename', 500, async () => {
        const album = `a${serial % 4}`;
        const list = names.get(album)!;
        if (list.length < 10) return;
        const from = list.shift()!;
        const to = `r-${from}`;
        const reqId = `soak-mv-${serial++}`;
        const res = await request(service, 'rename', `/albums/${album}/images/${from}`, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-request-id': reqId }, body: JSON.stringify({ imageName: to }) });
        if (res.status === 200) {
          acknowledged.set(`${reqId} imagestore.image.renamed`, `${album}/${to}`);
          list.push(to);
        }
      }),
      every('delete', 500, async () => {
        const album = `a${(serial + 2) % 4}`;
        const list = names.get(album)!;
        if (list.length < 20) return;
        const name = list.splice(list.length >> 1, 1)[0];
        const reqId = `soak-rm-${serial++}`;
        const res = await request(service, 'delete', `/albums/${album}/images/${name}`, { method: 'DELETE', headers: { 'x-request-id': reqId } });
        if (res.status === 200) acknowledged.set(`${reqId} imagestore.image.deleted`, `${album}/${name}`);
      }),
      ...Array.from({ length: 4 }, (_, worker) =>
        every('download', 40, async () => {
          const list = names.get(`a${worker}`)!;
          const name = list[list.length - 1];
          if (!name) return;
          const variant = serial % 3 === 0 ? '?w=64&format=webp' : '';
          const res = await request(service, 'download', `/albums/a${worker}/images/${name}${variant}`);
          await res.arrayBuffer();
        }),
      ),
      every('list', 200, async () => {
        const res = await request(service, 'list', `/albums/a${serial % 4}/images?limit=100&details=true`);
        await res.arrayBuffer();
      }),
    ];

    const hostileCounts = new Map<string, number>();
    const hostile = (name: string) => hostileCounts.set(name, (hostileCounts.get(name) ?? 0) + 1);
    const mqttPort = Number(new URL(service.mqttUrl).port);
    const stuck: net.Socket[] = [];
    const trickling = new Set<net.Socket>();
    const attacks = [
      // A CONNECT that claims 250 MB, then zeros until the server hangs up (or 10 s).
      every('mqtt-big-connect', 2000, async () => {
        hostile('mqtt-big-connect');
        const socket = await connectFrom(MQTT_ABUSER, mqttPort);
        socket.on('error', () => undefined);
        socket.write(Buffer.from([0x10, 0x80, 0xe5, 0x9a, 0x77])); // 250,000,000 as a variable byte integer
        const zeros = Buffer.alloc(64 * 1024);
        const deadline = Date.now() + 10_000;
        while (!socket.destroyed && !socket.writableEnded && Date.now() < deadline && !stopping) {
          if (!socket.write(zeros)) await new Promise((r) => setTimeout(r, 20));
          await sleep(50);
        }
        socket.destroy();
      }),
      every('ws-big-connect', 5000, async () => {
        hostile('ws-big-connect');
        const ws = new WebSocket(`ws://127.0.0.1:${service.port}/mqtt`, 'mqtt', { localAddress: MQTT_ABUSER, headers: { authorization: '' } });
        ws.on('error', () => undefined);
        await new Promise<void>((resolve) => ws.once('open', () => resolve()).once('close', () => resolve()).once('error', () => resolve()));
        const deadline = Date.now() + 10_000;
        if (ws.readyState === WebSocket.OPEN) ws.send(Buffer.from([0x10, 0x80, 0xe5, 0x9a, 0x77]));
        while (ws.readyState === WebSocket.OPEN && Date.now() < deadline && !stopping) {
          ws.send(Buffer.alloc(64 * 1024));
          await sleep(50);
        }
        ws.terminate();
      }),
      // Subscribers that never read: CONNECT + SUBSCRIBE imagestore/# at QoS 1, then the socket is paused forever.
      every('stuck-subscriber', 20_000, async () => {
        if (stuck.length >= 5) return;
        hostile('stuck-subscriber');
        const socket = await connectFrom(MQTT_ABUSER, mqttPort);
        socket.on('error', () => undefined);
        socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `stuck-${stuck.length}-${Date.now()}`, keepalive: 0, username: 'x', password: Buffer.from(READ_KEY) }));
        socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'imagestore/#', qos: 1 }] }));
        socket.pause();
        stuck.push(socket);
      }),
      // Offline persistent sessions pile up: connect clean=false, subscribe, go away.
      every('offline-session', 1000, async () => {
        hostile('offline-session');
        const client = new mqtt.MqttClient(() => net.connect({ host: '127.0.0.1', port: mqttPort, localAddress: MQTT_ABUSER }), {
          clientId: `offline-${randomBytes(6).toString('hex')}`, clean: false, password: READ_KEY, username: 'x', reconnectPeriod: 0, protocolVersion: 4,
        });
        client.on('error', () => undefined);
        await new Promise<void>((resolve) => client.once('connect', () => resolve()).once('close', () => resolve()));
        if (client.connected) await client.subscribeAsync('imagestore/#', { qos: 1 }).catch(() => undefined);
        await client.endAsync(true);
      }),
      every('mqtt-wrong-key', 250, async () => {
        hostile('mqtt-wrong-key');
        const socket = await connectFrom(GUESSER, mqttPort);
        socket.on('error', () => undefined);
        socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `guess-${Date.now()}`, keepalive: 0, username: 'x', password: Buffer.from(randomBytes(8).toString('hex')) }));
        await new Promise((resolve) => { socket.once('data', resolve); socket.once('close', resolve); setTimeout(resolve, 2000); });
        socket.destroy();
      }),
      every('http-wrong-key', 200, async () => {
        hostile('http-wrong-key');
        const socket = await connectFrom(GUESSER, service.port);
        socket.on('error', () => undefined);
        socket.write(`GET /api/v1/albums HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${randomBytes(8).toString('hex')}\r\nConnection: close\r\n\r\n`);
        const head = await new Promise<string>((resolve) => { let text = ''; socket.on('data', (d) => (text += d)); socket.once('close', () => resolve(text)); setTimeout(() => resolve(text), 5000); });
        count('http-wrong-key', Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0) || 'no answer');
        socket.destroy();
      }),
      // Trickling bodies: 1 byte every 2 s of a declared 1 MB upload; at most 32 at once.
      every('slow-body', 2000, async () => {
        for (const s of trickling) s.destroyed ? trickling.delete(s) : s.write('x');
        if (trickling.size >= 32) return;
        hostile('slow-body');
        const socket = await connectFrom(TRICKLER, service.port);
        socket.on('error', () => undefined);
        socket.on('data', (d) => count('slow-body', Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString())?.[1] ?? 0) || 'data'));
        socket.on('close', () => trickling.delete(socket));
        socket.write(`POST /api/v1/albums/a1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000000\r\n\r\n--b\r\n`);
        trickling.add(socket);
      }),
      every('bad-encoding', 500, async () => {
        await request(service, 'bad-encoding', '/albums', { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: 'not gzip at all' });
      }),
      every('diff-at-cap', 15_000, async () => {
        const form = new FormData();
        form.append('a', new Blob([atCapA]), 'a.png');
        form.append('b', new Blob([atCapB]), 'b.png');
        const res = await request(service, 'diff-at-cap', '/diff', { method: 'POST', body: form });
        await res.arrayBuffer();
      }),
      every('diff-over-cap', 10_000, async () => {
        const res = await request(service, 'diff-over-cap', '/diff?a=a0/huge.png&b=a0/huge.png');
        await res.arrayBuffer();
      }),
      every('avif-over-budget', 10_000, async () => {
        const res = await request(service, 'avif-over-budget', '/albums/a0/images/huge.png?format=avif');
        await res.arrayBuffer();
      }),
      every('detail-listing', 5_000, async () => {
        const res = await request(service, 'detail-listing', '/albums/big/images?limit=10000&details=true');
        await res.arrayBuffer();
      }),
    ];

    // Samples: RSS every second, event-loop delay p99 and /livez every 5 s.
    const rss: Array<{ t: number; mib: number }> = [];
    const lagP99Ms: number[] = [];
    const livezMs: number[] = [];
    const started = Date.now();
    log(`soak running for ${args.minutes} min (load average ${loadAverage()})`);
    const sampler = (async () => {
      let tick = 0;
      while (Date.now() - started < durationMs) {
        rss.push({ t: (Date.now() - started) / 1000, mib: memoryOf(service.pid).rssMiB });
        if (tick++ % 5 === 0) {
          const t0 = performance.now();
          const live = await fetch(`${service.url}/livez`).then((r) => r.status, () => 0);
          livezMs.push(live === 200 ? performance.now() - t0 : Infinity);
          const metrics = await fetch(`${service.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } }).then((r) => r.text(), () => '');
          const lag = Number(/^nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(metrics)?.[1]);
          if (Number.isFinite(lag)) lagP99Ms.push(lag * 1000);
          if (tick % 60 === 1) log(`t=${Math.round((Date.now() - started) / 1000)} s rss=${round(rss.at(-1)!.mib, 0)} MiB lag p99=${round(lagP99Ms.at(-1) ?? NaN, 1)} ms acknowledged=${acknowledged.size} received=${received.size}`);
        }
        await sleep(1000);
      }
    })();
    await sampler;
    stopping = true;
    for (const socket of [...stuck, ...trickling]) socket.destroy();
    await Promise.all([...ordinary, ...attacks]);
    log('load stopped; waiting up to 60 s for the last events');
    const missing = () => [...acknowledged.keys()].filter((k) => !received.has(k));
    const deadline = Date.now() + 60_000;
    while (missing().length > 0 && Date.now() < deadline) await sleep(500);
    const lost = missing();
    await subscriber.endAsync(true);
    const undelivered = await journaledNotReceived(service);

    const warm = rss.find((s) => s.t >= 60)?.mib ?? rss[0].mib;
    const end = rss.at(-1)!.mib;
    const peak = Math.max(...rss.map((s) => s.mib));
    const fiveXX = [...answers.values()].flatMap((m) => [...m.entries()]).filter(([s]) => /^5\d\d$/.test(s) && s !== '503' && s !== '507').reduce((n, [, c]) => n + c, 0);
    const table = [...answers.entries()].map(([op, byStatus]) => `| ${op} | ${[...byStatus.entries()].sort().map(([s, c]) => `${s}: ${c}`).join(', ')} |`);
    const lagP99 = percentile(lagP99Ms, 99);
    process.stdout.write([
      '## Issue 12: soak under a mixed hostile load (bench/soak.ts)',
      '',
      header,
      `- Command: \`npm run build && npx tsx bench/soak.ts --minutes ${args.minutes}${args.env ? ` --env ${args.env}` : ''}\``,
      `- Load average at the end: ${loadAverage()}`,
      '- The service: `node dist/src/main.js`, defaults but loopback ports and API keys (admin and read), embedded broker; the soak process drives it and is its only client.',
      '',
      '| what | target | measured | met? |',
      '|---|---|---|---|',
      `| RSS end / RSS after 1 min | ≤ 1.5× | ${round(end / warm, 2)}× (${round(warm, 0)} → ${round(end, 0)} MiB; peak ${round(peak, 0)} MiB) | ${end / warm <= 1.5 ? 'yes' : 'no'} |`,
      `| event-loop delay p99 (p99 over ${lagP99Ms.length} 5-s windows; worst window ${round(Math.max(...lagP99Ms), 1)} ms) | < 50 ms | ${round(lagP99, 1)} ms | ${lagP99 < 50 ? 'yes' : 'no'} |`,
      `| events lost (of ${acknowledged.size} acknowledged changes) | 0 | ${lost.length} | ${lost.length === 0 ? 'yes' : 'no'} |`,
      `| 5xx other than 503/507 | 0 | ${fiveXX} | ${fiveXX === 0 ? 'yes' : 'no'} |`,
      `| /livez latency (client side, every 5 s) | — | p50 ${round(percentile(livezMs, 50), 1)} ms, p99 ${round(percentile(livezMs, 99), 1)} ms, worst ${round(Math.max(...livezMs), 1)} ms | — |`,
      '',
      'Answers by operation (status: count; `error: …` = the client gave up or the connection was cut):',
      '',
      '| operation | answers |',
      '|---|---|',
      ...table,
      '',
      `Hostile actions started: ${[...hostileCounts.entries()].map(([k, v]) => `${k} ${v}`).join(', ')}.`,
      `The subscriber's connection was lost ${subscriberDisconnects} time(s) (it reconnects to its persistent session).`,
      sequenceGaps(),
      undelivered,
      lost.length > 0 ? `\nLost (first 10): ${lost.slice(0, 10).join('; ')}` : '',
      '',
    ].join('\n'));
  } finally {
    stopping = true;
    await service.close();
  }
}

await main();

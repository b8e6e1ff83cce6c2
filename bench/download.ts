/**
 * Issue 5, benchmarks 1 and 3 (run by hand, never in CI):
 *   1. download of a ~100 KB JPEG original, wrk -c64 -t2 -d10s: imagestore vs nginx
 *      serving the same file from disk (sendfile on), with 1 worker and with `auto`;
 *   3. a cached derivative (same size class) vs the original download, same wrk settings.
 * Rounds alternate the targets so that noise from other jobs on the machine hits all
 * of them alike; the report gives medians and ratios of medians.
 *
 *   npm run build && npx tsx bench/download.ts [--rounds 3] [--seconds 10] [--jemalloc]
 */
import { promises as fs } from 'node:fs';
import { parseArgs } from 'node:util';
import { jpegOfAbout, writeFixture } from './fixtures.js';
import path from 'node:path';
import { childPidsNamed, cpuTimeMs, createAlbum, loadAverage, machineInfo, makeTmpDir, median, round, runWrk, startNginx, startNodeFileServer, startService, uploadImage, type WrkResult } from './lib.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    jemalloc: { type: 'boolean', default: false },
    'node-args': { type: 'string', default: '' },
    /** Also measure another build, `label=path/to/main.js` (from the repo root; e.g. a copy of an older dist); repeatable. */
    variant: { type: 'string', multiple: true, default: [] },
    /** Also measure bare node:http servers sending the file (what Node itself reaches here). */
    reference: { type: 'boolean', default: true },
  },
});
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const connections = Number(args.connections);

async function main(): Promise<void> {
  const header = machineInfo();
  const dir = await makeTmpDir('bench-download-');
  const { bytes, quality, width, height } = await jpegOfAbout(100 * 1024);
  await writeFixture(dir, 'photo.jpg', bytes);
  await fs.chmod(dir, 0o755); // nginx workers run as "nobody"

  const service = await startService({ jemalloc: args.jemalloc, nodeArgs: args['node-args'] ? args['node-args'].split(' ') : [] });
  const variants = await Promise.all(
    (args.variant ?? []).map(async (spec) => {
      const [label, main] = [spec.slice(0, spec.indexOf('=')), spec.slice(spec.indexOf('=') + 1)];
      return { label, main, service: await startService({ jemalloc: args.jemalloc, main }) };
    }),
  );
  const nginx1 = await startNginx(dir, 1);
  const nginxAuto = await startNginx(dir, 'auto');
  const nodeStream = args.reference ? await startNodeFileServer(path.join(dir, 'photo.jpg'), 'stream') : undefined;
  const nodeRead = args.reference ? await startNodeFileServer(path.join(dir, 'photo.jpg'), 'read') : undefined;
  try {
    await createAlbum(service.api, 'bench');
    const image = await uploadImage(service.api, 'bench', 'photo.jpg', bytes);
    for (const { service: other } of variants) {
      await createAlbum(other.api, 'bench');
      await uploadImage(other.api, 'bench', 'photo.jpg', bytes);
    }
    // A derivative of the same size class: the same picture re-encoded (a cache miss now, a hit under wrk).
    const derivativePath = `/albums/bench/images/photo.jpg?format=jpeg&q=${quality}`;
    const first = await fetch(`${service.api}${derivativePath}`);
    const derivativeBytes = (await first.arrayBuffer()).byteLength;
    if (first.status !== 200) throw new Error(`derivative: ${first.status}`);

    const targets: Record<string, string> = {
      'nginx (1 worker)': `${nginx1.url}/photo.jpg`,
      'nginx (auto = 2 workers)': `${nginxAuto.url}/photo.jpg`,
      'imagestore original, name URL': `${service.api}/albums/bench/images/photo.jpg`,
      'imagestore original, id URL': `${service.api}/images/${image.id}`,
      'imagestore cached derivative, name URL': `${service.api}${derivativePath}`,
    };
    for (const { label, service: other } of variants) {
      await fetch(`${other.api}${derivativePath}`).then((r) => r.arrayBuffer());
      targets[`${label}: original, name URL`] = `${other.api}/albums/bench/images/photo.jpg`;
      targets[`${label}: cached derivative, name URL`] = `${other.api}${derivativePath}`;
    }
    if (nodeStream && nodeRead) {
      targets['bare node:http, fs.createReadStream → pipe'] = nodeStream.url;
      targets['bare node:http, one read → res.end(buffer)'] = nodeRead.url;
    }
    for (const [name, url] of Object.entries(targets)) {
      const res = await fetch(url);
      const body = await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
      process.stderr.write(`${name}: ${body.byteLength} bytes, ${res.headers.get('content-type')}\n`);
    }
    // Warm-up: 3 s each (JIT, page cache, connection setup).
    for (const url of Object.values(targets)) await runWrk(url, { connections, seconds: 3 });

    // Processes whose CPU time each target costs (nginx: its workers).
    const pidsOf = (name: string): number[] => {
      if (name.startsWith('nginx (1')) return childPidsNamed(nginx1.pid, 'nginx');
      if (name.startsWith('nginx (auto')) return childPidsNamed(nginxAuto.pid, 'nginx');
      const variant = variants.find((v) => name.startsWith(`${v.label}:`));
      if (variant) return [variant.service.pid];
      if (name.includes('createReadStream')) return [nodeStream!.pid];
      if (name.includes('one read')) return [nodeRead!.pid];
      return [service.pid];
    };
    const cpuOf = (name: string) => pidsOf(name).reduce((sum, pid) => sum + cpuTimeMs(pid), 0);
    const cpuPerRequest: Record<string, number[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    const results: Record<string, WrkResult[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    const loads: string[] = [];
    for (let r = 0; r < rounds; r++) {
      loads.push(loadAverage());
      for (const [name, url] of Object.entries(targets)) {
        const cpu0 = cpuOf(name);
        const res = await runWrk(url, { connections, threads: 2, seconds });
        cpuPerRequest[name].push(((cpuOf(name) - cpu0) * 1000) / res.requests);
        results[name].push(res);
        process.stderr.write(`round ${r + 1} ${name}: ${res.rps} req/s, ${res.errors} errors, avg latency ${res.latencyAvgMs} ms\n`);
      }
    }
    const med = (name: string) => median(results[name].map((x) => x.rps));
    const lines = [
      `### Download: ~100 KB JPEG original and cached derivative vs nginx (issue 5, items 1 and 3)`,
      '',
      header,
      `- Load average during the rounds: ${loads.join(' | ')}`,
      `- Command: \`npm run build && npx tsx bench/download.ts --rounds ${rounds} --seconds ${seconds}${args.jemalloc ? ' --jemalloc' : ''}${(args.variant ?? []).map((v) => ` --variant ${/\s/.test(v) ? `"${v}"` : v}`).join('')}\``,
      `- Each target: \`wrk -c${connections} -t2 -d${seconds}s <url>\`, ${rounds} rounds, targets alternated within each round (after a 3 s warm-up each); median req/s.`,
      `- File: ${width}×${height} JPEG, quality ${quality}, ${bytes.length} bytes. Derivative: \`?format=jpeg&q=${quality}\` (same size class, ${derivativeBytes} bytes), made once before the run, then served from the derivative cache.`,
      `- Service: \`node dist/src/main.js\`${args.jemalloc ? ' with LD_PRELOAD=libjemalloc.so.2' : ''}, LOG_LEVEL=warn, embedded aedes broker; every GET journals an \`imagestore.image.fetched\` event and publishes it (product behaviour, left on).`,
      `- nginx: Debian nginx-light, \`daemon off; worker_processes 1;\` (and \`auto\`, = 2 here), \`sendfile on; tcp_nopush on; access_log off;\`, root = the dir with the file.`,
      '',
      '| target | req/s per round | median req/s | MB/s (median round) | server CPU µs per request (median) | non-2xx/socket errors |',
      '|---|---|---|---|---|---|',
      ...Object.keys(targets).map((name) => {
        const xs = results[name];
        const m = med(name);
        const mid = xs.find((x) => x.rps === m) ?? xs[0];
        return `| ${name} | ${xs.map((x) => Math.round(x.rps)).join(', ')} | ${Math.round(m)} | ${round(mid.mbPerSec, 1)} | ${Math.round(median(cpuPerRequest[name]))} | ${xs.reduce((s, x) => s + x.errors, 0)} |`;
      }),
      '',
      `- **Original (name URL) vs nginx 1 worker: ${round(med('imagestore original, name URL') / med('nginx (1 worker)'))}×**; vs nginx auto: ${round(med('imagestore original, name URL') / med('nginx (auto = 2 workers)'))}× (target ≥ 0.5×).`,
      `- Original by id URL vs nginx 1 worker: ${round(med('imagestore original, id URL') / med('nginx (1 worker)'))}×; vs nginx auto: ${round(med('imagestore original, id URL') / med('nginx (auto = 2 workers)'))}×.`,
      `- **Cached derivative vs original (name URL): ${round(med('imagestore cached derivative, name URL') / med('imagestore original, name URL'))}×** (target ≥ 0.9×).`,
      ...(nodeStream ? [`- Reference, bare node:http vs nginx 1 worker: stream ${round(med('bare node:http, fs.createReadStream → pipe') / med('nginx (1 worker)'))}×, one read ${round(med('bare node:http, one read → res.end(buffer)') / med('nginx (1 worker)'))}×; imagestore original vs bare node one read: ${round(med('imagestore original, name URL') / med('bare node:http, one read → res.end(buffer)'))}×.`] : []),
      ...variants.map(({ label, main }) =>
        `- ${label} (\`${main}\`) vs this build: original ${round(med(`${label}: original, name URL`) / med('imagestore original, name URL'))}×, derivative ${round(med(`${label}: cached derivative, name URL`) / med('imagestore cached derivative, name URL'))}× (below 1 = this build is faster).`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await nginx1.stop();
    await nginxAuto.stop();
    await nodeStream?.stop();
    await nodeRead?.stop();
    for (const { service: other } of variants) await other.close();
    await service.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();

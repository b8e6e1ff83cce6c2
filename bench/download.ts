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
import { createAlbum, loadAverage, machineInfo, makeTmpDir, median, round, runWrk, startNginx, startService, uploadImage, type WrkResult } from './lib.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    jemalloc: { type: 'boolean', default: false },
    'node-args': { type: 'string', default: '' },
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
  const nginx1 = await startNginx(dir, 1);
  const nginxAuto = await startNginx(dir, 'auto');
  try {
    await createAlbum(service.api, 'bench');
    const image = await uploadImage(service.api, 'bench', 'photo.jpg', bytes);
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
    for (const [name, url] of Object.entries(targets)) {
      const res = await fetch(url);
      const body = await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`${name}: ${res.status}`);
      process.stderr.write(`${name}: ${body.byteLength} bytes, ${res.headers.get('content-type')}\n`);
    }
    // Warm-up: 3 s each (JIT, page cache, connection setup).
    for (const url of Object.values(targets)) await runWrk(url, { connections, seconds: 3 });

    const results: Record<string, WrkResult[]> = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
    const loads: string[] = [];
    for (let r = 0; r < rounds; r++) {
      loads.push(loadAverage());
      for (const [name, url] of Object.entries(targets)) {
        const res = await runWrk(url, { connections, threads: 2, seconds });
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
      `- Command: \`npm run build && npx tsx bench/download.ts --rounds ${rounds} --seconds ${seconds}${args.jemalloc ? ' --jemalloc' : ''}\``,
      `- Each target: \`wrk -c${connections} -t2 -d${seconds}s <url>\`, ${rounds} rounds, targets alternated within each round (after a 3 s warm-up each); median req/s.`,
      `- File: ${width}×${height} JPEG, quality ${quality}, ${bytes.length} bytes. Derivative: \`?format=jpeg&q=${quality}\` (same size class, ${derivativeBytes} bytes), made once before the run, then served from the derivative cache.`,
      `- Service: \`node dist/src/main.js\`${args.jemalloc ? ' with LD_PRELOAD=libjemalloc.so.2' : ''}, LOG_LEVEL=warn, embedded aedes broker; every GET journals an \`imagestore.image.fetched\` event and publishes it (product behaviour, left on).`,
      `- nginx: Debian nginx-light, \`daemon off; worker_processes 1;\` (and \`auto\`, = 2 here), \`sendfile on; tcp_nopush on; access_log off;\`, root = the dir with the file.`,
      '',
      '| target | req/s per round | median req/s | MB/s (median round) | non-2xx/socket errors |',
      '|---|---|---|---|---|',
      ...Object.keys(targets).map((name) => {
        const xs = results[name];
        const m = med(name);
        const mid = xs.find((x) => x.rps === m) ?? xs[0];
        return `| ${name} | ${xs.map((x) => Math.round(x.rps)).join(', ')} | ${Math.round(m)} | ${round(mid.mbPerSec, 1)} | ${xs.reduce((s, x) => s + x.errors, 0)} |`;
      }),
      '',
      `- **Original (name URL) vs nginx 1 worker: ${round(med('imagestore original, name URL') / med('nginx (1 worker)'))}×**; vs nginx auto: ${round(med('imagestore original, name URL') / med('nginx (auto = 2 workers)'))}× (target ≥ 0.5×).`,
      `- Original by id URL vs nginx 1 worker: ${round(med('imagestore original, id URL') / med('nginx (1 worker)'))}×; vs nginx auto: ${round(med('imagestore original, id URL') / med('nginx (auto = 2 workers)'))}×.`,
      `- **Cached derivative vs original (name URL): ${round(med('imagestore cached derivative, name URL') / med('imagestore original, name URL'))}×** (target ≥ 0.9×).`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  } finally {
    await nginx1.stop();
    await nginxAuto.stop();
    await service.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

await main();

import { spawn } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { once } from 'node:events';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'chai';
import sharp from 'sharp';
import { REPO_ROOT, spawnService, type SpawnedService } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

// The crash test. Each round starts the real service as a child process on the
// same data dir, runs a few hundred concurrent uploads (32 in flight: real PNGs
// and JPEGs of 1 KB to 2 MB, and some files that are not images, which must be
// refused with 415) and renames of acknowledged images, SIGKILLs it at a random
// moment, restarts it and checks the store against what the clients were told:
//   - every upload answered 201 is there, byte for byte (sha256 of a download),
//     under its new name if a rename was answered 200, under one of the two
//     names if the rename was in flight;
//   - an upload whose answer never came is there whole or not at all;
//   - every listed image downloads and matches what the client sent under that
//     name (no temporary or partial file is visible);
//   - after a clean stop, `fsck` (a separate process) finds nothing to repair.
// What was observed after one restart must still hold after the next one.
//
// SIGKILL does not lose the page cache, so this proves the ordering of writes,
// renames and links (atomicity), not the fsyncs (that would need a power cut).

const ROUNDS = 4;
const UPLOADS_PER_ROUND = 150;
const IN_FLIGHT = 32;
const RENAME_PROBABILITY = 0.25;
/** Share of uploads that are not images (refused with 415, must never appear). */
const JUNK_PROBABILITY = 0.1;
const ALBUMS = ['crash-a', 'crash-b'];
const API = '/api/v1';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

type State = 'pending' | 'acked' | 'unknown';

/** One image as the clients know it. `at` is where the last restart showed it (undefined: not there). */
interface Tracked {
  album: string;
  name: string;
  sha: string;
  upload: State;
  /** Not an image: the service must refuse it, whether or not the answer arrived. */
  junk: boolean;
  rename?: { to: string; state: State };
  /** Set once a restart has shown where the image is; later restarts must agree. */
  settled?: { at: string | undefined };
}

/** A random size from 1 KB to 2 MB, log-uniform: mostly small files, a few large ones. */
function randomSize(): number {
  return Math.round(Math.exp(Math.log(1024) + Math.random() * (Math.log(2 * 1024 * 1024) - Math.log(1024))));
}

/** Real PNGs and JPEGs of a few sizes (noise makes them incompressible, so some are large). */
async function makeImages(): Promise<Array<{ ext: string; data: Buffer }>> {
  const noisy = (side: number) =>
    sharp({ create: { width: side, height: side, channels: 3, background: { r: 10, g: 200, b: 90 }, noise: { type: 'gaussian', mean: 128, sigma: 60 } } });
  const sides = [16, 64, 128, 300];
  return Promise.all([
    ...sides.map(async (side) => ({ ext: 'png', data: await noisy(side).png().toBuffer() })),
    ...sides.map(async (side) => ({ ext: 'jpg', data: await noisy(side * 2).jpeg({ quality: 95 }).toBuffer() })),
  ]);
}

/** A valid PNG of about `bytes` bytes, different every time: a 4×4 image plus a tEXt chunk of random hex. */
function uniquePng(tiny: Buffer, bytes: number): Buffer {
  const iend = tiny.length - 12;
  const data = Buffer.from(`pad\0${randomBytes(Math.max(8, Math.ceil((bytes - tiny.length) / 2))).toString('hex')}`, 'latin1');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from('tEXt', 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typed) >>> 0);
  return Buffer.concat([tiny.subarray(0, iend), length, typed, crc, tiny.subarray(iend)]);
}

/** Runs `fsck --json` on the data dir as a separate process. */
async function runFsck(dataDir: string): Promise<{ code: number | null; report: { problems: unknown[]; images: number }; raw: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/fsck-main.ts', dataDir, '--json'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  const [code] = await once(child, 'close');
  clearTimeout(timer);
  return { code: code as number | null, report: JSON.parse(out), raw: out };
}

/** Runs `tasks` with at most `limit` at once; the queue may grow while it runs. */
async function pool(queue: Array<() => Promise<void>>, limit: number, stopped: () => boolean): Promise<void> {
  const worker = async () => {
    while (!stopped()) {
      const task = queue.shift();
      if (!task) return;
      await task();
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

describe('crash: SIGKILL during uploads and renames loses nothing that was acknowledged', function () {
  this.timeout(90_000);
  let parent: string;
  let dataDir: string;
  let service: SpawnedService | undefined;
  let images: Array<{ ext: string; data: Buffer }>;
  let tiny: Buffer;
  const tracked: Tracked[] = [];

  before(async () => {
    parent = await makeTmpDir('imagestore-crash-');
    dataDir = path.join(parent, 'data');
    images = await makeImages();
    tiny = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer();
  });
  after(async () => {
    await service?.kill();
    await removeDir(parent);
  });

  const start = async () => {
    service = await spawnService({ dataDir, env: { MAX_CONCURRENT_UPLOADS: String(IN_FLIGHT * 2), MAX_UPLOAD_BYTES: String(4 * 1024 * 1024) } });
    return service;
  };

  /** One round of load against `svc`, killed when `killAfterAcks` uploads have been answered (plus a random delay). */
  async function loadAndKill(svc: SpawnedService, round: number) {
    const killAfterAcks = randomInt(5, Math.floor(UPLOADS_PER_ROUND * 0.7));
    const extraDelayMs = randomInt(0, 40);
    const started = Date.now();
    let killed = false;
    let killedAtMs = -1;
    let acked = 0;
    let inFlight = 0;
    let inFlightAtKill = 0;
    let killing: Promise<unknown> | undefined;
    const kill = () => {
      if (killing) return;
      killing = new Promise((resolve) => setTimeout(resolve, extraDelayMs)).then(() => {
        killed = true;
        killedAtMs = Date.now() - started;
        inFlightAtKill = inFlight;
        return svc.kill();
      });
    };

    /** fetch, or undefined when the connection failed because of the kill (the answer never came). */
    const send = async (url: string, init: RequestInit): Promise<Response | undefined> => {
      inFlight += 1;
      try {
        return await fetch(url, init);
      } catch (err) {
        if (killing === undefined) throw err;
        return undefined;
      } finally {
        inFlight -= 1;
      }
    };
    const queue: Array<() => Promise<void>> = [];
    const rename = (image: Tracked) => async () => {
      image.rename = { to: image.name.replace(/(\.\w+)$/, '-renamed$1'), state: 'pending' };
      const res = await send(`${svc.http}${API}/albums/${image.album}/images/${encodeURIComponent(image.name)}`, {
        method: 'PATCH', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ imageName: image.rename.to }),
      });
      if (res === undefined) image.rename.state = 'unknown';
      else {
        expect(res.status, `rename ${image.name}: ${await res.text().catch(() => '(cut)')}`).to.equal(200);
        image.rename.state = 'acked';
      }
    };
    const upload = (i: number) => async () => {
      const dice = Math.random();
      const junk = dice < JUNK_PROBABILITY;
      const picked = dice > 0.8 ? images[i % images.length] : undefined;
      const data = junk ? randomBytes(randomSize()) : (picked?.data ?? uniquePng(tiny, randomSize()));
      const ext = junk ? 'bin' : (picked?.ext ?? 'png');
      const image: Tracked = { album: ALBUMS[i % ALBUMS.length], name: `r${round}-${i}.${ext}`, sha: sha256(data), upload: 'pending', junk };
      tracked.push(image);
      const form = new FormData();
      form.append('file', new Blob([data]), image.name);
      const res = await send(`${svc.http}${API}/albums/${image.album}/images`, { method: 'POST', body: form });
      if (res === undefined) {
        image.upload = 'unknown';
        return;
      }
      // Any answer that did arrive is the right one: the kill can cut answers, not change them.
      expect(res.status, `upload ${image.name}: ${await res.text().catch(() => '(cut)')}`).to.equal(junk ? 415 : 201);
      if (junk) return;
      image.upload = 'acked';
      acked += 1;
      if (acked === killAfterAcks) kill();
      if (Math.random() < RENAME_PROBABILITY) queue.unshift(rename(image)); // next in line, so renames race the kill too
    };
    for (let i = 0; i < UPLOADS_PER_ROUND; i++) queue.push(upload(i));
    await pool(queue, IN_FLIGHT, () => killed);
    kill(); // in case the load finished first (it should not)
    await killing;
    return { killAfterAcks, killedAtMs, inFlightAtKill, ranMs: Date.now() - started };
  }

  /** Checks the restarted service against every tracked image, then records where each one is. */
  async function verify(svc: SpawnedService) {
    const byName = new Map<string, { image: Tracked; sha: string }>();
    for (const image of tracked) {
      byName.set(`${image.album}/${image.name}`, { image, sha: image.sha });
      if (image.rename) byName.set(`${image.album}/${image.rename.to}`, { image, sha: image.sha });
    }
    const found = new Map<Tracked, string[]>();
    const downloads: Array<() => Promise<void>> = [];
    for (const album of ALBUMS) {
      const res = await fetch(`${svc.http}${API}/albums/${album}/images?details=true`);
      expect(res.status).to.equal(200);
      const listing = (await res.json()) as { imageList: string[]; images: Array<{ name: string; sha256: string; size: number }> };
      expect(listing.images.map((i) => i.name)).to.deep.equal(listing.imageList);
      for (const info of listing.images) {
        const known = byName.get(`${album}/${info.name}`);
        expect(known, `${album}/${info.name} is listed but no client sent it`).to.not.equal(undefined);
        found.set(known!.image, [...(found.get(known!.image) ?? []), info.name]);
        expect(info.sha256, `${album}/${info.name}: metadata`).to.equal(known!.sha);
        downloads.push(async () => {
          const got = await fetch(`${svc.http}${API}/albums/${album}/images/${encodeURIComponent(info.name)}`);
          expect(got.status, `${album}/${info.name}`).to.equal(200);
          const body = Buffer.from(
            await got.arrayBuffer().catch((err: Error) => {
              throw new Error(`${album}/${info.name}: download cut short (${err.message}); the file does not match its metadata`);
            }),
          );
          expect(body.length, `${album}/${info.name}: size`).to.equal(info.size);
          expect(sha256(body), `${album}/${info.name}: bytes`).to.equal(known!.sha);
        });
      }
    }
    await pool(downloads, 16, () => false);

    let present = 0;
    for (const image of tracked) {
      const names = found.get(image) ?? [];
      const id = `${image.album}/${image.name} (upload ${image.upload}, rename ${image.rename?.state ?? 'none'})`;
      expect(names.length, `${id} found under ${names.join(' and ')}`).to.be.at.most(1);
      const at = names[0];
      const current = image.settled ? image.settled.at : image.name;
      let allowed: Array<string | undefined>;
      if (image.junk) allowed = [undefined];
      else if (image.upload !== 'acked' && !image.settled) allowed = [undefined, image.name]; // never answered: whole or absent
      else if (current === undefined) allowed = [undefined]; // absent after an earlier restart: stays absent
      else if (!image.rename || image.rename.state === 'pending') allowed = [current];
      else if (image.rename.state === 'acked') allowed = [image.rename.to];
      else allowed = [current, image.rename.to]; // rename in flight at the kill
      expect(allowed, `${id} found at ${at ?? 'nowhere'}`).to.include(at);
      image.settled = { at };
      if (at !== undefined) {
        image.name = at;
        present += 1;
      }
      image.rename = undefined;
      image.upload = 'acked';
    }
    return present;
  }

  it(`keeps every acknowledged upload and rename across ${ROUNDS} SIGKILLs at random moments`, async () => {
    let svc = await start();
    for (const album of ALBUMS) {
      const res = await fetch(`${svc.http}${API}/albums`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ albumName: album }) });
      expect(res.status).to.equal(201);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const before = tracked.length;
      const stats = await loadAndKill(svc, round);
      const mine = tracked.slice(before);
      const acked = mine.filter((t) => t.upload === 'acked').length;
      const unknown = mine.filter((t) => t.upload === 'unknown' && !t.junk).length;
      const junk = mine.filter((t) => t.junk).length;
      const renamesAcked = mine.filter((t) => t.rename?.state === 'acked').length;
      const renamesCut = mine.filter((t) => t.rename?.state === 'unknown').length;

      const restarted = Date.now();
      svc = await start();
      const restartMs = Date.now() - restarted;
      const recovered = Number(svc.ready.recoveryProblems);
      const present = await verify(svc);
      const verifyMs = Date.now() - restarted - restartMs;
      expect(await svc.stop(), 'clean stop').to.deep.equal({ code: 0, signal: null });
      const fsck = await runFsck(dataDir);
      expect(fsck.code, fsck.raw).to.equal(0);
      expect(fsck.report.problems, 'fsck after recovery').to.deep.equal([]);
      expect(fsck.report.images).to.equal(present);

      console.log(
        `      round ${round + 1}: killed at ${stats.killedAtMs} ms (after ${stats.killAfterAcks} acks, ${stats.inFlightAtKill} requests in flight); ` +
          `${mine.length} uploads sent, ${acked} acked, ${unknown} cut, ${junk} not images; renames ${renamesAcked} acked, ${renamesCut} cut; ` +
          `recovery fixed ${recovered} problems; ${present} images in the store; restart ${restartMs} ms, check ${verifyMs} ms`,
      );
      if (round < ROUNDS - 1) svc = await start();
    }
  });
});

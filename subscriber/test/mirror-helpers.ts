import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { pino } from 'pino';
import type supertest from 'supertest';
import { defaultConfig, type Config } from '../../src/config.js';
import { makePng } from '../../test/helpers/images.js';
import { loadSubscriberConfig } from '../src/config.js';
import { RESERVED_PREFIX } from '../src/mirror/fs-ops.js';
import { Mirror, type MirrorOptions } from '../src/mirror/mirror.js';
import { startSubscriber, type Subscriber } from '../src/subscriber.js';
import { waitFor } from '../../test/helpers/wait-for.js';

/**
 * A store's content as sorted lines: `album/` for each album, `album/image <sha256>` for each image.
 * Lines rather than objects, so that names such as "__proto__" compare like any other.
 */
export type Snapshot = string[];

/** A small PNG of its own per seed (0-1599), so that every image has its own sha256. */
export function distinctPng(seed: number): Promise<Buffer> {
  return makePng(8 + (seed % 40), 8 + Math.floor(seed / 40), { r: (seed * 37) % 256, g: 90, b: 200 });
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const enc = encodeURIComponent;

/** The service's content from its listings (names and the sha256 it reports). */
export async function serviceSnapshot(httpUrl: string): Promise<Snapshot> {
  const lines: string[] = [];
  const albums = (await getJson(`${httpUrl}/api/v1/albums`)) as { albumList: string[] };
  for (const album of albums.albumList) {
    lines.push(`${album}/`);
    const listing = (await getJson(`${httpUrl}/api/v1/albums/${enc(album)}/images?details=true`)) as { images: Array<{ name: string; sha256: string }> };
    for (const image of listing.images) lines.push(`${album}/${image.name} ${image.sha256}`);
  }
  return lines.sort();
}

/** The service's content with every image downloaded and hashed here (not trusting its listing). */
export async function downloadedSnapshot(httpUrl: string): Promise<Snapshot> {
  const lines: string[] = [];
  for (const line of await serviceSnapshot(httpUrl)) {
    if (line.endsWith('/')) {
      lines.push(line);
      continue;
    }
    const [album, image] = splitOnce(line.slice(0, line.lastIndexOf(' ')), '/');
    const res = await fetch(`${httpUrl}/api/v1/albums/${enc(album)}/images/${enc(image)}`);
    if (!res.ok) throw new Error(`download of ${album}/${image} answered ${res.status}`);
    lines.push(`${album}/${image} ${sha256(Buffer.from(await res.arrayBuffer()))}`);
  }
  return lines.sort();
}

/** The mirror directory's content, every file hashed; the mirror's own files are left out. */
export async function mirrorSnapshot(dir: string): Promise<Snapshot> {
  const lines: string[] = [];
  for (const album of await fs.readdir(dir, { withFileTypes: true })) {
    if (album.name.toLowerCase().startsWith(RESERVED_PREFIX)) continue;
    if (!album.isDirectory()) {
      lines.push(`${album.name} (not a directory)`);
      continue;
    }
    lines.push(`${album.name}/`);
    for (const image of await fs.readdir(path.join(dir, album.name), { withFileTypes: true })) {
      const file = path.join(dir, album.name, image.name);
      lines.push(image.isFile() ? `${album.name}/${image.name} ${sha256(await fs.readFile(file))}` : `${album.name}/${image.name} (not a file)`);
    }
  }
  return lines.sort();
}

/**
 * Waits until the mirror directory holds exactly what the service lists (same names, same sha256).
 * @returns the converged snapshot
 */
export async function waitForConvergence(dir: string, httpUrl: string, timeoutMs = 10_000): Promise<Snapshot> {
  let last: { local: Snapshot; remote: Snapshot } | undefined;
  try {
    return await waitFor(
      'the mirror to match the service',
      async () => {
        try {
          const [local, remote] = await Promise.all([mirrorSnapshot(dir), serviceSnapshot(httpUrl)]);
          last = { local, remote };
          return JSON.stringify(local) === JSON.stringify(remote) && local;
        } catch {
          return false; // something vanished while we read it: look again
        }
      },
      timeoutMs,
      50,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\nmirror:  ${JSON.stringify(last?.local)}\nservice: ${JSON.stringify(last?.remote)}`);
  }
}

/** A port free on 127.0.0.1 right now (bind port 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Service config overrides with fixed, currently free HTTP and MQTT ports on 127.0.0.1, so that a
 * service restarted with them is found again by a mirror that reconnects.
 */
export async function fixedPorts(): Promise<Pick<Config, 'http' | 'mqtt'>> {
  const base = defaultConfig();
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  return { http: { ...base.http, host: '127.0.0.1', port: httpPort }, mqtt: { ...base.mqtt, port: mqttPort } };
}

/** A mirror running in this process behind a real subscriber (real mqtt.js client, real fetch). */
export interface RunningMirror {
  mirror: Mirror;
  subscriber: Subscriber;
  /** Every log line, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The event lines the subscriber printed. */
  lines: string[];
  /** Waits until the mirror's queue is empty, failing after `timeoutMs`. */
  idle(timeoutMs?: number): Promise<void>;
  /** Waits for `count` log lines with this `msg`. */
  waitForLog(msg: string, count?: number, timeoutMs?: number): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
}

/**
 * Starts the subscriber in mirror mode in this process, from command-line arguments
 * (e.g. `['--url', mqttUrl, '--mirror', dir, '--api', httpUrl]`), and waits until it has subscribed.
 */
export async function startMirror(
  args: string[],
  options: { waitSubscribed?: boolean; env?: NodeJS.ProcessEnv; mirror?: Pick<MirrorOptions, 'reconcileRetry'> } = {},
): Promise<RunningMirror> {
  const config = loadSubscriberConfig(args, options.env ?? {});
  const logs: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const mirror = await Mirror.open({ ...config.mirror!, albums: config.filter.albums, log, ...options.mirror });
  const lines: string[] = [];
  const subscriber = startSubscriber({ config, log, write: (line) => lines.push(line), sink: mirror });
  const matching = (msg: string) => logs.filter((l) => l.msg === msg);
  const running: RunningMirror = {
    mirror,
    subscriber,
    logs,
    lines,
    async idle(timeoutMs = 8000) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the mirror was still busy after ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([mirror.whenIdle(), timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    waitForLog: (msg, count = 1, timeoutMs = 8000) =>
      waitFor(`${count} "${msg}" log line(s)`, () => matching(msg).length >= count && matching(msg), timeoutMs),
    close: () => subscriber.close(),
  };
  if (options.waitSubscribed !== false) await running.waitForLog('subscribed');
  return running;
}

/**
 * The REST calls the tests make to change a store, each expecting success.
 * @param apiKey sent as `Authorization: Bearer` when given
 */
export function storeApi(http: ReturnType<typeof supertest>, apiKey?: string) {
  const album = (name: string) => `/api/v1/albums/${enc(name)}`;
  const auth = { Authorization: apiKey ? `Bearer ${apiKey}` : '' };
  const headers = apiKey ? auth : {};
  return {
    createAlbum: (name: string) => http.post('/api/v1/albums').set(headers).send({ albumName: name }).expect(201),
    renameAlbum: (from: string, to: string) => http.patch(album(from)).set(headers).send({ albumName: to }).expect(200),
    deleteAlbum: (name: string) => http.delete(album(name)).set(headers).expect(200),
    upload: (albumName: string, image: string, bytes: Buffer) =>
      http.post(`${album(albumName)}/images`).set(headers).attach('file', bytes, image).expect(201),
    renameImage: (albumName: string, from: string, to: string) =>
      http.patch(`${album(albumName)}/images/${enc(from)}`).set(headers).send({ imageName: to }).expect(200),
    deleteImage: (albumName: string, image: string) => http.delete(`${album(albumName)}/images/${enc(image)}`).set(headers).expect(200),
  };
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return res.json();
}

function splitOnce(text: string, sep: string): [string, string] {
  const at = text.indexOf(sep);
  return [text.slice(0, at), text.slice(at + 1)];
}

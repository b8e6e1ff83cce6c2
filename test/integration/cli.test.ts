import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import sharp from 'sharp';
import type { Command } from 'commander';
import { buildProgram, runCli } from '../../src/cli/program.js';
import { ImageStoreClient } from '../../src/client/index.js';
import { defaultConfig } from '../../src/config.js';
import { ApiKeys } from '../../src/security/api-keys.js';
import { sha256 } from '../helpers/api.js';
import { startImageServer, type ImageServer } from '../helpers/image-server.js';
import { makePng } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

/** What a CLI run printed, and how it ended. */
interface CliRun {
  code: number | null;
  stdout: string;
  /** stdout as bytes (image downloads to `-o -`). */
  stdoutBytes: Buffer;
  stderr: string;
}

/** A running CLI process, for commands that wait (watch). */
interface CliProcess {
  stdout: Buffer[];
  stderr: string[];
  done: Promise<CliRun>;
}

/**
 * Starts `node --import tsx src/cli/main.ts ...args` with IMAGESTORE_* taken from `env` only
 * (none inherited); it is killed (by its PID) after `timeoutMs`.
 */
function startCli(args: string[], env: Record<string, string>, timeoutMs = 30_000): CliProcess {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IMAGESTORE_')));
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: REPO_ROOT, env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const stdout: Buffer[] = [];
  const stderr: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliRun>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      const bytes = Buffer.concat(stdout);
      resolve({ code, stdout: bytes.toString('utf8'), stdoutBytes: bytes, stderr: stderr.join('') });
    });
  });
  return { stdout, stderr, done };
}

/** Every command path of the program (`[]`, `['albums']`, `['albums', 'ls']`, …). */
function commandPaths(command: Command, prefix: string[] = []): string[][] {
  return [prefix, ...command.commands.flatMap((c) => commandPaths(c, [...prefix, c.name()]))];
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Parses one JSON document per line. */
function jsonLines(text: string): Array<Record<string, unknown>> {
  return text.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('imagestore CLI, as a real process against a running service', function () {
  let svc: TestService;
  let client: ImageStoreClient;
  let env: Record<string, string>;
  let tmp: string;
  const cli = (...args: string[]) => startCli(args, env).done;

  before(async () => {
    const base = defaultConfig();
    svc = await startTestService({ config: { imports: { ...base.imports, allowHosts: ['127.0.0.1'], retryBaseDelayMs: 10 } } });
    client = new ImageStoreClient({ baseUrl: svc.service.httpUrl, mqttUrl: svc.service.mqttUrl });
    env = { IMAGESTORE_URL: svc.service.httpUrl, IMAGESTORE_MQTT_URL: svc.service.mqttUrl };
    tmp = await makeTmpDir('imagestore-cli-');
  });
  after(async () => {
    await svc.close();
    await removeDir(tmp);
  });

  describe('usage and help', () => {
    it('prints --help for every command and exits 0 (in process, every command; one as a process)', async () => {
      const paths = commandPaths(buildProgram({ stdout: new PassThrough(), stderr: new PassThrough() }));
      expect(paths.length).to.be.greaterThan(15);
      for (const p of paths) {
        const out = new PassThrough();
        const text: string[] = [];
        out.on('data', (c: Buffer) => text.push(c.toString()));
        const code = await runCli([...p, '--help'], { stdout: out, stderr: new PassThrough() });
        expect(code, p.join(' ')).to.equal(0);
        expect(text.join(''), p.join(' ')).to.match(new RegExp(`^Usage: imagestore${p.map((w) => ` ${w}`).join('')}\\b`));
      }
      const run = await cli('upload', '--help');
      expect(run.code).to.equal(0);
      expect(run.stdout).to.match(/^Usage: imagestore upload \[options\] <dir>/);
      expect(run.stdout).to.match(/--concurrency <n>/);
    });

    it('exits 2 on usage errors: unknown command (as a process), missing argument, bad option value', async () => {
      const unknown = await cli('albums', 'frobnicate');
      expect(unknown.code).to.equal(2);
      expect(unknown.stderr).to.match(/unknown command 'frobnicate'/);
      const inProcess = async (...args: string[]) => {
        const stderr = new PassThrough();
        const text: string[] = [];
        stderr.on('data', (c: Buffer) => text.push(c.toString()));
        return { code: await runCli(args, { stdout: new PassThrough(), stderr }), stderr: text.join('') };
      };
      const missing = await inProcess('images', 'rename', 'only-one');
      expect(missing.code).to.equal(2);
      expect(missing.stderr).to.match(/missing required argument/);
      const bad = await inProcess('upload', tmp, '--album', 'x', '--concurrency', 'lots');
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.match(/--concurrency <n>.*invalid.*expected an integer 1-64/);
    });

    it('takes the service URL from --url over IMAGESTORE_URL, and exits 1 when it cannot reach it', async () => {
      const nowhere = { ...env, IMAGESTORE_URL: `http://127.0.0.1:${await closedPort()}` };
      const [unreachable, flag] = await Promise.all([
        startCli(['albums', 'ls'], nowhere).done,
        startCli(['--url', svc.service.httpUrl, 'albums', 'ls', '--json'], nowhere).done,
      ]);
      expect(unreachable.code).to.equal(1);
      expect(unreachable.stderr).to.match(/^error: cannot reach http:\/\/127\.0\.0\.1:\d+\/api\/v1\/albums\?details=true: ECONNREFUSED$/m);
      expect(flag.code).to.equal(0);
      expect(jsonLines(flag.stdout)[0]).to.have.property('albumList');
    });
  });

  describe('albums and images', () => {
    it('albums create, ls, rename, rm; a failure exits 1 with the service\'s message (JSON with --json)', async () => {
      for (const name of ['cli-taken', 'cli-old', 'cli-doomed']) await client.createAlbum(name);
      const [created, again, renamed, listed, removed] = await Promise.all([
        cli('albums', 'create', 'cli-new'),
        cli('--json', 'albums', 'create', 'cli-taken'),
        cli('albums', 'rename', 'cli-old', 'cli-renamed', '--json'),
        cli('albums', 'ls', '--json'),
        cli('albums', 'rm', 'cli-doomed'),
      ]);
      expect(created).to.include({ code: 0, stdout: 'cli-new album added\n' });
      expect(again.code).to.equal(1);
      expect(jsonLines(again.stdout)[0]).to.include({ status: 409, code: 'conflict', error: 'cli-taken album already present' });
      expect(again.stderr).to.equal('error: cli-taken album already present (HTTP 409)\n');
      expect(jsonLines(renamed.stdout)[0]).to.deep.include({ message: 'album cli-old modified to cli-renamed' });
      expect(jsonLines(listed.stdout)[0].albumList as string[]).to.include('cli-taken');
      expect(removed).to.include({ code: 0, stdout: 'cli-doomed album deleted\n' });
      expect((await client.listAlbums()).albumList).to.include.members(['cli-new', 'cli-renamed']).and.not.include.members(['cli-old', 'cli-doomed']);
    });

    it('images upload, ls, meta, get (with a transform, to a file and to stdout), rename, rm', async () => {
      const png = await makePng(40, 30);
      const file = path.join(tmp, 'pic.png');
      await fs.writeFile(file, png);
      await client.createAlbum('cli-images');
      for (const name of ['pic.png', 'old.png', 'doomed.png']) await client.uploadImage('cli-images', png, { name });
      const other = path.join(tmp, 'new.png');
      await fs.writeFile(other, await makePng(8, 8));

      const out = path.join(tmp, 'small.webp');
      const [uploaded, ls, meta, get, raw, renamed, removed] = await Promise.all([
        cli('images', 'upload', 'cli-images', other, '--json'),
        cli('images', 'ls', 'cli-images', '--json'),
        cli('images', 'meta', 'cli-images', 'pic.png'),
        cli('images', 'get', 'cli-images', 'pic.png', '--width', '20', '--format', 'webp', '-o', out),
        cli('images', 'get', 'cli-images', 'pic.png', '-o', '-'),
        cli('images', 'rename', 'cli-images', 'old.png', 'renamed.png'),
        cli('images', 'rm', 'cli-images', 'doomed.png'),
      ]);
      expect(uploaded.code).to.equal(0);
      expect((jsonLines(uploaded.stdout)[0].image as { name: string; sha256: string }).name).to.equal('new.png');
      expect((jsonLines(ls.stdout)[0].images as Array<{ name: string }>).map((i) => i.name)).to.include('pic.png');
      expect(meta.stdout).to.match(/^width: +40$/m);
      expect(meta.stdout).to.match(new RegExp(`^sha256: +${sha256(png)}$`, 'm'));
      expect(get.code).to.equal(0);
      expect(get.stdout).to.match(/^pic\.png → .*small\.webp \(\d+ B, image\/webp\)$/m);
      expect(await sharp(out).metadata()).to.include({ format: 'webp', width: 20, height: 15 });
      expect(raw.stdoutBytes.equals(png)).to.equal(true);
      expect(renamed.stdout).to.equal('old.png image modified to renamed.png\n');
      expect(removed.stdout).to.equal('doomed.png image deleted from album cli-images\n');
      expect((await client.listImages('cli-images')).imageList).to.deep.equal(['new.png', 'pic.png', 'renamed.png']);
    });
  });

  describe('upload and download of directories', () => {
    let dir: string;
    let expected: Map<string, string>;

    before(async () => {
      // 200 distinct small PNGs in 4 nested directories, plus a file that is not an image.
      dir = path.join(tmp, 'photos');
      expected = new Map();
      for (let i = 0; i < 200; i += 1) {
        const sub = path.join(dir, `set-${i % 4}`, i % 8 < 4 ? '' : 'deeper');
        await fs.mkdir(sub, { recursive: true });
        const png = await sharp({ create: { width: 6, height: 6, channels: 3, background: { r: i, g: 255 - i, b: (i * 7) % 256 } } }).png().toBuffer();
        await fs.writeFile(path.join(sub, `img-${String(i).padStart(3, '0')}.png`), png);
        expected.set(`img-${String(i).padStart(3, '0')}.png`, sha256(png));
      }
      await fs.writeFile(path.join(dir, 'README.txt'), 'not an image');
    });

    it('uploads 200 images with a progress line and a summary, then skips all 200 the second time', async () => {
      const first = await cli('upload', dir, '--album', 'cli-bulk', '--concurrency', '8', '--progress', 'plain', '--json');
      expect(first.code, first.stderr).to.equal(0);
      const summary = jsonLines(first.stdout)[0];
      expect(summary).to.include({ album: 'cli-bulk', createdAlbum: true, files: 200, stored: 200, skipped: 0, failed: 0 });
      const lines = first.stderr.trim().split('\n');
      expect(lines[0]).to.match(/^ignoring 1 file\(s\) that are not images by extension \(first: README\.txt\)$/);
      const progress = lines.slice(1);
      for (const line of progress) expect(line).to.match(/^upload \d+\/200 files: \d+ stored, 0 skipped, 0 failed \| [\d.]+ (B|KiB|MiB) \| [\d.]+ (B|KiB|MiB)\/s$/);
      const done = progress.map((l) => Number(/^upload (\d+)/.exec(l)?.[1]));
      expect(done).to.deep.equal([...done].sort((a, b) => a - b));
      expect(progress.length).to.be.within(3, 40);
      expect(progress.at(-1)).to.match(/^upload 200\/200 files: 200 stored, 0 skipped, 0 failed/);

      const stored = await client.listAllImages('cli-bulk');
      expect(new Map(stored.map((i) => [i.name, i.sha256]))).to.deep.equal(expected);

      const second = await cli('upload', dir, '--album', 'cli-bulk', '--progress', 'tty');
      expect(second.code).to.equal(0);
      expect(second.stdout).to.match(/^200 files in [\d.]+ s: 0 stored, 200 skipped \(already in cli-bulk\), 0 failed; 0 B at 0 B\/s\n$/);
      // A TTY line is redrawn in place (CR + erase line) and ended once with a newline.
      expect(second.stderr).to.include('\r\x1b[2Kupload 200/200 files: 0 stored, 200 skipped, 0 failed');
      expect(second.stderr.endsWith('\n')).to.equal(true);
      expect(second.stderr.split('\n').filter(Boolean)).to.have.length(2);
    });

    it('exits 1 and names the file when an upload fails, storing the others', async () => {
      const mixed = path.join(tmp, 'mixed');
      await fs.mkdir(mixed);
      await fs.writeFile(path.join(mixed, 'good.png'), await makePng(5, 5));
      await fs.writeFile(path.join(mixed, 'broken.png'), 'this is not a PNG');
      const run = await cli('upload', mixed, '--album', 'cli-mixed', '--progress', 'none');
      expect(run.code).to.equal(1);
      expect(run.stdout).to.match(/^2 files in [\d.]+ s: 1 stored, 0 skipped \(already in cli-mixed\), 1 failed;/);
      expect(run.stderr).to.match(/^failed: broken\.png: .+$/m);
      expect((await client.listImages('cli-mixed')).imageList).to.deep.equal(['good.png']);
    });

    it('downloads an album into a directory, then skips the files already there', async () => {
      await client.createAlbum('cli-down');
      const pngs = await Promise.all([1, 2, 3].map((n) => makePng(4 + n, 4)));
      for (const [n, png] of pngs.entries()) await client.uploadImage('cli-down', png, { name: `d${n}.png` });
      const target = path.join(tmp, 'down');
      const first = await cli('download', '--album', 'cli-down', target, '--json', '--progress', 'plain');
      expect(first.code).to.equal(0);
      expect(jsonLines(first.stdout)[0]).to.include({ images: 3, downloaded: 3, skipped: 0, failed: 0 });
      expect(first.stderr).to.match(/^download 3\/3 images: 3 downloaded, 0 skipped, 0 failed/m);
      for (const [n, png] of pngs.entries()) expect((await fs.readFile(path.join(target, `d${n}.png`))).equals(png)).to.equal(true);
      const second = await cli('download', '--album', 'cli-down', target, '--json', '--progress', 'none');
      expect(jsonLines(second.stdout)[0]).to.include({ downloaded: 0, skipped: 3 });
      expect(second.stderr).to.equal('');
    });
  });

  describe('import, watch and fsck', () => {
    let images: ImageServer;
    before(async () => {
      images = await startImageServer();
    });
    after(async () => images.close());

    it('import --wait shows progress and exits 0 when every URL is stored, 1 when one failed', async () => {
      await client.createAlbum('cli-import');
      const [ok, bad, started] = await Promise.all([
        cli('import', `${images.url}/red/r.png`, `${images.url}/green/g.png`, '--album', 'cli-import', '--wait', '--interval-ms', '50', '--json', '--progress', 'plain'),
        cli('import', `${images.url}/blue/b.jpg`, `${images.url}/text/t.png`, '--album', 'cli-import', '--wait', '--interval-ms', '50'),
        cli('import', `${images.url}/red/again.png`, '--album', 'cli-import', '--json'),
      ]);
      expect(ok.code, ok.stderr).to.equal(0);
      const job = jsonLines(ok.stdout)[0];
      expect(job).to.include({ state: 'done', album: 'cli-import' });
      expect(job.counts).to.include({ stored: 2, failed: 0 });
      expect(ok.stderr).to.match(/^import job \S+: 2 URL\(s\) into cli-import$/m);
      expect(ok.stderr).to.match(/^import 2\/2 URLs: 2 stored, 0 cancelled, 0 failed/m);

      expect(bad.code).to.equal(1);
      expect(bad.stdout).to.match(/^import job \S+ done: 1 stored, 1 failed, 0 cancelled, 0 pending of 2/);
      expect(bad.stderr).to.match(/^failed: http:\/\/127\.0\.0\.1:\d+\/text\/t\.png: .+$/m);

      expect(started.code).to.equal(0);
      const id = jsonLines(started.stdout)[0].id as string;
      await client.waitForJob(id, { intervalMs: 50, timeoutMs: 10_000 });
      const [list, show] = await Promise.all([cli('imports', 'ls', '--json'), cli('imports', 'show', id)]);
      expect((jsonLines(list.stdout)[0].jobs as Array<{ id: string }>).map((j) => j.id)).to.include(id);
      expect(show.stdout).to.match(new RegExp(`^${id}  done  cli-import  1 stored`));
      expect(show.stdout).to.match(/^ {2}stored .* → again\.png \(/m);
    });

    it('imports cancel stops a running job', async () => {
      await client.createAlbum('cli-cancel');
      const job = await client.createImport('cli-cancel', [`${images.url}/hang/cli-cancel/h.png`]);
      const run = await cli('imports', 'cancel', job.id);
      images.release('cli-cancel');
      expect(run.code).to.equal(0);
      expect(run.stdout).to.match(new RegExp(`^import job ${job.id}: cancelled \\(0 stored, 0 failed, 1 cancelled`));
      expect((await client.getImport(job.id)).state).to.equal('cancelled');
    });

    it('watch prints events live as JSON lines and stops after --count', async () => {
      const watch = startCli(['watch', '--json', '--count', '2', '--album', 'cli-watch'], env);
      await waitFor('the watch subscription', () => watch.stderr.join('').includes('watching events on'), 15_000);
      await client.createAlbum('cli-watch-other');
      await client.createAlbum('cli-watch');
      await client.uploadImage('cli-watch', await makePng(), { name: 'w.png' });
      const run = await watch.done;
      expect(run.code).to.equal(0);
      const events = jsonLines(run.stdout);
      expect(events.map((e) => e.type)).to.deep.equal(['imagestore.album.created', 'imagestore.image.created']);
      expect(events[1]).to.deep.include({ specversion: '1.0', subject: 'albums/cli-watch/images/w.png' });
    });

    it('fsck reports a clean store and exits 0', async () => {
      const [text, json] = await Promise.all([cli('fsck'), cli('fsck', '--verify', '--json')]);
      expect(text.code).to.equal(0);
      expect(text.stdout).to.match(/^\d+ albums, \d+ images, 0 problem\(s\)\n$/);
      expect(jsonLines(json.stdout)[0]).to.include.keys('albums', 'images', 'problems');
    });
  });
});

describe('imagestore CLI with an API key', () => {
  const ADMIN = 'admin-key-for-cli-tests-000001';
  let svc: TestService;
  before(async () => {
    const base = defaultConfig();
    svc = await startTestService({ config: { security: { ...base.security, apiKeys: ApiKeys.parse(`admin:${ADMIN}`, undefined).keys } } });
  });
  after(async () => svc.close());

  it('is refused without a key (exit 1, 401) and works with the key from IMAGESTORE_KEY', async () => {
    const env = { IMAGESTORE_URL: svc.service.httpUrl };
    const [without, withKey] = await Promise.all([
      startCli(['albums', 'create', 'k'], env).done,
      startCli(['fsck', '--json'], { ...env, IMAGESTORE_KEY: ADMIN }).done,
    ]);
    expect(without.code).to.equal(1);
    expect(without.stderr).to.equal('error: an API key is required (Authorization: Bearer <key>) (HTTP 401)\n');
    expect(withKey.code).to.equal(0);
    expect(jsonLines(withKey.stdout)[0]).to.deep.include({ problems: [] });
  });
});

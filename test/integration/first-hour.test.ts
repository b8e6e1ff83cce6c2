import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import { spawnService, REPO_ROOT } from '../helpers/spawn-service.js';
import { startServiceWithEnv, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const VERSION = JSON.parse(readFileSync(`${REPO_ROOT}/package.json`, 'utf8')).version as string;

/** Runs `node --import tsx src/main.ts ARGS` to its end (bounded), with a temp data dir. */
async function runMain(args: string[], dataDir: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], {
    cwd: REPO_ROOT, env: { ...process.env, IMAGE_DB_DIR: dataDir, PORT: '0', MQTT_PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const [code] = await once(child, 'close');
  clearTimeout(timer);
  return { code, stdout, stderr };
}

// Issue 15, item 6: what a newcomer tries first.
describe('the first hour: conveniences (issue 15)', function () {
  this.timeout(120_000);

  describe('HTTP', () => {
    let svc: TestService;
    before(async () => {
      svc = await startServiceWithEnv({});
    });
    after(async () => svc?.close());

    it('GET / is the web gallery (and, with UI_ENABLED=false, leads to Swagger UI)', async () => {
      const res = await svc.http.get('/').expect(200).expect('Content-Type', /text\/html/);
      expect(res.text).to.match(/<script[^>]+src="\/ui\//);
      const noUi = await startServiceWithEnv({ UI_ENABLED: 'false' });
      try {
        const redirect = await noUi.http.get('/').expect(302);
        expect(redirect.headers.location).to.equal('/swagger');
      } finally {
        await noUi.close();
      }
    });

    it('GET /api/v1/version and /livez tell the version', async () => {
      const version = await svc.http.get('/api/v1/version').expect(200);
      expect(version.body).to.deep.equal({ name: 'imagestore', version: 'test' });
      const live = await svc.http.get('/livez').expect(200);
      expect(live.body).to.deep.equal({ status: 'ok', version: 'test' });
    });

    it('GET / and /api/v1/version need no key when keys are configured, like /livez', async () => {
      const keyed = await startServiceWithEnv({ API_KEYS: 'read:first-hour-read-key-0123456789' });
      try {
        await keyed.http.get('/').expect(200);
        await keyed.http.get('/api/v1/version').expect(200);
        await keyed.http.get('/api/v1/albums').expect(401);
      } finally {
        await keyed.close();
      }
    });
  });

  describe('safe by default (item 1)', () => {
    it('listens on loopback when HOST is not set, without the open-service warning', async () => {
      const dataDir = await makeTmpDir();
      const svc = await spawnService({ dataDir, env: { HOST: '', MQTT_HOST: '' }, readyTimeoutMs: 60_000 });
      try {
        expect(svc.http).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
        expect(svc.mqtt).to.match(/^mqtt:\/\/127\.0\.0\.1:\d+$/);
        expect(svc.logs('no API keys configured and listening beyond loopback: anyone who can reach this port can change the store (set API_KEYS or API_KEYS_FILE)')).to.deep.equal([]);
      } finally {
        await svc.stop();
        await removeDir(dataDir);
      }
    });

    it('still warns when told to listen beyond loopback without keys', async () => {
      const dataDir = await makeTmpDir();
      const svc = await spawnService({ dataDir, env: { HOST: '0.0.0.0', MQTT_HOST: '127.0.0.1' }, readyTimeoutMs: 60_000 });
      try {
        const deadline = Date.now() + 5000;
        const warned = () => svc.stdout.some((l) => l.includes('listening beyond loopback'));
        while (!warned() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(warned()).to.equal(true);
      } finally {
        await svc.stop();
        await removeDir(dataDir);
      }
    });
  });

  describe('the server command line', () => {
    let dataDir: string;
    before(async () => {
      dataDir = await makeTmpDir();
    });
    after(async () => removeDir(dataDir));

    it('--version prints the package version and exits 0 without starting', async () => {
      const { code, stdout } = await runMain(['--version'], dataDir);
      expect({ code, stdout }).to.deep.equal({ code: 0, stdout: `${VERSION}\n` });
    });

    it('--help prints the usage and the main variables, and exits 0', async () => {
      const { code, stdout } = await runMain(['--help'], dataDir);
      expect(code).to.equal(0);
      expect(stdout).to.match(/^Usage: /).and.to.include('PORT / HOST').and.to.include('README.md');
    });

    it('refuses an unknown argument with exit 2 and a hint', async () => {
      const { code, stderr } = await runMain(['--port=8080'], dataDir);
      expect(code).to.equal(2);
      expect(stderr).to.match(/unexpected argument "--port=8080": the service is configured by environment variables \(see --help\)/);
    });
  });

  describe('the ready banner', () => {
    it('is printed on a terminal, with the URLs', async function () {
      // script(1) gives the service a pseudo-terminal as stdout, as a person's shell would.
      const dataDir = await makeTmpDir();
      const child = spawn('script', ['-qfec', `${process.execPath} --import tsx src/main.ts`, '/dev/null'], {
        cwd: REPO_ROOT, env: { ...process.env, IMAGE_DB_DIR: dataDir, HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0' }, stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      try {
        const deadline = Date.now() + 60_000;
        while (!/Ctrl-C stops it/.test(out) && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 50));
        expect(out).to.match(new RegExp(`imagestore ${VERSION.replace(/\./g, '\\.')} is ready`));
        expect(out).to.match(/API\s+http:\/\/127\.0\.0\.1:\d+\/api\/v1/).and.to.match(/Swagger UI\s+http:\/\/127\.0\.0\.1:\d+\/swagger/);
      } finally {
        child.kill('SIGTERM');
        await once(child, 'close');
        await removeDir(dataDir);
      }
    });

    it('is not printed when stdout is a pipe (JSON lines only)', async () => {
      const dataDir = await makeTmpDir();
      const svc = await spawnService({ dataDir, readyTimeoutMs: 60_000 });
      try {
        await new Promise((r) => setTimeout(r, 300));
        expect(svc.stdout.filter((line) => !line.startsWith('{'))).to.deep.equal([]);
      } finally {
        await svc.stop();
        await removeDir(dataDir);
      }
    });
  });
});

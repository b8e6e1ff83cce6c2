import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { runCli } from '../../src/cli/program.js';
import { ImageStoreClient } from '../../src/client/index.js';
import { spawnSubscriber } from '../../subscriber/test/helpers.js';
import { makePng } from '../helpers/images.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { waitFor } from '../helpers/wait-for.js';

// Issue 15, item 4: the events tools follow the service's own broker variables, so a service started with
// MQTT_PORT=… is watched with the same MQTT_PORT=…; and item 6: `albums rm` asks on a terminal.
describe('events tools on a non-default broker port (issue 15)', function () {
  this.timeout(120_000);
  let svc: TestService;
  let client: ImageStoreClient;
  let port: string;

  before(async () => {
    svc = await startTestService();
    client = new ImageStoreClient({ baseUrl: svc.service.httpUrl, retries: 0 });
    port = new URL(svc.service.mqttUrl).port;
    expect(port).to.not.equal('1883');
  });
  after(async () => svc?.close());

  it('npm run subscriber: MQTT_PORT alone is enough, and its logs carry ISO times like the service', async () => {
    const sub = spawnSubscriber([], { MQTT_PORT: port });
    try {
      const [subscribed] = await sub.waitForLog('subscribed', 1, 60_000);
      expect(subscribed.time).to.be.a('string').and.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      await client.createAlbum('port-sub');
      await waitFor('the event line', () => sub.stdout.some((l) => l.includes('album.created') && l.includes('port-sub')), 15_000);
    } finally {
      await sub.stop();
    }
  });

  it('imagestore watch: MQTT_HOST and MQTT_PORT, without --mqtt-url', async () => {
    const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('IMAGESTORE_') && !k.startsWith('MQTT_')));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'watch', '--count', '1', '--album', 'port-watch'], {
      cwd: REPO_ROOT, env: { ...inherited, IMAGESTORE_URL: svc.service.httpUrl, MQTT_HOST: '127.0.0.1', MQTT_PORT: port }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    try {
      await waitFor('the watch subscription', () => stderr.includes('watching events on'), 60_000);
      expect(stderr).to.include(`watching events on mqtt://127.0.0.1:${port}`);
      await client.createAlbum('port-watch');
      const [code] = await once(child, 'close');
      expect(code, stderr).to.equal(0);
      expect(stdout).to.match(/album\.created\s+album port-watch created|album\.created.*port-watch/);
    } finally {
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('imagestore watch refuses a bad MQTT_PORT as a usage error', async () => {
    const stderr = new PassThrough();
    let text = '';
    stderr.on('data', (d) => (text += d));
    const code = await runCli(['--url', svc.service.httpUrl, 'watch'], { stdout: new PassThrough(), stderr, env: { MQTT_PORT: '18x3' } });
    expect(code).to.equal(2);
    expect(text).to.include('invalid MQTT_PORT: expected an integer 1-65535, got "18x3"');
  });

  describe('albums rm', () => {
    /** A stdin that says it is a terminal, with the user's answer typed in. */
    function terminal(answer: string) {
      const stdin = Object.assign(new PassThrough(), { isTTY: true });
      stdin.end(answer);
      return stdin;
    }
    async function rm(args: string[], stdin?: PassThrough & { isTTY?: boolean }) {
      const stderr = new PassThrough();
      let text = '';
      stderr.on('data', (d) => (text += d));
      const code = await runCli(['--url', svc.service.httpUrl, 'albums', 'rm', ...args], { stdout: new PassThrough(), stderr, stdin });
      return { code, stderr: text };
    }

    it('asks on a terminal, naming the number of images, and keeps the album unless the answer is yes', async () => {
      await client.createAlbum('rm-ask');
      await client.uploadImage('rm-ask', await makePng(), { name: 'a.png' });
      await client.uploadImage('rm-ask', await makePng(), { name: 'b.png' });
      const no = await rm(['rm-ask'], terminal('\n'));
      expect(no.code).to.equal(1);
      expect(no.stderr).to.include('delete album "rm-ask" and its 2 images? [y/N]').and.include('nothing deleted');
      expect((await client.listAlbums()).albumList).to.include('rm-ask');
      const yes = await rm(['rm-ask'], terminal('y\n'));
      expect(yes.code, yes.stderr).to.equal(0);
      expect((await client.listAlbums()).albumList).to.not.include('rm-ask');
    });

    it('does not ask with --yes, nor when stdin is not a terminal (scripts)', async () => {
      await client.createAlbum('rm-yes');
      await client.createAlbum('rm-script');
      expect((await rm(['rm-yes', '--yes'], terminal(''))).code).to.equal(0);
      const piped = Object.assign(new PassThrough(), { isTTY: false });
      piped.end();
      expect((await rm(['rm-script'], piped)).code).to.equal(0);
      expect((await client.listAlbums()).albumList).to.not.include.members(['rm-yes', 'rm-script']);
    });
  });
});

import { expect } from 'chai';
import { defaultConfig } from '../../src/config.js';
import { checkTargetUrl, ForbiddenTargetError } from '../../src/imports/ssrf-guard.js';
import { albumPath, createAlbum } from '../helpers/api.js';
import { createImportJob, startImageServer, waitForImportJob, type ImageServer } from '../helpers/image-server.js';
import { startTestService, type TestService } from '../helpers/service.js';

/** Refused by the guard, which runs before any connection: a refusal is never retried. */
const REFUSED = /^refused: /;

/**
 * Precondition for URLs outside loopback: the guard refuses them on the URL alone, so the
 * import below cannot open a connection to them (this test never sends traffic off the host).
 */
function expectRefusedBeforeConnecting(url: string): void {
  expect(() => checkTargetUrl(new URL(url), new Set()), url).to.throw(ForbiddenTargetError, REFUSED);
}

/** A service whose import allow-list is `allowHosts`, with a retrying, slow-to-time-out importer. */
async function startWithAllowList(allowHosts: string[]): Promise<TestService> {
  const defaults = defaultConfig();
  return startTestService({ config: { imports: { ...defaults.imports, timeoutMs: 5000, retries: 2, retryBaseDelayMs: 200, allowHosts } } });
}

async function imageNames(svc: TestService, album: string): Promise<string[]> {
  return ((await svc.http.get(`${albumPath(album)}/images`).expect(200)).body as { imageList: string[] }).imageList;
}

describe('import jobs: SSRF protection', () => {
  let images: ImageServer;
  /** Stands for an internal service that no import may reach. */
  let internal: ImageServer;
  before(async () => {
    [images, internal] = await Promise.all([startImageServer(), startImageServer()]);
  });
  after(async () => {
    await images?.close();
    await internal?.close();
  });

  describe('without IMPORT_ALLOW_HOSTS', () => {
    let svc: TestService;
    before(async () => {
      svc = await startWithAllowList([]);
      await createAlbum(svc.http, 'open');
    });
    after(async () => svc?.close());

    it('refuses loopback, private, link-local and metadata addresses at once, without contacting them', async () => {
      const urls = [
        `http://127.0.0.1:${images.port}/red/loop.png`,
        `http://localhost:${images.port}/red/named.png`,
        `http://[::1]:${images.port}/red/v6.png`,
        `http://[::ffff:127.0.0.1]:${images.port}/red/mapped.png`,
        `http://2130706433:${images.port}/red/decimal.png`,
        `http://0x7f.0.0.1:${images.port}/red/hex.png`,
        'http://169.254.169.254/latest/meta-data/',
        'http://10.0.0.1/internal.png',
      ];
      expectRefusedBeforeConnecting('http://169.254.169.254/latest/meta-data/');
      expectRefusedBeforeConnecting('http://10.0.0.1/internal.png');
      const started = Date.now();
      const { job } = await createImportJob(svc.http, 'open', urls);
      const done = await waitForImportJob(svc.http, job.id);
      // With a 5 s timeout and 200 ms backoff, anything but an immediate refusal would take longer.
      expect(Date.now() - started).to.be.below(1500);
      expect(done.state).to.equal('failed');
      // new URL() normalised the decimal and hex forms to 127.0.0.1 when the job was created.
      expect(done.items.map((i) => i.url)).to.deep.equal([
        urls[0], urls[1], urls[2], `http://[::ffff:7f00:1]:${images.port}/red/mapped.png`,
        `http://127.0.0.1:${images.port}/red/decimal.png`, `http://127.0.0.1:${images.port}/red/hex.png`, urls[6], urls[7],
      ]);
      for (const item of done.items) {
        expect(item, item.url).to.include({ state: 'failed', attempts: 1, bytes: 0 });
        expect(item.error, item.url).to.match(REFUSED);
      }
      expect(done.items[0].error).to.equal('refused: 127.0.0.1 is a loopback, private, link-local or reserved address');
      expect(done.items[1].error).to.equal('refused: localhost resolves to 127.0.0.1, a loopback, private, link-local or reserved address');
      expect(done.items[2].error).to.equal('refused: ::1 is a loopback, private, link-local or reserved address');
      expect(done.items[3].error).to.equal('refused: ::ffff:7f00:1 is a loopback, private, link-local or reserved address');
      expect(done.items[6].error).to.equal('refused: 169.254.169.254 is a loopback, private, link-local or reserved address');
      expect(done.items[7].error).to.equal('refused: 10.0.0.1 is a loopback, private, link-local or reserved address');
      expect(images.requests).to.deep.equal([]);
      expect(await imageNames(svc, 'open')).to.deep.equal([]);
    });
  });

  describe('with IMPORT_ALLOW_HOSTS=127.0.0.1', () => {
    let svc: TestService;
    before(async () => {
      svc = await startWithAllowList(['127.0.0.1']);
      await createAlbum(svc.http, 'allowed');
    });
    after(async () => svc?.close());

    it('imports from the allow-listed host', async () => {
      const { job } = await createImportJob(svc.http, 'allowed', [`http://127.0.0.1:${images.port}/red/fine.png`]);
      const done = await waitForImportJob(svc.http, job.id);
      expect(done.items[0]).to.include({ state: 'stored', attempts: 1 });
      expect(await imageNames(svc, 'allowed')).to.deep.equal(['fine.png']);
    });

    it('refuses a redirect to the same loopback address under a name that is not allow-listed', async () => {
      const into = `http://localhost:${images.port}/red/secret.png`;
      const { job } = await createImportJob(svc.http, 'allowed', [`${images.url}/redirect?to=${encodeURIComponent(into)}`]);
      const done = await waitForImportJob(svc.http, job.id);
      expect(done.items[0]).to.include({ state: 'failed', attempts: 1, error: 'refused: localhost resolves to 127.0.0.1, a loopback, private, link-local or reserved address' });
      expect(images.hits('/redirect')).to.equal(1);
      expect(images.hits('/red/secret.png')).to.equal(0);
    });

    it('refuses a redirect to the metadata service and to other blocked addresses, before connecting', async () => {
      const targets = ['http://169.254.169.254/latest/meta-data/', 'http://10.0.0.1/x.png', `http://[::1]:${internal.port}/x.png`];
      for (const target of targets) expectRefusedBeforeConnecting(target);
      const started = Date.now();
      const { job } = await createImportJob(svc.http, 'allowed', targets.map((t) => `${images.url}/redirect?to=${encodeURIComponent(t)}`));
      const done = await waitForImportJob(svc.http, job.id);
      expect(Date.now() - started).to.be.below(1500);
      expect(done.items.map((i) => [i.state, i.attempts, i.error])).to.deep.equal([
        ['failed', 1, 'refused: 169.254.169.254 is a loopback, private, link-local or reserved address'],
        ['failed', 1, 'refused: 10.0.0.1 is a loopback, private, link-local or reserved address'],
        ['failed', 1, 'refused: ::1 is a loopback, private, link-local or reserved address'],
      ]);
      expect(internal.requests).to.deep.equal([]);
    });
  });

  describe('with IMPORT_ALLOW_HOSTS=localhost', () => {
    let svc: TestService;
    before(async () => {
      svc = await startWithAllowList(['localhost']);
      await createAlbum(svc.http, 'named');
    });
    after(async () => svc?.close());

    it('follows a redirect within the allowed name but refuses one to a loopback IP (or its IPv4-mapped form) on another port', async () => {
      const via = (target: string) => `http://localhost:${images.port}/redirect?to=${encodeURIComponent(target)}`;
      const urls = [
        via(`http://localhost:${images.port}/green/inside.png`),
        via(`http://127.0.0.1:${internal.port}/admin.png`),
        via(`http://[::ffff:127.0.0.1]:${internal.port}/admin2.png`),
      ];
      const { job } = await createImportJob(svc.http, 'named', urls);
      const done = await waitForImportJob(svc.http, job.id);
      expect(done.items.map((i) => [i.state, i.error])).to.deep.equal([
        ['stored', undefined],
        ['failed', 'refused: 127.0.0.1 is a loopback, private, link-local or reserved address'],
        ['failed', 'refused: ::ffff:7f00:1 is a loopback, private, link-local or reserved address'],
      ]);
      expect(internal.requests).to.deep.equal([]);
      expect(await imageNames(svc, 'named')).to.deep.equal(['inside.png']);
    });
  });
});

import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const run = promisify(execFile);
// npm's own chatter off; the cache filled by the repository's `npm ci` serves the install (the registry when it must).
const NPM_ENV = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

/** Bytes of every file below `dir`. */
async function treeBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}

// Issue 15, item 2: the client installs the way Node users install things, light, without the server.
describe('the client package (packages/client), packed and installed into an empty project', function () {
  this.timeout(180_000);
  let work: string;
  let svc: TestService;
  let tarball: string;
  let project: string;

  before(async () => {
    work = await makeTmpDir('imagestore-pack-');
    svc = await startTestService();
    // prepack builds packages/client/dist from src/client and src/contract.
    const { stdout } = await run('npm', ['pack', '-w', 'packages/client', '--pack-destination', work, '--json'], { cwd: REPO_ROOT, env: NPM_ENV, maxBuffer: 16 << 20 });
    tarball = path.join(work, (JSON.parse(stdout) as Array<{ filename: string }>)[0].filename);
    project = path.join(work, 'app');
    await fs.mkdir(project);
    await fs.writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    await run('npm', ['install', '--prefer-offline', '--no-package-lock', tarball], { cwd: project, env: NPM_ENV, maxBuffer: 16 << 20 });
  });
  after(async () => {
    await svc?.close();
    if (work) await removeDir(work);
  });

  it('installs only the client and zod: no server dependency (sharp, aedes, AWS SDK, koa) and no mqtt unless asked for', async () => {
    const installed = (await fs.readdir(path.join(project, 'node_modules'))).filter((n) => !n.startsWith('.')).sort();
    expect(installed).to.deep.equal(['imagestore-client', 'zod']);
    const files = await fs.readdir(path.join(project, 'node_modules', 'imagestore-client'), { recursive: true });
    expect(files.map(String).filter((f) => f.endsWith('.js')).every((f) => /^dist\/(client|contract)\//.test(f)), files.join(', ')).to.equal(true);
  });

  it('is small: the whole node_modules under 8 MB (zod is most of it), the client itself under 400 KB', async () => {
    const all = await treeBytes(path.join(project, 'node_modules'));
    const own = await treeBytes(path.join(project, 'node_modules', 'imagestore-client'));
    expect(own, `client ${own} bytes`).to.be.below(400_000);
    expect(all, `node_modules ${all} bytes`).to.be.below(8_000_000);
  });

  it('imports and talks to a live service', async () => {
    const script = `
      import { ImageStoreClient, ImageStoreError } from 'imagestore-client';
      const store = new ImageStoreClient({ baseUrl: process.argv[2], validateResponses: true });
      const created = await store.createAlbum('packed');
      const list = await store.listAlbums();
      const version = await store.getVersion();
      const missing = await store.getImageMetadata('packed', 'nope.png').catch((e) => e instanceof ImageStoreError && e.status);
      console.log(JSON.stringify({ created: created.album.name, albums: list.albumList, version, missing }));
    `;
    await fs.writeFile(path.join(project, 'main.mjs'), script);
    const { stdout } = await run(process.execPath, ['main.mjs', svc.service.httpUrl], { cwd: project });
    expect(JSON.parse(stdout)).to.deep.equal({ created: 'packed', albums: ['packed'], version: { name: 'imagestore', version: 'test' }, missing: 404 });
  });

  it('ships its type declarations', async () => {
    const pkg = JSON.parse(await fs.readFile(path.join(project, 'node_modules', 'imagestore-client', 'package.json'), 'utf8'));
    const types = path.join(project, 'node_modules', 'imagestore-client', pkg.exports['.'].types);
    expect(await fs.readFile(types, 'utf8')).to.include('ImageStoreClient');
  });
});

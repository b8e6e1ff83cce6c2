import { promises as fs } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import sharp from 'sharp';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/context.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

/** Runs the CLI in process against the service; returns exit code and output. */
async function cli(args: string[], url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c) => (out += c));
  stderr.on('data', (c) => (err += c));
  const io: CliIo = { stdout, stderr };
  const code = await runCli(['--url', url, ...args], io);
  return { code, stdout: out, stderr: err };
}

describe('imagestore diff (issue 8: CLI)', () => {
  let svc: TestService;
  let dir: string;
  before(async () => {
    svc = await startTestService();
    dir = await makeTmpDir();
    const base = await sharp({ create: { width: 120, height: 80, channels: 3, background: '#336699' } }).png().toBuffer();
    const patch = await sharp({ create: { width: 20, height: 10, channels: 3, background: '#ffcc00' } }).png().toBuffer();
    const changed = await sharp(base).composite([{ input: patch, left: 30, top: 40 }]).png().toBuffer();
    await fs.writeFile(path.join(dir, 'a.png'), base);
    await fs.writeFile(path.join(dir, 'b.png'), changed);
    await svc.http.post('/api/v1/albums').send({ albumName: 'd' }).expect(201);
    await svc.http.post('/api/v1/albums/d/images').attach('file', base, 'a.png').expect(201);
    await svc.http.post('/api/v1/albums/d/images').attach('file', changed, 'b.png').expect(201);
  });
  after(async () => {
    await svc.close();
    await removeDir(dir);
  });

  it('compares two stored images and writes the diff picture with --out', async () => {
    const out = path.join(dir, 'diff.png');
    const run = await cli(['--json', 'diff', 'd/a.png', 'd/b.png', '--out', out], svc.service.httpUrl);
    expect(run.code, run.stderr).to.equal(0);
    const result = JSON.parse(run.stdout.trim().split('\n')[0]);
    expect(result.differentPixels).to.equal(200);
    expect(result.boxes).to.deep.equal([{ x: 30, y: 40, width: 20, height: 10, pixels: 200 }]);
    const meta = await sharp(out).metadata();
    expect([meta.format, meta.width, meta.height]).to.deep.equal(['png', 120, 80]);
  });

  it('compares two local files with --files, and exits 1 with the service\'s message on an unknown image', async () => {
    const run = await cli(['diff', '--files', path.join(dir, 'a.png'), path.join(dir, 'b.png')], svc.service.httpUrl);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/^200 of 9600 pixels differ/);
    expect(run.stdout).to.match(/region 30,40 20x10 \(200 px\)/);
    const missing = await cli(['diff', 'd/a.png', 'd/nope.png'], svc.service.httpUrl);
    expect(missing.code).to.equal(1);
    expect(missing.stderr).to.match(/nope\.png image is not present/);
  });
});

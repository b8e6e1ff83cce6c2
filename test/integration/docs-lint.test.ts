import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Parser } from '@asyncapi/parser';
import { expect } from 'chai';
import { startServiceWithEnv, type TestService } from '../helpers/service.js';
import { REPO_ROOT } from '../helpers/spawn-service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';

const run = promisify(execFile);
const REDOCLY = path.join(REPO_ROOT, 'node_modules', '.bin', 'redocly');

interface RedoclyReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: Array<{ ruleId: string; message: string; location: Array<{ pointer: string }> }>;
}

/** `redocly lint` of `doc` with the repository's redocly.yaml (no telemetry, no update check). */
async function redoclyLint(doc: unknown, dir: string): Promise<RedoclyReport> {
  const file = path.join(dir, `openapi-${Math.random().toString(36).slice(2)}.json`);
  await fs.writeFile(file, JSON.stringify(doc));
  const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
  // Exit 1 with errors: the report on stdout says which.
  const { stdout } = await run(REDOCLY, ['lint', file, '--format=json', '--config', path.join(REPO_ROOT, 'redocly.yaml')], { env, maxBuffer: 64 << 20 })
    .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  return JSON.parse(stdout) as RedoclyReport;
}

const summary = (r: RedoclyReport) => r.problems.map((p) => `${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);

// Issue 15, item 7: the documents a newcomer opens first lint clean with the tools people use on them.
describe('API documents lint clean (redocly, @asyncapi/parser)', function () {
  this.timeout(120_000);
  let dir: string;
  let open: TestService;
  let keyed: TestService;

  before(async () => {
    dir = await makeTmpDir('imagestore-lint-');
    open = await startServiceWithEnv({});
    keyed = await startServiceWithEnv({ API_KEYS: 'read:lint-read-key-0123456789abcdef' });
  });
  after(async () => {
    await open?.close();
    await keyed?.close();
    if (dir) await removeDir(dir);
  });

  it('/openapi.json without keys: no errors, no warnings, and no security scheme (Swagger UI shows no lock)', async () => {
    const doc = (await open.http.get('/openapi.json').expect(200)).body;
    const report = await redoclyLint(doc, dir);
    expect(summary(report)).to.deep.equal([]);
    expect(report.totals).to.deep.equal({ errors: 0, warnings: 0, ignored: 0 });
    expect(doc.security).to.deep.equal([]);
    expect(doc.components?.securitySchemes).to.equal(undefined);
    expect(doc.info.description).to.match(/Authentication is off/).and.match(/\]\(\/docs\/events\.md\)/);
    await open.http.get('/docs/events.md').expect(200).expect('Content-Type', /text\/markdown/);
  });

  it('/openapi.json with keys: no errors, no warnings, the bearer scheme required but on health and docs routes', async () => {
    const doc = (await keyed.http.get('/openapi.json').expect(200)).body;
    const report = await redoclyLint(doc, dir);
    expect(summary(report)).to.deep.equal([]);
    expect(report.totals).to.deep.equal({ errors: 0, warnings: 0, ignored: 0 });
    expect(doc.security).to.deep.equal([{ bearerAuth: [] }]);
    expect(doc.paths['/livez'].get.security).to.deep.equal([]);
    expect(doc.paths['/api/v1/albums'].get.security).to.equal(undefined);
  });

  it('/asyncapi.json: @asyncapi/parser reports nothing, not even a hint', async () => {
    const doc = (await open.http.get('/asyncapi.json').expect(200)).body;
    const diagnostics = await new Parser().validate(JSON.stringify(doc));
    expect(diagnostics.map((d) => `${d.code} at ${d.path.join('/')}: ${d.message}`)).to.deep.equal([]);
  });
});

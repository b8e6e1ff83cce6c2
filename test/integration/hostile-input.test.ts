import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir, listTree } from '../helpers/tmp-dir.js';
import { makePng } from '../helpers/images.js';
import { waitFor } from '../helpers/wait-for.js';

// Hostile input, one table row per request. Every row must get a 4xx JSON
// error (or the documented answer), leave the service healthy, and change
// nothing on disk: the data dir is a subdirectory of a fresh temp dir, and
// both trees are listed before and after each row.
//
// Requests go through node:http with the path exactly as written: fetch and
// superagent would normalise `..` and `%2e%2e` segments away before sending.
//
// Unicode: the store normalises names to NFC, so a name typed in NFC and in
// NFD is the same name (see src/albums/names.ts).

const API = '/api/v1';
const BOUNDARY = 'hostile-boundary-7MA4YWxkTrZu0gW';

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/** Sends one request with the path as given (no normalisation) and a fresh connection. */
function rawRequest(baseUrl: string, method: string, rawPath: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<RawResponse> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path: rawPath, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${rawPath.slice(0, 80)}: no answer within 5 s`)));
    req.end(body);
  });
}

interface Part {
  field: string;
  /** Written into the header as raw UTF-8, unescaped. */
  filename?: string;
  data: Buffer | string;
}

/** A multipart/form-data body built by hand, so file names reach the server byte for byte. */
function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.field}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
    const type = part.filename === undefined ? '' : 'Content-Type: application/octet-stream\r\n';
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

const MULTIPART = { 'Content-Type': `multipart/form-data; boundary=${BOUNDARY}` };
const JSON_TYPE = { 'Content-Type': 'application/json' };

interface Row {
  what: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  status: number;
  /** The error message, when it matters. */
  error?: RegExp;
}

/** Hostile names: [label, as a URL path segment, as the decoded string in a body or file name]. */
const HOSTILE_NAMES: Array<[string, string, string]> = [
  ['dot-dot', '..', '..'],
  ['dot', '.', '.'],
  ['encoded dot-dot', '%2e%2e', '..'],
  ['encoded dot-dot slash', '%2e%2e%2fescape', '../escape'],
  ['dot-dot backslash', '..%5cescape', '..\\escape'],
  ['encoded slash', 'a%2Fb', 'a/b'],
  ['absolute path', '%2Fetc%2Fpasswd', '/etc/passwd'],
  ['deep traversal', '..%2F..%2F..%2F..%2Ftmp%2Fescape', '../../../../tmp/escape'],
  ['NUL', 'a%00b', 'a\u0000b'],
  ['line feed', 'a%0ab', 'a\nb'],
  ['terminal escape', '%1b%5b31mred', '\u001b[31mred'],
  ['DEL', 'a%7fb', 'a\u007fb'],
  ['white space only', '%20', ' '],
  ['reserved prefix', '.imagestore', '.imagestore'],
  ['reserved prefix, other case', '.ImageStore%2Fmeta', '.ImageStore/meta'],
  ['300-byte name', 'n'.repeat(300), 'n'.repeat(300)],
  ['10,000-byte name', 'n'.repeat(10_000), 'n'.repeat(10_000)],
  ['300-byte name of 2-byte characters', encodeURIComponent('é'.repeat(150)), 'é'.repeat(150)],
];

describe('hostile input: every malformed request gets a 4xx JSON error and changes nothing', function () {
  this.timeout(30_000);
  let parent: string;
  let dataDir: string;
  let svc: TestService;
  let png: Buffer;

  before(async () => {
    parent = await makeTmpDir('imagestore-hostile-');
    dataDir = path.join(parent, 'data');
    await fs.mkdir(dataDir);
    svc = await startTestService({ dataDir, config: { limits: { maxUploadBytes: 1024 * 1024, maxJsonBytes: 16 * 1024, maxConcurrentUploads: 8 } } });
    png = await makePng();
    await svc.http.post(`${API}/albums`).send({ albumName: 'target' }).expect(201);
    await svc.http.post(`${API}/albums/target/images`).attach('file', png, 'existing.png').expect(201);
  });
  after(async () => {
    await svc.stop();
    await removeDir(parent);
  });

  const send = (row: Row) => rawRequest(svc.service.httpUrl, row.method, row.path, row.headers, row.body);
  /** The data dir, minus the event journal (written by the dispatcher in the background) and the staging dir (checked empty apart). */
  const dataTree = async () => (await listTree(dataDir)).filter((p) => !p.startsWith('.imagestore/outbox/') && !p.startsWith('.imagestore/tmp/'));
  const stagingEmpty = () =>
    waitFor('an empty staging dir', async () => (await fs.readdir(path.join(dataDir, '.imagestore', 'tmp'))).length === 0, 3000);

  /** After a row: healthy, nothing outside the data dir, no staging leftovers, data dir as before (plus `added`). */
  async function expectUnharmed(before: string[], added: string[] = []) {
    expect((await send({ what: 'livez', method: 'GET', path: '/livez', status: 200 })).status).to.equal(200);
    expect(await fs.readdir(parent), 'the temp dir holds nothing but the data dir').to.deep.equal(['data']);
    await stagingEmpty();
    expect(await dataTree()).to.deep.equal([...before, ...added].sort());
  }

  function expectJsonError(res: RawResponse, row: Row) {
    expect(res.status, `${row.what}: ${res.text.slice(0, 200)}`).to.equal(row.status);
    expect(res.headers['content-type'], row.what).to.match(/^application\/json/);
    const body = JSON.parse(res.text) as { error?: unknown };
    expect(body.error, row.what).to.be.a('string').and.not.equal('Internal Server Error');
    if (row.error) expect(body.error, row.what).to.match(row.error);
  }

  function nameRows(): Row[] {
    const rows: Row[] = [];
    const json = (o: object) => JSON.stringify(o);
    for (const [label, seg, raw] of HOSTILE_NAMES) {
      rows.push(
        { what: `${label} as album in GET images`, method: 'GET', path: `${API}/albums/${seg}/images`, status: 400 },
        { what: `${label} as album in DELETE album`, method: 'DELETE', path: `${API}/albums/${seg}`, status: 400 },
        { what: `${label} as album in PATCH album`, method: 'PATCH', path: `${API}/albums/${seg}`, headers: JSON_TYPE, body: json({ albumName: 'fresh' }), status: 400 },
        { what: `${label} as album in upload`, method: 'POST', path: `${API}/albums/${seg}/images`, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'ok.png', data: png }]), status: 400 },
        { what: `${label} as album in GET image`, method: 'GET', path: `${API}/albums/${seg}/images/existing.png`, status: 400 },
        { what: `${label} as image in GET image`, method: 'GET', path: `${API}/albums/target/images/${seg}`, status: 400 },
        { what: `${label} as image in GET metadata`, method: 'GET', path: `${API}/albums/target/images/${seg}/metadata`, status: 400 },
        { what: `${label} as album in GET metadata`, method: 'GET', path: `${API}/albums/${seg}/images/existing.png/metadata`, status: 400 },
        { what: `${label} as id in GET image by id`, method: 'GET', path: `${API}/images/${seg}`, status: 400 },
        { what: `${label} as image in DELETE image`, method: 'DELETE', path: `${API}/albums/target/images/${seg}`, status: 400 },
        { what: `${label} as image in PATCH image`, method: 'PATCH', path: `${API}/albums/target/images/${seg}`, headers: JSON_TYPE, body: json({ imageName: 'fresh.png' }), status: 400 },
        { what: `${label} as albumName in POST album`, method: 'POST', path: `${API}/albums`, headers: JSON_TYPE, body: json({ albumName: raw }), status: 400 },
        { what: `${label} as albumName in PATCH album`, method: 'PATCH', path: `${API}/albums/target`, headers: JSON_TYPE, body: json({ albumName: raw }), status: 400 },
        { what: `${label} as imageName in PATCH image`, method: 'PATCH', path: `${API}/albums/target/images/existing.png`, headers: JSON_TYPE, body: json({ imageName: raw }), status: 400 },
      );
    }
    return rows;
  }

  it(`rejects traversal, control characters, reserved and over-long names in every parameter (${HOSTILE_NAMES.length} names × 14 places)`, async () => {
    const rows = nameRows();
    const before = await dataTree();
    for (const row of rows) {
      expectJsonError(await send(row), row);
      await expectUnharmed(before);
    }
    console.log(`      ${rows.length} hostile name requests answered 400`);
  });

  it('rejects invalid UTF-8 and lone surrogates', async () => {
    const before = await dataTree();
    const rows: Row[] = [
      // A lone surrogate cannot be stored as a file name in UTF-8.
      { what: 'lone surrogate in albumName', method: 'POST', path: `${API}/albums`, headers: JSON_TYPE, body: '{"albumName":"a\\ud800b"}', status: 400, error: /not valid Unicode/ },
      { what: 'lone surrogate in imageName', method: 'PATCH', path: `${API}/albums/target/images/existing.png`, headers: JSON_TYPE, body: '{"imageName":"\\udc00.png"}', status: 400, error: /not valid Unicode/ },
      // Undecodable percent-escapes are kept as typed; such a name is simply not present.
      { what: 'invalid UTF-8 escape in album path', method: 'GET', path: `${API}/albums/%ff%fe/images`, status: 404, error: /album is not present/ },
      { what: 'truncated escape in image path', method: 'GET', path: `${API}/albums/target/images/%E2%82`, status: 404, error: /image is not present/ },
    ];
    for (const row of rows) {
      expectJsonError(await send(row), row);
      await expectUnharmed(before);
    }
  });

  it('stores an upload whose file name carries a path under its base name only, as the Go service did', async () => {
    const cases: Array<[string, string]> = [
      ['../../x.png', 'x.png'],
      ['..\\..\\windows.png', 'windows.png'],
      ['/etc/passwd', 'passwd'],
      ['C:\\Users\\me\\photo.png', 'photo.png'],
      ['%2e%2e%2fencoded.png', '%2e%2e%2fencoded.png'], // percent-escapes in a file name are not decoded: a harmless literal name
    ];
    for (const [filename, stored] of cases) {
      const before = await dataTree();
      const res = await send({ what: filename, method: 'POST', path: `${API}/albums/target/images`, headers: MULTIPART, body: multipart([{ field: 'file', filename, data: png }]), status: 201 });
      expect(res.status, `${filename}: ${res.text}`).to.equal(201);
      expect(JSON.parse(res.text).image.name).to.equal(stored);
      await expectUnharmed(before, [`image-store/target/${stored}`, `image-store/target/.imagestore/meta/${stored}`]);
    }
  });

  it('rejects upload file names that have no usable base name', async () => {
    const before = await dataTree();
    const names: Array<[string, RegExp]> = [
      ['..', /must not be "\." or "\.\."/],
      ['../', /must not be empty/],
      ['dir/..', /must not be "\." or "\.\."/],
      ['a\u0000b.png', /control characters/],
      ['a\u001b[2Jb.png', /control characters/],
      ['.imagestore', /reserved/],
      ['x/.imagestore', /reserved/],
      ['n'.repeat(300), /at most 255 bytes/],
      ['n'.repeat(10_000), /at most 255 bytes/],
    ];
    for (const [filename, error] of names) {
      const row: Row = { what: `file name ${JSON.stringify(filename.slice(0, 40))}`, method: 'POST', path: `${API}/albums/target/images`, headers: MULTIPART, body: multipart([{ field: 'file', filename, data: png }]), status: 400, error };
      expectJsonError(await send(row), row);
      await expectUnharmed(before);
    }
  });

  it('rejects invisible and bidirectional control characters in every new name: album, upload, renames (issue 12)', async () => {
    const before = await dataTree();
    const json = (o: object) => JSON.stringify(o);
    const error = /must not contain invisible or bidirectional control characters \(U\+20(2E|0B)\)$/;
    const rows: Row[] = [
      { what: 'U+202E in a new album', method: 'POST', path: `${API}/albums`, headers: JSON_TYPE, body: json({ albumName: 'photo\u202Egnp.exe' }), status: 400, error },
      { what: 'U+200B in a new album', method: 'POST', path: `${API}/albums`, headers: JSON_TYPE, body: json({ albumName: 'tar\u200Bget' }), status: 400, error },
      { what: 'U+202E in an album rename', method: 'PATCH', path: `${API}/albums/target`, headers: JSON_TYPE, body: json({ albumName: 'x\u202Ey' }), status: 400, error },
      { what: 'U+200B in an upload file name', method: 'POST', path: `${API}/albums/target/images`, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'exist\u200Bing.png', data: png }]), status: 400, error },
      { what: 'U+202E in an upload file name', method: 'POST', path: `${API}/albums/target/images`, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'photo\u202Egnp.exe', data: png }]), status: 400, error },
      { what: 'U+202E in an image rename', method: 'PATCH', path: `${API}/albums/target/images/existing.png`, headers: JSON_TYPE, body: json({ imageName: 'a\u202Egnp.exe' }), status: 400, error },
    ];
    for (const row of rows) {
      expectJsonError(await send(row), row);
      await expectUnharmed(before);
    }
  });

  it('rejects malformed bodies and wrong content types on every body-taking route', async () => {
    const before = await dataTree();
    const jsonRoutes: Array<[string, string]> = [
      ['POST', `${API}/albums`],
      ['PATCH', `${API}/albums/target`],
      ['PATCH', `${API}/albums/target/images/existing.png`],
    ];
    const rows: Row[] = [];
    for (const [method, p] of jsonRoutes) {
      const at = `${method} ${p}`;
      rows.push(
        { what: `truncated JSON, ${at}`, method, path: p, headers: JSON_TYPE, body: '{"albumName":', status: 400, error: /invalid JSON body/ },
        { what: `single-quoted JSON, ${at}`, method, path: p, headers: JSON_TYPE, body: "{'albumName':'x'}", status: 400, error: /invalid JSON body/ },
        { what: `JSON number, ${at}`, method, path: p, headers: JSON_TYPE, body: '42', status: 400 },
        { what: `JSON null, ${at}`, method, path: p, headers: JSON_TYPE, body: 'null', status: 400 },
        { what: `JSON string, ${at}`, method, path: p, headers: JSON_TYPE, body: '"x"', status: 400 },
        { what: `JSON array, ${at}`, method, path: p, headers: JSON_TYPE, body: '["x"]', status: 400 },
        { what: `empty object, ${at}`, method, path: p, headers: JSON_TYPE, body: '{}', status: 400 },
        { what: `name of the wrong type, ${at}`, method, path: p, headers: JSON_TYPE, body: '{"albumName":42,"imageName":42}', status: 400 },
        { what: `name null, ${at}`, method, path: p, headers: JSON_TYPE, body: '{"albumName":null,"imageName":null}', status: 400 },
        { what: `empty body, ${at}`, method, path: p, headers: JSON_TYPE, body: '', status: 400 },
        { what: `deeply nested JSON, ${at}`, method, path: p, headers: JSON_TYPE, body: `${'['.repeat(5000)}${']'.repeat(5000)}`, status: 400 },
        { what: `huge JSON (1 MB), ${at}`, method, path: p, headers: JSON_TYPE, body: JSON.stringify({ albumName: 'x'.repeat(1 << 20), imageName: 'x' }), status: 413, error: /larger than the limit of 16384 bytes/ },
        { what: `text/plain, ${at}`, method, path: p, headers: { 'Content-Type': 'text/plain' }, body: '{"albumName":"x"}', status: 415, error: /Expected Content-Type application\/json/ },
        { what: `form-urlencoded, ${at}`, method, path: p, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'albumName=x', status: 415 },
        { what: `multipart, ${at}`, method, path: p, headers: MULTIPART, body: multipart([{ field: 'albumName', data: 'x' }]), status: 415 },
        { what: `no content type, ${at}`, method, path: p, body: '{"albumName":"x"}', status: 415 },
      );
    }
    const up = `${API}/albums/target/images`;
    rows.push(
      { what: 'upload as JSON', method: 'POST', path: up, headers: JSON_TYPE, body: '{"file":"x"}', status: 415, error: /Expected Content-Type multipart\/form-data/ },
      { what: 'upload as raw image/png', method: 'POST', path: up, headers: { 'Content-Type': 'image/png' }, body: png, status: 415 },
      { what: 'upload without content type', method: 'POST', path: up, body: png, status: 415 },
      { what: 'multipart without boundary', method: 'POST', path: up, headers: { 'Content-Type': 'multipart/form-data' }, body: multipart([{ field: 'file', filename: 'a.png', data: png }]), status: 400 },
      { what: 'multipart with a different boundary', method: 'POST', path: up, headers: { 'Content-Type': 'multipart/form-data; boundary=other' }, body: multipart([{ field: 'file', filename: 'a.png', data: png }]), status: 400 },
      { what: 'multipart garbage', method: 'POST', path: up, headers: MULTIPART, body: 'this is not multipart at all', status: 400 },
      { what: 'multipart without "file"', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'name', data: 'a.png' }]), status: 400, error: /expected a file in multipart field "file"/ },
      { what: 'file under another field', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'image', filename: 'a.png', data: png }]), status: 400, error: /expected a file in multipart field "file"/ },
      { what: 'two files', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'a.png', data: png }, { field: 'file', filename: 'b.png', data: png }]), status: 400, error: /exactly one file/ },
      { what: 'two files in two fields', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'a.png', data: png }, { field: 'other', filename: 'b.png', data: png }]), status: 400, error: /exactly one file/ },
      { what: 'empty file', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'empty.png', data: '' }]), status: 400, error: /empty/ },
      { what: 'file without a file name', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'file', filename: '', data: png }]), status: 400 },
      { what: 'upload into a missing album', method: 'POST', path: `${API}/albums/missing/images`, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'a.png', data: png }]), status: 404, error: /missing album is not present/ },
      { what: 'upload over the size limit', method: 'POST', path: up, headers: MULTIPART, body: multipart([{ field: 'file', filename: 'big.bin', data: Buffer.alloc(2 * 1024 * 1024, 7) }]), status: 413 },
      { what: 'unknown route', method: 'GET', path: `${API}/albums/target/images/existing.png/../../..`, status: 404, error: /no route/ },
      { what: 'method not allowed', method: 'PUT', path: `${API}/albums/target`, status: 405 },
      { what: 'cursor that is not ours', method: 'GET', path: `${API}/albums?cursor=..%2F..%2Fetc&limit=2`, status: 400 },
      { what: 'limit not a number', method: 'GET', path: `${API}/albums?limit=1e9`, status: 400 },
      { what: 'details not a boolean', method: 'GET', path: `${API}/albums/target/images?details=%00`, status: 400 },
      { what: 'transform format as a path', method: 'GET', path: `${API}/albums/target/images/existing.png?format=..%2F..%2Fetc%2Fpasswd`, status: 400 },
      { what: 'transform width negative', method: 'GET', path: `${API}/albums/target/images/existing.png?w=-1`, status: 400 },
      { what: 'transform width huge', method: 'GET', path: `${API}/albums/target/images/existing.png?w=1000000000`, status: 400 },
      { what: 'transform fit with NUL', method: 'GET', path: `${API}/albums/target/images/existing.png?w=8&fit=%00`, status: 400 },
      { what: 'id with a path extension', method: 'GET', path: `${API}/images/abc.png%2F..%2F..`, status: 400 },
    );
    for (const row of rows) {
      expectJsonError(await send(row), row);
      await expectUnharmed(before);
    }
    console.log(`      ${rows.length} malformed-body and content-type requests answered 4xx`);
  });

  it('survives bodies that stop half way: the partial upload is dropped and the service stays healthy', async () => {
    const { hostname, port } = new URL(svc.service.httpUrl);
    const before = await dataTree();
    const staged = async () => (await fs.readdir(path.join(dataDir, '.imagestore', 'tmp'))).length > 0;
    const halfway = async (head: string, partial: Buffer, waitUntilStaged = false) => {
      const socket = net.connect(Number(port), hostname);
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.write(head);
      socket.write(partial);
      // The upload must really be half-received (a staged file exists) when the client goes away.
      if (waitUntilStaged) await waitFor('a staged partial upload', staged, 3000);
      else await new Promise((resolve) => setTimeout(resolve, 50));
      socket.destroy();
    };
    const body = multipart([{ field: 'file', filename: 'half.bin', data: Buffer.alloc(100_000, 1) }]);
    await halfway(
      `POST ${API}/albums/target/images HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: ${MULTIPART['Content-Type']}\r\nContent-Length: ${body.length}\r\n\r\n`,
      body.subarray(0, 40_000),
      true,
    );
    await halfway(`POST ${API}/albums HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n`, Buffer.from('{"albumName":"ha'));
    await halfway(`GET ${API}/albums HTTP/1.1\r\nHost: ${hostname}\r\nX-Half-A-Header: `, Buffer.alloc(0));
    await expectUnharmed(before);
    const res = await send({ what: 'listing', method: 'GET', path: `${API}/albums/target/images`, status: 200 });
    expect(JSON.parse(res.text).imageList).to.not.include('half.bin');
  });

  it('replaces a hostile X-Request-Id with its own id instead of echoing it', async () => {
    for (const given of ['../../etc/passwd', 'x'.repeat(5000), '<script>alert(1)</script>', 'a b', '%0d%0aSet-Cookie:x=1']) {
      const res = await rawRequest(svc.service.httpUrl, 'GET', '/livez', { 'X-Request-Id': given });
      expect(res.status).to.equal(200);
      expect(res.headers['x-request-id']).to.match(/^[0-9a-f-]{36}$/);
    }
    const kept = await rawRequest(svc.service.httpUrl, 'GET', '/livez', { 'X-Request-Id': 'client-id.42' });
    expect(kept.headers['x-request-id']).to.equal('client-id.42');
  });

  it('survives requests that Node\'s HTTP parser refuses, answering them in JSON before any routing', async () => {
    const { hostname, port } = new URL(svc.service.httpUrl);
    const before = await dataTree();
    const raw = async (request: string) => {
      const socket = net.connect(Number(port), hostname);
      let data = '';
      socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
      socket.on('error', () => undefined);
      await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
      socket.write(request);
      const timer = setTimeout(() => socket.destroy(), 3000);
      await new Promise((resolve) => socket.once('close', resolve));
      clearTimeout(timer);
      return data;
    };
    const answers = [
      await raw(`GET ${API}/albums HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`), // headers over Node's 16 KB limit
      await raw(`GET ${API}/albums/a\u0000b HTTP/1.1\r\nHost: x\r\n\r\n`), // raw NUL in the request line
      await raw(`GET ${API}/albums HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n12345`), // request smuggling attempt
      await raw(`GET ${API}/albums HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`),
      await raw('NOT-HTTP\r\n\r\n'),
    ];
    expect(answers.map((a) => a.slice(0, 12))).to.deep.equal(['HTTP/1.1 431', 'HTTP/1.1 400', 'HTTP/1.1 400', 'HTTP/1.1 400', 'HTTP/1.1 400']);
    for (const answer of answers) {
      expect(answer, answer).to.match(/\r\nContent-Type: application\/json/);
      expect(JSON.parse(answer.split('\r\n\r\n')[1]).error, answer).to.be.a('string');
    }
    await expectUnharmed(before);
  });

  describe('Unicode names: NFC and NFD are the same name', () => {
    const nfc = 'Caf\u00e9 \u00c5lesund';
    const nfd = nfc.normalize('NFD');

    it('an album created in NFD is stored in NFC, found in both forms, and NFC creation is a 409', async () => {
      expect(nfd).to.not.equal(nfc);
      const created = await svc.http.post(`${API}/albums`).send({ albumName: nfd }).expect(201);
      expect(created.body.album.name).to.equal(nfc);
      expect(await fs.readdir(path.join(dataDir, 'image-store'))).to.include(nfc).and.not.include(nfd);
      await svc.http.get(`${API}/albums/${encodeURIComponent(nfc)}/images`).expect(200);
      await svc.http.get(`${API}/albums/${encodeURIComponent(nfd)}/images`).expect(200);
      const again = await svc.http.post(`${API}/albums`).send({ albumName: nfc }).expect(409);
      expect(again.body.error).to.match(/album already present/);
      const list = await svc.http.get(`${API}/albums`).expect(200);
      expect(list.body.albumList.filter((n: string) => n.normalize('NFC') === nfc)).to.deep.equal([nfc]);
    });

    it('an image uploaded with an NFC name is served under its NFD spelling, and an NFD upload is a 409', async () => {
      const imageNfc = '\u00e9t\u00e9.png';
      const imageNfd = imageNfc.normalize('NFD');
      const album = encodeURIComponent(nfc);
      await svc.http.post(`${API}/albums/${album}/images`).attach('file', png, imageNfc).expect(201);
      const got = await svc.http.get(`${API}/albums/${album}/images/${encodeURIComponent(imageNfd)}`).buffer(true).expect(200);
      expect(Buffer.compare(got.body as Buffer, png)).to.equal(0);
      const dup = await svc.http.post(`${API}/albums/${encodeURIComponent(nfd)}/images`).attach('file', png, imageNfd).expect(409);
      expect(dup.body.error).to.match(/image already present/);
      // Renaming to the other spelling of the same name is a no-op rename, not a second image.
      const renamed = await svc.http.patch(`${API}/albums/${album}/images/${encodeURIComponent(imageNfd)}`).send({ imageName: imageNfd }).expect(200);
      expect(renamed.body.image.name).to.equal(imageNfc);
      expect((await svc.http.get(`${API}/albums/${album}/images`).expect(200)).body.imageList).to.deep.equal([imageNfc]);
    });
  });
});

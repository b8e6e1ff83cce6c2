import { promises as fs } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { makePng } from '../helpers/images.js';
import { spawnService } from '../helpers/spawn-service.js';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { waitFor } from '../helpers/wait-for.js';

// Issue 12: bodies that do not match their Content-Encoding (item 7), JSON bodies announcing
// 2^31 bytes or more, more than 20 multipart fields, and file names with escaped quotes (Low).
// Requests go through node:http or raw sockets so that headers and bytes are exactly as written.

const API = '/api/v1';
const BOUNDARY = 'body-hardening-boundary-Xq71';
const MULTIPART = `multipart/form-data; boundary=${BOUNDARY}`;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: { error?: string; image?: { name: string }; album?: { name: string } };
}

function send(base: string, method: string, route: string, headers: Record<string, string>, body: Buffer | string): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, method, path: route, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : {} });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${route}: no answer within 5 s`)));
    req.end(body);
  });
}

/** Writes `head` and the first bytes of a body, and resolves with what the server answers before closing (or fails after `ms`). */
async function rawAnswer(base: string, head: string, partialBody: string, ms: number): Promise<string> {
  const { hostname, port } = new URL(base);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let data = '';
  socket.on('data', (c: Buffer) => (data += c.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(head);
  socket.write(partialBody);
  try {
    await waitFor('an answer', () => data.includes('\r\n\r\n') && data.length > data.indexOf('\r\n\r\n') + 4, ms);
    return data;
  } finally {
    socket.destroy();
  }
}

interface Part {
  field: string;
  /** The file name exactly as written between the quotes of the header (escapes included). */
  filename?: string;
  data: Buffer | string;
}

function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${part.field}"${part.filename === undefined ? '' : `; filename="${part.filename}"`}`;
    const type = part.filename === undefined ? '' : 'Content-Type: image/png\r\n';
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\n${type}\r\n`), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(chunks);
}

describe('request bodies: encodings, sizes, fields and file names (issue 12)', function () {
  this.timeout(30_000);
  let svc: TestService;
  let png: Buffer;
  const staged = async () => (await fs.readdir(path.join(svc.dataDir, '.imagestore', 'tmp'))).length;

  before(async () => {
    svc = await startTestService({ config: { limits: { maxUploadBytes: 1024 * 1024, maxJsonBytes: 256, maxConcurrentUploads: 4 } } });
    png = await makePng();
    await svc.http.post(`${API}/albums`).send({ albumName: 'target' }).expect(201);
  });
  after(async () => svc.close());

  const json = (headers: Record<string, string>, body: Buffer | string, route = `${API}/albums`, method = 'POST') =>
    send(svc.service.httpUrl, method, route, { 'Content-Type': 'application/json', ...headers }, body);

  describe('Content-Encoding (item 7)', () => {
    it('answers 400 when a JSON body is not in the encoding it claims (gzip, deflate, br), as the issue\'s curl did', async () => {
      const gzipped = zlib.gzipSync('{"albumName":"never"}');
      const cases: Array<[string, string, Buffer | string]> = [
        ['gzip claimed, plain text sent', 'gzip', 'x'],
        ['gzip claimed, plain JSON sent', 'gzip', '{"albumName":"never"}'],
        ['deflate claimed, plain text sent', 'deflate', 'x'],
        ['br claimed, plain text sent', 'br', 'x'],
        ['gzip cut short', 'gzip', gzipped.subarray(0, gzipped.length - 6)],
      ];
      for (const [what, encoding, body] of cases) {
        const res = await json({ 'Content-Encoding': encoding }, body);
        expect(res.status, `${what}: ${JSON.stringify(res.body)}`).to.equal(400);
        expect(res.body.error, what).to.match(new RegExp(`^the body does not match its Content-Encoding ${encoding}`));
      }
      // The same on the other JSON routes, which share the parser.
      const patch = await json({ 'Content-Encoding': 'gzip' }, 'x', `${API}/albums/target`, 'PATCH');
      expect(patch.status).to.equal(400);
      expect((await svc.http.get(`${API}/albums`).expect(200)).body.albumList).to.deep.equal(['target']);
    });

    it('answers 415 for an encoding it does not support, naming the supported ones', async () => {
      for (const encoding of ['compress', 'zstd', 'x-unknown', 'gzip, gzip']) {
        const res = await json({ 'Content-Encoding': encoding }, '{"albumName":"never"}');
        expect(res.status, `${encoding}: ${JSON.stringify(res.body)}`).to.equal(415);
        expect(res.body.error).to.equal(`unsupported Content-Encoding ${JSON.stringify(encoding)}; supported: gzip, deflate, br, identity`);
      }
    });

    it('still takes a real gzip, deflate or br JSON body, and identity', async () => {
      const bodies: Array<[string, Buffer]> = [
        ['gzip', zlib.gzipSync('{"albumName":"gzipped"}')],
        ['deflate', zlib.deflateSync('{"albumName":"deflated"}')],
        ['br', zlib.brotliCompressSync('{"albumName":"brotli"}')],
        ['identity', Buffer.from('{"albumName":"identity"}')],
      ];
      for (const [encoding, body] of bodies) {
        const res = await json({ 'Content-Encoding': encoding }, body);
        expect(res.status, `${encoding}: ${JSON.stringify(res.body)}`).to.equal(201);
      }
      for (const name of ['gzipped', 'deflated', 'brotli', 'identity']) await svc.http.delete(`${API}/albums/${name}`).expect(200);
    });

    it('counts the limit on the decoded JSON: a small gzip body that inflates past maxJsonBytes is a 413', async () => {
      const bomb = zlib.gzipSync(JSON.stringify({ albumName: 'x'.repeat(100_000) }));
      expect(bomb.length).to.be.below(256);
      const res = await json({ 'Content-Encoding': 'gzip' }, bomb);
      expect(res.status).to.equal(413);
      expect(res.body.error).to.equal('body larger than the limit of 256 bytes');
    });

    it('answers 415 for a multipart upload with a Content-Encoding (formidable does not decode it), and stages nothing', async () => {
      for (const encoding of ['gzip', 'br', 'x-unknown']) {
        const body = encoding === 'gzip' ? zlib.gzipSync(multipart([{ field: 'file', filename: 'zipped.png', data: png }])) : multipart([{ field: 'file', filename: 'zipped.png', data: png }]);
        const res = await send(svc.service.httpUrl, 'POST', `${API}/albums/target/images`, { 'Content-Type': MULTIPART, 'Content-Encoding': encoding }, body);
        expect(res.status, `${encoding}: ${JSON.stringify(res.body)}`).to.equal(415);
        expect(res.body.error).to.match(/^multipart bodies are taken without Content-Encoding/);
      }
      expect(await staged()).to.equal(0);
      const plain = await send(svc.service.httpUrl, 'POST', `${API}/albums/target/images`, { 'Content-Type': MULTIPART, 'Content-Encoding': 'identity' }, multipart([{ field: 'file', filename: 'identity.png', data: png }]));
      expect(plain.status, JSON.stringify(plain.body)).to.equal(201);
    });
  });

  describe('Low items', () => {
    for (const length of ['2147483648', '4294967306', '9007199254740993', '9223372036854775807']) {
      it(`answers a JSON body announcing Content-Length ${length} with an immediate 413 and closes the connection`, async () => {
        const head = `POST ${API}/albums HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`;
        const answer = await rawAnswer(svc.service.httpUrl, head, '{"albumName":"', 3000);
        expect(answer).to.match(/^HTTP\/1\.1 413 /);
        expect(answer).to.match(/\r\nConnection: close\r\n/i);
        expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4))).to.deep.equal({ error: 'body larger than the limit of 256 bytes' });
      });
    }

    it('answers more than 20 multipart fields with a 413 that says so (not "body larger than the limit")', async () => {
      const fields: Part[] = Array.from({ length: 21 }, (_, i) => ({ field: `f${i}`, data: 'v' }));
      const res = await send(svc.service.httpUrl, 'POST', `${API}/albums/target/images`, { 'Content-Type': MULTIPART }, multipart([...fields, { field: 'file', filename: 'fields.png', data: png }]));
      expect(res.status).to.equal(413);
      expect(res.body).to.deep.equal({ error: 'too many form fields (limit 20)' });
      const big = await send(svc.service.httpUrl, 'POST', `${API}/albums/target/images`, { 'Content-Type': MULTIPART }, multipart([{ field: 'note', data: 'n'.repeat(70 * 1024) }, { field: 'file', filename: 'fields.png', data: png }]));
      expect(big.status).to.equal(413);
      expect(big.body).to.deep.equal({ error: 'form fields larger than the limit of 65536 bytes' });
      await waitFor('an empty staging dir', async () => (await staged()) === 0, 3000);
    });

    it('stores a file name with escaped quotes whole (a\\"b.png is a"b.png), as Go and curl --form-escape send it', async () => {
      const cases: Array<[string, string]> = [
        ['a\\"b.png', 'a"b.png'],
        ['say \\"cheese\\".png', 'say "cheese".png'],
        ['pct%22quote.png', 'pct"quote.png'], // browsers write a quote as %22
        ['C:\\\\Users\\\\me\\\\escaped-path.png', 'escaped-path.png'], // Go escapes backslashes too: still the base name
        ['C:\\Users\\me\\windows.png', 'windows.png'],
      ];
      for (const [written, stored] of cases) {
        const res = await send(svc.service.httpUrl, 'POST', `${API}/albums/target/images`, { 'Content-Type': MULTIPART }, multipart([{ field: 'file', filename: written, data: png }]));
        expect(res.status, `${written}: ${JSON.stringify(res.body)}`).to.equal(201);
        expect(res.body.image?.name, written).to.equal(stored);
      }
      const list = await svc.http.get(`${API}/albums/target/images`).expect(200);
      expect(list.body.imageList).to.include.members(['a"b.png', 'say "cheese".png']);
    });
  });

  it('finishes a gzip JSON request whose client goes away half way (the parse waited forever; no access log line)', async () => {
    const dataDir = await makeTmpDir();
    const service = await spawnService({ dataDir });
    try {
      const { hostname, port } = new URL(service.http);
      const body = zlib.gzipSync(JSON.stringify({ albumName: 'x'.repeat(1000) }));
      for (const encoding of ['gzip', 'deflate', 'identity']) {
        const socket = net.connect(Number(port), hostname);
        await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
        socket.write(`POST ${API}/albums HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: ${encoding}\r\nContent-Length: ${body.length}\r\n\r\n`);
        socket.write(body.subarray(0, 20));
        await new Promise((resolve) => setTimeout(resolve, 200)); // the service is reading the body
        socket.destroy();
      }
      const finished = () => service.logs('request completed').filter((l) => l.method === 'POST' && l.path === `${API}/albums`).length;
      await waitFor('an access log line for each aborted request', () => finished() === 3, 5000).catch(() => undefined);
      expect(finished(), 'requests that finished').to.equal(3);
      // Not Koa's default 404: the status of the error that ended the request.
      const statuses = service.logs('request completed').filter((l) => l.method === 'POST' && l.path === `${API}/albums`).map((l) => l.status);
      expect(statuses).to.not.include(404);
      expect(service.logs('error after the response started').map((l) => (l.err as { message?: string }).message)).to.include('request aborted by the client');
    } finally {
      await service.stop();
      await removeDir(dataDir);
    }
  });
});

import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { makePng } from '../helpers/images.js';
import { waitFor } from '../helpers/wait-for.js';

// Races between requests on the same album or image name. Each test fires the
// requests together, then checks the final state against the answers the
// clients received: whoever got a 2xx won, and the store shows exactly that.

const API = '/api/v1';

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

let tiny: Buffer;

/** A valid PNG of about `bytes` bytes, different every time: a 4×4 image plus a tEXt chunk of random hex. */
function uniquePng(bytes: number): Buffer {
  const iend = tiny.length - 12;
  const data = Buffer.from(`pad\0${randomBytes(Math.max(8, Math.ceil((bytes - tiny.length) / 2))).toString('hex')}`, 'latin1');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const typed = Buffer.concat([Buffer.from('tEXt', 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(typed) >>> 0);
  return Buffer.concat([tiny.subarray(0, iend), length, typed, crc, tiny.subarray(iend)]);
}

describe('races: concurrent requests on the same names', function () {
  this.timeout(30_000);
  let svc: TestService;

  before(async () => {
    tiny = await makePng(4, 4);
    svc = await startTestService({ config: { limits: { maxUploadBytes: 8 * 1024 * 1024, maxJsonBytes: 16 * 1024, maxConcurrentUploads: 64 } } });
  });
  after(async () => svc.close());

  const createAlbum = (name: string) => svc.http.post(`${API}/albums`).send({ albumName: name }).expect(201);
  const upload = async (album: string, name: string, data: Buffer): Promise<Answer> => {
    const res = await svc.http.post(`${API}/albums/${encodeURIComponent(album)}/images`).attach('file', data, name);
    return { status: res.status, body: res.body };
  };
  const rename = async (album: string, from: string, to: string): Promise<Answer> => {
    const res = await svc.http.patch(`${API}/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(from)}`).send({ imageName: to });
    return { status: res.status, body: res.body };
  };
  const download = async (album: string, name: string): Promise<{ status: number; body: Buffer }> => {
    const res = await svc.http.get(`${API}/albums/${encodeURIComponent(album)}/images/${encodeURIComponent(name)}`).buffer(true);
    return { status: res.status, body: res.body as Buffer };
  };
  const listImages = async (album: string): Promise<string[]> => {
    const res = await svc.http.get(`${API}/albums/${encodeURIComponent(album)}/images`).expect(200);
    return res.body.imageList as string[];
  };
  const tmpDir = () => path.join(svc.dataDir, '.imagestore', 'tmp');
  const trashDir = () => path.join(svc.dataDir, '.imagestore', 'trash');
  /** Staging and trash empty once in-flight work has settled (the trash is emptied in the background). */
  const expectNoLeftovers = () =>
    waitFor('empty tmp and trash dirs', async () => (await fs.readdir(tmpDir())).length === 0 && (await fs.readdir(trashDir())).length === 0, 3000);

  it('same-name uploads: exactly one 201, the others 409, and the stored bytes are the winner\'s', async () => {
    await createAlbum('same-name');
    const payloads = Array.from({ length: 24 }, (_, i) => uniquePng(20_000 + i * 997));
    const answers = await Promise.all(payloads.map((p) => upload('same-name', 'contested.png', p)));

    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 201), `statuses ${statuses}`).to.have.length(1);
    expect(statuses.filter((s) => s === 409)).to.have.length(payloads.length - 1);
    for (const loser of answers.filter((a) => a.status === 409)) expect(loser.body.error).to.match(/contested\.png image already present/);
    const winner = payloads[statuses.indexOf(201)];
    expect((answers[statuses.indexOf(201)].body.image as { sha256: string }).sha256).to.equal(sha256(winner));
    const stored = await download('same-name', 'contested.png');
    expect(stored.status).to.equal(200);
    expect(sha256(stored.body)).to.equal(sha256(winner));
    expect(await listImages('same-name')).to.deep.equal(['contested.png']);
    await expectNoLeftovers();
  });

  it('same-name album creation: exactly one 201, the others 409', async () => {
    const answers = await Promise.all(Array.from({ length: 16 }, () => svc.http.post(`${API}/albums`).send({ albumName: 'contested-album' })));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).to.deep.equal([201, ...Array(15).fill(409)]);
  });

  it('rename vs upload onto the same target name: one of them wins, the state matches the answers', async () => {
    await createAlbum('rename-upload');
    const pairs = 20;
    const originals = Array.from({ length: pairs }, () => uniquePng(4096));
    // Sizes from a few bytes to 40 KB, and half the renames sent a moment later, so that both sides win some pairs.
    const uploads = Array.from({ length: pairs }, (_, i) => uniquePng(i % 2 === 0 ? 16 + i : 40_000));
    for (let i = 0; i < pairs; i++) expect((await upload('rename-upload', `src-${i}.png`, originals[i])).status).to.equal(201);

    const results = await Promise.all(
      originals.map((_, i) =>
        Promise.all([
          i % 4 < 2
            ? rename('rename-upload', `src-${i}.png`, `dst-${i}.png`)
            : new Promise((resolve) => setTimeout(resolve, 5)).then(() => rename('rename-upload', `src-${i}.png`, `dst-${i}.png`)),
          upload('rename-upload', `dst-${i}.png`, uploads[i]),
        ]),
      ),
    );
    let renameWins = 0;
    for (const [i, [renamed, uploaded]] of results.entries()) {
      const outcome = `${renamed.status}/${uploaded.status}`;
      expect(['200/409', '409/201'], `pair ${i}`).to.include(outcome);
      const dst = await download('rename-upload', `dst-${i}.png`);
      const src = await download('rename-upload', `src-${i}.png`);
      if (outcome === '200/409') {
        renameWins += 1;
        expect(sha256(dst.body)).to.equal(sha256(originals[i]));
        expect(src.status).to.equal(404);
      } else {
        expect(sha256(dst.body)).to.equal(sha256(uploads[i]));
        expect(sha256(src.body)).to.equal(sha256(originals[i]));
      }
    }
    console.log(`      rename vs upload: ${renameWins} renames won, ${pairs - renameWins} uploads won`);
    await expectNoLeftovers();
  });

  it('rename vs delete of the same image: either the image is renamed or gone, never both or neither answer', async () => {
    await createAlbum('rename-delete');
    const count = 20;
    const data = Array.from({ length: count }, () => uniquePng(2048));
    for (let i = 0; i < count; i++) expect((await upload('rename-delete', `img-${i}.png`, data[i])).status).to.equal(201);

    const results = await Promise.all(
      data.map((_, i) =>
        Promise.all([
          rename('rename-delete', `img-${i}.png`, `moved-${i}.png`),
          svc.http.delete(`${API}/albums/rename-delete/images/img-${i}.png`).then((r) => ({ status: r.status, body: r.body })),
        ]),
      ),
    );
    const expected: string[] = [];
    for (const [i, [renamed, deleted]] of results.entries()) {
      const outcome = `${renamed.status}/${deleted.status}`;
      expect(['200/404', '404/200'], `pair ${i}`).to.include(outcome);
      if (outcome === '200/404') {
        expected.push(`moved-${i}.png`);
        expect(sha256((await download('rename-delete', `moved-${i}.png`)).body)).to.equal(sha256(data[i]));
      }
    }
    expect(await listImages('rename-delete')).to.have.members(expected);
  });

  it('rename chain a→b / b→a under load: successes alternate, the image ends under the name they imply', async () => {
    await createAlbum('chain');
    const original = uniquePng(50_000);
    const first = await upload('chain', 'a.png', original);
    expect(first.status).to.equal(201);
    const id = (first.body.image as { id: string }).id;

    // Background load on the same album: unrelated uploads while the renames run.
    const load = Array.from({ length: 16 }, (_, i) => upload('chain', `load-${i}.png`, uniquePng(100_000)));
    const forward = Array.from({ length: 60 }, () => Math.random() < 0.5);
    const renames = forward.map((f) => (f ? rename('chain', 'a.png', 'b.png') : rename('chain', 'b.png', 'a.png')));
    const [loadAnswers, renameAnswers] = await Promise.all([Promise.all(load), Promise.all(renames)]);

    expect(loadAnswers.map((a) => a.status)).to.deep.equal(Array(16).fill(201));
    let aToB = 0;
    let bToA = 0;
    for (const [i, answer] of renameAnswers.entries()) {
      expect([200, 404], `rename ${i}: ${JSON.stringify(answer.body)}`).to.include(answer.status);
      if (answer.status === 200) {
        if (forward[i]) aToB += 1;
        else bToA += 1;
        expect((answer.body.image as { id: string }).id, 'the id survives renames').to.equal(id);
      }
    }
    // The image is under exactly one name at any time, so successful renames alternate a→b, b→a, a→b, ...
    expect(aToB - bToA).to.be.oneOf([0, 1]);
    const finalName = aToB === bToA ? 'a.png' : 'b.png';
    const otherName = finalName === 'a.png' ? 'b.png' : 'a.png';
    const stored = await download('chain', finalName);
    expect(stored.status).to.equal(200);
    expect(sha256(stored.body)).to.equal(sha256(original));
    expect((await download('chain', otherName)).status).to.equal(404);
    const names = await listImages('chain');
    expect(names).to.include(finalName).and.not.include(otherName);
    expect(names).to.have.length(17);
    console.log(`      rename chain: ${aToB} a→b and ${bToA} b→a succeeded out of 60, final name ${finalName}`);
  });

  it('album delete vs uploads streaming into it: uploads are 201 (committed before the delete) or 404, nothing is left behind', async () => {
    await createAlbum('doomed');
    const count = 24;
    const uploads = Array.from({ length: count }, (_, i) => upload('doomed', `img-${i}.png`, uniquePng(50_000 + i * 10_000)));
    await Promise.race(uploads); // delete once the first upload is answered, while the others still stream
    const deleted = await svc.http.delete(`${API}/albums/doomed`);
    expect(deleted.status).to.equal(200);
    // Requests sent after the delete was answered find no album.
    const late = await Promise.all(Array.from({ length: 4 }, (_, i) => upload('doomed', `late-${i}.png`, uniquePng(1000))));
    const answers = await Promise.all(uploads);

    const statuses = answers.map((a) => a.status);
    for (const [i, a] of answers.entries()) expect([201, 404], `upload ${i}: ${JSON.stringify(a.body)}`).to.include(a.status);
    for (const a of answers.filter((x) => x.status === 404)) expect(a.body.error).to.equal('doomed album is not present');
    expect(late.map((a) => a.status)).to.deep.equal([404, 404, 404, 404]);
    console.log(`      album delete vs uploads: ${statuses.filter((s) => s === 201).length} committed before the delete, ${statuses.filter((s) => s === 404).length} refused`);

    expect((await svc.http.get(`${API}/albums/doomed/images`)).status).to.equal(404);
    expect((await svc.http.get(`${API}/albums`).expect(200)).body.albumList).to.not.include('doomed');
    await expectNoLeftovers();
    expect(await fs.readdir(path.join(svc.dataDir, 'image-store'))).to.not.include('doomed');

    // A new album of the same name starts empty: no acknowledged or staged upload leaks into it.
    await createAlbum('doomed');
    expect(await listImages('doomed')).to.deep.equal([]);
    expect(await fs.readdir(path.join(svc.dataDir, 'image-store', 'doomed'))).to.deep.equal(['.imagestore']);
  });
});

import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startTestService, type TestService } from '../helpers/service.js';
import { makeTmpDir, removeDir } from '../helpers/tmp-dir.js';
import { makePng } from '../helpers/images.js';

// A data dir written by the Go service (test/fixtures/go-image-db): the album
// tree image-store/<album>/<file> and its index image-info.json, with no
// metadata of ours. It must open as it is, serve every album and image byte for
// byte, report the index entry whose file is missing, and import only once.

const FIXTURE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../fixtures/go-image-db');
const API = '/api/v1';

/** Album → image files in the fixture (the index also lists holidays/missing.jpg, which has no file). */
const EXPECTED: Record<string, string[]> = {
  holidays: ['beach.png', 'table.jpg'],
  'Ålesund': ['fjord café.png', 'harbour.jpg'],
  empty: [],
};

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface ImageDetails {
  id: string;
  name: string;
  size: number;
  type: string;
  sha256: string;
}

describe('Go service data dir: opened, served and imported once', function () {
  this.timeout(20_000);
  let dataDir: string;
  let svc: TestService | undefined;

  before(async () => {
    dataDir = await makeTmpDir('imagestore-go-');
    await fs.cp(FIXTURE, dataDir, { recursive: true });
    // git does not keep empty directories, so the fixture's empty album is made here.
    await fs.mkdir(path.join(dataDir, 'image-store', 'empty'));
  });
  afterEach(async () => svc?.stop());
  after(async () => removeDir(dataDir));

  const url = (album: string, image?: string) =>
    `${API}/albums/${encodeURIComponent(album)}/images${image === undefined ? '' : `/${encodeURIComponent(image)}`}`;
  const details = async (s: TestService, album: string): Promise<ImageDetails[]> =>
    (await s.http.get(`${url(album)}?details=true`).expect(200)).body.images;

  const firstIds: Record<string, string> = {};

  it('serves every album and image of the Go layout, byte for byte, and reports the missing index entry', async () => {
    svc = await startTestService({ dataDir });
    const s = svc;

    const problems = s.service.recovery.problems;
    const missing = problems.filter((p) => p.kind === 'go-index-entry-missing');
    expect(missing, JSON.stringify(problems)).to.have.length(1);
    expect(missing[0].detail).to.equal('image-info.json lists holidays/missing.jpg but the file is missing');
    expect(missing[0].repaired).to.equal(false);
    // Everything else is our metadata being created for the Go files: adopted, not lost.
    const kinds = problems.filter((p) => p !== missing[0]).map((p) => `${p.kind}:${path.relative(dataDir, p.path)}`).sort();
    expect(kinds).to.deep.equal([
      'album-without-metadata:image-store/empty',
      'album-without-metadata:image-store/holidays',
      'album-without-metadata:image-store/Ålesund',
      'file-without-metadata:image-store/holidays/beach.png',
      'file-without-metadata:image-store/holidays/table.jpg',
      'file-without-metadata:image-store/Ålesund/fjord café.png',
      'file-without-metadata:image-store/Ålesund/harbour.jpg',
    ].sort());
    expect(problems.every((p) => p === missing[0] || p.repaired)).to.equal(true);
    expect(s.service.recovery.albums).to.equal(3);
    expect(s.service.recovery.images).to.equal(4);

    const albums = await s.http.get(`${API}/albums`).expect(200);
    expect(albums.body.albumList).to.have.members(Object.keys(EXPECTED));
    for (const [album, images] of Object.entries(EXPECTED)) {
      const listed = await details(s, album);
      expect(listed.map((i) => i.name), album).to.deep.equal(images);
      for (const info of listed) {
        const original = await fs.readFile(path.join(FIXTURE, 'image-store', album, info.name));
        const res = await s.http.get(url(album, info.name)).buffer(true).expect(200);
        expect(Buffer.compare(res.body as Buffer, original), `${album}/${info.name}`).to.equal(0);
        expect(info.sha256).to.equal(sha256(original));
        expect(info.size).to.equal(original.length);
        expect(info.type).to.equal(info.name.endsWith('.png') ? 'image/png' : 'image/jpeg');
        expect(res.headers['content-type']).to.equal(info.type);
        firstIds[`${album}/${info.name}`] = info.id;
      }
    }
    await s.http.get(url('holidays', 'missing.jpg')).expect(404);
    expect(Object.keys(firstIds)).to.have.length(4);
  });

  it('keeps the Go files where they were and image-info.json unchanged', async () => {
    for (const [album, images] of Object.entries(EXPECTED)) {
      const onDisk = (await fs.readdir(path.join(dataDir, 'image-store', album))).filter((n) => n !== '.imagestore').sort();
      expect(onDisk, album).to.deep.equal(images);
    }
    const index = await fs.readFile(path.join(dataDir, 'image-info.json'), 'utf8');
    expect(index).to.equal(await fs.readFile(path.join(FIXTURE, 'image-info.json'), 'utf8'));
  });

  it('does not import or report again on the next start: same ids, no problems', async () => {
    svc = await startTestService({ dataDir });
    expect(svc.service.recovery.problems).to.deep.equal([]);
    const ids: Record<string, string> = {};
    for (const album of Object.keys(EXPECTED)) for (const info of await details(svc, album)) ids[`${album}/${info.name}`] = info.id;
    expect(ids).to.deep.equal(firstIds);
  });

  it('takes new uploads and renames in an imported album, in the same tree', async () => {
    svc = await startTestService({ dataDir });
    const png = await makePng(4, 4);
    await svc.http.post(url('holidays')).attach('file', png, 'new.png').expect(201);
    await svc.http.patch(url('Ålesund', 'harbour.jpg')).send({ imageName: 'havn.jpg' }).expect(200);
    expect(await fs.readFile(path.join(dataDir, 'image-store', 'holidays', 'new.png'))).to.deep.equal(png);
    const moved = await fs.readFile(path.join(dataDir, 'image-store', 'Ålesund', 'havn.jpg'));
    expect(moved).to.deep.equal(await fs.readFile(path.join(FIXTURE, 'image-store', 'Ålesund', 'harbour.jpg')));
    await svc.http.post(url('empty')).attach('file', png, 'first.png').expect(201);
    expect((await svc.http.get(url('empty')).expect(200)).body.imageList).to.deep.equal(['first.png']);
  });
});

import { createHash } from 'node:crypto';
import type supertest from 'supertest';
import type { Response } from 'supertest';

type Http = ReturnType<typeof supertest>;

/** The path of an album (or of its images) below /api/v1, names URL-encoded. */
export function albumPath(album: string, image?: string): string {
  const base = `/api/v1/albums/${encodeURIComponent(album)}`;
  return image === undefined ? base : `${base}/images/${encodeURIComponent(image)}`;
}

/** sha256 of a buffer, hex. */
export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * superagent parser that keeps any body as raw bytes, whatever its Content-Type
 * (superagent would otherwise parse JSON and text, and drop unknown types).
 */
export function rawBody(res: Response, callback: (err: Error | null, body: Buffer) => void): void {
  // At run time superagent hands the parser the raw http.IncomingMessage.
  const stream = res as unknown as NodeJS.ReadableStream;
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.on('end', () => callback(null, Buffer.concat(chunks)));
  stream.on('error', (err: Error) => callback(err, Buffer.alloc(0)));
}

/** POST /albums, expecting 201. */
export async function createAlbum(http: Http, album: string): Promise<Response> {
  return http.post('/api/v1/albums').send({ albumName: album }).expect(201);
}

/** Uploads `bytes` as multipart field `file` named `name`, expecting 201; returns the response. */
export async function uploadImage(http: Http, album: string, name: string, bytes: Buffer): Promise<Response> {
  return http.post(`${albumPath(album)}/images`).attach('file', bytes, name).expect(201);
}

/** GET of an image, expecting 200; the body is the raw bytes. */
export async function downloadImage(http: Http, album: string, image: string): Promise<{ res: Response; bytes: Buffer }> {
  const res = await http.get(albumPath(album, image)).buffer(true).parse(rawBody).expect(200);
  return { res, bytes: res.body as Buffer };
}

/** Every name of a listing, following `nextCursor` with the given page size (bounded by `maxPages`). */
export async function listAll(http: Http, listPath: string, limit: number, maxPages = 10_000): Promise<{ names: string[]; pages: string[][] }> {
  const pages: string[][] = [];
  let cursor: string | undefined;
  for (let i = 0; i < maxPages; i += 1) {
    const query: Record<string, string | number> = { limit };
    if (cursor !== undefined) query.cursor = cursor;
    const res = await http.get(listPath).query(query).expect(200);
    const names = (res.body.albumList ?? res.body.imageList) as string[];
    pages.push(names);
    cursor = res.body.nextCursor;
    if (cursor === undefined) return { names: pages.flat(), pages };
  }
  throw new Error(`listing ${listPath} did not end within ${maxPages} pages`);
}

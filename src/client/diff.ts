import type { HttpClient, QueryValues } from './http.js';
import type { DiffOptions, DiffResult } from './types.js';
import { sourceBlob, type UploadSource } from './upload-source.js';

/** The picture a diff can answer with instead of JSON: the diff alone, or a | b | diff. */
export type DiffPicture = 'png' | 'side-by-side';

/** An image to compare: `{album}/{image}`, or a stable image id. */
export type ImageRef = string | { album: string; image: string };

function refOf(ref: ImageRef): string {
  return typeof ref === 'string' ? ref : `${ref.album}/${ref.image}`;
}

function query(options: DiffOptions & { output?: string }): QueryValues {
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as QueryValues;
}

/** GET /diff: compares two stored images (JSON). */
export function diffStored(http: HttpClient, a: ImageRef, b: ImageRef, options: DiffOptions = {}, signal?: AbortSignal): Promise<DiffResult> {
  return http.json({ method: 'GET', path: '/api/v1/diff', query: { a: refOf(a), b: refOf(b), ...query(options) }, signal }, 'DiffResponse');
}

/** GET /diff with output=png or side-by-side: the picture's PNG bytes. */
export async function diffStoredPicture(http: HttpClient, a: ImageRef, b: ImageRef, output: DiffPicture, options: DiffOptions = {}, signal?: AbortSignal): Promise<Uint8Array> {
  const res = await http.request({ method: 'GET', path: '/api/v1/diff', query: { a: refOf(a), b: refOf(b), ...query({ ...options, output }) }, signal });
  return toBytes(await res.arrayBuffer());
}

/** POST /diff: compares two images sent in the request (multipart fields a and b; never retried). */
export async function diffUploaded(http: HttpClient, a: UploadSource, b: UploadSource, options: DiffOptions & { output?: 'json' } = {}, signal?: AbortSignal): Promise<DiffResult> {
  return http.json({ method: 'POST', path: '/api/v1/diff', query: query(options), body: await diffForm(a, b), signal }, 'DiffResponse');
}

/** POST /diff with output=png or side-by-side: the picture's PNG bytes. */
export async function diffUploadedPicture(http: HttpClient, a: UploadSource, b: UploadSource, output: DiffPicture, options: DiffOptions = {}, signal?: AbortSignal): Promise<Uint8Array> {
  const res = await http.request({ method: 'POST', path: '/api/v1/diff', query: query({ ...options, output }), body: await diffForm(a, b), signal });
  return toBytes(await res.arrayBuffer());
}

async function diffForm(a: UploadSource, b: UploadSource): Promise<FormData> {
  const form = new FormData();
  for (const [field, source] of [['a', a], ['b', b]] as const) {
    const named = typeof source === 'string' || (source instanceof Blob && typeof (source as Blob & { name?: unknown }).name === 'string');
    const { name, blob } = await sourceBlob(source, { name: named ? undefined : field });
    form.append(field, blob, name);
  }
  return form;
}

function toBytes(buffer: ArrayBuffer): Uint8Array {
  return typeof Buffer === 'function' ? Buffer.from(buffer) : new Uint8Array(buffer);
}

/**
 * What an image can be uploaded from:
 * - a file path (`string`; Node only, streamed from disk with fs.openAsBlob),
 * - bytes (`Uint8Array`, so a Node `Buffer` too, or `ArrayBuffer`),
 * - a `Blob` (or a browser `File`, whose name is used),
 * - a web `ReadableStream`, or any async iterable of chunks (a Node `Readable`):
 *   streamed as it is read in Node, collected first in browsers (which only
 *   stream request bodies over HTTP/2).
 */
export type UploadSource = string | Uint8Array | ArrayBuffer | Blob | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array | string>;

/** Options of an upload. */
export interface UploadOptions {
  /** The stored image name; default: the path's or File's base name (required for other sources). */
  name?: string;
  /** Content-Type of the file part; default: from the name's extension. The service sniffs the bytes anyway. */
  contentType?: string;
  signal?: AbortSignal;
}

/** A multipart body ready for fetch. */
export interface UploadBody {
  name: string;
  body: FormData | ReadableStream<Uint8Array>;
  /** Set for a hand-built streamed body; FormData sets its own. */
  contentType?: string;
}

const TYPES: Record<string, string> = {
  jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp', gif: 'image/gif',
  avif: 'image/avif', tif: 'image/tiff', tiff: 'image/tiff', svg: 'image/svg+xml',
};

/** MIME type from a file name's extension (application/octet-stream when unknown). */
export function typeFromName(name: string): string {
  const ext = /\.([A-Za-z0-9]+)$/.exec(name)?.[1]?.toLowerCase();
  return (ext && TYPES[ext]) || 'application/octet-stream';
}

/** The last segment of a path, with / or \ separators. */
export function baseName(filePath: string): string {
  return filePath.split(/[\\/]/).pop() ?? filePath;
}

/** A source resolved to a Blob (paths, bytes, blobs) or a stream (streams, iterables), with its name. */
interface ResolvedSource {
  name: string;
  type: string;
  blob?: Blob;
  stream?: ReadableStream<Uint8Array>;
}

async function resolveSource(source: UploadSource, options: UploadOptions): Promise<ResolvedSource> {
  if (typeof source === 'string') {
    const name = options.name ?? baseName(source);
    const type = options.contentType ?? typeFromName(name);
    // Node only: a dynamic import, so browsers never load node:fs.
    const fs = await import('node:fs');
    // stat first: openAsBlob reports a missing file as "Unable to open file as blob", without the path.
    if (!(await fs.promises.stat(source)).isFile()) throw new TypeError(`Expected a file but ${source} is not one`);
    return { name, type, blob: (await fs.openAsBlob(source, { type })) as Blob };
  }
  if (source instanceof Blob) {
    const name = requireName(options.name ?? (source as Blob & { name?: string }).name);
    return { name, type: source.type, blob: source };
  }
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) {
    const name = requireName(options.name);
    const type = options.contentType ?? typeFromName(name);
    return { name, type, blob: new Blob([source] as unknown as ConstructorParameters<typeof Blob>[0], { type }) };
  }
  const stream = source instanceof ReadableStream ? source : isAsyncIterable(source) ? iterableToStream(source) : undefined;
  if (!stream) throw new TypeError('Expected a file path, Uint8Array, ArrayBuffer, Blob, ReadableStream or async iterable as the upload source');
  const name = requireName(options.name);
  return { name, type: options.contentType ?? typeFromName(name), stream };
}

/**
 * Builds the multipart body (field `file`) of an upload: FormData for paths,
 * bytes and blobs; a streamed body for streams in Node.
 * @throws {TypeError} when no name is given for a source without one, or the source is of no known kind
 */
export async function uploadBody(source: UploadSource, options: UploadOptions = {}): Promise<UploadBody> {
  const resolved = await resolveSource(source, options);
  if (resolved.blob) return formBody(resolved.blob, resolved.name);
  const stream = resolved.stream as ReadableStream<Uint8Array>;
  if (!isNode()) return formBody(await new Response(stream).blob(), resolved.name);
  return multipartStream(stream, resolved.name, resolved.type);
}

/**
 * A source as a Blob and a name, for forms with several files (streams are
 * read into memory first).
 */
export async function sourceBlob(source: UploadSource, options: UploadOptions = {}): Promise<{ name: string; blob: Blob }> {
  const resolved = await resolveSource(source, options);
  const blob = resolved.blob ?? (await new Response(resolved.stream).blob());
  return { name: resolved.name, blob };
}

function formBody(blob: Blob, name: string): UploadBody {
  const form = new FormData();
  form.append('file', blob, name);
  return { name, body: form };
}

function requireName(name: string | undefined): string {
  if (!name) throw new TypeError('Expected options.name: the image name is needed for uploads from bytes, blobs or streams');
  return name;
}

function isNode(): boolean {
  return typeof process !== 'undefined' && typeof process.versions?.node === 'string';
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array | string> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function iterableToStream(iterable: AsyncIterable<Uint8Array | string>): ReadableStream<Uint8Array> {
  const iterator = iterable[Symbol.asyncIterator]();
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(typeof next.value === 'string' ? encoder.encode(next.value) : next.value);
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

/**
 * A multipart/form-data body around a stream, sent as it is read. The file
 * name is escaped as browsers' FormData does (`"` → %22, CR → %0D, LF → %0A).
 */
function multipartStream(stream: ReadableStream<Uint8Array>, name: string, type: string): UploadBody {
  const boundary = `----imagestore${crypto.randomUUID().replace(/-/g, '')}`;
  const encoder = new TextEncoder();
  const escaped = name.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const head = encoder.encode(`--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${escaped}"\r\nContent-Type: ${type}\r\n\r\n`);
  const tail = encoder.encode(`\r\n--${boundary}--\r\n`);
  const reader = stream.getReader();
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(head);
    },
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.enqueue(tail);
        controller.close();
      } else controller.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { name, body, contentType: `multipart/form-data; boundary=${boundary}` };
}

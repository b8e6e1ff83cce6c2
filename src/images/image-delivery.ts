import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { readRange } from '../lib/read-range.js';
import type { ImageHandle, ImageInfo } from '../albums/types.js';
import { UnsupportedMediaTypeError } from '../errors.js';
import { SMALL_BODY_BYTES, type ImageBody } from './image-body.js';
import type { DerivativeCache, OpenDerivative } from './derivative-cache.js';
import { HotCache } from './hot-cache.js';
import { ReadyHeadersCache } from './ready-headers.js';
import { DECODED_FORMATS, type DecodedFormat, type Decoder, type JxlEncoder } from './decode-pool.js';
import type { EngineSlots } from './engine-slots.js';
import { checkOutputBudget, withinBudget, type OutputBudgets, type SourceFacts } from './output-size.js';
import { MIME_BY_OUTPUT, transformToFile, type ResolvedSpec } from './transform.js';
import { negotiateFormat, OUTPUT_FORMATS, specKey, type OutputFormat, type TransformSpec } from './transform-spec.js';

/** Cache-Control of name URLs: the name may later hold another image, so revalidate (cheap, with the ETag). */
export const NAME_URL_CACHE = 'public, max-age=0, must-revalidate';
/** Cache-Control of id URLs: an id always names the same bytes. */
export const ID_URL_CACHE = 'public, max-age=31536000, immutable';

const EXTENSIONS: Record<OutputFormat, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', avif: 'avif', gif: 'gif', tiff: 'tiff', jxl: 'jxl' };

/**
 * Turns an opened image and an optional transform into a body to send: the
 * original as stored, or a derivative from the cache (made on first request).
 * Headers come ready-made from memory; bytes come from the hot-file cache
 * when it has them (no file opened), else from disk. A cached derivative never
 * needs its original opened.
 */
export class ImageDelivery {
  private readonly headers = new ReadyHeadersCache();

  constructor(
    private readonly cache: DerivativeCache,
    private readonly maxInputPixels: number,
    /** The transforms' own lane: caps those running at once and bounds the wait; unlimited when absent. */
    private readonly engine?: EngineSlots,
    /** Largest output per format (AVIF, GIF): larger ones are refused, and format=auto passes over them. */
    private readonly budgets: OutputBudgets = {},
    /** Small originals' bytes in memory (derivatives' are kept by the derivative cache); none: always read from disk. */
    private readonly hot: HotCache = new HotCache(0, 0),
    /** Decodes the formats libvips cannot (HEIC: DecodePool); without it their transforms are refused (415). */
    private readonly decode?: Decoder,
    /** Encodes JPEG XL output (DecodePool); without it format=jxl is refused and format=auto passes over it. */
    private readonly encodeJxl?: JxlEncoder,
  ) {}

  /**
   * @param handle the opened original (closed by this call or by the body)
   * @param spec the transform, or undefined for the original
   * @param accept the request's Accept header (for format=auto)
   * @param cacheControl NAME_URL_CACHE or ID_URL_CACHE
   * @throws {UnsupportedMediaTypeError} a transform of a stored file that is not a decodable image
   * @throws {UnprocessableImageError} an output over its format's pixel budget
   * @throws {ServiceUnavailableError} (from load) no transform slot freed in time
   */
  async body(handle: ImageHandle, spec: TransformSpec | undefined, accept: string, cacheControl: string): Promise<ImageBody> {
    try {
      if (!spec || this.originalSatisfies(spec, handle.info, accept)) return this.original(handle, cacheControl, spec?.format === 'auto');
      return this.derivative(handle, spec, accept, cacheControl);
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private original(handle: ImageHandle, cacheControl: string, varyAccept: boolean): ImageBody {
    const { info } = handle;
    const etag = `"${info.sha256}"`;
    const head = this.headers.get(`${info.id} ${cacheControl}`, { etag, modifiedAt: info.modifiedAt, name: info.name, type: info.type, cacheControl, varyAccept });
    const { hot } = this;
    const copies = this.localCopy.bind(this);
    let file: FileHandle | undefined;
    return {
      head,
      // FileHandle.close() may be called again: the later calls do nothing.
      close: async () => {
        await handle.close();
        await file?.close();
      },
      load: async () => ({
        size: info.size,
        async bytes(range) {
          const held = hot.get(info.sha256);
          if (held !== undefined) {
            await handle.close();
            return range ? held.subarray(range.start, range.end + 1) : held;
          }
          const local = handle.remote && !hot.accepts(info.size) ? await copies(handle) : undefined;
          if (local?.bytes !== undefined) return range ? local.bytes.subarray(range.start, range.end + 1) : local.bytes;
          if (local?.handle !== undefined) {
            const opened = (file = local.handle);
            const length = range ? range.end - range.start + 1 : info.size;
            if (length <= SMALL_BODY_BYTES) return readRange(opened, range?.start ?? 0, length).finally(() => opened.close());
            return opened.createReadStream(range ?? {});
          }
          if (hot.accepts(info.size)) {
            const whole = handle.read ? await handle.read() : await readWhole(handle);
            // Kept under its sha256 only once checked against it: the cache must never hold other bytes under a content's name.
            if (whole.length === info.size && sha256(whole) === info.sha256) hot.set(info.sha256, whole);
            return range ? whole.subarray(range.start, range.end + 1) : whole;
          }
          if (handle.read && (range ? range.end - range.start + 1 : info.size) <= SMALL_BODY_BYTES) return handle.read(range);
          await handle.open?.();
          return handle.stream(range);
        },
      }),
    };
  }

  /**
   * A remote original's local copy in the derivative cache (under its sha256: content never
   * changes under it, so the copy is never stale), made from one GET, checked against the
   * sha256 as it is written. Undefined when the cache is off or the bytes are not the
   * metadata's (then they are sent as the store has them, as before).
   */
  private async localCopy(handle: ImageHandle): Promise<OpenDerivative | undefined> {
    if (this.cache.budgetBytes === 0) return undefined;
    const { info } = handle;
    try {
      const copy = await this.cache.get(this.cache.keyOf(info.sha256, 'original', 'orig'), async (tmp) => {
        const hash = createHash('sha256');
        await pipeline(handle.stream(), new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            done(null, chunk);
          },
        }), createWriteStream(tmp));
        if (hash.digest('hex') !== info.sha256) throw new Error('the stored bytes do not have the sha256 of their metadata');
      });
      await handle.close();
      return copy;
    } catch {
      return undefined;
    }
  }

  private derivative(handle: ImageHandle, spec: TransformSpec, accept: string, cacheControl: string): ImageBody {
    const { info } = handle;
    const original = this.originalFormat(info);
    const source = sourceFacts(info);
    const format = spec.format === 'auto' ? this.negotiate(accept, original, spec, source) : (spec.format ?? original);
    const resolved: ResolvedSpec = { ...spec, format };
    // Before the cache and the queue: a refused output costs no slot.
    checkOutputBudget(resolved, format, source, this.budgets);
    const ext = EXTENSIONS[format];
    const key = this.cache.keyOf(info.sha256, specKey(resolved), ext);
    const name = withExtension(info.name, ext);
    const head = this.headers.get(`${info.id} ${key.key} ${cacheControl}`, {
      etag: key.etag, modifiedAt: info.modifiedAt, name, type: MIME_BY_OUTPUT[format], cacheControl, varyAccept: spec.format === 'auto',
    });
    let file: FileHandle | undefined;
    return {
      head,
      // FileHandle.close() may be called again: the later calls do nothing.
      close: async () => {
        await handle.close();
        await file?.close();
      },
      load: async () => {
        let derivative;
        try {
          // The original is opened only if the derivative has to be made.
          derivative = await this.cache.get(key, async (tmp) => {
            const path = await handle.localPath();
            const run = async () => {
              // Decoded inside the transform's slot: the lane bounds the decoders' pixel memory too.
              const input = this.decodes(info) ? await this.decode!(path, this.maxInputPixels, info.format as DecodedFormat) : path;
              return transformToFile(input, tmp, resolved, source, this.maxInputPixels, this.encodeJxl);
            };
            await (this.engine ? this.engine.run(run) : run());
          });
        } finally {
          await handle.close();
        }
        const { size, bytes } = derivative;
        if (bytes !== undefined) return { size, bytes: async (range) => (range ? bytes.subarray(range.start, range.end + 1) : bytes) };
        // Opened by the cache: an eviction after this cannot cut the download. Closed by the stream, the read, or close().
        const opened = (file = derivative.handle);
        return {
          size,
          async bytes(range) {
            const length = range ? range.end - range.start + 1 : size;
            if (length <= SMALL_BODY_BYTES) return readRange(opened, range?.start ?? 0, length).finally(() => opened.close());
            return opened.createReadStream(range ?? {});
          },
        };
      },
    };
  }

  /** format=auto: AVIF or WebP as the client takes them, passing over a format whose budget this output exceeds. */
  private negotiate(accept: string, original: OutputFormat, spec: TransformSpec, source: SourceFacts): OutputFormat {
    return negotiateFormat(accept, original, (format) => (format !== 'jxl' || this.encodeJxl !== undefined) && withinBudget(spec, format, source, this.budgets));
  }

  /**
   * A request for a format only, which the original already is (`/images/{id}.jpg`
   * of a JPEG, or format=auto when the client takes neither AVIF nor WebP):
   * the original bytes are sent as they are, not re-encoded.
   */
  private originalSatisfies(spec: TransformSpec, info: ImageInfo, accept: string): boolean {
    if (Object.keys(spec).length !== 1 || spec.format === undefined || !this.isTransformable(info)) return false;
    const original = this.originalFormat(info);
    const wanted = spec.format === 'auto' ? this.negotiate(accept, original, spec, sourceFacts(info)) : spec.format;
    return wanted === info.format;
  }

  /** A stored format that only a wasm decoder reads (HEIC), when one is there. */
  private decodes(info: ImageInfo): boolean {
    return this.decode !== undefined && (DECODED_FORMATS as readonly string[]).includes(info.format ?? '');
  }

  private isTransformable(info: ImageInfo): boolean {
    return Boolean(info.format && info.width && info.height && ((OUTPUT_FORMATS as readonly string[]).includes(info.format) || this.decodes(info)));
  }

  /**
   * The output format matching a stored image's own format; for a format no browser is
   * sure to show (HEIC), PNG when it has alpha and JPEG otherwise: format=auto never sends HEIC.
   */
  private originalFormat(info: ImageInfo): OutputFormat {
    if (!this.isTransformable(info)) throw new UnsupportedMediaTypeError(`${info.name} is not an image that can be transformed (${info.type})`);
    if ((OUTPUT_FORMATS as readonly string[]).includes(info.format!)) return info.format as OutputFormat;
    return info.hasAlpha ? 'png' : 'jpeg';
  }
}


/** All of an image through its stream (a store without `read`: object storage), then the handle closed. */
async function readWhole(handle: ImageHandle): Promise<Buffer> {
  try {
    const chunks: Buffer[] = [];
    for await (const chunk of handle.stream()) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } finally {
    await handle.close();
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function sourceFacts(info: ImageInfo): SourceFacts {
  // A HEIF file's other images are not frames: its primary image is what is transformed.
  const pages = (DECODED_FORMATS as readonly string[]).includes(info.format ?? '') ? 1 : info.pages ?? 1;
  return { width: info.width!, height: info.height!, orientation: info.orientation ?? 1, pages };
}

function withExtension(name: string, ext: string): string {
  const dot = name.lastIndexOf('.');
  return `${dot > 0 ? name.slice(0, dot) : name}.${ext}`;
}

import { readRange } from '../albums/read-range.js';
import type { ImageHandle, ImageInfo } from '../albums/types.js';
import { UnsupportedMediaTypeError } from '../errors.js';
import type { ImageBody } from '../routes/send-image.js';
import type { DerivativeCache } from './derivative-cache.js';
import type { EngineSlots } from './engine-slots.js';
import { checkOutputBudget, withinBudget, type OutputBudgets, type SourceFacts } from './output-size.js';
import { MIME_BY_OUTPUT, transformToFile, type ResolvedSpec } from './transform.js';
import { negotiateFormat, OUTPUT_FORMATS, specKey, type OutputFormat, type TransformSpec } from './transform-spec.js';

/** Cache-Control of name URLs: the name may later hold another image, so revalidate (cheap, with the ETag). */
export const NAME_URL_CACHE = 'public, max-age=0, must-revalidate';
/** Cache-Control of id URLs: an id always names the same bytes. */
export const ID_URL_CACHE = 'public, max-age=31536000, immutable';

const EXTENSIONS: Record<OutputFormat, string> = { jpeg: 'jpg', png: 'png', webp: 'webp', avif: 'avif', gif: 'gif', tiff: 'tiff' };

/**
 * Turns an opened image and an optional transform into a body to send: the
 * original as stored, or a derivative from the cache (made on first request).
 */
export class ImageDelivery {
  constructor(
    private readonly cache: DerivativeCache,
    private readonly maxInputPixels: number,
    /** The transforms' own lane: caps those running at once and bounds the wait; unlimited when absent. */
    private readonly engine?: EngineSlots,
    /** Largest output per format (AVIF, GIF): larger ones are refused, and format=auto passes over them. */
    private readonly budgets: OutputBudgets = {},
  ) {}

  /**
   * @param handle the opened original (closed by this call or by the body)
   * @param spec the transform, or undefined for the original
   * @param accept the request's Accept header (for format=auto)
   * @param cacheControl NAME_URL_CACHE or ID_URL_CACHE
   * @throws {UnsupportedMediaTypeError} a transform of a stored file that is not a decodable image
   * @throws {UnprocessableImageError} an output over its format's pixel budget
   * @throws {ServiceUnavailableError} no transform slot freed in time
   */
  async body(handle: ImageHandle, spec: TransformSpec | undefined, accept: string, cacheControl: string): Promise<ImageBody> {
    const { info } = handle;
    if (!spec || this.originalSatisfies(spec, info, accept)) {
      return {
        size: info.size, type: info.type, etag: `"${info.sha256}"`, lastModified: new Date(info.modifiedAt), name: info.name, cacheControl,
        varyAccept: spec?.format === 'auto',
        stream: (range) => handle.stream(range), close: () => handle.close(),
        read: handle.read ? (range) => handle.read!(range) : undefined,
      };
    }
    try {
      const original = originalFormat(info);
      const source = sourceFacts(info);
      const format = spec.format === 'auto' ? this.negotiate(accept, original, spec, source) : (spec.format ?? original);
      const resolved: ResolvedSpec = { ...spec, format };
      // Before the cache and the queue: a refused output costs no slot.
      checkOutputBudget(resolved, format, source, this.budgets);
      const derivative = await this.cache.get(info.sha256, specKey(resolved), EXTENSIONS[format], async (tmp) => {
        const input = await handle.localPath();
        const run = () => transformToFile(input, tmp, resolved, source, this.maxInputPixels);
        await (this.engine ? this.engine.run(run) : run());
      });
      const file = derivative.handle; // opened by the cache: an eviction after this cannot cut the download
      return {
        size: derivative.size, type: MIME_BY_OUTPUT[format], etag: derivative.etag, lastModified: new Date(info.modifiedAt),
        name: withExtension(info.name, EXTENSIONS[format]), cacheControl, varyAccept: spec.format === 'auto',
        stream: (range) => file.createReadStream(range ?? {}), close: () => file.close(),
        read: (range) => readRange(file, range?.start ?? 0, range ? range.end - range.start + 1 : derivative.size).finally(() => file.close()),
      };
    } finally {
      await handle.close();
    }
  }

  /** format=auto: AVIF or WebP as the client takes them, passing over a format whose budget this output exceeds. */
  private negotiate(accept: string, original: OutputFormat, spec: TransformSpec, source: SourceFacts): OutputFormat {
    return negotiateFormat(accept, original, (format) => withinBudget(spec, format, source, this.budgets));
  }

  /**
   * A request for a format only, which the original already is (`/images/{id}.jpg`
   * of a JPEG, or format=auto when the client takes neither AVIF nor WebP):
   * the original bytes are sent as they are, not re-encoded.
   */
  private originalSatisfies(spec: TransformSpec, info: ImageInfo, accept: string): boolean {
    if (Object.keys(spec).length !== 1 || spec.format === undefined || !isTransformable(info)) return false;
    const original = info.format as OutputFormat;
    const wanted = spec.format === 'auto' ? this.negotiate(accept, original, spec, sourceFacts(info)) : spec.format;
    return wanted === info.format;
  }
}

function sourceFacts(info: ImageInfo): SourceFacts {
  return { width: info.width!, height: info.height!, orientation: info.orientation ?? 1, pages: info.pages ?? 1 };
}

/** The output format matching a stored image's own format. */
function originalFormat(info: ImageInfo): OutputFormat {
  if (isTransformable(info)) return info.format as OutputFormat;
  throw new UnsupportedMediaTypeError(`${info.name} is not an image that can be transformed (${info.type})`);
}

function isTransformable(info: ImageInfo): boolean {
  return Boolean(info.format && (OUTPUT_FORMATS as readonly string[]).includes(info.format) && info.width && info.height);
}

function withExtension(name: string, ext: string): string {
  const dot = name.lastIndexOf('.');
  return `${dot > 0 ? name.slice(0, dot) : name}.${ext}`;
}

import { UnprocessableImageError } from '../errors.js';
import type { OutputFormat, TransformSpec } from './transform-spec.js';

/** What the source image is, as recorded at upload. */
export interface SourceFacts {
  width: number;
  height: number;
  orientation: number;
  pages: number;
}

/** Largest output (width × height × frames) per output format; formats not listed have no budget of their own. */
export type OutputBudgets = Partial<Record<OutputFormat, number>>;

/** Output formats that keep every frame of an animated source. */
export const ANIMATED_OUTPUTS: ReadonlySet<OutputFormat> = new Set<OutputFormat>(['gif', 'webp']);

/** The source's size as seen, EXIF orientation applied (5-8 turn it sideways). */
export function orientedSize(source: SourceFacts): { width: number; height: number } {
  const sideways = source.orientation >= 5 && source.orientation <= 8;
  return sideways ? { width: source.height, height: source.width } : { width: source.width, height: source.height };
}

/**
 * The size of one output frame of a transform, following sharp's resize rules
 * (checked against sharp for every fit, with and without enlargement): cover
 * and fill never scale up without `enlarge`, contain pads to the requested box
 * even then, inside and outside keep the aspect ratio.
 * @param spec the transform (its format does not change the size)
 * @param source the stored image's facts
 */
export function outputSize(spec: Omit<TransformSpec, 'format'>, source: SourceFacts): { width: number; height: number } {
  let { width, height } = spec.crop ?? orientedSize(source);
  if (spec.width || spec.height) [width, height] = resized(width, height, spec);
  if (spec.rotate === 90 || spec.rotate === 270) [width, height] = [height, width];
  return { width, height };
}

function resized(width: number, height: number, { width: w, height: h, fit = 'cover', enlarge = false }: Omit<TransformSpec, 'format'>): [number, number] {
  const capped = (scale: number) => (enlarge ? scale : Math.min(scale, 1));
  if (w && h) {
    if (fit === 'inside' || fit === 'outside') {
      const scale = capped((fit === 'inside' ? Math.min : Math.max)(w / width, h / height));
      return [Math.round(width * scale), Math.round(height * scale)];
    }
    if (fit === 'contain' || enlarge) return [w, h];
    return [Math.min(w, width), Math.min(h, height)];
  }
  // One side given: fill changes only that side; the others scale both.
  if (fit === 'fill') return [w ? (enlarge ? w : Math.min(w, width)) : width, h ? (enlarge ? h : Math.min(h, height)) : height];
  const scale = capped(w ? w / width : h! / height);
  const [scaledWidth, scaledHeight] = [Math.round(width * scale), Math.round(height * scale)];
  return fit === 'contain' ? [w ?? scaledWidth, h ?? scaledHeight] : [scaledWidth, scaledHeight];
}

/** Pixels an encoder gets for this transform: one frame's size times the frames kept. */
export function outputPixels(spec: Omit<TransformSpec, 'format'>, format: OutputFormat, source: SourceFacts): number {
  const { width, height } = outputSize(spec, source);
  return width * height * (source.pages > 1 && ANIMATED_OUTPUTS.has(format) ? source.pages : 1);
}

/** Whether `format` may encode this transform's output within its budget. */
export function withinBudget(spec: Omit<TransformSpec, 'format'>, format: OutputFormat, source: SourceFacts, budgets: OutputBudgets): boolean {
  const budget = budgets[format];
  return budget === undefined || outputPixels(spec, format, source) <= budget;
}

/**
 * Refuses an output too large for its encoder's budget. AVIF and GIF encoders
 * hold several copies of the whole frame and take minutes and gigabytes on
 * 100 MP (bench/RESULTS.md), so they get a budget well below MAX_INPUT_PIXELS.
 * Refused rather than quietly scaled down: the client gets what it asked for
 * or a clear reason, and can ask for a smaller w/h or another format.
 * @throws {UnprocessableImageError} over the budget (422)
 */
export function checkOutputBudget(spec: Omit<TransformSpec, 'format'>, format: OutputFormat, source: SourceFacts, budgets: OutputBudgets): void {
  if (withinBudget(spec, format, source, budgets)) return;
  const { width, height } = outputSize(spec, source);
  const frames = source.pages > 1 && ANIMATED_OUTPUTS.has(format) ? ` × ${source.pages} frames` : '';
  throw new UnprocessableImageError(
    `${format.toUpperCase()} output of ${width}x${height}${frames} exceeds the limit of ${budgets[format]} pixels for ${format.toUpperCase()}; ask for a smaller size (w, h) or another format`,
  );
}

import { z } from 'zod';

// The wire schemas: what the routes accept and answer, what the OpenAPI document shows and what the
// client checks answers against. Only zod here: the client package ships this file.

/** Largest page of a listing (`limit`). */
export const MAX_PAGE_LIMIT = 10_000;

/** Items of a job shown by GET /imports/{jobId} when no `limit` is given. */
export const DEFAULT_ITEMS_PAGE = 1000;

/** The largest distance GET /images/{id}/similar answers: four 16-bit chunks searched within radius 4 each. */
export const MAX_SIMILAR_DISTANCE = 16;

/** Where fit=cover (or contain) places the picture: a side or corner, or sharp's smart strategies. */
export const POSITIONS = [
  'centre', 'center', 'north', 'northeast', 'east', 'southeast', 'south', 'southwest', 'west', 'northwest', 'entropy', 'attention',
] as const;

/** Body of POST /albums and PATCH /albums/{albumName}. Names are checked further by names.ts. */
export const AlbumNameBody = z.object({ albumName: z.string().describe('Album name: 1-255 bytes, no "/", "\\", control characters, "." or ".."') });

/** Body of PATCH /albums/{albumName}/images/{imageName}. */
export const ImageNameBody = z.object({ imageName: z.string().describe('New image name, same rules as album names') });

/** Query of the listings. */
export const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(MAX_PAGE_LIMIT).optional().describe(`Page size, 1-${MAX_PAGE_LIMIT}; all items when absent`),
  cursor: z.string().max(2048).optional().describe('nextCursor of the previous page'),
  details: z.enum(['true', 'false', '1', '0']).optional().describe('Include objects (albums/images) beside the names'),
  sort: z.enum(['name', 'captured']).optional().describe('Images: by name (default) or by capture time (EXIF DateTimeOriginal, oldest first, images without one last)'),
});

/** Query of GET /images/{id}/similar. */
export const SimilarQuery = z.object({
  maxDistance: z.coerce.number().int().min(0).max(MAX_SIMILAR_DISTANCE).default(8).describe(`Largest Hamming distance between the 64-bit perceptual hashes (0-${MAX_SIMILAR_DISTANCE}, default 8)`),
  limit: z.coerce.number().int().min(1).max(1000).default(20).describe('Most images listed (1-1000, default 20)'),
});

/** Response of GET /images/{id}/similar. */
export const SimilarResponse = z.object({
  id: z.string(),
  similar: z.array(z.object({ id: z.string(), album: z.string(), name: z.string(), distance: z.number().int() })).describe('Nearest first'),
});

/** Query of an upload. */
export const UploadQuery = z.object({
  onDuplicate: z.enum(['allow', 'reject']).optional().describe('When these exact bytes are already stored: store a copy (duplicateOf in the answer) or 409 with Location of the existing image; default ON_DUPLICATE'),
});

/** Transform parameters of image downloads, for the OpenAPI document (images/transform-spec.ts checks them). */
export const TransformQuery = z.object({
  w: z.number().int().min(1).max(8192).optional().describe('Width in pixels (no upscaling unless enlarge)'),
  h: z.number().int().min(1).max(8192).optional().describe('Height in pixels'),
  fit: z.enum(['cover', 'contain', 'fill', 'inside', 'outside']).optional().describe('How to fit w×h (default cover)'),
  position: z.enum(POSITIONS).optional().describe('With w, h and fit=cover (or contain): what is kept; entropy and attention crop smartly (cover only)'),
  enlarge: z.boolean().optional().describe('Allow upscaling'),
  format: z.enum(['jpeg', 'jpg', 'png', 'webp', 'avif', 'gif', 'tiff', 'jxl', 'auto']).optional().describe('Output format; auto picks JPEG XL, AVIF or WebP from Accept (Vary: Accept)'),
  q: z.number().int().min(1).max(100).optional().describe('Quality'),
  rotate: z.number().int().optional().describe('Rotation, a multiple of 90 (after EXIF orientation)'),
  flip: z.boolean().optional().describe('Mirror vertically'),
  flop: z.boolean().optional().describe('Mirror horizontally'),
  grayscale: z.boolean().optional(),
  blur: z.number().min(0.3).max(100).optional().describe('Gaussian blur sigma'),
  crop: z.string().optional().describe('x,y,width,height, applied before resizing'),
  download: z.boolean().optional().describe('Content-Disposition: attachment instead of inline'),
});

/** Query of GET /api/v1/diff, for the OpenAPI document (routes/diff.ts checks it). */
export const DiffQuery = z.object({
  a: z.string().describe('First image: {album}/{image} or an image id'),
  b: z.string().describe('Second image: {album}/{image} or an image id'),
  threshold: z.number().min(0).max(1).optional().describe('Per-pixel colour threshold, 0 strict to 1 (default 0.1)'),
  includeAA: z.boolean().optional().describe('Count anti-aliased pixels as differences (default false)'),
  output: z.enum(['json', 'png', 'side-by-side']).optional().describe('json (default), the diff picture, or a | b | diff'),
  resize: z.enum(['fit']).optional().describe('Scale b to a\'s size instead of answering 422 for different sizes'),
  mergeDistance: z.number().int().min(0).max(1000).optional().describe('Regions closer than this many pixels are one box (default 4)'),
  maxBoxes: z.number().int().min(1).max(1000).optional().describe('At most this many boxes, largest first (default 50)'),
});

const Box = z.object({ x: z.number().int(), y: z.number().int(), width: z.number().int(), height: z.number().int(), pixels: z.number().int() });
const Size = z.object({ width: z.number().int(), height: z.number().int() });

/** Answer of the diff routes (JSON). */
export const DiffResponse = z.object({
  a: Size, b: Size, width: z.number().int(), height: z.number().int(),
  differentPixels: z.number().int(), differentFraction: z.number(), ssim: z.number(),
  boxes: z.array(Box), truncated: z.boolean(),
});

export const AlbumObject = z.object({ name: z.string(), createdAt: z.string() });

export const ImageObject = z.object({
  id: z.string(), name: z.string(), album: z.string(), size: z.number().int(), type: z.string(),
  sha256: z.string(), format: z.string().optional(), width: z.number().int().optional(), height: z.number().int().optional(),
  orientation: z.number().int().optional(), hasAlpha: z.boolean().optional(), pages: z.number().int().optional(),
  thumbhash: z.string().optional().describe('ThumbHash (base64): a placeholder to paint before the image arrives'),
  dominantColor: z.string().optional().describe('Most common colour, #rrggbb'),
  phash: z.string().optional().describe('64-bit perceptual hash, 16 hex digits (near-duplicate search: /images/{id}/similar)'),
  duplicateOf: z.array(z.string()).optional().describe('Ids of images that had exactly these bytes when this one was uploaded (at most 10)'),
  capture: z.object({
    capturedAt: z.string().optional().describe('EXIF DateTimeOriginal, ISO 8601, with its offset when recorded'),
    make: z.string().optional(), model: z.string().optional(), lens: z.string().optional(),
    exposureTime: z.number().optional(), fNumber: z.number().optional(), iso: z.number().optional(), focalLength: z.number().optional(),
    gps: z.object({ latitude: z.number(), longitude: z.number(), altitude: z.number().optional() }).optional(),
  }).optional().describe('Capture metadata from EXIF'),
  createdAt: z.string(), modifiedAt: z.string(),
});

export const MessageResponse = z.object({ message: z.string() });
export const ErrorResponse = z.object({ error: z.string() });
export const AlbumListResponse = z.object({ albumList: z.array(z.string()), albums: z.array(AlbumObject).optional(), nextCursor: z.string().optional() });
export const ImageListResponse = z.object({ imageList: z.array(z.string()), images: z.array(ImageObject).optional(), nextCursor: z.string().optional() });
export const AlbumResponse = MessageResponse.extend({ album: AlbumObject });
export const ImageResponse = MessageResponse.extend({ image: ImageObject });

/** Query of GET /imports/{jobId}: which of the job's items to show. */
export const ImportItemsQuery = z.object({
  offset: z.coerce.number().int().min(0).optional().describe('Index of the first item to show (default 0)'),
  limit: z.coerce.number().int().min(0).max(MAX_PAGE_LIMIT).optional()
    .describe(`Items to show, 0-${MAX_PAGE_LIMIT} (default ${DEFAULT_ITEMS_PAGE}); 0 shows the job without items`),
});

const ImportCountsObject = z.object({
  queued: z.number().int(), downloading: z.number().int(), stored: z.number().int(), failed: z.number().int(), cancelled: z.number().int(),
});

export const ImportItemObject = z.object({
  url: z.string(), state: z.enum(['queued', 'downloading', 'stored', 'failed', 'cancelled']), bytes: z.number().int(), attempts: z.number().int(),
  image: z.object({ name: z.string(), id: z.string() }).optional().describe('The stored image, once stored'),
  error: z.string().optional().describe('Why the URL failed, once failed'),
});

/** An import job without its items (GET /imports). */
export const ImportJobSummaryObject = z.object({
  id: z.string(), album: z.string(), state: z.enum(['queued', 'running', 'done', 'failed', 'cancelled']), createdAt: z.string(), updatedAt: z.string(),
  duplicatesIgnored: z.number().int().describe('URLs given more than once (each is imported once)'),
  total: z.number().int().describe('Number of URLs of the job'),
  bytes: z.number().int().describe('Bytes downloaded so far'),
  counts: ImportCountsObject,
});

/** An import job with one page of its items (GET /imports/{jobId}). */
export const ImportJobObject = ImportJobSummaryObject.extend({
  items: z.array(ImportItemObject).describe('Items offset to offset + limit - 1'),
  nextOffset: z.number().int().optional().describe('The offset of the next page of items, when more follow'),
});

export const ImportListResponse = z.object({ jobs: z.array(ImportJobSummaryObject) });
export const ImportJobResponse = MessageResponse.extend({ job: ImportJobObject });

/** Body of POST /api/v1/signed-urls. */
export const SignUrlBody = z.object({
  path: z.string().max(2048).describe('An image URL path under /api/v1/albums/… or /api/v1/images/…, with its query (transforms)'),
  expiresInSeconds: z.number().int().min(1).max(7 * 24 * 3600).optional().describe('Lifetime, default 3600'),
});

/** Body of POST /api/v1/albums/{albumName}/imports. */
export const ImportBody = z.object({ urls: z.array(z.string().max(8192)).min(1).describe('Absolute http(s) URLs of images') });

/** Answer of GET /api/v1/version. */
export const VersionResponse = z.object({ name: z.literal('imagestore'), version: z.string() });

/** Answer of GET /livez and /healthz. */
export const LivenessResponse = z.object({ status: z.literal('ok'), version: z.string() });

import { availableParallelism, hostname } from 'node:os';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { ConfigError } from './errors.js';
import { ApiKeys } from './security/api-keys.js';

/** The service's whole configuration, checked once at start. */
export interface Config {
  http: {
    host: string;
    port: number;
    /** Time a client has to send its request headers (slowloris guard). */
    headersTimeoutMs: number;
    /** Time a client has to send its whole request, body included. */
    requestTimeoutMs: number;
    /** Idle keep-alive connections are closed after this. */
    keepAliveTimeoutMs: number;
    /** Request bodies slower than this (bytes per second, over every `minBodyRateWindowMs`) are cut off with 408; 0 = no minimum. */
    minBodyBytesPerSecond: number;
    minBodyRateWindowMs: number;
  };
  imageDbDir: string;
  /** Where albums and images live: the data dir (`fs`) or an S3 bucket (`s3`, with `s3`). */
  storage: 'fs' | 's3';
  s3?: S3Settings;
  /** The S3 store's node-local metadata cache, kept coherent by the event stream (S3ReadCache). */
  s3Cache: {
    /** S3_STRICT_READS: every read asks the bucket (no answer from memory, ever). */
    strict: boolean;
    /** S3_CACHE_BYTES: metadata kept in memory at most; 0 turns the cache off. */
    budgetBytes: number;
    /** S3_CACHE_TTL_MS: no entry is used unchecked past this age, even when no event said it changed. */
    ttlMs: number;
  };
  mqtt: {
    /** External broker; when set, no embedded broker is started. */
    url?: string;
    /** Port of the embedded broker (ignored with `url`). */
    port: number;
    host: string;
    clientId: string;
    username?: string;
    password?: string;
    /** MQTT protocol for the external broker: `auto` (5, falling back to 3.1.1), 5 (adds CloudEvents user properties) or 4 (3.1.1). */
    protocolVersion: 4 | 5 | 'auto';
    /** PEM files for mqtts:// and wss:// brokers. */
    caFile?: string;
    certFile?: string;
    keyFile?: string;
    rejectUnauthorized: boolean;
    /** Serve MQTT over WebSocket on the HTTP port at this path (embedded broker only); `off` turns it off (empty string here). */
    wsPath: string;
  };
  /** Limits of the embedded broker (ignored with an external one). */
  broker: BrokerLimits;
  /** CloudEvents `source` of every event this node publishes. */
  eventSource: string;
  /** Events over HTTP: replay, the live stream and webhooks (issue 16). */
  events: EventsConfig;
  prodMode: boolean;
  /** Serve the web gallery at `/` (UI_ENABLED). */
  uiEnabled: boolean;
  logLevel: string;
  limits: {
    maxUploadBytes: number;
    maxJsonBytes: number;
    maxConcurrentUploads: number;
  };
  images: {
    /** Largest width × height of an image accepted or transformed (decompression-bomb guard). */
    maxInputPixels: number;
    /** Accept SVG uploads (they can carry script). */
    allowSvg: boolean;
    /** Byte budget of the derivative cache (least recently used entries go first). */
    derivativeCacheBytes: number;
    /** Bytes of small files (originals and derivatives) kept in memory, served without opening a file; 0 = off. */
    hotCacheBytes: number;
    /** Largest file the hot-file cache keeps; larger ones stream from disk. */
    hotCacheMaxFileBytes: number;
    /** Transforms running at once; more wait in their queue (bounds memory, keeps libuv pool threads for file I/O). */
    transformConcurrency: number;
    /** Transforms that may wait for a slot; one more gets 503 at once. */
    transformMaxQueue: number;
    /** Longest wait of a transform for a slot; then 503 + Retry-After. */
    transformQueueTimeoutMs: number;
    /** Upload checks (decoding a new image) running at once, in a lane of their own: they never wait for a transform. */
    uploadCheckConcurrency: number;
    /** Largest AVIF output (width × height); larger are refused with 422, and format=auto picks another format. */
    avifMaxPixels: number;
    /** Largest GIF output (width × height × frames); larger are refused with 422. */
    gifMaxPixels: number;
    /** Compute placeholders (ThumbHash, dominant colour) and the perceptual hash at upload. */
    fingerprints: boolean;
    /** What an upload whose bytes some stored image already has gets when the request does not say: stored (`allow`) or 409 (`reject`). */
    onDuplicate: 'allow' | 'reject';
    /** libuv's thread pool size (UV_THREADPOOL_SIZE, read by libuv itself at start): every sharp pipeline and file operation runs there. */
    threadPoolSize: number;
  };
  diff: {
    /** Largest width × height of an image compared; larger get 422 before decoding. */
    maxPixels: number;
    /** Comparisons at once (each in a worker thread); more get 503 + Retry-After. */
    concurrency: number;
  };
  shutdownTimeoutMs: number;
  /** The checkpointer: fsyncs what applied changes wrote and records it in the event journal. */
  checkpoint: {
    /** A checkpoint runs this often while changes wait for one. */
    intervalMs: number;
    /** ... and at once when this many changes wait. */
    maxChanges: number;
  };
  /** Test only: `<change>:<step>[@n]`, the commit path step at which the process SIGKILLs itself (see albums/changes.ts CrashPoint). */
  crashPoint?: string;
  imports: {
    /** Downloads at once over all import jobs. */
    concurrency: number;
    timeoutMs: number;
    retries: number;
    /** First retry delay; doubled for each further retry (IMPORT_RETRY_BASE_DELAY_MS). */
    retryBaseDelayMs: number;
    maxUrls: number;
    /** Hosts (names or IPs) exempt from the SSRF guard. */
    allowHosts: string[];
  };
  security: {
    /** API keys with roles; none configured means the service is open. */
    apiKeys: ApiKeys;
    /** HMAC secret for signed image URLs (URL_SIGNING_SECRET). */
    signingSecret?: string;
    /** Origins allowed by CORS; `*` for any; empty for none. */
    corsOrigins: string[];
    /** Requests per window per key or client address; 0 = no limit. */
    rateLimit: number;
    rateLimitWindowMs: number;
    /** Wrong keys or forged signatures per window per client address before 429; 0 = no limit. */
    authFailureLimit: number;
    authFailureWindowMs: number;
  };
  tls: {
    /** PEM certificate and key: HTTPS (and WSS) when set. */
    certFile?: string;
    keyFile?: string;
    /** The embedded broker's MQTTS listener (with the same pair unless MQTT_TLS_* are given). */
    mqttsPort: number;
    mqttCertFile?: string;
    mqttKeyFile?: string;
  };
}

/** Replay, live stream and webhooks. */
export interface EventsConfig {
  /** How long delivered events stay in the journal for replay (EVENT_RETENTION: age and/or bytes; Infinity for no bound). */
  retention: { maxAgeMs: number; maxBytes: number };
  /** A comment line on every live stream this often, so proxies keep it open (EVENT_STREAM_HEARTBEAT_MS). */
  heartbeatMs: number;
  /** Events a live-stream client may fall behind the journal's head before it is told to reconnect (EVENT_STREAM_MAX_LAG). */
  streamMaxLag: number;
  webhooks: {
    /** Hosts (names or IPs) exempt from the SSRF guard (WEBHOOK_ALLOW_HOSTS). */
    allowHosts: string[];
    /** Longest wait for a receiver's answer (WEBHOOK_TIMEOUT_MS). */
    timeoutMs: number;
    /** Deliveries in flight at once over all endpoints (WEBHOOK_CONCURRENCY). */
    concurrency: number;
    /** First retry delay; it doubles (with jitter) up to `retryMaxDelayMs` (WEBHOOK_RETRY_BASE_DELAY_MS). */
    retryBaseDelayMs: number;
    retryMaxDelayMs: number;
    /** An endpoint failing for this long is disabled (WEBHOOK_DISABLE_AFTER). */
    disableAfterMs: number;
    /** A rotated secret keeps signing for this long (WEBHOOK_SECRET_GRACE). */
    secretGraceMs: number;
  };
}

/** Limits of the embedded broker: what one client, or many, may cost it. */
export interface BrokerLimits {
  /** Largest MQTT packet after CONNECT, fixed header included (what comes before the CONNACK: broker.ts MAX_CONNECT_BYTES). */
  maxPacketBytes: number;
  /** Time from the connection to its CONNECT (and the TLS handshake on MQTTS). */
  connectTimeoutMs: number;
  /** Connections at once, TCP, TLS and WebSocket together, and per client address. */
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Unsent bytes held for one client; a client further behind is disconnected. */
  maxClientBufferBytes: number;
  /** A persistent session offline this long is deleted. */
  sessionExpiryMs: number;
  /** Messages queued per persistent session; beyond, the oldest are dropped. */
  sessionMaxQueue: number;
  /** Queued and retained messages in the broker store; beyond, the sessions offline longest are deleted. */
  storeMaxBytes: number;
  /** Failed logins from one address within `authBlockMs` that block it for `authBlockMs`; 0 = no limit. */
  authMaxFailures: number;
  authBlockMs: number;
}

/** How to reach a bucket: the S3_* variables. */
export interface S3Settings {
  /** Endpoint URL (MinIO, Ceph, R2, Swift...); AWS's own when absent. */
  endpoint?: string;
  bucket: string;
  region: string;
  /** Static credentials; the SDK's default chain (env, profile, instance role) when absent. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most self-hosted servers need. */
  forcePathStyle: boolean;
  /** Optional key prefix, so several stores can share one bucket. */
  prefix?: string;
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MQTT_SCHEMES = ['mqtt:', 'mqtts:', 'ws:', 'wss:'];

/** Reads variables and records every problem instead of stopping at the first. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  }

  private fail(name: string, expected: string, got: string): void {
    this.problems.push(`invalid ${name}: expected ${expected}, got ${JSON.stringify(got)}`);
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  optional(name: string): string | undefined {
    return this.raw(name);
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      this.fail(name, `integer ${min}-${max}`, value);
      return fallback;
    }
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const lower = value.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(lower)) return true;
    if (['0', 'false', 'no', 'off'].includes(lower)) return false;
    this.fail(name, 'true/false, 1/0, yes/no or on/off', value);
    return fallback;
  }

  oneOf(name: string, fallback: string, allowed: string[]): string {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!allowed.includes(value)) this.fail(name, `one of ${allowed.join(', ')}`, value);
    return value;
  }

  /**
   * A retention: comma-separated bounds, each a duration (`7d`, `12h`) or a size (`1GiB`, `500MB`);
   * a bound not given is unlimited; `0` keeps nothing once delivered.
   */
  retention(name: string, fallback: { maxAgeMs: number; maxBytes: number }): { maxAgeMs: number; maxBytes: number } {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (value === '0') return { maxAgeMs: 0, maxBytes: 0 };
    const result = { maxAgeMs: Infinity, maxBytes: Infinity };
    for (const part of value.split(',').map((p) => p.trim())) {
      const age = /^(\d+)(ms|s|m|h|d)$/.exec(part);
      const size = /^(\d+)(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$/.exec(part);
      if (age) result.maxAgeMs = Number(age[1]) * DURATION_UNITS_MS[age[2]];
      else if (size) result.maxBytes = Number(size[1]) * SIZE_UNITS[size[2]];
      else {
        this.fail(name, 'an age like 7d or 12h and/or a size like 1GiB or 500MB, comma-separated (or 0)', value);
        return fallback;
      }
    }
    return result;
  }

  /** A list of host names or IPs, lower case, IPv6 brackets removed. */
  hosts(name: string): string[] {
    return this.string(name, '').split(',').map((h) => h.trim().toLowerCase().replace(/^\[|\]$/g, '')).filter(Boolean);
  }

  /** A duration: an integer with a unit (`ms`, `s`, `m`, `h`, `d`), or seconds without one; returned in ms. */
  duration(name: string, fallbackMs: number, minMs: number, maxMs: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallbackMs;
    const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value);
    const ms = match ? Number(match[1]) * DURATION_UNITS_MS[match[2] ?? 's'] : NaN;
    if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) {
      this.fail(name, `a duration like 7d, 12h, 30m or 45s between ${minMs / 1000} s and ${maxMs / 86_400_000} days`, value);
      return fallbackMs;
    }
    return ms;
  }

  /** An optional string that must match `pattern` (`expected` says how, in the error). */
  pattern(name: string, pattern: RegExp, expected: string): string | undefined {
    const value = this.raw(name);
    if (value !== undefined && !pattern.test(value)) this.fail(name, expected, value);
    return value;
  }

  url(name: string, schemes: string[]): string | undefined {
    const value = this.raw(name);
    if (value === undefined) return undefined;
    let ok = false;
    try {
      ok = schemes.includes(new URL(value).protocol);
    } catch {
      ok = false;
    }
    if (!ok) this.fail(name, `a URL starting with ${schemes.map((s) => `${s}//`).join(', ')}`, value);
    return value;
  }
}

const MiB = 1024 * 1024;
const DAY_MS = 86_400_000;
const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS };
const SIZE_UNITS: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KiB: 1024, MiB: MiB, GiB: 1024 * MiB, TiB: 1024 * 1024 * MiB };

/**
 * libuv pool threads kept from transforms for everything else (file I/O,
 * upload checks, diff decodes): a transform holds its thread for the whole
 * pipeline (tens of seconds for a large AVIF), and with every thread taken an
 * upload could not even write its file.
 */
const IO_THREADS = 2;

/**
 * Builds the configuration from environment variables.
 * @param env the environment (defaults to `process.env`)
 * @throws {ConfigError} listing every invalid variable, each with what was expected and what was given
 */
export function loadConfig(env: Env = process.env, readFile: (file: string) => string = (f) => readFileSync(f, 'utf8')): Config {
  const r = new EnvReader(env);
  const keysFile = r.optional('API_KEYS_FILE');
  let keysFileText: string | undefined;
  if (keysFile !== undefined) {
    try {
      keysFileText = readFile(keysFile);
    } catch (err) {
      r.problems.push(`invalid API_KEYS_FILE: cannot read ${JSON.stringify(keysFile)}: ${(err as Error).message}`);
    }
  }
  const { keys: apiKeys, problems: keyProblems } = ApiKeys.parse(env.API_KEYS, keysFileText);
  r.problems.push(...keyProblems);
  const tlsCert = r.optional('TLS_CERT_FILE');
  const tlsKey = r.optional('TLS_KEY_FILE');
  // Loopback unless told otherwise: a fresh `npm start` must not expose a writable API (and broker) to the network.
  const host = r.string('HOST', '127.0.0.1');
  const node = r.string('NODE_ID', hostname());
  // libuv reads UV_THREADPOOL_SIZE itself before any of our code runs; it is read here only to size the engine lanes.
  const threadPoolSize = r.int('UV_THREADPOOL_SIZE', 4, IO_THREADS + 1, 1024);
  const maxInputPixels = r.int('MAX_INPUT_PIXELS', 100_000_000, 1, 2 ** 40);
  const engineLane = Math.max(1, Math.min(availableParallelism(), threadPoolSize - IO_THREADS));
  const config: Config = {
    http: {
      host,
      port: r.int('PORT', 3333, 0, 65535),
      headersTimeoutMs: r.int('HEADERS_TIMEOUT_MS', 10_000, 100, 600_000),
      requestTimeoutMs: r.int('REQUEST_TIMEOUT_MS', 300_000, 100, 3_600_000),
      keepAliveTimeoutMs: r.int('KEEP_ALIVE_TIMEOUT_MS', 5_000, 100, 600_000),
      minBodyBytesPerSecond: r.int('MIN_BODY_BYTES_PER_SECOND', 1024, 0, 1_000_000_000),
      minBodyRateWindowMs: r.int('MIN_BODY_RATE_WINDOW_MS', 10_000, 1000, 600_000),
    },
    imageDbDir: path.resolve(r.string('IMAGE_DB_DIR', './image-db')),
    storage: r.oneOf('STORAGE', 'fs', ['fs', 's3']) as 'fs' | 's3',
    s3: readS3(env, r),
    s3Cache: {
      strict: r.bool('S3_STRICT_READS', false),
      budgetBytes: r.int('S3_CACHE_BYTES', 32 * MiB, 0, Number.MAX_SAFE_INTEGER),
      ttlMs: r.int('S3_CACHE_TTL_MS', 60_000, 0, 86_400_000),
    },
    mqtt: {
      url: r.url('MQTT_URL', MQTT_SCHEMES),
      port: r.int('MQTT_PORT', 1883, 0, 65535),
      host: r.string('MQTT_HOST', host),
      clientId: r.string('MQTT_CLIENT_ID', `imagestore-${node}`),
      username: r.optional('MQTT_USERNAME'),
      password: r.optional('MQTT_PASSWORD'),
      protocolVersion: protocolVersion(r.oneOf('MQTT_PROTOCOL_VERSION', 'auto', ['auto', '4', '5'])),
      caFile: r.optional('MQTT_CA_FILE'),
      certFile: r.optional('MQTT_CERT_FILE'),
      keyFile: r.optional('MQTT_KEY_FILE'),
      rejectUnauthorized: r.bool('MQTT_REJECT_UNAUTHORIZED', true),
      wsPath: r.string('MQTT_WS_PATH', '/mqtt').replace(/^off$/, ''),
    },
    broker: {
      maxPacketBytes: r.int('MQTT_MAX_PACKET_BYTES', 256 * 1024, 1024, 256 * MiB),
      connectTimeoutMs: r.int('MQTT_CONNECT_TIMEOUT_MS', 10_000, 100, 600_000),
      maxConnections: r.int('MQTT_MAX_CONNECTIONS', 1000, 1, 1_000_000),
      maxConnectionsPerIp: r.int('MQTT_MAX_CONNECTIONS_PER_IP', 100, 1, 1_000_000),
      maxClientBufferBytes: r.int('MQTT_MAX_CLIENT_BUFFER_BYTES', MiB, 1024, 1024 * MiB),
      sessionExpiryMs: r.duration('MQTT_SESSION_EXPIRY', 7 * DAY_MS, 1000, 365 * DAY_MS),
      sessionMaxQueue: r.int('MQTT_SESSION_MAX_QUEUE', 1000, 1, 10_000_000),
      storeMaxBytes: r.int('MQTT_STORE_MAX_BYTES', 256 * MiB, 64 * 1024, Number.MAX_SAFE_INTEGER),
      authMaxFailures: r.int('MQTT_AUTH_MAX_FAILURES', 10, 0, 1_000_000),
      authBlockMs: r.int('MQTT_AUTH_BLOCK_MS', 60_000, 100, 86_400_000),
    },
    eventSource: r.string('EVENT_SOURCE', `/imagestore/${node}`),
    events: {
      retention: r.retention('EVENT_RETENTION', { maxAgeMs: 7 * DAY_MS, maxBytes: 1024 * MiB }),
      heartbeatMs: r.int('EVENT_STREAM_HEARTBEAT_MS', 15_000, 100, 600_000),
      streamMaxLag: r.int('EVENT_STREAM_MAX_LAG', 10_000, 1, 100_000_000),
      webhooks: {
        allowHosts: r.hosts('WEBHOOK_ALLOW_HOSTS'),
        timeoutMs: r.int('WEBHOOK_TIMEOUT_MS', 10_000, 100, 600_000),
        concurrency: r.int('WEBHOOK_CONCURRENCY', 16, 1, 1024),
        retryBaseDelayMs: r.int('WEBHOOK_RETRY_BASE_DELAY_MS', 1000, 1, 3_600_000),
        retryMaxDelayMs: r.duration('WEBHOOK_RETRY_MAX_DELAY', 3_600_000, 1, DAY_MS),
        disableAfterMs: r.duration('WEBHOOK_DISABLE_AFTER', 5 * DAY_MS, 1000, 365 * DAY_MS),
        secretGraceMs: r.duration('WEBHOOK_SECRET_GRACE', DAY_MS, 0, 30 * DAY_MS),
      },
    },
    prodMode: r.bool('PRODMODE', false),
    uiEnabled: r.bool('UI_ENABLED', true),
    logLevel: r.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    limits: {
      maxUploadBytes: r.int('MAX_UPLOAD_BYTES', 100 * MiB, 1, Number.MAX_SAFE_INTEGER),
      maxJsonBytes: r.int('MAX_JSON_BYTES', 16 * 1024, 64, 10 * MiB),
      maxConcurrentUploads: r.int('MAX_CONCURRENT_UPLOADS', 32, 1, 10_000),
    },
    images: {
      maxInputPixels,
      allowSvg: r.bool('ALLOW_SVG', false),
      derivativeCacheBytes: r.int('DERIVATIVE_CACHE_BYTES', 1024 * MiB, 0, Number.MAX_SAFE_INTEGER),
      hotCacheBytes: r.int('HOT_CACHE_BYTES', 64 * MiB, 0, Number.MAX_SAFE_INTEGER),
      hotCacheMaxFileBytes: r.int('HOT_CACHE_MAX_FILE_BYTES', 512 * 1024, 1, 1024 * MiB),
      transformConcurrency: r.int('TRANSFORM_CONCURRENCY', engineLane, 1, 1024),
      transformMaxQueue: r.int('TRANSFORM_MAX_QUEUE', 64, 0, 100_000),
      transformQueueTimeoutMs: r.int('TRANSFORM_QUEUE_TIMEOUT_MS', 30_000, 1, 3_600_000),
      uploadCheckConcurrency: r.int('UPLOAD_CHECK_CONCURRENCY', engineLane, 1, 1024),
      avifMaxPixels: r.int('AVIF_MAX_PIXELS', 4096 * 4096, 1, 2 ** 40),
      gifMaxPixels: r.int('GIF_MAX_PIXELS', 4096 * 4096, 1, 2 ** 40),
      fingerprints: r.bool('UPLOAD_FINGERPRINTS', true),
      onDuplicate: r.oneOf('ON_DUPLICATE', 'allow', ['allow', 'reject']) as 'allow' | 'reject',
      threadPoolSize,
    },
    diff: {
      // An image the store refuses is never compared anyway.
      maxPixels: Math.min(r.int('DIFF_MAX_PIXELS', 25_000_000, 1, 2 ** 40), maxInputPixels),
      concurrency: r.int('DIFF_CONCURRENCY', 2, 1, 64),
    },
    shutdownTimeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    checkpoint: {
      intervalMs: r.int('CHECKPOINT_INTERVAL_MS', 1000, 10, 600_000),
      maxChanges: r.int('CHECKPOINT_MAX_CHANGES', 2000, 1, 1_000_000),
    },
    crashPoint: r.pattern('CRASH_POINT', /^[a-z-]+:[a-z-]+(@[1-9]\d*)?$/, 'a point like upload:after-commit, optionally @n (the n-th time)'),
    imports: {
      concurrency: r.int('IMPORT_CONCURRENCY', 4, 1, 256),
      timeoutMs: r.int('IMPORT_TIMEOUT_MS', 60_000, 100, 3_600_000),
      retries: r.int('IMPORT_RETRIES', 3, 0, 20),
      retryBaseDelayMs: r.int('IMPORT_RETRY_BASE_DELAY_MS', 500, 0, 600_000),
      maxUrls: r.int('IMPORT_MAX_URLS', 1000, 1, 100_000),
      allowHosts: r.hosts('IMPORT_ALLOW_HOSTS'),
    },
    security: {
      apiKeys,
      signingSecret: r.optional('URL_SIGNING_SECRET'),
      corsOrigins: r.string('CORS_ORIGINS', '').split(',').map((o) => o.trim()).filter(Boolean),
      rateLimit: r.int('RATE_LIMIT', 0, 0, 10_000_000),
      rateLimitWindowMs: r.int('RATE_LIMIT_WINDOW_MS', 60_000, 1000, 3_600_000),
      authFailureLimit: r.int('AUTH_FAILURE_LIMIT', 20, 0, 1_000_000),
      authFailureWindowMs: r.int('AUTH_FAILURE_WINDOW_MS', 60_000, 1000, 86_400_000),
    },
    tls: {
      certFile: tlsCert,
      keyFile: tlsKey,
      mqttsPort: r.int('MQTTS_PORT', 8883, 0, 65535),
      mqttCertFile: r.optional('MQTT_TLS_CERT_FILE') ?? tlsCert,
      mqttKeyFile: r.optional('MQTT_TLS_KEY_FILE') ?? tlsKey,
    },
  };
  r.problems.push(...crossFieldProblems(config));
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** The S3_* variables, read (and checked) only with STORAGE=s3. */
function readS3(env: Env, r: EnvReader): S3Settings | undefined {
  return env.STORAGE?.trim() === 's3' ? s3Settings(r) : undefined;
}

function s3Settings(r: EnvReader): S3Settings {
  const bucket = r.optional('S3_BUCKET');
  if (!bucket) r.problems.push('invalid S3_BUCKET: expected a bucket name, got nothing');
  const accessKeyId = r.optional('S3_ACCESS_KEY_ID');
  const secretAccessKey = r.optional('S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    r.problems.push('invalid S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY: expected both or neither, got only one');
  }
  return {
    bucket: bucket ?? '',
    endpoint: r.pattern('S3_ENDPOINT', /^https?:\/\/[^\s/]+/, 'a URL starting with http:// or https://'),
    region: r.string('S3_REGION', 'us-east-1'),
    accessKeyId,
    secretAccessKey,
    forcePathStyle: r.bool('S3_FORCE_PATH_STYLE', false),
    prefix: r.optional('S3_PREFIX'),
  };
}

/**
 * The bucket settings from the S3_* variables the service reads with STORAGE=s3 (for
 * `npm run migrate`): S3_BUCKET (required), S3_ENDPOINT, S3_REGION (us-east-1),
 * S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE (false), S3_PREFIX.
 * @throws {ConfigError} listing every problem
 */
export function loadS3Settings(env: Env = process.env): S3Settings {
  const r = new EnvReader(env);
  const settings = s3Settings(r);
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return settings;
}

/**
 * What the command-line tools (`npm run fsck`, `npm run migrate`) read from the environment:
 * IMAGE_DB_DIR (./image-db), and LOG_LEVEL (error by default: their output is the report).
 * @throws {ConfigError} listing every problem
 */
export function loadToolConfig(env: Env = process.env): { imageDbDir: string; logLevel: string } {
  const r = new EnvReader(env);
  const config = { imageDbDir: path.resolve(r.string('IMAGE_DB_DIR', './image-db')), logLevel: r.oneOf('LOG_LEVEL', 'error', LOG_LEVELS) };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

function protocolVersion(value: string): 4 | 5 | 'auto' {
  return value === 'auto' ? 'auto' : (Number(value) as 4 | 5);
}

function crossFieldProblems(config: Config): string[] {
  const problems: string[] = [];
  // Node refuses to create the server otherwise (ERR_OUT_OF_RANGE): the headers are part of the request.
  if (config.http.headersTimeoutMs > config.http.requestTimeoutMs) {
    problems.push(`invalid HEADERS_TIMEOUT_MS: must not exceed REQUEST_TIMEOUT_MS (${config.http.headersTimeoutMs} > ${config.http.requestTimeoutMs})`);
  }
  const { transformConcurrency, threadPoolSize } = config.images;
  if (transformConcurrency > threadPoolSize - IO_THREADS) {
    problems.push(
      `invalid TRANSFORM_CONCURRENCY: expected at most UV_THREADPOOL_SIZE - ${IO_THREADS} = ${threadPoolSize - IO_THREADS} (transforms must leave libuv pool threads for file I/O; raise UV_THREADPOOL_SIZE), got ${transformConcurrency}`,
    );
  }
  const embedded = config.mqtt.url === undefined;
  if (embedded && config.http.port !== 0 && config.http.port === config.mqtt.port) {
    problems.push(`invalid MQTT_PORT: must differ from PORT (both are ${config.http.port})`);
  }
  if (config.mqtt.wsPath !== '' && !config.mqtt.wsPath.startsWith('/')) {
    problems.push(`invalid MQTT_WS_PATH: expected a path starting with "/", got ${JSON.stringify(config.mqtt.wsPath)}`);
  }
  // A message as large as a packet must fit in a client's buffer, or every such message disconnects its subscribers.
  if (config.broker.maxClientBufferBytes < config.broker.maxPacketBytes) {
    problems.push(`invalid MQTT_MAX_CLIENT_BUFFER_BYTES: must be at least MQTT_MAX_PACKET_BYTES (${config.broker.maxClientBufferBytes} < ${config.broker.maxPacketBytes})`);
  }
  if ((config.tls.certFile === undefined) !== (config.tls.keyFile === undefined)) {
    problems.push('invalid TLS_CERT_FILE/TLS_KEY_FILE: expected both or neither, got only one');
  }
  if ((config.tls.mqttCertFile === undefined) !== (config.tls.mqttKeyFile === undefined)) {
    problems.push('invalid MQTT_TLS_CERT_FILE/MQTT_TLS_KEY_FILE: expected both or neither, got only one');
  }
  if (config.security.signingSecret !== undefined && config.security.signingSecret.length < 32) {
    problems.push('invalid URL_SIGNING_SECRET: expected at least 32 characters');
  }
  for (const origin of config.security.corsOrigins) {
    if (origin !== '*' && !/^https?:\/\/[^/\s]+$/.test(origin)) {
      problems.push(`invalid CORS_ORIGINS: expected origins like https://app.example.com or *, got ${JSON.stringify(origin)}`);
    }
  }
  if ((config.mqtt.certFile === undefined) !== (config.mqtt.keyFile === undefined)) {
    problems.push('invalid MQTT_CERT_FILE/MQTT_KEY_FILE: expected both or neither, got only one');
  }
  return problems;
}

/**
 * A configuration for tests and embedding: defaults, loopback, ephemeral ports.
 * @param overrides fields to replace (shallow per section)
 */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  const base = loadConfig({ HOST: '127.0.0.1', PORT: '0', MQTT_PORT: '0', LOG_LEVEL: 'silent' });
  return { ...base, ...overrides };
}

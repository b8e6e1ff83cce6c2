import { availableParallelism, hostname } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { defaultConfig, loadConfig, loadS3Settings, loadToolConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

/** The problems loadConfig reports for `env`; fails the test when it does not throw. */
function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  expect.fail(`expected loadConfig(${JSON.stringify(env)}) to throw a ConfigError`);
}

describe('loadConfig', () => {
  it('uses the documented defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config.http).to.deep.equal({
      host: '127.0.0.1', port: 3333, headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 5_000, minBodyBytesPerSecond: 1024, minBodyRateWindowMs: 10_000,
    });
    expect(config.security).to.include({ authFailureLimit: 20, authFailureWindowMs: 60_000 });
    expect(config.imageDbDir).to.equal(path.resolve('image-db'));
    expect(config.mqtt).to.deep.include({
      url: undefined, port: 1883, host: '127.0.0.1', clientId: `imagestore-${hostname()}`, username: undefined, password: undefined,
      protocolVersion: 'auto', rejectUnauthorized: true, wsPath: '/mqtt',
    });
    expect(config.eventSource).to.equal(`/imagestore/${hostname()}`);
    expect(config.prodMode).to.equal(false);
    expect(config.logLevel).to.equal('info');
    expect(config.limits).to.deep.equal({ maxUploadBytes: 100 * 1024 * 1024, maxJsonBytes: 16 * 1024, maxConcurrentUploads: 32 });
    expect(config.shutdownTimeoutMs).to.equal(10_000);
  });

  it('reads every variable it documents', () => {
    const config = loadConfig({
      HOST: '127.0.0.1', PORT: '8080', HEADERS_TIMEOUT_MS: '2000', REQUEST_TIMEOUT_MS: '60000', KEEP_ALIVE_TIMEOUT_MS: '1000',
      IMAGE_DB_DIR: '/srv/images', MQTT_URL: 'mqtt://user:pw@broker:1883', MQTT_PORT: '1884', MQTT_HOST: '::1', MQTT_CLIENT_ID: 'node-a',
      MQTT_USERNAME: 'user', MQTT_PASSWORD: 'pw', MQTT_PROTOCOL_VERSION: '4', MQTT_REJECT_UNAUTHORIZED: 'false', NODE_ID: 'n1', PRODMODE: 'yes', LOG_LEVEL: 'debug',
      MAX_UPLOAD_BYTES: '1000', MAX_JSON_BYTES: '1024', MAX_CONCURRENT_UPLOADS: '4', SHUTDOWN_TIMEOUT_MS: '0',
      MIN_BODY_BYTES_PER_SECOND: '0', MIN_BODY_RATE_WINDOW_MS: '5000', AUTH_FAILURE_LIMIT: '0', AUTH_FAILURE_WINDOW_MS: '300000',
    });
    expect(config.http).to.deep.equal({
      host: '127.0.0.1', port: 8080, headersTimeoutMs: 2000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 1000, minBodyBytesPerSecond: 0, minBodyRateWindowMs: 5000,
    });
    expect(config.security).to.include({ authFailureLimit: 0, authFailureWindowMs: 300_000 });
    expect(config.imageDbDir).to.equal('/srv/images');
    expect(config.mqtt).to.deep.include({
      url: 'mqtt://user:pw@broker:1883', port: 1884, host: '::1', clientId: 'node-a', username: 'user', password: 'pw',
      protocolVersion: 4, rejectUnauthorized: false,
    });
    expect(config.eventSource).to.equal('/imagestore/n1');
    expect(config).to.include({ prodMode: true, logLevel: 'debug', shutdownTimeoutMs: 0 });
    expect(config.limits).to.deep.equal({ maxUploadBytes: 1000, maxJsonBytes: 1024, maxConcurrentUploads: 4 });
  });

  describe('embedded broker limits (issue 12)', () => {
    it('has production defaults', () => {
      expect(loadConfig({}).broker).to.deep.equal({
        maxPacketBytes: 256 * 1024, connectTimeoutMs: 10_000, maxConnections: 1000, maxConnectionsPerIp: 100,
        maxClientBufferBytes: 1024 * 1024, sessionExpiryMs: 7 * 86_400_000, sessionMaxQueue: 1000,
        storeMaxBytes: 256 * 1024 * 1024, authMaxFailures: 10, authBlockMs: 60_000,
      });
    });

    it('reads its variables', () => {
      expect(loadConfig({
        MQTT_MAX_PACKET_BYTES: '65536', MQTT_CONNECT_TIMEOUT_MS: '2000', MQTT_MAX_CONNECTIONS: '50', MQTT_MAX_CONNECTIONS_PER_IP: '5',
        MQTT_MAX_CLIENT_BUFFER_BYTES: '131072', MQTT_SESSION_EXPIRY: '12h', MQTT_SESSION_MAX_QUEUE: '10',
        MQTT_STORE_MAX_BYTES: '1048576', MQTT_AUTH_MAX_FAILURES: '0', MQTT_AUTH_BLOCK_MS: '500',
      }).broker).to.deep.equal({
        maxPacketBytes: 65536, connectTimeoutMs: 2000, maxConnections: 50, maxConnectionsPerIp: 5, maxClientBufferBytes: 131072,
        sessionExpiryMs: 12 * 3_600_000, sessionMaxQueue: 10, storeMaxBytes: 1048576, authMaxFailures: 0, authBlockMs: 500,
      });
    });

    it('reads MQTT_SESSION_EXPIRY with a unit, or in seconds without one', () => {
      const expiry = (value: string) => loadConfig({ MQTT_SESSION_EXPIRY: value }).broker.sessionExpiryMs;
      expect([expiry('1500ms'), expiry('90'), expiry('90s'), expiry('30m'), expiry('2h'), expiry('7d')])
        .to.deep.equal([1500, 90_000, 90_000, 1_800_000, 7_200_000, 7 * 86_400_000]);
      for (const bad of ['7 days', '1.5h', '-1d', '500ms', '366d', 'd']) {
        expect(problemsOf({ MQTT_SESSION_EXPIRY: bad }), bad).to.deep.equal([
          `invalid MQTT_SESSION_EXPIRY: expected a duration like 7d, 12h, 30m or 45s between 1 s and 365 days, got ${JSON.stringify(bad)}`,
        ]);
      }
    });

    it('wants a client buffer that holds at least one packet of the largest size', () => {
      expect(problemsOf({ MQTT_MAX_PACKET_BYTES: String(2 * 1024 * 1024) })).to.deep.equal([
        `invalid MQTT_MAX_CLIENT_BUFFER_BYTES: must be at least MQTT_MAX_PACKET_BYTES (${1024 * 1024} < ${2 * 1024 * 1024})`,
      ]);
    });
  });

  it('derives the client id and event source from NODE_ID, and MQTT_HOST from HOST', () => {
    const config = loadConfig({ NODE_ID: 'edge-7', HOST: '10.0.0.5' });
    expect(config.mqtt.clientId).to.equal('imagestore-edge-7');
    expect(config.eventSource).to.equal('/imagestore/edge-7');
    expect(config.mqtt.host).to.equal('10.0.0.5');
  });

  it('treats empty and blank values as unset, and trims the others', () => {
    const config = loadConfig({ PORT: '', MQTT_PORT: '   ', LOG_LEVEL: ' warn ', MQTT_URL: '' });
    expect(config.http.port).to.equal(3333);
    expect(config.mqtt.port).to.equal(1883);
    expect(config.logLevel).to.equal('warn');
    expect(config.mqtt.url).to.equal(undefined);
  });

  describe('names the variable, the expected form and the value received', () => {
    const cases: Array<[string, string, string]> = [
      ['PORT', 'abc', 'expected integer 0-65535, got "abc"'],
      ['PORT', '65536', 'expected integer 0-65535, got "65536"'],
      ['PORT', '-1', 'expected integer 0-65535, got "-1"'],
      ['PORT', '80.5', 'expected integer 0-65535, got "80.5"'],
      ['PORT', '0x50', 'expected integer 0-65535, got "0x50"'],
      ['MQTT_PORT', '18x3', 'expected integer 0-65535, got "18x3"'],
      ['HEADERS_TIMEOUT_MS', '99', 'expected integer 100-600000, got "99"'],
      ['REQUEST_TIMEOUT_MS', 'forever', 'expected integer 100-3600000, got "forever"'],
      ['KEEP_ALIVE_TIMEOUT_MS', '1e3', 'expected integer 100-600000, got "1e3"'],
      ['MAX_UPLOAD_BYTES', '0', `expected integer 1-${Number.MAX_SAFE_INTEGER}, got "0"`],
      ['MAX_UPLOAD_BYTES', '99999999999999999999', `expected integer 1-${Number.MAX_SAFE_INTEGER}, got "99999999999999999999"`],
      ['MAX_JSON_BYTES', '63', 'expected integer 64-10485760, got "63"'],
      ['MAX_CONCURRENT_UPLOADS', '10001', 'expected integer 1-10000, got "10001"'],
      ['SHUTDOWN_TIMEOUT_MS', '10s', 'expected integer 0-600000, got "10s"'],
      ['MIN_BODY_BYTES_PER_SECOND', '1k', 'expected integer 0-1000000000, got "1k"'],
      ['MIN_BODY_RATE_WINDOW_MS', '999', 'expected integer 1000-600000, got "999"'],
      ['AUTH_FAILURE_LIMIT', '-1', 'expected integer 0-1000000, got "-1"'],
      ['AUTH_FAILURE_WINDOW_MS', '100', 'expected integer 1000-86400000, got "100"'],
      ['PRODMODE', 'maybe', 'expected true/false, 1/0, yes/no or on/off, got "maybe"'],
      ['LOG_LEVEL', 'loud', 'expected one of fatal, error, warn, info, debug, trace, silent, got "loud"'],
      ['LOG_LEVEL', 'INFO', 'expected one of fatal, error, warn, info, debug, trace, silent, got "INFO"'],
      ['MQTT_PROTOCOL_VERSION', '3', 'expected one of auto, 4, 5, got "3"'],
      ['MQTT_REJECT_UNAUTHORIZED', 'nope', 'expected true/false, 1/0, yes/no or on/off, got "nope"'],
      ['MQTT_URL', 'http://broker:1883', 'expected a URL starting with mqtt://, mqtts://, ws://, wss://, got "http://broker:1883"'],
      ['MQTT_MAX_PACKET_BYTES', '1023', `expected integer 1024-${256 * 1024 * 1024}, got "1023"`],
      ['MQTT_MAX_CONNECTIONS', '0', 'expected integer 1-1000000, got "0"'],
      ['MQTT_STORE_MAX_BYTES', '1000', `expected integer 65536-${Number.MAX_SAFE_INTEGER}, got "1000"`],
    ];
    for (const [name, value, expected] of cases) {
      it(`${name}=${value}`, () => {
        expect(problemsOf({ [name]: value })).to.deep.equal([`invalid ${name}: ${expected}`]);
      });
    }
  });

  it('accepts the boolean spellings of PRODMODE in any case', () => {
    for (const value of ['1', 'true', 'YES', 'On']) expect(loadConfig({ PRODMODE: value }).prodMode, value).to.equal(true);
    for (const value of ['0', 'false', 'No', 'OFF']) expect(loadConfig({ PRODMODE: value }).prodMode, value).to.equal(false);
  });

  it('serves the gallery unless UI_ENABLED is false (issue 17), and reports a bad value', () => {
    expect(loadConfig({}).uiEnabled).to.equal(true);
    expect(loadConfig({ UI_ENABLED: 'false' }).uiEnabled).to.equal(false);
    expect(() => loadConfig({ UI_ENABLED: 'maybe' })).to.throw(/UI_ENABLED/);
  });

  it('reports every problem at once, in one ConfigError whose message lists them', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ PORT: 'http', MQTT_PORT: '70000', LOG_LEVEL: 'chatty', PRODMODE: 'sometimes' });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect(error!.problems).to.deep.equal([
      'invalid PORT: expected integer 0-65535, got "http"',
      'invalid MQTT_PORT: expected integer 0-65535, got "70000"',
      'invalid PRODMODE: expected true/false, 1/0, yes/no or on/off, got "sometimes"',
      'invalid LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "chatty"',
    ]);
    expect(error!.message).to.equal(`invalid configuration:\n  ${error!.problems.join('\n  ')}`);
  });

  describe('MQTT_URL', () => {
    for (const url of ['mqtt://127.0.0.1:1883', 'mqtts://broker.example:8883', 'ws://broker/mqtt', 'wss://user:secret@broker:443/mqtt']) {
      it(`accepts ${url}`, () => {
        expect(loadConfig({ MQTT_URL: url }).mqtt.url).to.equal(url);
      });
    }
    for (const url of ['tcp://broker:1883', 'https://broker', 'broker:1883', 'not a url', '//broker:1883']) {
      it(`rejects ${url}`, () => {
        expect(problemsOf({ MQTT_URL: url })).to.deep.equal([
          `invalid MQTT_URL: expected a URL starting with mqtt://, mqtts://, ws://, wss://, got ${JSON.stringify(url)}`,
        ]);
      });
    }
  });

  describe('PORT and MQTT_PORT', () => {
    it('rejects the same port for HTTP and the embedded broker', () => {
      expect(problemsOf({ PORT: '4000', MQTT_PORT: '4000' })).to.deep.equal(['invalid MQTT_PORT: must differ from PORT (both are 4000)']);
    });

    it('rejects the default MQTT port given as PORT', () => {
      expect(problemsOf({ PORT: '1883' })).to.deep.equal(['invalid MQTT_PORT: must differ from PORT (both are 1883)']);
    });

    it('allows both at 0 (two different ephemeral ports)', () => {
      expect(loadConfig({ PORT: '0', MQTT_PORT: '0' }).http.port).to.equal(0);
    });

    it('allows equal ports with an external broker (MQTT_PORT is not used then)', () => {
      expect(loadConfig({ PORT: '4000', MQTT_PORT: '4000', MQTT_URL: 'mqtt://broker:1883' }).http.port).to.equal(4000);
    });
  });

  describe('image engine lanes and limits (issue 12)', () => {
    it('defaults: transforms and upload checks leave two libuv pool threads free, diffs and costly encoders capped', () => {
      const { images, diff } = loadConfig({});
      const lane = Math.max(1, Math.min(availableParallelism(), 4 - 2));
      expect(images).to.deep.include({
        transformConcurrency: lane, uploadCheckConcurrency: lane, transformMaxQueue: 64, transformQueueTimeoutMs: 30_000,
        avifMaxPixels: 4096 * 4096, gifMaxPixels: 4096 * 4096, threadPoolSize: 4,
      });
      expect(diff).to.deep.equal({ maxPixels: 25_000_000, concurrency: 2 });
    });

    it('reads DIFF_*, TRANSFORM_*, UPLOAD_CHECK_CONCURRENCY, AVIF_/GIF_MAX_PIXELS and UV_THREADPOOL_SIZE', () => {
      const { images, diff } = loadConfig({
        DIFF_MAX_PIXELS: '1000000', DIFF_CONCURRENCY: '3', TRANSFORM_CONCURRENCY: '6', TRANSFORM_MAX_QUEUE: '0', TRANSFORM_QUEUE_TIMEOUT_MS: '250',
        UPLOAD_CHECK_CONCURRENCY: '5', AVIF_MAX_PIXELS: '100', GIF_MAX_PIXELS: '200', UV_THREADPOOL_SIZE: '8',
      });
      expect(images).to.deep.include({
        transformConcurrency: 6, uploadCheckConcurrency: 5, transformMaxQueue: 0, transformQueueTimeoutMs: 250, avifMaxPixels: 100, gifMaxPixels: 200, threadPoolSize: 8,
      });
      expect(diff).to.deep.equal({ maxPixels: 1_000_000, concurrency: 3 });
    });

    it('issue 18: UPLOAD_FINGERPRINTS (default on) and ON_DUPLICATE (allow or reject, default allow)', () => {
      expect(loadConfig({}).images).to.deep.include({ fingerprints: true, onDuplicate: 'allow' });
      expect(loadConfig({ UPLOAD_FINGERPRINTS: 'false', ON_DUPLICATE: 'reject' }).images).to.deep.include({ fingerprints: false, onDuplicate: 'reject' });
      expect(problemsOf({ ON_DUPLICATE: 'merge' })).to.have.length(1);
      expect(problemsOf({ ON_DUPLICATE: 'merge' })[0]).to.match(/ON_DUPLICATE/);
    });

    it('refuses TRANSFORM_CONCURRENCY that would leave fewer than two libuv pool threads for file I/O', () => {
      expect(problemsOf({ TRANSFORM_CONCURRENCY: '3' })).to.deep.equal([
        'invalid TRANSFORM_CONCURRENCY: expected at most UV_THREADPOOL_SIZE - 2 = 2 (transforms must leave libuv pool threads for file I/O; raise UV_THREADPOOL_SIZE), got 3',
      ]);
      expect(loadConfig({ TRANSFORM_CONCURRENCY: '3', UV_THREADPOOL_SIZE: '5' }).images.transformConcurrency).to.equal(3);
      expect(problemsOf({ UV_THREADPOOL_SIZE: '2' })).to.deep.equal(['invalid UV_THREADPOOL_SIZE: expected integer 3-1024, got "2"']);
    });

    it('never compares more pixels than the store accepts: DIFF_MAX_PIXELS is at most MAX_INPUT_PIXELS', () => {
      expect(loadConfig({ MAX_INPUT_PIXELS: '1000000' }).diff.maxPixels).to.equal(1_000_000);
    });

    for (const [name, value, expected] of [
      ['DIFF_MAX_PIXELS', '0', `expected integer 1-${2 ** 40}, got "0"`],
      ['DIFF_CONCURRENCY', '65', 'expected integer 1-64, got "65"'],
      ['TRANSFORM_QUEUE_TIMEOUT_MS', '0', 'expected integer 1-3600000, got "0"'],
      ['TRANSFORM_MAX_QUEUE', '-1', 'expected integer 0-100000, got "-1"'],
      ['AVIF_MAX_PIXELS', '16M', `expected integer 1-${2 ** 40}, got "16M"`],
    ]) {
      it(`${name}=${value}`, () => expect(problemsOf({ [name]: value })).to.deep.equal([`invalid ${name}: ${expected}`]));
    }
  });

  describe('hot-file cache (issue 13)', () => {
    it('keeps 64 MiB of files up to 512 KiB by default, and reads HOT_CACHE_BYTES (0: off) and HOT_CACHE_MAX_FILE_BYTES', () => {
      expect(loadConfig({}).images).to.deep.include({ hotCacheBytes: 64 * 1024 * 1024, hotCacheMaxFileBytes: 512 * 1024 });
      expect(loadConfig({ HOT_CACHE_BYTES: '0', HOT_CACHE_MAX_FILE_BYTES: '1000' }).images).to.deep.include({ hotCacheBytes: 0, hotCacheMaxFileBytes: 1000 });
    });

    it('refuses what is not a byte count', () => {
      expect(problemsOf({ HOT_CACHE_BYTES: '64M', HOT_CACHE_MAX_FILE_BYTES: '0' })).to.deep.equal([
        'invalid HOT_CACHE_BYTES: expected integer 0-9007199254740991, got "64M"',
        'invalid HOT_CACHE_MAX_FILE_BYTES: expected integer 1-1073741824, got "0"',
      ]);
    });
  });

  describe('S3 metadata cache (issue 19)', () => {
    it('keeps 32 MiB for 60 s by default, not strict, and reads S3_CACHE_BYTES, S3_CACHE_TTL_MS and S3_STRICT_READS', () => {
      expect(loadConfig({}).s3Cache).to.deep.equal({ strict: false, budgetBytes: 32 * 1024 * 1024, ttlMs: 60_000 });
      expect(loadConfig({ S3_CACHE_BYTES: '0', S3_CACHE_TTL_MS: '500', S3_STRICT_READS: 'true' }).s3Cache).to.deep.equal({ strict: true, budgetBytes: 0, ttlMs: 500 });
    });

    it('reports every bad value together', () => {
      expect(problemsOf({ S3_CACHE_BYTES: '32M', S3_CACHE_TTL_MS: '-1', S3_STRICT_READS: 'maybe' })).to.deep.equal([
        'invalid S3_STRICT_READS: expected true/false, 1/0, yes/no or on/off, got "maybe"',
        'invalid S3_CACHE_BYTES: expected integer 0-9007199254740991, got "32M"',
        'invalid S3_CACHE_TTL_MS: expected integer 0-86400000, got "-1"',
      ]);
    });
  });

  it('rejects a headers timeout longer than the request timeout', () => {
    expect(problemsOf({ HEADERS_TIMEOUT_MS: '20000', REQUEST_TIMEOUT_MS: '10000' })).to.deep.equal([
      'invalid HEADERS_TIMEOUT_MS: must not exceed REQUEST_TIMEOUT_MS (20000 > 10000)',
    ]);
  });
});

describe('defaultConfig', () => {
  it('is loopback on ephemeral ports, silent, and takes overrides', () => {
    const config = defaultConfig({ shutdownTimeoutMs: 5 });
    expect(config.http).to.include({ host: '127.0.0.1', port: 0 });
    expect(config.mqtt).to.include({ host: '127.0.0.1', port: 0, url: undefined });
    expect(config.logLevel).to.equal('silent');
    expect(config.shutdownTimeoutMs).to.equal(5);
  });
});

describe('loadConfig: the commit path (issue 13)', () => {
  it('checkpoints every second or at 2000 waiting changes by default, and crashes nowhere', () => {
    const config = loadConfig({});
    expect(config.checkpoint).to.deep.equal({ intervalMs: 1000, maxChanges: 2000 });
    expect(config.crashPoint).to.equal(undefined);
  });

  it('reads CHECKPOINT_INTERVAL_MS, CHECKPOINT_MAX_CHANGES and the test-only CRASH_POINT', () => {
    const config = loadConfig({ CHECKPOINT_INTERVAL_MS: '250', CHECKPOINT_MAX_CHANGES: '10', CRASH_POINT: 'upload:after-commit@3' });
    expect(config.checkpoint).to.deep.equal({ intervalMs: 250, maxChanges: 10 });
    expect(config.crashPoint).to.equal('upload:after-commit@3');
  });

  it('reports bad values of all three together', () => {
    expect(problemsOf({ CHECKPOINT_INTERVAL_MS: '5', CHECKPOINT_MAX_CHANGES: '0', CRASH_POINT: 'upload' })).to.deep.equal([
      'invalid CHECKPOINT_INTERVAL_MS: expected integer 10-600000, got "5"',
      'invalid CHECKPOINT_MAX_CHANGES: expected integer 1-1000000, got "0"',
      'invalid CRASH_POINT: expected a point like upload:after-commit, optionally @n (the n-th time), got "upload"',
    ]);
  });
});

// Issue 14: every variable is read here, the tools' and the migration's too, with the same parsers.
describe('loadS3Settings and loadToolConfig (issue 14)', () => {
  const problems = (fn: () => unknown): string[] => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };

  it('reads the bucket settings with the service\'s parsers, reporting every problem together', () => {
    expect(loadS3Settings({ S3_BUCKET: 'b', S3_FORCE_PATH_STYLE: 'Yes', S3_PREFIX: ' p/ ' })).to.deep.equal({
      bucket: 'b', endpoint: undefined, region: 'us-east-1', accessKeyId: undefined, secretAccessKey: undefined, forcePathStyle: true, prefix: 'p/',
    });
    expect(problems(() => loadS3Settings({ S3_FORCE_PATH_STYLE: 'maybe', S3_ENDPOINT: 'ftp://x', S3_ACCESS_KEY_ID: 'k' }))).to.deep.equal([
      'invalid S3_BUCKET: expected a bucket name, got nothing',
      'invalid S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY: expected both or neither, got only one',
      'invalid S3_ENDPOINT: expected a URL starting with http:// or https://, got "ftp://x"',
      'invalid S3_FORCE_PATH_STYLE: expected true/false, 1/0, yes/no or on/off, got "maybe"',
    ]);
    expect(loadConfig({ STORAGE: 's3', S3_BUCKET: 'b' }).s3).to.deep.equal(loadS3Settings({ S3_BUCKET: 'b' }));
  });

  it('gives the tools IMAGE_DB_DIR and a checked LOG_LEVEL (error by default)', () => {
    expect(loadToolConfig({})).to.deep.equal({ imageDbDir: path.resolve('./image-db'), logLevel: 'error' });
    expect(loadToolConfig({ IMAGE_DB_DIR: '/data', LOG_LEVEL: 'warn' })).to.deep.equal({ imageDbDir: '/data', logLevel: 'warn' });
    expect(problems(() => loadToolConfig({ LOG_LEVEL: 'loud' }))).to.deep.equal([
      'invalid LOG_LEVEL: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ]);
  });
});

describe('loadConfig: events over HTTP (issue 16)', () => {
  it('keeps delivered events 7 days or 1 GiB by default, and reads EVENT_RETENTION as an age and/or a size', () => {
    expect(loadConfig({}).events.retention).to.deep.equal({ maxAgeMs: 7 * 86_400_000, maxBytes: 1024 ** 3 });
    expect(loadConfig({ EVENT_RETENTION: '12h' }).events.retention).to.deep.equal({ maxAgeMs: 12 * 3_600_000, maxBytes: Infinity });
    expect(loadConfig({ EVENT_RETENTION: '500MB' }).events.retention).to.deep.equal({ maxAgeMs: Infinity, maxBytes: 500e6 });
    expect(loadConfig({ EVENT_RETENTION: '2d, 2GiB' }).events.retention).to.deep.equal({ maxAgeMs: 2 * 86_400_000, maxBytes: 2 * 1024 ** 3 });
    expect(loadConfig({ EVENT_RETENTION: '0' }).events.retention).to.deep.equal({ maxAgeMs: 0, maxBytes: 0 });
  });

  it('reads the webhook settings, host list lower-cased', () => {
    const { webhooks } = loadConfig({
      WEBHOOK_ALLOW_HOSTS: 'Hooks.Internal, [::1]', WEBHOOK_TIMEOUT_MS: '2500', WEBHOOK_CONCURRENCY: '4', WEBHOOK_RETRY_BASE_DELAY_MS: '50',
      WEBHOOK_RETRY_MAX_DELAY: '10m', WEBHOOK_DISABLE_AFTER: '36h', WEBHOOK_SECRET_GRACE: '0',
    }).events;
    expect(webhooks).to.deep.equal({
      allowHosts: ['hooks.internal', '::1'], timeoutMs: 2500, concurrency: 4, retryBaseDelayMs: 50, retryMaxDelayMs: 600_000, disableAfterMs: 36 * 3_600_000, secretGraceMs: 0,
    });
  });

  it('reports bad event settings together', () => {
    const problems = problemsOf({ EVENT_RETENTION: '7 days', EVENT_STREAM_MAX_LAG: '0', WEBHOOK_CONCURRENCY: 'x', WEBHOOK_DISABLE_AFTER: 'soon' });
    expect(problems).to.have.length(4);
    expect(problems[0]).to.match(/^invalid EVENT_RETENTION: expected an age like 7d .* got "7 days"$/);
    expect(problems.join('\n')).to.match(/EVENT_STREAM_MAX_LAG/).and.match(/WEBHOOK_CONCURRENCY/).and.match(/WEBHOOK_DISABLE_AFTER/);
  });
});

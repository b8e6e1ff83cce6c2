import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, DeleteBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import type { S3Settings } from '../../src/config.js';
import { S3Bucket, createS3Client } from '../../src/albums/s3/s3-bucket.js';

/** The credentials of scripts/swift-s3.sh unless S3_TEST_ACCESS_KEY_ID / S3_TEST_SECRET_ACCESS_KEY say otherwise. */
const ACCESS_KEY_ID = process.env.S3_TEST_ACCESS_KEY_ID ?? 'test:tester';
const SECRET_ACCESS_KEY = process.env.S3_TEST_SECRET_ACCESS_KEY ?? 'testing';

/**
 * The S3 server the tests use (S3_TEST_ENDPOINT, e.g. http://127.0.0.1:8080 from
 * `bash scripts/swift-s3.sh start`). Call from a `before` hook: skips the suite
 * with a message when the variable is unset; when the server does not answer,
 * fails under CI=true (where .ci/run starts it) and skips otherwise.
 */
export async function requireS3(ctx: Mocha.Context): Promise<string> {
  const endpoint = process.env.S3_TEST_ENDPOINT;
  if (!endpoint) {
    console.log('      skipped: S3_TEST_ENDPOINT is not set (bash scripts/swift-s3.sh start, then S3_TEST_ENDPOINT=http://127.0.0.1:8080)');
    ctx.skip();
  }
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(3000) }); // any HTTP answer will do
  } catch (err) {
    const message = `S3 test server ${endpoint} is not reachable: ${(err as Error).message}`;
    if (process.env.CI === 'true') throw new Error(message);
    console.log(`      skipped: ${message}`);
    ctx.skip();
  }
  return endpoint;
}

/** A bucket made for one test file, emptied and removed by `destroy`. */
export class TestBucket {
  private constructor(
    readonly endpoint: string,
    readonly name: string,
    readonly client: S3Client,
  ) {}

  /** Creates `imagestore-test-<random>` on the server. */
  static async create(endpoint: string): Promise<TestBucket> {
    const name = `imagestore-test-${randomBytes(5).toString('hex')}`;
    const bucket = new TestBucket(endpoint, name, createS3Client(testSettings(endpoint, name)));
    await bucket.client.send(new CreateBucketCommand({ Bucket: name }));
    return bucket;
  }

  /** Settings for a store in this bucket; give each test its own prefix for a fresh, empty store. */
  settings(prefix?: string): S3Settings {
    return { ...testSettings(this.endpoint, this.name), prefix };
  }

  /** A fresh random key prefix. */
  static prefix(): string {
    return `t-${randomBytes(6).toString('hex')}/`;
  }

  /** Raw access, to look at (or tamper with) objects behind a store's back. */
  raw(): S3Bucket {
    return new S3Bucket(this.client, this.name);
  }

  /** Deletes every object, then the bucket. */
  async destroy(): Promise<void> {
    await this.raw().deletePrefix('');
    await this.client.send(new DeleteBucketCommand({ Bucket: this.name })).catch(() => undefined);
    this.client.destroy();
  }
}

function testSettings(endpoint: string, bucket: string): S3Settings {
  return { endpoint, bucket, region: 'us-east-1', accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, forcePathStyle: true };
}

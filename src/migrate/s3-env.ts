import { ConfigError } from '../errors.js';
import type { S3Settings } from '../albums/s3-bucket.js';

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

/**
 * The bucket settings from the S3_* variables the service reads with STORAGE=s3:
 * S3_BUCKET (required), S3_ENDPOINT, S3_REGION (us-east-1), S3_ACCESS_KEY_ID,
 * S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE (false), S3_PREFIX.
 * @throws {ConfigError} listing every problem
 */
export function s3SettingsFromEnv(env: Record<string, string | undefined>): S3Settings {
  const get = (name: string) => (env[name]?.trim() ? env[name]!.trim() : undefined);
  const problems: string[] = [];
  const bucket = get('S3_BUCKET');
  if (!bucket) problems.push('invalid S3_BUCKET: expected a bucket name, got nothing');
  const endpoint = get('S3_ENDPOINT');
  if (endpoint !== undefined && !/^https?:\/\/[^\s/]+/.test(endpoint)) {
    problems.push(`invalid S3_ENDPOINT: expected a URL starting with http:// or https://, got ${JSON.stringify(endpoint)}`);
  }
  const accessKeyId = get('S3_ACCESS_KEY_ID');
  const secretAccessKey = get('S3_SECRET_ACCESS_KEY');
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    problems.push('invalid S3_ACCESS_KEY_ID/S3_SECRET_ACCESS_KEY: expected both or neither, got only one');
  }
  const pathStyle = get('S3_FORCE_PATH_STYLE')?.toLowerCase();
  if (pathStyle !== undefined && !TRUE.includes(pathStyle) && !FALSE.includes(pathStyle)) {
    problems.push(`invalid S3_FORCE_PATH_STYLE: expected true/false, 1/0, yes/no or on/off, got ${JSON.stringify(pathStyle)}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    bucket: bucket!, endpoint, region: get('S3_REGION') ?? 'us-east-1', accessKeyId, secretAccessKey,
    forcePathStyle: pathStyle !== undefined && TRUE.includes(pathStyle), prefix: get('S3_PREFIX'),
  };
}

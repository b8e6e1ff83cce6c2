import type { z } from 'zod';
import { ValidationError } from '../errors.js';

/**
 * Checks `value` against `schema`, or throws a ValidationError naming the field
 * ("albumName: Invalid input: expected string, received undefined").
 */
export function parseWith<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue.path.length > 0 ? issue.path.join('.') : what;
  throw new ValidationError(`${where}: ${issue.message}`);
}

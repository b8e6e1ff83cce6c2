import { ValidationError } from '../errors.js';

/**
 * A boolean query parameter: `1`, `true` or nothing (`?flip`) is true, `0` or `false` is false,
 * absent is `fallback`; anything else (a typo, the parameter twice) is a ValidationError (400),
 * never quietly false.
 * @example queryFlag('download', ctx.query.download) // ?download=1 → true
 */
export function queryFlag(name: string, raw: string | string[] | undefined, fallback = false): boolean {
  if (raw === undefined) return fallback;
  if (raw === '' || raw === '1' || raw === 'true') return true;
  if (raw === '0' || raw === 'false') return false;
  throw new ValidationError(`Expected true, false, 1, 0 or nothing for ${name} but received ${JSON.stringify(raw)}`);
}

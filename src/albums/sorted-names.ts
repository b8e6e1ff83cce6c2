import type { Page, PageRequest } from './types.js';
import { ValidationError } from '../errors.js';
import { MAX_PAGE_LIMIT } from '../contract/schemas.js';

export { MAX_PAGE_LIMIT };

/**
 * A sorted set of names kept in memory, so a page of a 100,000-image album
 * costs a binary search and a slice instead of a directory scan and a sort.
 * Order is by UTF-16 code units (JavaScript's default), the same on every node.
 */
export class SortedNames {
  private readonly names: string[];

  constructor(names: Iterable<string> = []) {
    this.names = [...new Set(names)].sort();
  }

  get size(): number {
    return this.names.length;
  }

  has(name: string): boolean {
    const i = this.lowerBound(name);
    return this.names[i] === name;
  }

  add(name: string): void {
    const i = this.lowerBound(name);
    if (this.names[i] !== name) this.names.splice(i, 0, name);
  }

  delete(name: string): void {
    const i = this.lowerBound(name);
    if (this.names[i] === name) this.names.splice(i, 1);
  }

  all(): string[] {
    return [...this.names];
  }

  /** The names after `cursor` (exclusive), at most `limit` of them; all names when no limit. */
  page({ limit, cursor }: PageRequest = {}): Page<string> {
    const start = cursor === undefined ? 0 : this.upperBound(decodeCursor(cursor));
    const end = limit === undefined ? this.names.length : Math.min(this.names.length, start + limit);
    const items = this.names.slice(start, end);
    const nextCursor = end < this.names.length && items.length > 0 ? encodeCursor(items[items.length - 1]) : undefined;
    return nextCursor ? { items, nextCursor } : { items };
  }

  private lowerBound(name: string): number {
    let lo = 0;
    let hi = this.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.names[mid] < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private upperBound(name: string): number {
    const i = this.lowerBound(name);
    return this.names[i] === name ? i + 1 : i;
  }
}

/** Cursors are opaque to clients: the last name of the previous page, base64url-encoded. */
export function encodeCursor(lastName: string): string {
  return Buffer.from(lastName, 'utf8').toString('base64url');
}

/** @throws {ValidationError} when the cursor was not made by encodeCursor */
export function decodeCursor(cursor: string): string {
  const name = /^[A-Za-z0-9_-]+$/.test(cursor) ? Buffer.from(cursor, 'base64url').toString('utf8') : '';
  if (name === '' || encodeCursor(name) !== cursor) {
    throw new ValidationError(`Invalid cursor: expected a value from nextCursor but received ${JSON.stringify(cursor.slice(0, 80))}`);
  }
  return name;
}

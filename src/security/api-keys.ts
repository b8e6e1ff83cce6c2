import { createHash, timingSafeEqual } from 'node:crypto';

/** Roles, each including the ones before it. */
export const ROLES = ['read', 'write', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** True when `have` is at least `need` (admin ⊇ write ⊇ read). */
export function roleAllows(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

interface KeyEntry {
  role: Role;
  digest: Buffer;
}

/**
 * The configured API keys, held only as SHA-256 digests. A presented key is
 * hashed and compared with every digest in constant time, so neither the
 * keys nor which one matched leak through timing. Keys are never logged.
 */
export class ApiKeys {
  private constructor(private readonly entries: KeyEntry[]) {}

  /** No keys: the service runs open. */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /**
   * @param envList `API_KEYS`: comma-separated `role:key` pairs
   * @param fileText `API_KEYS_FILE` contents: one `role:sha256-hex-of-key` per line, `#` comments
   * @returns the keys, or the problems found (each naming the variable and the line or item)
   */
  static parse(envList: string | undefined, fileText: string | undefined): { keys: ApiKeys; problems: string[] } {
    const entries: KeyEntry[] = [];
    const problems: string[] = [];
    (envList ?? '').split(',').map((s) => s.trim()).filter(Boolean).forEach((item, i) => {
      const [role, key] = splitOnce(item);
      // The item is never echoed: without a colon the "role" is the key itself.
      if (!isRole(role) || !key) problems.push(`invalid API_KEYS: item ${i + 1}: expected role:key with role read, write or admin, got ${isRole(role) ? 'no key' : 'no valid role'}`);
      else if (key.length < 16) problems.push(`invalid API_KEYS: item ${i + 1}: keys must be at least 16 characters`);
      else entries.push({ role, digest: sha256(key) });
    });
    (fileText ?? '').split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const [role, hex] = splitOnce(line);
      if (!isRole(role) || !/^[0-9a-fA-F]{64}$/.test(hex)) {
        problems.push(`invalid API_KEYS_FILE: line ${i + 1}: expected role:sha256-hex-of-key (64 hex digits) with role read, write or admin`);
      } else entries.push({ role, digest: Buffer.from(hex, 'hex') });
    });
    return { keys: new ApiKeys(entries), problems };
  }

  /** The role of a presented key, or undefined when it matches none. */
  roleOf(presented: string): Role | undefined {
    const digest = sha256(presented);
    let match: Role | undefined;
    for (const entry of this.entries) {
      // Every entry is compared, match or not, so the time does not depend on which key matched.
      if (timingSafeEqual(entry.digest, digest) && match === undefined) match = entry.role;
    }
    return match;
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function splitOnce(item: string): [string, string] {
  const i = item.indexOf(':');
  return i < 0 ? [item, ''] : [item.slice(0, i).trim(), item.slice(i + 1).trim()];
}

function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';
import { ApiKeys, roleAllows, ROLES } from '../../src/security/api-keys.js';

const READ_KEY = 'read-key-0123456789abcdef';
const WRITE_KEY = 'write-key-0123456789abcdef';
const ADMIN_KEY = 'admin-key-0123456789abcdef';
const sha256Hex = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

describe('API keys', () => {
  describe('roleAllows', () => {
    it('orders the roles read < write < admin, each including the ones below', () => {
      const table = ROLES.map((have) => ROLES.map((need) => roleAllows(have, need)));
      expect(table).to.deep.equal([
        [true, false, false],
        [true, true, false],
        [true, true, true],
      ]);
    });
  });

  describe('from API_KEYS (role:key pairs)', () => {
    it('gives each key its role and nothing for an unknown key', () => {
      const { keys, problems } = ApiKeys.parse(`read:${READ_KEY}, write:${WRITE_KEY} ,admin:${ADMIN_KEY}`, undefined);
      expect(problems).to.deep.equal([]);
      expect(keys.enabled).to.equal(true);
      expect(keys.roleOf(READ_KEY)).to.equal('read');
      expect(keys.roleOf(WRITE_KEY)).to.equal('write');
      expect(keys.roleOf(ADMIN_KEY)).to.equal('admin');
      expect(keys.roleOf('not-a-key-0123456789abcdef')).to.equal(undefined);
      expect(keys.roleOf('')).to.equal(undefined);
    });

    it('matches keys exactly: no prefix, suffix or case variant is accepted', () => {
      const { keys } = ApiKeys.parse(`read:${READ_KEY}`, undefined);
      for (const near of [READ_KEY.slice(0, -1), `${READ_KEY}x`, READ_KEY.toUpperCase(), ` ${READ_KEY}`]) {
        expect(keys.roleOf(near), near).to.equal(undefined);
      }
    });

    it('keeps everything after the first colon as the key (keys may contain colons)', () => {
      const { keys, problems } = ApiKeys.parse('write:abc:def:0123456789abcdef', undefined);
      expect(problems).to.deep.equal([]);
      expect(keys.roleOf('abc:def:0123456789abcdef')).to.equal('write');
    });

    it('is disabled (the service runs open) when nothing is configured', () => {
      for (const env of [undefined, '', ' , ,']) {
        const { keys, problems } = ApiKeys.parse(env, undefined);
        expect(problems).to.deep.equal([]);
        expect(keys.enabled).to.equal(false);
        expect(keys.roleOf(READ_KEY)).to.equal(undefined);
      }
    });

    it('reports an unknown role, a missing role or key and a short key, naming the item but never echoing it', () => {
      const items = [`boss:${ADMIN_KEY}`, 'read:', 'write:tooshort-secret', WRITE_KEY, `admin:${ADMIN_KEY}`];
      const { keys, problems } = ApiKeys.parse(items.join(','), undefined);
      expect(problems).to.deep.equal([
        'invalid API_KEYS: item 1: expected role:key with role read, write or admin, got no valid role',
        'invalid API_KEYS: item 2: expected role:key with role read, write or admin, got no key',
        'invalid API_KEYS: item 3: keys must be at least 16 characters',
        'invalid API_KEYS: item 4: expected role:key with role read, write or admin, got no valid role',
      ]);
      expect(keys.roleOf(ADMIN_KEY), 'the valid item is still taken').to.equal('admin');
    });
  });

  describe('from API_KEYS_FILE (role:sha256-hex lines)', () => {
    it('accepts the SHA-256 of a key (as `printf %s KEY | sha256sum` prints it), with comments and blank lines', () => {
      const text = `# imagestore keys\n\nread:${sha256Hex(READ_KEY)}\n  admin:${sha256Hex(ADMIN_KEY).toUpperCase()}  \r\n`;
      const { keys, problems } = ApiKeys.parse(undefined, text);
      expect(problems).to.deep.equal([]);
      expect(keys.roleOf(READ_KEY)).to.equal('read');
      expect(keys.roleOf(ADMIN_KEY)).to.equal('admin');
      expect(keys.roleOf(sha256Hex(READ_KEY)), 'the digest itself is not a key').to.equal(undefined);
    });

    it('combines with API_KEYS', () => {
      const { keys } = ApiKeys.parse(`write:${WRITE_KEY}`, `read:${sha256Hex(READ_KEY)}\n`);
      expect([keys.roleOf(READ_KEY), keys.roleOf(WRITE_KEY)]).to.deep.equal(['read', 'write']);
    });

    it('reports lines that are not role:64-hex, by line number', () => {
      const text = `read:${sha256Hex(READ_KEY)}\nread:${READ_KEY}\nroot:${sha256Hex(ADMIN_KEY)}\nwrite:${sha256Hex(WRITE_KEY).slice(1)}\n`;
      const { problems } = ApiKeys.parse(undefined, text);
      expect(problems.map((p) => /line (\d+)/.exec(p)?.[1])).to.deep.equal(['2', '3', '4']);
      for (const problem of problems) expect(problem).not.to.include(READ_KEY);
    });
  });

  describe('in loadConfig', () => {
    it('reads API_KEYS_FILE through the given reader and reports an unreadable file', () => {
      const config = loadConfig({ API_KEYS_FILE: '/keys' }, (file) => {
        expect(file).to.equal('/keys');
        return `admin:${sha256Hex(ADMIN_KEY)}\n`;
      });
      expect(config.security.apiKeys.roleOf(ADMIN_KEY)).to.equal('admin');
      expect(() => loadConfig({ API_KEYS_FILE: '/nope' }, () => {
        throw new Error('ENOENT: no such file');
      })).to.throw(ConfigError, /invalid API_KEYS_FILE: cannot read "\/nope": ENOENT/);
    });

    it('refuses the whole configuration when a key is invalid, without the key in the message', () => {
      let message = '';
      try {
        // A key pasted without its role (the whole item would be taken for a role).
        loadConfig({ API_KEYS: `read:short-secret,${WRITE_KEY}` });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).to.match(/invalid API_KEYS: item 1: keys must be at least 16 characters/);
      expect(message).to.match(/invalid API_KEYS: item 2: .* got no valid role/);
      expect(message).not.to.include('short-secret');
      expect(message).not.to.include(WRITE_KEY);
    });
  });
});

import { expect } from 'chai';
import Koa from 'koa';
import supertest from 'supertest';
import { InsufficientStorageError, NotFoundError, ServiceUnavailableError, storageError, stripPaths } from '../../src/errors.js';
import { silentLogger } from '../../src/logger.js';
import { errorHandler } from '../../src/middleware/error-handler.js';
import { requestId } from '../../src/middleware/request-id.js';

/** A Node system error as fs throws it: code, errno message, and the path it failed on. */
const systemError = (code: string, syscall = 'open', file = '/srv/data/.imagestore/tmp/upload-1') =>
  Object.assign(new Error(`${code}: failed, ${syscall} '${file}'`), { code, syscall, path: file });

// Issue 12, item 13: storage errors are mapped in one place, to the right status, without paths.
describe('storage error mapping (issue 12)', () => {
  describe('storageError', () => {
    it('maps a full disk or quota (ENOSPC, EDQUOT) to 507 Insufficient Storage', () => {
      for (const code of ['ENOSPC', 'EDQUOT']) {
        const mapped = storageError(systemError(code, 'write'));
        expect(mapped).to.be.instanceOf(InsufficientStorageError);
        expect(mapped!.status).to.equal(507);
        expect(mapped!.message).to.not.include('/');
      }
    });

    it('maps libvips messages quoting a system error (sharp has no error codes)', () => {
      const message = '/srv/data/.imagestore/cache/tmp-1: write error\nsystem error: No space left on device\nVipsJpeg: unable to write to target';
      expect(storageError(new Error(message))).to.be.instanceOf(InsufficientStorageError);
      expect(storageError(new Error('unable to write: Read-only file system'))!.status).to.equal(503);
    });

    it('maps a read-only or forbidden store (EROFS, EACCES, EPERM) to 503, saying why without a path', () => {
      const readOnly = storageError(systemError('EROFS', 'mkdir'));
      expect(readOnly).to.be.instanceOf(ServiceUnavailableError);
      expect(readOnly!.message).to.equal('the store cannot be written: its file system is read-only');
      for (const code of ['EACCES', 'EPERM']) {
        const denied = storageError(systemError(code));
        expect(denied!.status).to.equal(503);
        expect(denied!.message).to.match(/permission denied/).and.not.include('/');
      }
    });

    it('maps running out of file descriptors (EMFILE, ENFILE) to 503 with a short Retry-After', () => {
      for (const code of ['EMFILE', 'ENFILE']) {
        const mapped = storageError(systemError(code)) as ServiceUnavailableError;
        expect(mapped).to.be.instanceOf(ServiceUnavailableError);
        expect(mapped.retryAfterSeconds).to.equal(1);
      }
    });

    it('leaves other errors alone (they stay 500s, logged with their details) and AppErrors as they are', () => {
      expect(storageError(systemError('EIO', 'read'))).to.equal(undefined);
      expect(storageError(new Error('boom'))).to.equal(undefined);
      expect(storageError('not an error')).to.equal(undefined);
      const notFound = new NotFoundError('x album is not present');
      expect(storageError(notFound)).to.equal(notFound);
    });
  });

  describe('stripPaths', () => {
    it('replaces the absolute paths that sharp and libvips quote, and nothing else', () => {
      expect(stripPaths('Input file is missing: /srv/data/image-store/a/b.png')).to.equal('Input file is missing: <file>');
      expect(stripPaths('VipsForeignLoad: "/proc/self/fd/23" is not a known file format')).to.equal('VipsForeignLoad: "<file>" is not a known file format');
      expect(stripPaths('/tmp/x.png: write error')).to.equal('<file>: write error');
      expect(stripPaths('image/png and 3/4 of a tile')).to.equal('image/png and 3/4 of a tile');
    });
  });

  describe('the error handler', () => {
    /** A Koa app with the real request-id and error-handler middleware, whose one route throws `err`. */
    const appThrowing = (err: unknown) => {
      const app = new Koa();
      app.use(requestId(silentLogger())).use(errorHandler()).use(async () => {
        throw err;
      });
      return supertest(app.callback());
    };

    it('answers a storage error that escapes a route with its status, Retry-After where it helps, and no path', async () => {
      const full = await appThrowing(systemError('ENOSPC', 'write')).get('/');
      expect(full.status).to.equal(507);
      expect(full.body).to.deep.equal({ error: 'not enough storage space: the disk holding the store is full' });
      const files = await appThrowing(systemError('EMFILE')).get('/');
      expect(files.status).to.equal(503);
      expect(files.headers['retry-after']).to.equal('1');
      expect(files.text).to.not.include('/srv');
      const readOnly = await appThrowing(systemError('EROFS', 'rename')).get('/');
      expect(readOnly.status).to.equal(503);
      expect(readOnly.text).to.not.include('/srv');
      const other = await appThrowing(systemError('EIO', 'read')).get('/');
      expect(other.status).to.equal(500);
      expect(other.body).to.deep.equal({ error: 'Internal Server Error' });
    });
  });
});

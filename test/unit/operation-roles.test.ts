import { expect } from 'chai';
import { ASSET_ROUTES, OPERATIONS_TABLE, operation, type OperationId, type RequiredRole } from '../../src/contract/operations.js';
import { buildOpenApi, OPERATIONS } from '../../src/docs/openapi.js';
import { compileRoles } from '../../src/middleware/required-role.js';

/**
 * The role rules middleware/auth.ts had before the operation table (regexes and method rules),
 * kept here as the oracle: the table must decide every request, served or not, as they did.
 */
function rulesBeforeTheTable(method: string, rawPath: string): RequiredRole {
  const OPEN = [/^\/$/, /^\/(livez|healthz|readyz)$/, /^\/api\/v1\/version$/, /^\/(openapi|asyncapi)\.json$/, /^\/swagger(\/|$)/, /^\/docs\/events\.md$/, /^\/ui\/[^/]+$/];
  const path = rawPath.toLowerCase().replace(/(.)\/+$/, '$1');
  if (method === 'OPTIONS' || OPEN.some((re) => re.test(path))) return 'open';
  if (path === '/api/v1/session') return method === 'DELETE' ? 'open' : 'read';
  if (path === '/metrics' || path.startsWith('/api/v1/admin/')) return 'admin';
  if (path === '/api/v1/webhooks' || path.startsWith('/api/v1/webhooks/')) return 'admin';
  if (method === 'DELETE' && /^\/api\/v1\/albums\/[^/]+\/?$/.test(path)) return 'admin';
  if (method === 'GET' || method === 'HEAD') return 'read';
  if (method === 'POST' && (path === '/api/v1/signed-urls' || path === '/api/v1/diff')) return 'read';
  return 'write';
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** Every table path with its parameters filled in, in several spellings, plus paths no route serves. */
function paths(): string[] {
  const fills = ['x', 'Holidays', 'pic.png', 'metadata', 'images', 'stream', '%2Fadmin', 'a%20b'];
  const served = [...OPERATIONS_TABLE, ...ASSET_ROUTES].flatMap((op) => fills.map((fill) => op.path.replace(/\{\w+\}/g, fill)));
  const spelled = served.flatMap((p) => [p, p.toUpperCase(), `${p}/`, `${p}//`, `${p}/extra`, `${p}/extra/more`]);
  const unknown = [
    '/api/v1/no-such-route', '/api', '/api/v1', '/api/v1/', '/api/v1/admin', '/api/v1/admin/', '/api/v1/admin/other', '/api/v1/webhooksx',
    '/metricsx', '/metrics/x', '/%6Detrics', '/api/v1/%61dmin/fsck', '/api/v1/%61lbums/x', '/swaggerx', '/swagger/a/b', '/ui', '/ui/', '/ui/a/b',
    '/api//v1/albums', '/api/v1/albums//images', '/api/v1/albums/x//', '/api/v1/images', '/api/v1/images/a/b/c', '/api/v1/session/x', '/docs', '/docs/other.md',
  ];
  return [...new Set([...spelled, ...unknown])];
}

describe('operation table and required roles (issue 14, item 1)', () => {
  const roleOf = compileRoles();

  it('decides every request, served or not, in any spelling, as the rules before the table did', () => {
    const differences: string[] = [];
    for (const path of paths()) {
      for (const method of METHODS) {
        const [now, before] = [roleOf(method, path), rulesBeforeTheTable(method, path)];
        // Deliberate: a method /api/v1/session does not serve (405) needs write now, as elsewhere, not read.
        if (path.toLowerCase().replace(/\/+$/, '') === '/api/v1/session' && ['PUT', 'PATCH'].includes(method) && now === 'write') continue;
        if (now !== before) differences.push(`${method} ${path}: ${now}, was ${before}`);
      }
    }
    expect(differences).to.deep.equal([]);
  });

  it('needs GET\'s role for HEAD, and nothing for OPTIONS', () => {
    expect(roleOf('HEAD', '/api/v1/albums/a/images/b.png')).to.equal('read');
    expect(roleOf('HEAD', '/metrics')).to.equal('admin');
    expect(roleOf('OPTIONS', '/api/v1/admin/fsck')).to.equal('open');
  });

  it('decides from the table it is given', () => {
    const custom = compileRoles([{ operationId: 'x', method: 'get', path: '/things/{id}', role: 'admin' }], []);
    expect(custom('GET', '/Things/7/')).to.equal('admin');
    expect(custom('POST', '/things/7'), 'another method of an admin-only path').to.equal('admin');
    expect(custom('GET', '/things/'), 'no id').to.equal('read');
    expect(custom('DELETE', '/other')).to.equal('write');
  });

  it('documents exactly the table\'s operations, with its methods, paths and roles', () => {
    expect(OPERATIONS.map((op) => op.operationId)).to.deep.equal(OPERATIONS_TABLE.map((op) => op.operationId));
    for (const op of OPERATIONS) {
      const { method, path, role } = operation(op.operationId as OperationId);
      expect({ method: op.method, path: op.path, role: op.role }, op.operationId).to.deep.equal({ method, path, role });
    }
    const routes = [...OPERATIONS_TABLE, ...ASSET_ROUTES].map((op) => `${op.method} ${op.path}`);
    expect(new Set(routes).size, 'one entry per method and path').to.equal(routes.length);
  });

  type Doc = { paths: Record<string, Record<string, { responses: Record<string, unknown>; security?: unknown[]; 'x-required-role'?: string }>> };
  const entries = (doc: Doc) => Object.entries(doc.paths).flatMap(([path, item]) => Object.entries(item).map(([method, op]) => ({ path, method, op })));

  it('OpenAPI without keys: no 401 or 403 anywhere, no roles', () => {
    const doc = buildOpenApi('test', { keys: false }) as Doc;
    for (const { path, method, op } of entries(doc)) {
      const where = `${method} ${path}`;
      expect(Object.keys(op.responses), where).not.to.include.members(['401']);
      expect(Object.keys(op.responses), where).not.to.include.members(['403']);
      expect(op['x-required-role'], where).to.equal(undefined);
      expect(op.security, where).to.equal(undefined);
    }
  });

  it('OpenAPI with keys: the table\'s role on every protected operation (x-required-role, 401, 403), no key needed on open ones', () => {
    const doc = buildOpenApi('test', { keys: true }) as Doc;
    for (const { path, method, op } of entries(doc)) {
      const where = `${method} ${path}`;
      const { role } = OPERATIONS_TABLE.find((o) => o.path === path && o.method === method)!;
      if (role === 'open') {
        expect(op.security, where).to.deep.equal([]);
        expect(op['x-required-role'], where).to.equal(undefined);
        expect(Object.keys(op.responses), where).not.to.include('401');
      } else {
        expect(op.security, where).to.equal(undefined);
        expect(op['x-required-role'], where).to.equal(role);
        expect(Object.keys(op.responses), where).to.include.members(['401', '403']);
      }
    }
    expect(doc.paths['/api/v1/session'].delete.security, 'leaving a session needs no key').to.deep.equal([]);
  });
});

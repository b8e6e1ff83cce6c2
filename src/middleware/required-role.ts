import { ASSET_ROUTES, OPERATIONS_TABLE, PATH_AREAS, type Operation, type RequiredRole } from '../contract/operations.js';

/** The role a request needs, from its method and its path (`ctx.path`, not decoded). */
export type RoleOf = (method: string, rawPath: string) => RequiredRole;

/** A path template as segments: a literal in lower case, or undefined for a `{param}` (any non-empty segment). */
interface Template {
  segments: Array<string | undefined>;
  literals: number;
  /** `by-method`: a path served for other methods only, whose operations need different roles. */
  role: RequiredRole | 'by-method';
}

/**
 * Compiles the operation table into the function the auth middleware asks for each request. The
 * templates are grouped by method and segment count, so a request is compared with the few
 * templates of its own shape, never with every route.
 *
 * The router matches paths case-insensitively and with trailing slashes, so this does too:
 * otherwise `DELETE /API/v1/albums/x` would need only write and `GET /Metrics/` only read.
 * HEAD needs what GET needs; OPTIONS (CORS preflights) is open. A path the router serves for other
 * methods only (405) is open when all its operations are open and admin when all are admin; any
 * other unknown request needs what its area of `areas` needs, else `read` for GET and HEAD and
 * `write` for anything else.
 * @param operations default the table and the asset routes of src/contract/operations.ts
 * @param areas default PATH_AREAS
 * @example compileRoles()('DELETE', '/api/v1/albums/holidays') // 'admin'
 */
export function compileRoles(operations: readonly Operation[] = [...OPERATIONS_TABLE, ...ASSET_ROUTES], areas = PATH_AREAS): RoleOf {
  const byMethod = new Map<string, Template[]>();
  const byPath = new Map<string, { segments: Template['segments']; roles: Set<RequiredRole> }>();
  for (const op of operations) {
    const segments = op.path.split('/').slice(1).map((s) => (/^\{\w+\}$/.test(s) ? undefined : s.toLowerCase()));
    add(byMethod, `${op.method.toUpperCase()} ${segments.length}`, { segments, literals: countLiterals(segments), role: op.role });
    const key = segments.map((s) => s ?? '{}').join('/');
    const path = byPath.get(key) ?? { segments, roles: new Set<RequiredRole>() };
    path.roles.add(op.role);
    byPath.set(key, path);
  }
  const otherMethods = new Map<number, Template[]>();
  for (const { segments, roles } of byPath.values()) {
    const only = roles.size === 1 ? [...roles][0] : undefined;
    const role = only === 'open' || only === 'admin' ? only : 'by-method';
    add(otherMethods, segments.length, { segments, literals: countLiterals(segments), role });
  }
  // The most literal template first: `/events/stream` before a `/events/{id}` of the same shape.
  for (const list of [...byMethod.values(), ...otherMethods.values()]) list.sort((a, b) => b.literals - a.literals);

  return function requiredRole(method, rawPath) {
    if (method === 'OPTIONS') return 'open';
    const path = rawPath.toLowerCase().replace(/(.)\/+$/, '$1');
    const segments = path.split('/').slice(1);
    const served = match(byMethod.get(`${method === 'HEAD' ? 'GET' : method} ${segments.length}`), segments);
    if (served) return served.role as RequiredRole;
    const other = match(otherMethods.get(segments.length), segments);
    if (other && other.role !== 'by-method') return other.role;
    for (const area of areas) if (path.startsWith(area.prefix)) return area.role;
    return method === 'GET' || method === 'HEAD' ? 'read' : 'write';
  };
}

function add<K>(map: Map<K, Template[]>, key: K, template: Template): void {
  const list = map.get(key);
  if (list) list.push(template);
  else map.set(key, [template]);
}

function countLiterals(segments: Template['segments']): number {
  return segments.filter((s) => s !== undefined).length;
}

function match(templates: Template[] | undefined, segments: string[]): Template | undefined {
  return templates?.find((t) => t.segments.every((literal, i) => (literal === undefined ? segments[i] !== '' : literal === segments[i])));
}

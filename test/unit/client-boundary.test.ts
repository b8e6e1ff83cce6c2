import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';

const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src');

/** Every module specifier of a TypeScript file: static imports, re-exports and dynamic imports. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"]([^'"]+)['"]/g), ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return found.map((m) => m[1]);
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? tsFiles(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

// The client ships as its own light package (packages/client): anything it imports from the server would
// drag the server's modules, and their dependencies, along.
describe('client boundary (issue 14, item 1)', () => {
  it('src/client imports only itself, src/contract, zod, mqtt and Node built-ins', () => {
    const outside: string[] = [];
    for (const file of tsFiles(path.join(SRC, 'client'))) {
      for (const spec of specifiers(file)) {
        if (spec.startsWith('.')) {
          const target = path.relative(SRC, path.resolve(path.dirname(file), spec));
          if (!/^(client|contract)\//.test(target)) outside.push(`${path.relative(SRC, file)} -> ${spec}`);
        } else if (!['zod', 'mqtt'].includes(spec) && !spec.startsWith('node:')) {
          outside.push(`${path.relative(SRC, file)} -> ${spec}`);
        }
      }
    }
    expect(outside).to.deep.equal([]);
  });

  it('src/contract imports only itself and zod', () => {
    const outside: string[] = [];
    for (const file of tsFiles(path.join(SRC, 'contract'))) {
      for (const spec of specifiers(file)) {
        const inside = spec.startsWith('./') || spec === 'zod';
        if (!inside) outside.push(`${path.relative(SRC, file)} -> ${spec}`);
      }
    }
    expect(outside).to.deep.equal([]);
  });
});

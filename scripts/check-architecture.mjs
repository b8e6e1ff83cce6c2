#!/usr/bin/env node
// Checks the import graph of src/ against the layers of docs/architecture.md: every room (a folder
// of src/, or a file directly in it) has a layer, no room imports one of a higher layer, and the
// rooms form no cycle. A deeper folder with its own row (`albums/fs`) is a subroom: only rooms
// outside its parent import it, so sibling backends stay apart and the shared part never depends
// on one of them. Exit status 1 with every violation listed, 0 when clean.
// Usage: node scripts/check-architecture.mjs [repo root]
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The layer of each room, from the table between the layers markers of docs/architecture.md. */
export function readLayers(markdown) {
  const table = /<!-- layers:start -->([\s\S]*?)<!-- layers:end -->/.exec(markdown)?.[1];
  if (!table) throw new Error('docs/architecture.md: no layer table between <!-- layers:start --> and <!-- layers:end -->');
  const layers = new Map();
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (!/^\d+$/.test(cells[1] ?? '')) continue;
    for (const room of cells[2].matchAll(/`([^`]+)`/g)) layers.set(room[1], Number(cells[1]));
  }
  return layers;
}

/** Every relative import of a TypeScript source, as the file it names (`.js` written for `.ts`). */
export function importsOf(file, text) {
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|(?:^|\n)\s*import\s*['"](\.{1,2}\/[^'"]+)['"]/g)];
  return specs.map((m) => path.resolve(path.dirname(file), (m[1] ?? m[2] ?? m[3]).replace(/\.js$/, '.ts')));
}

/**
 * The problems of an import graph: arrows from a room to a higher layer, arrows to a subroom from
 * inside its parent (its siblings, the parent itself), rooms without a layer, and cycles between
 * rooms (each listed with one file-level import per arrow).
 * @param edges Array<[fromRoom, toRoom, fromFile, toFile]>
 */
export function problems(edges, layers) {
  const found = [];
  const rooms = new Set(edges.map(([from]) => from).concat(edges.map(([, to]) => to)));
  for (const room of [...rooms].sort()) if (!layers.has(room)) found.push(`${room}: no layer in docs/architecture.md`);
  const first = new Map();
  for (const [a, b, fa, fb] of edges) {
    if (a === b) continue;
    if (!first.has(`${a}\0${b}`)) first.set(`${a}\0${b}`, `${fa} -> ${fb}`);
    if (layers.has(a) && layers.has(b) && layers.get(b) > layers.get(a)) {
      found.push(`upward import: ${fa} (${a}, layer ${layers.get(a)}) imports ${fb} (${b}, layer ${layers.get(b)})`);
    }
    const parent = b.includes('/') ? b.slice(0, b.lastIndexOf('/')) : undefined;
    if (parent !== undefined && within(a, parent) && !within(a, b)) {
      found.push(`subroom import: ${fa} (${a}) imports ${fb} (${b}): only rooms outside ${parent} may import ${b}`);
    }
  }
  const next = new Map();
  for (const key of first.keys()) {
    const [a, b] = key.split('\0');
    if (!next.has(a)) next.set(a, []);
    next.get(a).push(b);
  }
  for (const component of stronglyConnected([...rooms].sort(), (r) => next.get(r) ?? [])) {
    if (component.length < 2) continue;
    const inside = new Set(component);
    const arrows = [...first].filter(([key]) => key.split('\0').every((r) => inside.has(r))).map(([, example]) => `\n    ${example}`);
    found.push(`folder cycle between ${component.join(', ')}:${arrows.join('')}`);
  }
  return found;
}

/** Whether `room` is `folder` or lies inside it. */
const within = (room, folder) => room === folder || room.startsWith(`${folder}/`);

/** Tarjan's strongly connected components. */
function stronglyConnected(nodes, next) {
  let index = 0;
  const seen = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const components = [];
  const visit = (v) => {
    seen.set(v, index);
    low.set(v, index);
    index += 1;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!seen.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), seen.get(w)));
    }
    if (low.get(v) === seen.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      components.push(component.sort());
    }
  };
  for (const v of nodes) if (!seen.has(v)) visit(v);
  return components;
}

/**
 * The room of a file (path relative to src/): the deepest of its folders that has its own row in
 * the table (a subroom such as `albums/fs`), else its first-level folder (or the file itself).
 */
export function roomOf(file, layers) {
  const parts = file.split(path.sep);
  for (let depth = parts.length - 1; depth > 1; depth -= 1) {
    const room = parts.slice(0, depth).join('/');
    if (layers.has(room)) return room;
  }
  return parts[0];
}

/** The import arrows between the rooms of `src` (subrooms as named in `layers`). */
export function roomEdges(src, layers) {
  const room = (file) => roomOf(path.relative(src, file), layers);
  const edges = [];
  for (const entry of readdirSync(src, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !/\.(ts|mts)$/.test(entry.name)) continue;
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    for (const target of importsOf(file, readFileSync(file, 'utf8'))) {
      if (!target.startsWith(src + path.sep)) continue;
      edges.push([room(file), room(target), path.relative(src, file), path.relative(src, target)]);
    }
  }
  return edges;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = path.resolve(process.argv[2] ?? path.join(path.dirname(fileURLToPath(import.meta.url)), '..'));
  const layers = readLayers(readFileSync(path.join(root, 'docs/architecture.md'), 'utf8'));
  const found = problems(roomEdges(path.join(root, 'src'), layers), layers);
  for (const problem of found) process.stderr.write(`architecture: ${problem}\n`);
  if (found.length > 0) process.exit(1);
  process.stdout.write('architecture: no upward import, no folder cycle\n');
}

import { readFileSync } from 'node:fs';

/** The package version, read once from package.json (two levels up from src/ and from dist/src/). */
export function packageVersion(): string {
  for (const candidate of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8'));
      if (pkg.name === 'imagestore') return String(pkg.version);
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

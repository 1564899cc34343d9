// Lists the test files scripts/test.sh runs: every test/**/*.test.ts, or with `unit` those that
// need neither root, the loopback mail servers nor GnuPG: the files whose relative imports never
// reach a kit module that drives a real program (the mail-server launcher, the Debian package
// installer, GnuPG). `node --import tsx scripts/test-files.ts [unit]`.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '..');
const REAL_PROGRAMS = new Set(['kit/mail-launcher.ts', 'kit/require-tool.ts', 'kit/gpg.ts'].map((path) => join(ROOT, path)));
/** Relative imports that load at run time: `import ... from`, `export ... from`, `import '...'`, `import('...')`; not `import type`. */
const IMPORT = /^\s*(?:import|export)\s+(?!type\s)(?:[^;']*?\sfrom\s*)?'(\.{1,2}\/[^']+)'|\bimport\(\s*'(\.{1,2}\/[^']+)'/gm;

function allTestFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return allTestFiles(path);
    return entry.name.endsWith('.test.ts') ? [path] : [];
  });
}

/** True when `file` or anything it imports (relative imports, transitively) is a real-program module. */
function drivesRealPrograms(file: string, seen = new Set<string>()): boolean {
  if (REAL_PROGRAMS.has(file)) return true;
  if (seen.has(file)) return false;
  seen.add(file);
  const text = readFileSync(file, 'utf8');
  for (const match of text.matchAll(IMPORT)) {
    if (drivesRealPrograms(resolve(dirname(file), (match[1] ?? match[2])!), seen)) return true;
  }
  return false;
}

export function testFiles(unitOnly: boolean): string[] {
  const files = allTestFiles(join(ROOT, 'test')).sort();
  return (unitOnly ? files.filter((file) => !drivesRealPrograms(file)) : files).map((file) => relative(ROOT, file));
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const [mode] = process.argv.slice(2);
  if (mode !== undefined && mode !== 'unit') {
    process.stderr.write('usage: node --import tsx scripts/test-files.ts [unit]\n');
    process.exit(2);
  }
  process.stdout.write(`${testFiles(mode === 'unit').join('\n')}\n`);
}

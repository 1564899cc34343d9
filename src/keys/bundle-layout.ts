// The published layout of bundles (docs/PROTOCOL.md §10.3): <fingerprint>/<bundle name> and
// <fingerprint>/index listing the bundles, oldest first, one name a line.
import { PublicationError } from './errors.ts';

/** Bundle names are file names and URL path segments: nothing that could climb out of a directory. */
export const BUNDLE_NAME = /^[0-9A-Za-z][0-9A-Za-z._-]{0,127}\.offrecord$/;
export const INDEX_FILE = 'index';

export function checkName(name: string, where: string): string {
  if (!BUNDLE_NAME.test(name)) throw new PublicationError('malformed', `${where}: "${name.slice(0, 80)}" is not a bundle name`);
  return name;
}

/** The names listed in an index file, one per line, in order, each once. */
export function indexNames(text: string, where: string): string[] {
  const names = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  return [...new Set(names.map((n) => checkName(n, where)))];
}

/** The index with `name` added at its end, or null when it lists it already. */
export function withName(index: string, name: string): string | null {
  const names = indexNames(index, INDEX_FILE);
  return names.includes(name) ? null : [...names, name].join('\n') + '\n';
}

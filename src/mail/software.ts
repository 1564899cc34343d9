// Which offrecord this is: package.json's version. Mail skipped by one version is looked at
// again by the next (docs/PROTOCOL.md §18.6), which may process what the last could not.
import { existsSync, readFileSync } from 'node:fs';

let cached: string | null = null;

export function softwareVersion(): string {
  if (cached !== null) return cached;
  try {
    // src/mail/software.ts, or dist/src/mail/software.js once compiled
    const path = [new URL('../../package.json', import.meta.url), new URL('../../../package.json', import.meta.url)].find((url) =>
      existsSync(url),
    );
    const version = (JSON.parse(readFileSync(path!, 'utf8')) as { version?: unknown }).version;
    cached = typeof version === 'string' && /^[0-9A-Za-z.+-]{1,64}$/.test(version) ? version : 'unknown';
  } catch {
    cached = 'unknown';
  }
  return cached;
}

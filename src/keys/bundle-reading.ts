// Reading published bundles (docs/PROTOCOL.md §10.3) from an http(s) URL or a local path: one
// bundle file, a published directory (its index) or a root of <fingerprint>/ folders. Only names
// and sizes are checked here; bundle-verification.ts checks the bundles.
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { LIMITS } from '../protocol/wire.ts';
import { BUNDLE_NAME, checkName, INDEX_FILE, indexNames } from './bundle-layout.ts';
import { bodyWithin, http, httpUrl, indexText, shown } from './bundle-http.ts';
import { PublishedKeys, verifyBundle, type VerifiedBundle } from './bundle-verification.ts';
import { PublicationError } from './errors.ts';

export interface FetchedBundle {
  name: string;
  bytes: Uint8Array;
}

function checkSize(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length > LIMITS.maxMessage)
    throw new PublicationError('too_large', `${name}: over the ${LIMITS.maxMessage}-byte limit of a bundle`);
  return bytes;
}

async function fetchBytes(url: URL): Promise<Uint8Array> {
  return bodyWithin((await http(url, { method: 'GET' }))!, LIMITS.maxMessage, 'a bundle', url);
}

async function readUrl(source: string, identity: string | undefined): Promise<FetchedBundle[]> {
  const url = new URL(source);
  if (url.pathname.endsWith('.offrecord')) return [{ name: checkName(basename(url.pathname), shown(url)), bytes: await fetchBytes(url) }];
  let base = httpUrl(source);
  // A site root holding several identities: go into the one asked for.
  if (identity !== undefined && !base.pathname.toLowerCase().endsWith(`/${identity}/`)) {
    const nested = new URL(`${identity}/`, base);
    if (await http(new URL(INDEX_FILE, nested), { method: 'HEAD' }, true)) base = nested;
  }
  const index = await http(new URL(INDEX_FILE, base), { method: 'GET' }, true);
  if (!index) throw new PublicationError('not_found', `${shown(base)}: no ${INDEX_FILE} of published bundles there`);
  const out: FetchedBundle[] = [];
  for (const name of indexNames(await indexText(index, base), shown(base)))
    out.push({ name, bytes: await fetchBytes(new URL(name, base)) });
  return out;
}

async function readDirectory(dir: string, identity: string | undefined): Promise<FetchedBundle[]> {
  let where = dir;
  if (
    identity !== undefined &&
    basename(dir).toLowerCase() !== identity &&
    (await stat(join(dir, identity)).catch(() => null))?.isDirectory()
  ) {
    where = join(dir, identity);
  }
  const index = await readFile(join(where, INDEX_FILE), 'utf8').catch(() => null);
  const names =
    index !== null ? indexNames(index, join(where, INDEX_FILE)) : (await readdir(where)).filter((n) => BUNDLE_NAME.test(n)).sort();
  if (names.length === 0 && identity === undefined) {
    // A root of the published layout: every <fingerprint>/ folder in it.
    const folders = (await readdir(where, { withFileTypes: true })).filter((e) => e.isDirectory() && /^[0-9a-f]{40}$/.test(e.name));
    const nested = await Promise.all(folders.map((f) => readDirectory(join(where, f.name), f.name)));
    if (nested.flat().length > 0) return nested.flat();
  }
  if (names.length === 0) throw new PublicationError('not_found', `${where}: no published bundles there`);
  return Promise.all(names.map(async (name) => ({ name, bytes: checkSize(new Uint8Array(await readFile(join(where, name))), name) })));
}

/**
 * The bundles at `source`: an http(s) URL or a local path, either of one bundle file or of a
 * published directory (its index; with `identity`, also a root holding <fingerprint>/ folders).
 * Nothing is checked here but names and sizes: see verifyBundle.
 */
export async function readPublished(source: string, identity?: string): Promise<FetchedBundle[]> {
  const wanted = identity?.toLowerCase();
  if (/^https?:\/\//i.test(source)) return readUrl(source, wanted);
  const info = await stat(source).catch(() => null);
  if (!info) throw new PublicationError('not_found', `${source}: no such file or directory`);
  try {
    if (info.isDirectory()) return await readDirectory(source, wanted);
    return [{ name: basename(source), bytes: checkSize(new Uint8Array(await readFile(source)), source) }];
  } catch (error) {
    if (error instanceof PublicationError) throw error;
    throw new PublicationError('target', `${source}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Reads and checks every bundle at each source (see readPublished): all must pass. */
export async function loadPublished(sources: readonly string[]): Promise<PublishedKeys> {
  const bundles: VerifiedBundle[] = [];
  for (const source of sources) {
    for (const fetched of await readPublished(source)) bundles.push(await verifyBundle(fetched.bytes, { name: fetched.name }));
  }
  return new PublishedKeys(bundles);
}

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

/** A bundle file's bytes, its size checked before it is read; a view of what was read, not a copy. */
async function readBundleFile(path: string, name: string): Promise<Uint8Array> {
  const tooLarge = () => new PublicationError('too_large', `${name}: over the ${LIMITS.maxMessage}-byte limit of a bundle`);
  if ((await stat(path)).size > LIMITS.maxMessage) throw tooLarge();
  const bytes = await readFile(path);
  if (bytes.length > LIMITS.maxMessage) throw tooLarge(); // it grew meanwhile
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

async function fetchBytes(url: URL): Promise<Uint8Array> {
  return bodyWithin((await http(url, { method: 'GET' }))!, LIMITS.maxMessage, 'a bundle', url);
}

async function* readUrl(source: string, identity: string | undefined): AsyncGenerator<FetchedBundle> {
  const url = new URL(source);
  if (url.pathname.endsWith('.offrecord')) {
    yield { name: checkName(basename(url.pathname), shown(url)), bytes: await fetchBytes(url) };
    return;
  }
  let base = httpUrl(source);
  // A site root holding several identities: go into the one asked for.
  if (identity !== undefined && !base.pathname.toLowerCase().endsWith(`/${identity}/`)) {
    const nested = new URL(`${identity}/`, base);
    if (await http(new URL(INDEX_FILE, nested), { method: 'HEAD' }, true)) base = nested;
  }
  const index = await http(new URL(INDEX_FILE, base), { method: 'GET' }, true);
  if (!index) throw new PublicationError('not_found', `${shown(base)}: no ${INDEX_FILE} of published bundles there`);
  for (const name of indexNames(await indexText(index, base), shown(base))) yield { name, bytes: await fetchBytes(new URL(name, base)) };
}

async function* readDirectory(dir: string, identity: string | undefined): AsyncGenerator<FetchedBundle> {
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
    // A root of the published layout: every <fingerprint>/ folder in it, one after the other.
    const folders = (await readdir(where, { withFileTypes: true })).filter((e) => e.isDirectory() && /^[0-9a-f]{40}$/.test(e.name));
    let found = 0;
    for (const folder of folders.sort((a, b) => (a.name < b.name ? -1 : 1))) {
      for await (const bundle of readDirectory(join(where, folder.name), folder.name)) {
        found++;
        yield bundle;
      }
    }
    if (found > 0) return;
  }
  if (names.length === 0) throw new PublicationError('not_found', `${where}: no published bundles there`);
  for (const name of names) yield { name, bytes: await readBundleFile(join(where, name), name) };
}

/**
 * The bundles at `source`, one at a time, in the order of its index: an http(s) URL or a local
 * path, either of one bundle file or of a published directory (its index; with `identity`, also
 * a root holding <fingerprint>/ folders). A reader holds one bundle at a time, whatever their
 * number (§10.3). Nothing is checked here but names and sizes: see verifyBundle.
 */
export async function* publishedBundles(source: string, identity?: string): AsyncGenerator<FetchedBundle> {
  const wanted = identity?.toLowerCase();
  if (/^https?:\/\//i.test(source)) {
    yield* readUrl(source, wanted);
    return;
  }
  const info = await stat(source).catch(() => null);
  if (!info) throw new PublicationError('not_found', `${source}: no such file or directory`);
  try {
    if (info.isDirectory()) yield* readDirectory(source, wanted);
    else yield { name: basename(source), bytes: await readBundleFile(source, source) };
  } catch (error) {
    if (error instanceof PublicationError) throw error;
    throw new PublicationError('target', `${source}: cannot read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** Reads and checks every bundle at each source (see publishedBundles): all must pass. */
export async function loadPublished(sources: readonly string[]): Promise<PublishedKeys> {
  const bundles: VerifiedBundle[] = [];
  for (const source of sources) {
    for await (const fetched of publishedBundles(source)) bundles.push(await verifyBundle(fetched.bytes, { name: fetched.name }));
  }
  return new PublishedKeys(bundles);
}

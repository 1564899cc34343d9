// Where bundles go (docs/PROTOCOL.md §10.3): a directory laid out for static web hosting, or the
// same layout over HTTP PUT. Mail is a target too (src/mail/mail-target.ts). Delivering a name
// twice leaves one bundle: a re-delivery after a crash.
import { randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { checkName, INDEX_FILE, indexNames, withName } from './bundle-layout.ts';
import { http, httpUrl, indexText, shown } from './bundle-http.ts';
import { PublicationError } from './errors.ts';

/** Where bundles go. Delivering a name twice must leave one bundle (a re-delivery after a crash). */
export interface PublicationTarget {
  /** For messages: never carries a password. */
  readonly description: string;
  /** Stores the bundle of `identity` (hex fingerprint) as `name`; returns where it is now. */
  deliver(identity: string, name: string, bundle: Uint8Array): Promise<string>;
}

async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(temporary, data, { mode: 0o644 });
  await rename(temporary, path);
}

/**
 * A directory laid out for static web hosting: DIR/<fingerprint>/<bundle name> and
 * DIR/<fingerprint>/index listing the bundles, oldest first. Serve DIR as is.
 *
 * The index is read once per identity by each target, and a new name is appended to it: a
 * delivery costs the same whatever the number of bundles before it (§10.3). An append cut short
 * by a crash (a last line without its line end) is repaired by the next delivery.
 */
export class DirectoryTarget implements PublicationTarget {
  readonly description: string;
  /** The names each identity's index lists, as this target read and appended them. */
  private readonly listed = new Map<string, Set<string>>();

  constructor(private readonly directory: string) {
    this.description = `directory ${directory}`;
  }

  async deliver(identity: string, name: string, bundle: Uint8Array): Promise<string> {
    const dir = join(this.directory, identity);
    const path = join(dir, checkName(name, 'bundle'));
    try {
      const names = this.listed.get(identity) ?? (await this.readIndex(dir));
      this.listed.set(identity, names);
      await writeAtomically(path, bundle);
      if (!names.has(name)) {
        await appendFile(join(dir, INDEX_FILE), `${name}\n`, { mode: 0o644 });
        names.add(name);
      }
    } catch (error) {
      if (error instanceof PublicationError) throw error;
      throw new PublicationError('target', `cannot write to ${dir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return path;
  }

  /** The names the index lists (the directory made if need be); an index whose last line lacks its line end is rewritten without it. */
  private async readIndex(dir: string): Promise<Set<string>> {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const index = join(dir, INDEX_FILE);
    const text = await readFile(index, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e)));
    if (text === '' || text.endsWith('\n')) return new Set(indexNames(text, INDEX_FILE));
    // An append cut short: its bundle was not recorded as delivered, so it is delivered again.
    const whole = text.slice(0, text.lastIndexOf('\n') + 1);
    const names = indexNames(whole, INDEX_FILE);
    await writeAtomically(index, whole);
    return new Set(names);
  }
}

/** The same layout as DirectoryTarget, written with HTTP PUT under a base URL (WebDAV, a bucket, ...). */
export class HttpTarget implements PublicationTarget {
  readonly description: string;
  private readonly base: URL;
  constructor(base: string) {
    this.base = httpUrl(base);
    this.description = shown(this.base);
  }

  async deliver(identity: string, name: string, bundle: Uint8Array): Promise<string> {
    const url = new URL(`${identity}/${checkName(name, 'bundle')}`, this.base);
    await http(url, { method: 'PUT', body: bundle, headers: { 'content-type': 'application/vnd.offrecord' } });
    const indexUrl = new URL(`${identity}/${INDEX_FILE}`, this.base);
    const current = await http(indexUrl, { method: 'GET' }, true);
    const updated = withName(current ? await indexText(current, indexUrl) : '', name);
    if (updated !== null) await http(indexUrl, { method: 'PUT', body: updated, headers: { 'content-type': 'text/plain; charset=utf-8' } });
    return shown(url);
  }
}

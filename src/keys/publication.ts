// Publication (docs/PROTOCOL.md §10.3, §15.2, §5.7): expired ring secrets and MAC keys that never
// went out in band, written as a BUNDLE to a target; and the other side, reading and checking a
// correspondent's bundles.
//
// What is published, and only this: ring secrets whose key expired more than the publication
// grace ago (nobody accepts the key any more, §15), and the MAC keys of forgotten pairs still
// queued for in-band revelation (KeyState.pendingReveals: nobody accepts them either, §10.1).
// Decryption secrets, DH secrets and session keys never enter a bundle; a MAC key is a one-way
// hash of an encryption key (keyschedule.ts macKeyFor) and does not reveal it.
//
// Crash safety: one transaction records the bundle (publications table), marks its ring keys
// published and takes its MAC keys out of the sessions; only then is it handed to the target,
// and marked delivered once the target has it. A crash in between leaves a recorded, undelivered
// bundle that the next run delivers again under the same name: an item is never in two bundles
// and never lost. Targets must treat a repeated name as the same bundle.
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import * as openpgp from 'openpgp';
import { equalBytes, toHex } from '../crypto/bytes.ts';
import { CodedError } from '../crypto/errors.ts';
import { ringPublicKey } from '../crypto/ring.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { forgetKeyMaterial, sha256 } from '../protocol/keyschedule.ts';
import { systemEnv } from '../protocol/env.ts';
import { DEFAULT_POLICY, type Policy } from '../protocol/policy.ts';
import { expire } from '../protocol/session.ts';
import { decodeBundle, encodeBundle, LIMITS, type SecretRingKey } from '../protocol/wire.ts';
import type { AccountStore } from '../store/account-store.ts';
import { KeyError } from './errors.ts';
import { toRecord } from './own-keys.ts';
import { checkRingKeyCertification } from './ringcert.ts';
import { plan, validateSchedule, type Schedule } from './schedule.ts';

export type PublicationErrorCode =
  /** Not a bundle, truncated, altered (checksum), or not canonical. */
  | 'malformed'
  /** A bundle format or protocol version this offrecord does not read. */
  | 'unsupported'
  /** Over a size limit. */
  | 'too_large'
  /** The bundle's keys are not the claimed identity's: another identity's certificate or certifications. */
  | 'wrong_identity'
  /** A ring secret that does not belong to its public key. */
  | 'bad_ring_key'
  /** Nothing found where the bundles should be. */
  | 'not_found'
  /** The target or source refused or could not be reached. */
  | 'target'
  /** The account has no identity to publish for. */
  | 'no_identity';

export class PublicationError extends CodedError<PublicationErrorCode> {}

/** Where bundles go. Delivering a name twice must leave one bundle (a re-delivery after a crash). */
export interface PublicationTarget {
  /** For messages: never carries a password. */
  readonly description: string;
  /** Stores the bundle of `identity` (hex fingerprint) as `name`; returns where it is now. */
  deliver(identity: string, name: string, bundle: Uint8Array): Promise<string>;
}

/** Bundle names are file names and URL path segments: nothing that could climb out of a directory. */
const NAME = /^[0-9A-Za-z][0-9A-Za-z._-]{0,127}\.offrecord$/;
export const INDEX_FILE = 'index';

function checkName(name: string, where: string): string {
  if (!NAME.test(name)) throw new PublicationError('malformed', `${where}: "${name.slice(0, 80)}" is not a bundle name`);
  return name;
}

/** The names listed in an index file, one per line, in order, each once. */
function indexNames(text: string, where: string): string[] {
  const names = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  return [...new Set(names.map((n) => checkName(n, where)))];
}

function withName(index: string, name: string): string | null {
  const names = indexNames(index, INDEX_FILE);
  return names.includes(name) ? null : [...names, name].join('\n') + '\n';
}

// ─── targets ─────────────────────────────────────────────────────────────────────────────

async function writeAtomically(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(temporary, data, { mode: 0o644 });
  await rename(temporary, path);
}

/**
 * A directory laid out for static web hosting: DIR/<fingerprint>/<bundle name> and
 * DIR/<fingerprint>/index listing the bundles, oldest first. Serve DIR as is.
 */
export class DirectoryTarget implements PublicationTarget {
  readonly description: string;
  constructor(private readonly directory: string) {
    this.description = `directory ${directory}`;
  }

  async deliver(identity: string, name: string, bundle: Uint8Array): Promise<string> {
    const dir = join(this.directory, identity);
    const path = join(dir, checkName(name, 'bundle'));
    try {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await writeAtomically(path, bundle);
      const index = join(dir, INDEX_FILE);
      const updated = withName(await readFile(index, 'utf8').catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? '' : Promise.reject(e))), name);
      if (updated !== null) await writeAtomically(index, updated);
    } catch (error) {
      if (error instanceof PublicationError) throw error;
      throw new PublicationError('target', `cannot write to ${dir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    return path;
  }
}

/** A URL for messages: without user name or password. */
function shown(url: URL): string {
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

function httpUrl(base: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new PublicationError('target', 'not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new PublicationError('target', `${shown(url)}: only http and https URLs are supported`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** Redirects a GET or HEAD follows, each within the first URL's origin (scheme, host and port). */
export const MAX_REDIRECTS = 5;
/** The largest index read: it lists bundle names (at most 138 bytes each), one a line. */
export const MAX_INDEX_BYTES = 1024 * 1024;

/**
 * One request. A redirect is followed only by GET and HEAD, at most MAX_REDIRECTS times, and
 * only within the origin asked for: one to another scheme or host is refused, so a source can
 * neither send us to a local file nor to a server the user did not name.
 */
async function http(url: URL, init: RequestInit, allow404 = false): Promise<Response | null> {
  const method = init.method ?? 'GET';
  let at = url;
  for (let redirects = 0; ; redirects++) {
    let response: Response;
    try {
      response = await fetch(at, { ...init, redirect: 'manual' });
    } catch {
      throw new PublicationError('target', `${method} ${shown(at)}: cannot connect`);
    }
    const location = response.status >= 300 && response.status < 400 ? response.headers.get('location') : null;
    if (location === null) {
      if (allow404 && response.status === 404) return null;
      if (!response.ok) throw new PublicationError('target', `${method} ${shown(at)}: HTTP ${response.status}`);
      return response;
    }
    await response.body?.cancel();
    let next: URL;
    try {
      next = new URL(location, at);
    } catch {
      throw new PublicationError('target', `${method} ${shown(at)}: a redirect to something that is not a URL`);
    }
    if (next.origin !== url.origin) throw new PublicationError('target', `${method} ${shown(at)}: refused a redirect to another scheme or host (${shown(next)})`);
    if (method !== 'GET' && method !== 'HEAD') throw new PublicationError('target', `${method} ${shown(at)}: redirected to ${shown(next)}; name that URL instead`);
    if (redirects >= MAX_REDIRECTS) throw new PublicationError('target', `${method} ${shown(url)}: more than ${MAX_REDIRECTS} redirects`);
    at = next;
  }
}

/** A response's body, read only up to `limit` bytes: beyond it (declared or sent) it is refused. */
async function bodyWithin(response: Response, limit: number, what: string, where: URL): Promise<Uint8Array> {
  const tooLarge = () => new PublicationError('too_large', `${shown(where)}: over the ${limit}-byte limit of ${what}`);
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    length += chunk.value.length;
    if (length > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(chunk.value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** An index file's text, bounded by MAX_INDEX_BYTES. */
async function indexText(response: Response, where: URL): Promise<string> {
  return Buffer.from(await bodyWithin(response, MAX_INDEX_BYTES, 'an index', where)).toString('utf8');
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

// ─── publishing ──────────────────────────────────────────────────────────────────────────

export interface PublishOptions {
  store: AccountStore;
  target: PublicationTarget;
  /** ms since the epoch; defaults to Date.now. */
  clock?: () => number;
  schedule?: Partial<Schedule>;
  /** The session policy, for forgetting what is due before taking its MAC keys (default DEFAULT_POLICY). */
  policy?: Policy;
}

export interface PublishedBundleInfo {
  name: string;
  created: number;
  ringKeys: number;
  macKeys: number;
  location: string;
}

export interface PublishResult {
  /** The bundle made by this run, if anything was due. */
  bundle: PublishedBundleInfo | null;
  /** Bundles of earlier runs that had not reached their target and now did. */
  redelivered: PublishedBundleInfo[];
}

interface Taken {
  name: string;
  bundle: Uint8Array;
  created: number;
  ringKeys: number;
  macKeys: number;
}

/** The ring keys due for publication at `now`, with their secrets (oldest first, at most the bundle limit). */
function dueRingKeys(store: AccountStore, now: number, schedule: Schedule): { id: string; key: SecretRingKey }[] {
  const rows = store.ownKeys('ring');
  const due = new Set(plan(rows.map(toRecord), now, schedule).publish.map((p) => p.id));
  return rows
    .filter((r) => due.has(r.id) && r.secret !== null && r.secret.length === 32)
    .slice(0, LIMITS.maxBundleRingKeys)
    .map((r) => ({
      id: r.id,
      key: { public: r.public, secret: r.secret!, notBefore: r.notBefore, notAfter: r.notAfter, certification: r.certification },
    }));
}

/**
 * Publishes what is due at the clock's time to `target`: first any bundle an earlier run recorded
 * but did not deliver, then a new one if anything is due. The watcher daemon calls this on a
 * schedule; `offrecord keys publish` once. Throws PublicationError('target') if the target fails
 * (what was recorded stays recorded, and goes out with the next run).
 */
export async function publishDue(options: PublishOptions): Promise<PublishResult> {
  const { store, target } = options;
  const clock = options.clock ?? Date.now;
  const schedule = validateSchedule(options.schedule);
  const policy = options.policy ?? DEFAULT_POLICY;
  const identity = store.identity();
  if (!identity) throw new PublicationError('no_identity', 'this account has no identity yet');
  const certificate = (await openpgp.readKey({ armoredKey: identity.certificate })).toPublic().write();
  const now = clock();
  const env = { ...systemEnv, now: () => now };
  const wipe: Uint8Array[] = [];

  let taken: Taken | null;
  try {
    taken = store.transaction((): Taken | null => {
      const ring = dueRingKeys(store, now, schedule);
      const macKeys = new Map<string, Uint8Array>();
      const sessions: { peer: string; revision: number; state: ReturnType<typeof expire>['state'] }[] = [];
      for (const { peer } of store.sessions(identity.fingerprint)) {
        const stored = store.loadSession(identity.fingerprint, peer);
        if (!stored) continue;
        // Forget first what is due, as any load does: its MAC keys join the queue (§9.1, §10.1).
        const expired = expire(stored.state, env, policy);
        wipe.push(...expired.wipe);
        const { state } = expired;
        if (state.kind === 'initiating' || state.keys.pendingReveals.length === 0) continue;
        if (macKeys.size + state.keys.pendingReveals.length > LIMITS.maxBundleMacKeys) break; // the rest next time
        for (const key of state.keys.pendingReveals) macKeys.set(toHex(key), key);
        sessions.push({ peer, revision: stored.revision, state: { ...state, keys: { ...state.keys, pendingReveals: [] } } });
      }
      if (ring.length === 0 && macKeys.size === 0) return null;
      const bundle = encodeBundle({
        identity: Buffer.from(identity.fingerprint, 'hex'),
        created: now,
        certificate,
        ringKeys: ring.map((r) => r.key),
        macKeys: [...macKeys.values()],
    });
    const name = `bundle-${now}-${toHex(sha256(bundle)).slice(0, 16)}.offrecord`;
    store.addPublication({ name, created: now, ringKeys: ring.length, macKeys: macKeys.size, bundle });
    for (const r of ring) store.markPublished(r.id, now);
    for (const s of sessions) store.saveSession(identity.fingerprint, s.peer, s.state, s.revision);
    return { name, bundle, created: now, ringKeys: ring.length, macKeys: macKeys.size };
    });
  } finally {
    // The loaded copies of forgotten DH secrets: stored or not, nothing needs them any more.
    forgetKeyMaterial(wipe);
  }

  const result: PublishResult = { bundle: null, redelivered: [] };
  for (const p of store.publications({ undelivered: true })) {
    const location = await target.deliver(identity.fingerprint, p.name, p.bundle);
    store.markPublicationDelivered(p.name, location, clock());
    const info = { name: p.name, created: p.created, ringKeys: p.ringKeys, macKeys: p.macKeys, location };
    if (taken && p.name === taken.name) result.bundle = info;
    else result.redelivered.push(info);
  }
  return result;
}

// ─── reading and checking bundles ────────────────────────────────────────────────────────

export interface VerifiedBundle {
  name: string;
  /** Lowercase hex fingerprint of the publishing identity. */
  identity: string;
  created: number;
  certificate: openpgp.PublicKey;
  ringKeys: SecretRingKey[];
  macKeys: Uint8Array[];
  bytes: Uint8Array;
}

function fromProtocol(error: unknown, name: string): never {
  if (error instanceof ProtocolError) {
    const code = error.code === 'unsupported_version' ? 'unsupported' : error.code === 'too_large' ? 'too_large' : 'malformed';
    throw new PublicationError(code, `${name}: ${error.message}`);
  }
  throw error;
}

const short = (hex: string): string => hex.slice(0, 16).toUpperCase();

/**
 * Decodes and checks a bundle: its checksum and layout; that its certificate is the identity it
 * names (and `expectedIdentity`, if given); that every ring secret belongs to its public key; and
 * that the identity certified every ring key, so a bundle cannot pass off another identity's keys.
 * MAC keys cannot be checked here: each is only worth the messages it authenticates.
 */
export async function verifyBundle(bytes: Uint8Array, options: { name?: string; expectedIdentity?: string } = {}): Promise<VerifiedBundle> {
  const name = options.name ?? 'bundle';
  let bundle;
  try {
    bundle = decodeBundle(bytes);
  } catch (error) {
    fromProtocol(error, name);
  }
  const identity = toHex(bundle.identity);
  let certificate: openpgp.PublicKey;
  try {
    const key = await openpgp.readKey({ binaryKey: bundle.certificate });
    if (key.isPrivate()) throw new PublicationError('malformed', `${name}: the bundle's certificate carries secret key material`);
    certificate = key as openpgp.PublicKey;
  } catch (error) {
    if (error instanceof PublicationError) throw error;
    throw new PublicationError('malformed', `${name}: the bundle's certificate is not an OpenPGP certificate`);
  }
  if (certificate.getFingerprint() !== identity) {
    throw new PublicationError('wrong_identity', `${name}: the bundle claims identity ${short(identity)} but carries the certificate of ${short(certificate.getFingerprint())}`);
  }
  if (options.expectedIdentity !== undefined && options.expectedIdentity.toLowerCase() !== identity) {
    throw new PublicationError('wrong_identity', `${name}: the bundle publishes the keys of ${short(identity)}, not of the expected identity ${short(options.expectedIdentity)}`);
  }
  for (const k of bundle.ringKeys) {
    const id = short(toHex(k.public));
    let derived: Uint8Array;
    try {
      derived = ringPublicKey(k.secret);
    } catch {
      throw new PublicationError('bad_ring_key', `${name}: the secret of ring key ${id} is not a valid scalar`);
    }
    if (!equalBytes(derived, k.public)) throw new PublicationError('bad_ring_key', `${name}: the secret of ring key ${id} does not belong to it`);
    try {
      // The identity must have been valid when it certified the key, not today.
      await checkRingKeyCertification(certificate, k.public, k.notBefore, k.notAfter, k.certification, { now: k.notBefore });
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      throw new PublicationError('wrong_identity', `${name}: ring key ${id} is not certified by the identity ${short(identity)} (${error.message})`);
    }
  }
  return { name, identity, created: bundle.created, certificate, ringKeys: bundle.ringKeys, macKeys: bundle.macKeys, bytes };
}

export interface FetchedBundle {
  name: string;
  bytes: Uint8Array;
}

function checkSize(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length > LIMITS.maxMessage) throw new PublicationError('too_large', `${name}: over the ${LIMITS.maxMessage}-byte limit of a bundle`);
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
  for (const name of indexNames(await indexText(index, base), shown(base))) out.push({ name, bytes: await fetchBytes(new URL(name, base)) });
  return out;
}

async function readDirectory(dir: string, identity: string | undefined): Promise<FetchedBundle[]> {
  let where = dir;
  if (identity !== undefined && basename(dir).toLowerCase() !== identity && (await stat(join(dir, identity)).catch(() => null))?.isDirectory()) {
    where = join(dir, identity);
  }
  const index = await readFile(join(where, INDEX_FILE), 'utf8').catch(() => null);
  const names = index !== null ? indexNames(index, join(where, INDEX_FILE)) : (await readdir(where)).filter((n) => NAME.test(n)).sort();
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

/** Everything a set of checked bundles makes public: ring secrets by public key, MAC keys, certificates. */
export class PublishedKeys {
  readonly macKeys: Uint8Array[] = [];
  private readonly ring = new Map<string, SecretRingKey & { identity: string }>();
  private readonly certificates = new Map<string, openpgp.PublicKey>();

  constructor(readonly bundles: readonly VerifiedBundle[]) {
    const seen = new Set<string>();
    for (const b of bundles) {
      this.certificates.set(b.identity, b.certificate);
      for (const k of b.ringKeys) this.ring.set(toHex(k.public), { ...k, identity: b.identity });
      for (const m of b.macKeys) {
        if (!seen.has(toHex(m))) this.macKeys.push(m);
        seen.add(toHex(m));
      }
    }
  }

  /** The published ring key with this public key (secret, validity, identity), or null. */
  ringKey(publicKey: Uint8Array): (SecretRingKey & { identity: string }) | null {
    return this.ring.get(toHex(publicKey)) ?? null;
  }

  /** Published ring keys of an identity. */
  ringKeysOf(identity: string): (SecretRingKey & { identity: string })[] {
    return [...this.ring.values()].filter((k) => k.identity === identity.toLowerCase());
  }

  certificate(identity: string): openpgp.PublicKey | null {
    return this.certificates.get(identity.toLowerCase()) ?? null;
  }

  allCertificates(): openpgp.PublicKey[] {
    return [...this.certificates.values()];
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

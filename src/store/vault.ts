// The account key (docs/PROTOCOL.md §17.1): one random 256-bit key per account, wrapped under
// the passphrase with scrypt, under which every secret and plaintext the store holds is sealed
// with AES-256-GCM. The additional data names where a value lives (table, column, row key,
// format version), so a value copied to another row, session or account does not open.
import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { StoreError } from './errors.ts';

/** The format version of a sealed value, its first byte and part of its additional data. */
export const SEAL_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** version byte, nonce, tag: what sealing adds to a value. */
export const SEAL_OVERHEAD = 1 + NONCE_BYTES + TAG_BYTES;

/** scrypt's cost: N = 2^logN, block size r, parallelism p (memory 128 * N * r bytes). */
export interface KdfParams {
  logN: number;
  r: number;
  p: number;
}

/**
 * 128 MiB and about 0.36 s on the reference machine (bench/unlock.ts): memory-hard enough that
 * guessing costs an attacker 128 MiB per guess in flight, quick enough for every command.
 */
export const DEFAULT_KDF: KdfParams = { logN: 17, r: 8, p: 1 };

/** What a stored vault may ask for: beyond this a damaged or hostile row could exhaust memory. */
const MAX_KDF_MEMORY = 1024 * 1024 * 1024;

export function checkKdfParams(params: KdfParams, what: string): KdfParams {
  const { logN, r, p } = params;
  const ok =
    Number.isSafeInteger(logN) &&
    logN >= 1 &&
    logN <= 24 &&
    Number.isSafeInteger(r) &&
    r >= 1 &&
    r <= 64 &&
    Number.isSafeInteger(p) &&
    p >= 1 &&
    p <= 16 &&
    128 * 2 ** logN * r <= MAX_KDF_MEMORY;
  if (!ok) throw new StoreError('corrupt', `${what}: the key derivation parameters are out of range`);
  return params;
}

/** The account_key row (kdf 'none': an account without a passphrase, the key kept as is). */
export interface VaultRow {
  v: number;
  kdf: 'scrypt' | 'none';
  log_n: number | null;
  r: number | null;
  p: number | null;
  salt: Buffer | null;
  wrapped: Buffer;
  created: number;
}

/** Where a sealed value lives: its table, column and the row's key (every part of it). */
export interface Place {
  table: string;
  column: string;
  key: readonly (string | number)[];
}

function lengthPrefixed(parts: readonly string[]): Buffer {
  return Buffer.concat(
    parts.flatMap((part) => {
      const bytes = Buffer.from(part, 'utf8');
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return [length, bytes];
    }),
  );
}

/** The additional data of a sealed value: unambiguous, each part length-prefixed. */
export function placeData(place: Place): Buffer {
  return Buffer.concat([
    Buffer.from('offrecord-store\0'),
    Buffer.of(SEAL_VERSION),
    lengthPrefixed([place.table, place.column, ...place.key.map(String)]),
  ]);
}

function describe(place: Place): string {
  return `${place.table}.${place.column} of ${place.key.join('/')}`;
}

function normalizePassphrase(passphrase: string): Buffer {
  return Buffer.from(passphrase.normalize('NFC'), 'utf8');
}

function wrapData(kdf: KdfParams, salt: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from('offrecord-account-key\0scrypt'), Buffer.of(kdf.logN, kdf.r, kdf.p), salt]);
}

/** Where scrypt runs: in this process, or in a child process of the same runtime. */
export type KdfPlace = 'inline' | 'child';

// The child reads one JSON line (salt, cost) and then the passphrase on standard input and
// writes the 32-byte key on standard output: the passphrase is never in its arguments or
// environment, and scrypt's 128 MiB are the child's, never in this process's memory peak
// (a long-running watcher's VmHWM).
const KDF_CHILD = `const c = require('node:crypto'); const parts = [];
process.stdin.on('data', (d) => parts.push(d)).on('end', () => {
  const input = Buffer.concat(parts); const line = input.indexOf(10); const o = JSON.parse(input.subarray(0, line).toString());
  const secret = input.subarray(line + 1);
  const key = c.scryptSync(secret, Buffer.from(o.salt, 'hex'), ${KEY_BYTES}, { N: o.N, r: o.r, p: o.p, maxmem: o.maxmem });
  input.fill(0); process.stdout.write(key); key.fill(0);
});`;

/** scrypt of the passphrase: the key that wraps the account key. */
function wrappingKey(passphrase: string, salt: Uint8Array, kdf: KdfParams, place: KdfPlace): Buffer {
  const secret = normalizePassphrase(passphrase);
  const N = 2 ** kdf.logN;
  const cost = { N, r: kdf.r, p: kdf.p, maxmem: 2 * 128 * N * kdf.r + 1024 * 1024 };
  if (place === 'inline') {
    try {
      return scryptSync(secret, salt, KEY_BYTES, cost);
    } finally {
      secret.fill(0);
    }
  }
  const input = Buffer.concat([Buffer.from(`${JSON.stringify({ salt: Buffer.from(salt).toString('hex'), ...cost })}\n`), secret]);
  secret.fill(0);
  const child = spawnSync(process.execPath, ['-e', KDF_CHILD], { input, env: {}, stdio: 'pipe', maxBuffer: 1024, windowsHide: true });
  input.fill(0);
  const key = child.stdout;
  if (child.status !== 0 || !Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    if (Buffer.isBuffer(key)) key.fill(0);
    const why = child.error ? child.error.message : child.signal ? `killed by ${child.signal}` : `exit status ${String(child.status)}`;
    throw new StoreError('io', `the key derivation process failed (${why})`);
  }
  return key;
}

/** Bytes sealed at a time: a big value (a delivery's plaintext) is written once, into its sealed form, never copied whole. */
const SEAL_PIECE_BYTES = 64 * 1024;

/** `prefix` bytes left free at the start of the result (the caller's version byte), then nonce, ciphertext, tag. */
function gcmSeal(key: Uint8Array, plaintext: Uint8Array, data: Uint8Array, prefix = 0): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(data);
  const out = Buffer.alloc(prefix + NONCE_BYTES + plaintext.length + TAG_BYTES);
  let at = prefix + nonce.copy(out, prefix);
  for (let from = 0; from < plaintext.length; from += SEAL_PIECE_BYTES)
    at += cipher.update(plaintext.subarray(from, from + SEAL_PIECE_BYTES)).copy(out, at);
  at += cipher.final().copy(out, at);
  cipher.getAuthTag().copy(out, at);
  return out;
}

/** null if the tag does not verify. */
function gcmOpen(key: Uint8Array, sealed: Uint8Array, data: Uint8Array): Buffer | null {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) return null;
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_BYTES));
  decipher.setAAD(data);
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  const out = Buffer.alloc(sealed.length - NONCE_BYTES - TAG_BYTES);
  const head = decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES));
  head.copy(out);
  head.fill(0);
  try {
    decipher.final();
  } catch {
    out.fill(0);
    return null;
  }
  return out;
}

/** The unwrapped account key of an open store. wipe() zeroes it; using it afterwards throws. */
export class AccountKey {
  private key: Buffer | null;

  private constructor(key: Buffer) {
    this.key = key;
  }

  static generate(): AccountKey {
    const key = Buffer.alloc(KEY_BYTES);
    randomBytes(KEY_BYTES).copy(key);
    return new AccountKey(key);
  }

  /** A new vault row for this key: under `passphrase` with `kdf`, or as is (null: no passphrase). */
  wrap(passphrase: string | null, kdf: KdfParams, created: number, place: KdfPlace = 'inline'): VaultRow {
    const key = this.bytes();
    if (passphrase === null) return { v: 1, kdf: 'none', log_n: null, r: null, p: null, salt: null, wrapped: Buffer.from(key), created };
    checkPassphrase(passphrase);
    checkKdfParams(kdf, 'account key');
    const salt = randomBytes(SALT_BYTES);
    const kek = wrappingKey(passphrase, salt, kdf, place);
    try {
      return { v: 1, kdf: 'scrypt', log_n: kdf.logN, r: kdf.r, p: kdf.p, salt, wrapped: gcmSeal(kek, key, wrapData(kdf, salt)), created };
    } finally {
      kek.fill(0);
    }
  }

  /** Opens a vault row. StoreError 'passphrase_required' or 'bad_passphrase'; nothing is written. */
  static unwrap(row: VaultRow, passphrase: string | null, what: string, place: KdfPlace = 'inline'): AccountKey {
    if (row.v !== 1) throw new StoreError(row.v > 1 ? 'too_new' : 'corrupt', `${what}: account key record version ${row.v}`);
    if (row.kdf === 'none') {
      if (row.wrapped.length !== KEY_BYTES) throw new StoreError('corrupt', `${what}: the account key is malformed`);
      return new AccountKey(Buffer.from(row.wrapped));
    }
    if (row.kdf !== 'scrypt' || row.log_n === null || row.r === null || row.p === null || row.salt?.length !== SALT_BYTES) {
      throw new StoreError('corrupt', `${what}: the account key record is malformed`);
    }
    if (passphrase === null) throw new StoreError('passphrase_required', `${what}: the account is protected by a passphrase`);
    checkPassphrase(passphrase);
    const kdf = checkKdfParams({ logN: row.log_n, r: row.r, p: row.p }, what);
    const kek = wrappingKey(passphrase, row.salt, kdf, place);
    try {
      const key = gcmOpen(kek, row.wrapped, wrapData(kdf, row.salt));
      if (key === null || key.length !== KEY_BYTES) throw new StoreError('bad_passphrase', `${what}: wrong passphrase`);
      return new AccountKey(key);
    } finally {
      kek.fill(0);
    }
  }

  private bytes(): Buffer {
    if (this.key === null) throw new StoreError('passphrase_required', 'the account key was wiped: the store is locked');
    return this.key;
  }

  seal(place: Place, plaintext: Uint8Array): Buffer {
    const sealed = gcmSeal(this.bytes(), plaintext, placeData(place), 1);
    sealed[0] = SEAL_VERSION;
    return sealed;
  }

  /** StoreError 'misplaced' if the value was not sealed here under this key (moved, altered, foreign). */
  open(place: Place, sealed: Uint8Array): Buffer {
    if (sealed.length < SEAL_OVERHEAD) throw new StoreError('corrupt', `${describe(place)}: the sealed value is truncated`);
    if (sealed[0] !== SEAL_VERSION) {
      throw new StoreError(
        sealed[0]! > SEAL_VERSION ? 'too_new' : 'corrupt',
        `${describe(place)}: sealed with unknown format ${sealed[0]}`,
      );
    }
    const plaintext = gcmOpen(this.bytes(), sealed.subarray(1), placeData(place));
    if (plaintext === null) {
      throw new StoreError(
        'misplaced',
        `${describe(place)}: the sealed value does not open here (moved from another row or account, or altered)`,
      );
    }
    return plaintext;
  }

  wipe(): void {
    this.key?.fill(0);
    this.key = null;
  }
}

/** An empty passphrase protects nothing: refused (an account without one is set up with null). */
export function checkPassphrase(passphrase: string): void {
  if (passphrase.length === 0) throw new StoreError('passphrase_required', 'the passphrase is empty');
}

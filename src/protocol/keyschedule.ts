// Key schedule for OTR data messages (docs/PROTOCOL.md, "Key schedule").
// Everything here is node:crypto: X25519, HKDF-SHA256, AES-256-CTR, HMAC-SHA256, SHA-256.
import {
  createCipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from 'node:crypto';
import { compareBytes, concatBytes, u32be, u64be, utf8 } from '../crypto/bytes.ts';
import { fail } from './errors.ts';

export const LABELS = {
  sessionSalt: 'offrecord/v1 session salt',
  sessionInfo: 'offrecord/v1 session keys',
  macKey: 'offrecord/v1 mac key',
  messageKey: 'offrecord/v1 message key',
  firstContext: 'offrecord/v1 first mail',
  replyContext: 'offrecord/v1 reply',
} as const;

const SALT = utf8(LABELS.sessionSalt);
const INFO = utf8(LABELS.sessionInfo);
const MAC_LABEL = utf8(LABELS.macKey);
const MESSAGE_KEY_LABEL = utf8(LABELS.messageKey);
const X25519_BASE = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 9 : 0));

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/**
 * A plain Uint8Array over a node:crypto result without copying it, when the Buffer owns its
 * whole ArrayBuffer; a Buffer carved from Node's shared pool is copied, so that nothing stored
 * in state ever pins (or exposes) the pool.
 */
function owned(buffer: Buffer): Uint8Array {
  const { buffer: ab, byteOffset, byteLength } = buffer;
  return byteOffset === 0 && ab.byteLength === byteLength ? new Uint8Array(ab, 0, byteLength) : new Uint8Array(buffer);
}

// KeyObjects for the DH values a session holds, keyed by the very buffer in the state: a
// private-key import costs about as much as the DH itself, and a live session uses each key
// for several messages. forgetKeyMaterial() drops the entry when the key is forgotten.
const privateKeyObjects = new WeakMap<Uint8Array, KeyObject>();
const publicKeyObjects = new WeakMap<Uint8Array, KeyObject>();

function privateKeyObject(secret: Uint8Array, publicValue: Uint8Array): KeyObject {
  let key = privateKeyObjects.get(secret);
  if (!key) {
    // JWK import: DER import costs more than the DH itself.
    key = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secret), x: b64url(publicValue) }, format: 'jwk' });
    privateKeyObjects.set(secret, key);
  }
  return key;
}

function publicKeyObject(publicValue: Uint8Array): KeyObject {
  let key = publicKeyObjects.get(publicValue);
  if (!key) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(publicValue) }, format: 'jwk' });
    publicKeyObjects.set(publicValue, key);
  }
  return key;
}

function x25519(secret: Uint8Array, publicValue: Uint8Array, ownPublic: Uint8Array): Uint8Array {
  try {
    return diffieHellman({ privateKey: privateKeyObject(secret, ownPublic), publicKey: publicKeyObject(publicValue) });
  } catch {
    // OpenSSL refuses an all-zero result: the peer's value has low order (RFC 7748 §6.1).
    return fail('auth', 'DH share is not contributory');
  }
}

export interface DhKeyPair {
  secret: Uint8Array;
  public: Uint8Array;
}

/** A fresh X25519 key pair from node:crypto's generator (the fast path of systemEnv). */
export function generateDhKeyPair(): DhKeyPair {
  const { privateKey } = generateKeyPairSync('x25519');
  const jwk = privateKey.export({ format: 'jwk' });
  const pair = { secret: new Uint8Array(Buffer.from(jwk.d!, 'base64url')), public: new Uint8Array(Buffer.from(jwk.x!, 'base64url')) };
  privateKeyObjects.set(pair.secret, privateKey);
  return pair;
}

/**
 * X25519(secret, 9): the public value. Node cannot import a JWK private key without `x`, and
 * it does not check `x` against `d` for X25519, so the base point stands in for it here; the
 * test suite checks the result against an independent implementation.
 */
export function x25519PublicKey(secret: Uint8Array): Uint8Array {
  if (secret.length !== 32) fail('malformed', 'X25519 secret must be 32 bytes');
  const publicValue = new Uint8Array(
    diffieHellman({
      privateKey: createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secret), x: b64url(X25519_BASE) }, format: 'jwk' }),
      publicKey: publicKeyObject(X25519_BASE),
    }),
  );
  return publicValue;
}

/** Zeroes forgotten secrets and drops their cached KeyObjects (freed, and cleansed by OpenSSL, on GC). */
export function forgetKeyMaterial(buffers: Iterable<Uint8Array>): void {
  for (const buffer of buffers) {
    privateKeyObjects.delete(buffer);
    buffer.fill(0);
  }
}

/** The keys of one direction of one pair: the encryption key and the MAC key derived from it. */
export interface DirectionKeys {
  key: Uint8Array;
  macKey: Uint8Array;
}

/** One side's DH key in a pair: its id and public value (the secret only for our own). */
export interface PairKey {
  id: number;
  public: Uint8Array;
}

/**
 * Keys for one (our key, their key) pair, in one direction. One HKDF output holds a key per
 * direction, so the two sides never share a keystream; the "low" side (smaller public value)
 * sends with the first half, as OTRv3's send/receive bytes do. The key ids are in the info, so
 * a pair of ids has its own keys even if a share came back under another id (§7).
 */
export function deriveDirectionKeys(ourSecret: Uint8Array, ours: PairKey, theirs: PairKey, direction: 'send' | 'receive'): DirectionKeys {
  const shared = x25519(ourSecret, theirs.public, ours.public);
  const order = compareBytes(ours.public, theirs.public);
  if (order === 0) fail('auth', 'DH share echoes our own');
  const [low, high] = order < 0 ? [ours, theirs] : [theirs, ours];
  const okm = new Uint8Array(
    hkdfSync('sha256', shared, SALT, concatBytes(INFO, low.public, u32be(low.id), high.public, u32be(high.id)), 64),
  );
  shared.fill(0);
  const weAreLow = order < 0;
  const firstHalf = weAreLow === (direction === 'send'); // low->high is the first half
  const key = firstHalf ? okm.slice(0, 32) : okm.slice(32, 64);
  okm.fill(0);
  return { key, macKey: macKeyFor(key) };
}

/** MAC key = SHA-256(label || encryption key): whoever can read a message can re-MAC it (paper 4.3). */
export function macKeyFor(encryptionKey: Uint8Array): Uint8Array {
  return owned(createHash('sha256').update(MAC_LABEL).update(encryptionKey).digest());
}

/**
 * The key one message is encrypted with: HMAC-SHA256(pair key, label || nonce), the nonce being
 * 16 random bytes of that message. A sender whose state went back (a restored or copied store)
 * reuses a counter but not a nonce, so it never repeats a keystream (§7).
 */
export function messageKey(pairKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return owned(createHmac('sha256', pairKey).update(MESSAGE_KEY_LABEL).update(nonce).digest());
}

/** AES-256-CTR with IV = counter (64-bit big-endian) || 0^64: each counter starts a fresh block range. */
export function aesCtr(key: Uint8Array, counter: number, data: Uint8Array): Uint8Array {
  const iv = new Uint8Array(16);
  iv.set(u64be(counter));
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const body = cipher.update(data);
  const tail = cipher.final(); // empty for CTR, kept for form
  return tail.length === 0 ? owned(body) : new Uint8Array(Buffer.concat([body, tail]));
}

export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  return owned(createHmac('sha256', key).update(data).digest());
}

export function sha256(...parts: Uint8Array[]): Uint8Array {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return new Uint8Array(hash.digest());
}

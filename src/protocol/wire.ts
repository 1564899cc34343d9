// Wire encoding of offrecord protocol messages (docs/PROTOCOL.md, "Wire format").
// Decoding is strict: every length is checked before use, every field must be in its
// canonical form, and anything else is a typed ProtocolError, never a thrown TypeError.
// This module knows bytes only; the session engine gives them meaning.
import { createHash } from 'node:crypto';
import { compareBytes, concatBytes, equalBytes, u32be, u64be } from '../crypto/bytes.ts';
import { fail } from './errors.ts';

export const MAGIC = Uint8Array.of(0x4f, 0x52); // "OR"
export const VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [VERSION];
export const PREFIX_LENGTH = 4;

export const MessageType = {
  First: 1,
  Reply: 2,
  Data: 3,
  Ack: 4,
  Nak: 5,
  Bundle: 6,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

export const FINGERPRINT_LENGTH = 20; // OpenPGP v4 fingerprint
export const DH_LENGTH = 32; // X25519 public value
export const RING_KEY_LENGTH = 32; // edwards25519 point
export const RING_SIG_LENGTH = 96;
export const MESSAGE_ID_LENGTH = 16;
export const NONCE_LENGTH = 16; // per-message random input of the message key (§7)
export const MAC_LENGTH = 32; // HMAC-SHA256, untruncated
export const MAC_KEY_LENGTH = 32;

/** Size limits (docs/PROTOCOL.md, "Limits"). A message over them is refused before parsing. */
export const LIMITS = {
  /**
   * 28 MiB: a 20 MiB attachment, base64-encoded with its line breaks as mail clients send it
   * (27.4 MiB), fits with room for the text and headers (§19).
   */
  maxPayload: 28 * 1024 * 1024,
  maxMessage: 29 * 1024 * 1024,
  maxReveals: 256,
  maxBundleRingKeys: 4096,
  /**
   * Keeps a full bundle under maxMessage: 750,000 keys of 32 bytes (24 MB) plus 4096 ring
   * entries of at most 594 bytes (2.4 MB) plus the certificate (16 KiB) and headers.
   */
  maxBundleMacKeys: 750_000,
  /** The identity certificate in a bundle: a minimal EdDSA certificate is well under 1 KiB. */
  maxBundleCertificate: 16 * 1024,
  /** Counters are u64 on the wire; this implementation keeps them exact as JS numbers. */
  maxCounter: Number.MAX_SAFE_INTEGER,
} as const;

/** p = 2^255 - 19, little-endian: an X25519 public value must be below it with the top bit clear. */
const P25519_LE = Uint8Array.from([0xed, ...new Array<number>(30).fill(0xff), 0x7f]);

// ---------------------------------------------------------------- reading

class Reader {
  private offset = 0;
  constructor(
    private readonly bytes: Uint8Array,
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.bytes.length - this.offset;
  }

  get position(): number {
    return this.offset;
  }

  /** A view into the input: for bulk fields that are consumed at once (ciphertext, payload). */
  view(length: number, field: string): Uint8Array {
    if (length > this.remaining) fail('malformed', `${this.what}: truncated in ${field}`);
    const out = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return out;
  }

  /** A copy: small fields may end up in stored state, which must not pin the whole message. */
  take(length: number, field: string): Uint8Array {
    return this.view(length, field).slice();
  }

  u16(field: string): number {
    const b = this.take(2, field);
    return (b[0]! << 8) | b[1]!;
  }

  u32(field: string): number {
    const b = this.take(4, field);
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0);
  }

  u64(field: string): bigint {
    const b = this.take(8, field);
    return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0);
  }

  keyId(field: string): number {
    const id = this.u32(field);
    if (id === 0) fail('malformed', `${this.what}: ${field} must not be 0`);
    return id;
  }

  counter(field: string): number {
    const value = this.u64(field);
    if (value === 0n) fail('malformed', `${this.what}: ${field} must not be 0`);
    if (value > BigInt(LIMITS.maxCounter)) fail('too_large', `${this.what}: ${field} over ${LIMITS.maxCounter}`);
    return Number(value);
  }

  timestamp(field: string): number {
    const value = this.u64(field);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) fail('malformed', `${this.what}: ${field} out of range`);
    return Number(value);
  }

  dhPublic(field: string): Uint8Array {
    const value = this.take(DH_LENGTH, field);
    if (!isCanonicalX25519(value)) fail('malformed', `${this.what}: ${field} is not a canonical X25519 value`);
    if (isLowOrderX25519(value)) fail('malformed', `${this.what}: ${field} is a small-order X25519 value`);
    return value;
  }

  rest(): Uint8Array {
    return this.view(this.remaining, 'body');
  }

  end(): void {
    if (this.remaining !== 0) fail('malformed', `${this.what}: ${this.remaining} trailing bytes`);
  }
}

/**
 * The canonical X25519 values of small order: 0, 1, the two order-8 points and p - 1. A share
 * among them would make the shared secret zero, whatever our secret (libsodium's blocklist,
 * less the non-canonical p and p + 1, which the canonical check already refuses).
 */
const LOW_ORDER_X25519 = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
].map((hex) => Buffer.from(hex, 'hex'));

export function isLowOrderX25519(u: Uint8Array): boolean {
  return LOW_ORDER_X25519.some((bad) => bad.equals(u));
}

/** Top bit clear and little-endian value below 2^255 - 19 (RFC 7748 allows more; we do not). */
export function isCanonicalX25519(u: Uint8Array): boolean {
  if (u.length !== DH_LENGTH) return false;
  for (let i = DH_LENGTH - 1; i >= 0; i--) {
    if (u[i]! !== P25519_LE[i]!) return u[i]! < P25519_LE[i]!;
  }
  return false; // equal to p
}

function prefix(type: MessageType): Uint8Array {
  return Uint8Array.of(MAGIC[0]!, MAGIC[1]!, VERSION, type);
}

/** Reads magic, version and type. Exported so callers can dispatch before full decoding. */
export function peekType(bytes: Uint8Array): MessageType {
  if (bytes.length > LIMITS.maxMessage) fail('too_large', `message of ${bytes.length} bytes is over the ${LIMITS.maxMessage}-byte limit`);
  if (bytes.length < PREFIX_LENGTH) fail('malformed', 'message shorter than its 4-byte prefix');
  if (bytes[0] !== MAGIC[0] || bytes[1] !== MAGIC[1]) fail('malformed', 'not an offrecord message (bad magic)');
  const version = bytes[2]!;
  if (!SUPPORTED_VERSIONS.includes(version)) {
    fail('unsupported_version', `protocol version ${version} is not supported (supported: ${SUPPORTED_VERSIONS.join(', ')})`);
  }
  const type = bytes[3]!;
  if (type < MessageType.First || type > MessageType.Bundle) fail('malformed', `unknown message type ${type}`);
  return type as MessageType;
}

function expectType(bytes: Uint8Array, ...types: MessageType[]): MessageType {
  const type = peekType(bytes);
  if (!types.includes(type)) fail('malformed', `expected message type ${types.join('/')}, got ${type}`);
  return type;
}

// ---------------------------------------------------------------- first mail

/** The first mail on the wire: prefix, then an OpenPGP message sealing a FirstInner. */
export function encodeFirstOuter(sealed: Uint8Array): Uint8Array {
  return concatBytes(prefix(MessageType.First), sealed);
}

export function decodeFirstOuter(bytes: Uint8Array): Uint8Array {
  expectType(bytes, MessageType.First);
  if (bytes.length === PREFIX_LENGTH) fail('malformed', 'first mail: empty sealed body');
  return bytes.subarray(PREFIX_LENGTH);
}

/** Fields the ring signature binds in a first mail or a reply (docs/PROTOCOL.md, "Signing context"). */
export interface AuthBlock {
  senderFingerprint: Uint8Array;
  recipientFingerprint: Uint8Array;
  senderRingKey: Uint8Array;
  recipientRingKey: Uint8Array;
  created: number;
  messageId: Uint8Array;
  signature: Uint8Array;
}

export const AUTH_BLOCK_LENGTH = 2 * FINGERPRINT_LENGTH + 2 * RING_KEY_LENGTH + 8 + MESSAGE_ID_LENGTH + RING_SIG_LENGTH;

function encodeAuthBlock(a: AuthBlock): Uint8Array {
  return concatBytes(
    a.senderFingerprint,
    a.recipientFingerprint,
    a.senderRingKey,
    a.recipientRingKey,
    u64be(a.created),
    a.messageId,
    a.signature,
  );
}

function readAuthBlock(r: Reader): AuthBlock {
  return {
    senderFingerprint: r.take(FINGERPRINT_LENGTH, 'sender fingerprint'),
    recipientFingerprint: r.take(FINGERPRINT_LENGTH, 'recipient fingerprint'),
    senderRingKey: r.take(RING_KEY_LENGTH, 'sender ring key'),
    recipientRingKey: r.take(RING_KEY_LENGTH, 'recipient ring key'),
    created: r.timestamp('created'),
    messageId: r.take(MESSAGE_ID_LENGTH, 'message id'),
    signature: r.take(RING_SIG_LENGTH, 'ring signature'),
  };
}

/** What the OpenPGP envelope of a first mail carries. */
export interface FirstInner {
  auth: AuthBlock;
  dhShare: Uint8Array;
  payload: Uint8Array;
}

export function encodeFirstInner(m: FirstInner): Uint8Array {
  if (m.payload.length > LIMITS.maxPayload) fail('too_large', 'first mail payload over the limit');
  return concatBytes(prefix(MessageType.First), m.dhShare, encodeAuthBlock(m.auth), m.payload);
}

export function decodeFirstInner(bytes: Uint8Array): FirstInner {
  expectType(bytes, MessageType.First);
  const r = new Reader(bytes.subarray(PREFIX_LENGTH), 'first mail');
  const dhShare = r.dhPublic('DH share');
  const auth = readAuthBlock(r);
  const payload = r.rest();
  if (payload.length > LIMITS.maxPayload) fail('too_large', 'first mail payload over the limit');
  return { auth, dhShare, payload };
}

// ---------------------------------------------------------------- reply, data, ack

export interface SealedMessage {
  type: typeof MessageType.Reply | typeof MessageType.Data | typeof MessageType.Ack;
  senderKeyId: number;
  recipientKeyId: number;
  nextDh: Uint8Array;
  counter: number;
  /** 16 random bytes: the message key is derived from the pair key and this (§7). */
  nonce: Uint8Array;
  /** Only in a reply: the sender's DH share for senderKeyId, which the recipient does not know yet. */
  senderDh?: Uint8Array;
  ciphertext: Uint8Array;
  mac: Uint8Array;
  /** Retired MAC keys, outside the MAC'd region on purpose (paper 4.4). */
  reveals: Uint8Array[];
}

/** Everything the MAC covers: the prefix through the end of the ciphertext. */
export function encodeAuthenticated(m: Omit<SealedMessage, 'mac' | 'reveals'>): Uint8Array {
  if (m.ciphertext.length > LIMITS.maxMessage) fail('too_large', 'ciphertext over the limit');
  if (m.nonce.length !== NONCE_LENGTH) fail('malformed', `the nonce is ${NONCE_LENGTH} bytes`);
  const parts = [prefix(m.type), u32be(m.senderKeyId), u32be(m.recipientKeyId), m.nextDh, u64be(m.counter), m.nonce];
  if (m.type === MessageType.Reply) {
    if (!m.senderDh) fail('malformed', 'a reply needs its sender DH share');
    parts.push(m.senderDh);
  }
  parts.push(u32be(m.ciphertext.length), m.ciphertext);
  return concatBytes(...parts);
}

export function encodeSealed(authenticated: Uint8Array, mac: Uint8Array, reveals: Uint8Array[]): Uint8Array {
  if (reveals.length > LIMITS.maxReveals) fail('too_large', 'too many revealed MAC keys');
  return concatBytes(authenticated, mac, ...reveals);
}

export interface DecodedSealed {
  message: SealedMessage;
  authenticated: Uint8Array;
}

export function decodeSealed(bytes: Uint8Array): DecodedSealed {
  const type = expectType(bytes, MessageType.Reply, MessageType.Data, MessageType.Ack) as SealedMessage['type'];
  const r = new Reader(bytes, 'sealed message');
  r.view(PREFIX_LENGTH, 'prefix');
  const senderKeyId = r.keyId('sender key id');
  const recipientKeyId = r.keyId('recipient key id');
  const nextDh = r.dhPublic('next DH share');
  const counter = r.counter('counter');
  const nonce = r.take(NONCE_LENGTH, 'nonce');
  const senderDh = type === MessageType.Reply ? r.dhPublic('sender DH share') : undefined;
  const ctLength = r.u32('ciphertext length');
  if (type === MessageType.Ack && ctLength !== 0) fail('malformed', 'an acknowledgement carries no ciphertext');
  if (type === MessageType.Data && ctLength === 0) fail('malformed', 'a data message carries a ciphertext');
  if (type === MessageType.Reply && ctLength < AUTH_BLOCK_LENGTH) fail('malformed', 'reply ciphertext shorter than its auth block');
  const ctLimit = LIMITS.maxPayload + (type === MessageType.Reply ? AUTH_BLOCK_LENGTH : 0);
  if (ctLength > ctLimit) fail('too_large', `ciphertext over the ${LIMITS.maxPayload}-byte payload limit`);
  const ciphertext = r.view(ctLength, 'ciphertext');
  const authenticated = bytes.subarray(0, r.position);
  const mac = r.take(MAC_LENGTH, 'MAC');
  if (r.remaining % MAC_KEY_LENGTH !== 0) fail('malformed', 'revealed MAC keys are not a whole number of 32-byte keys');
  const count = r.remaining / MAC_KEY_LENGTH;
  if (count > LIMITS.maxReveals) fail('too_large', `more than ${LIMITS.maxReveals} revealed MAC keys`);
  const reveals: Uint8Array[] = [];
  for (let i = 0; i < count; i++) reveals.push(r.take(MAC_KEY_LENGTH, 'revealed MAC key'));
  const message: SealedMessage = { type, senderKeyId, recipientKeyId, nextDh, counter, nonce, ciphertext, mac, reveals };
  if (senderDh) message.senderDh = senderDh;
  return { message, authenticated };
}

/** The plaintext of a reply: the ring-signature block, then the user's payload. */
export function encodeReplyPlaintext(auth: AuthBlock, payload: Uint8Array): Uint8Array {
  return concatBytes(encodeAuthBlock(auth), payload);
}

export function decodeReplyPlaintext(bytes: Uint8Array): { auth: AuthBlock; payload: Uint8Array } {
  const r = new Reader(bytes, 'reply');
  const auth = readAuthBlock(r);
  return { auth, payload: r.rest() };
}

// ---------------------------------------------------------------- NAK

/** "I could not read your message with these key ids": unauthenticated by nature (paper 5.1). */
export interface Nak {
  senderKeyId: number;
  recipientKeyId: number;
  counter: number;
}

export const NAK_LENGTH = PREFIX_LENGTH + 4 + 4 + 8;

export function encodeNak(n: Nak): Uint8Array {
  return concatBytes(prefix(MessageType.Nak), u32be(n.senderKeyId), u32be(n.recipientKeyId), u64be(n.counter));
}

export function decodeNak(bytes: Uint8Array): Nak {
  expectType(bytes, MessageType.Nak);
  const r = new Reader(bytes.subarray(PREFIX_LENGTH), 'NAK');
  const nak = { senderKeyId: r.keyId('sender key id'), recipientKeyId: r.keyId('recipient key id'), counter: r.counter('counter') };
  r.end();
  return nak;
}

// ---------------------------------------------------------------- publication bundle

/** The bundle's own layout version, after the prefix: a new layout gets a new number, not a new protocol version. */
export const BUNDLE_FORMAT = 1;
export const SUPPORTED_BUNDLE_FORMATS: readonly number[] = [BUNDLE_FORMAT];
/** A ring key certification is one OpenPGP signature packet (docs/PROTOCOL.md §15.1). */
export const MIN_RING_CERTIFICATION = 40;
export const MAX_RING_CERTIFICATION = 512;

/**
 * A ring public key with its validity and the identity's certification (§15.1): the one shape
 * of a ring key wherever it goes (the Offrecord-Keys header, the store's key rows, a bundle).
 * The store keeps encryption subkeys in the same shape (`certification`: their binding signature).
 */
export interface RingKey {
  public: Uint8Array;
  notBefore: number;
  notAfter: number;
  /** The identity's certification of the key for [notBefore, notAfter): opaque bytes here. */
  certification: Uint8Array;
}

/** A ring key with its secret scalar: as created, and as a bundle publishes it once expired (§10.3). */
export type SecretRingKey = RingKey & { secret: Uint8Array };

export interface Bundle {
  identity: Uint8Array;
  created: number;
  /** The identity's binary OpenPGP certificate, so a bundle can be checked on its own: opaque here. */
  certificate: Uint8Array;
  ringKeys: SecretRingKey[];
  macKeys: Uint8Array[];
}

/** Order ℓ of the edwards25519 prime-order subgroup, little-endian (RFC 8032 §5.1). */
const ED25519_ORDER_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0x10,
]);

function isCanonicalScalar(s: Uint8Array): boolean {
  if (s.every((b) => b === 0)) return false;
  for (let i = 31; i >= 0; i--) {
    if (s[i]! !== ED25519_ORDER_LE[i]!) return s[i]! < ED25519_ORDER_LE[i]!;
  }
  return false;
}

function strictlyAscending(items: Uint8Array[]): boolean {
  for (let i = 1; i < items.length; i++) if (compareBytes(items[i - 1]!, items[i]!) >= 0) return false;
  return true;
}

/** The bundle's trailing checksum: SHA-256 of everything before it (catches truncation, not forgery). */
function checksum(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(data).digest());
}

const u16be = (n: number): Uint8Array => Uint8Array.of(n >> 8, n & 0xff);

function checkRingEntry(k: SecretRingKey): void {
  if (k.public.length !== RING_KEY_LENGTH || !isCanonicalScalar(k.secret) || k.secret.length !== 32) {
    fail('malformed', 'bundle: a ring entry needs a 32-byte key and a canonical non-zero secret');
  }
  if (!(k.notBefore < k.notAfter) || k.notAfter > Number.MAX_SAFE_INTEGER || k.notBefore < 0)
    fail('malformed', 'bundle: ring key validity must be not_before < not_after');
  if (k.certification.length < MIN_RING_CERTIFICATION || k.certification.length > MAX_RING_CERTIFICATION) {
    fail('malformed', `bundle: a ring key certification is ${MIN_RING_CERTIFICATION} to ${MAX_RING_CERTIFICATION} bytes`);
  }
}

/**
 * Equal-length keys in ascending byte order, sorted by their latin1 strings (one character a
 * byte, so the same order): the engine compares strings natively, where a comparator function
 * would be called 1.7 million times for a bundle of 100,000 keys.
 */
function sortedKeys(keys: readonly Uint8Array[]): Uint8Array[] {
  const byString = new Map<string, Uint8Array>();
  for (const key of keys) byString.set(Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1'), key);
  if (byString.size !== keys.length) fail('malformed', 'bundle has duplicates');
  return [...byString.keys()].sort().map((k) => byString.get(k)!);
}

export function encodeBundle(b: Bundle): Uint8Array {
  if (b.ringKeys.length > LIMITS.maxBundleRingKeys || b.macKeys.length > LIMITS.maxBundleMacKeys)
    fail('too_large', 'bundle over its limits');
  if (b.identity.length !== FINGERPRINT_LENGTH) fail('malformed', 'bundle: the identity is a 20-byte fingerprint');
  if (b.certificate.length < 1 || b.certificate.length > LIMITS.maxBundleCertificate)
    fail('too_large', 'bundle: identity certificate empty or over its limit');
  if (b.macKeys.some((k) => k.length !== MAC_KEY_LENGTH)) fail('malformed', 'bundle: MAC keys are 32 bytes');
  const ringKeys = [...b.ringKeys].sort((x, y) => compareBytes(x.public, y.public));
  if (!strictlyAscending(ringKeys.map((k) => k.public))) fail('malformed', 'bundle has duplicates');
  const macKeys = sortedKeys(b.macKeys); // distinct and ascending, or it fails
  ringKeys.forEach(checkRingEntry);
  // Built in place: hundreds of thousands of keys are too many to spread into one call.
  const head = concatBytes(
    prefix(MessageType.Bundle),
    Uint8Array.of(BUNDLE_FORMAT),
    b.identity,
    u64be(b.created),
    u16be(b.certificate.length),
    b.certificate,
    u16be(ringKeys.length),
  );
  const entries = ringKeys.map((k) =>
    concatBytes(k.public, k.secret, u64be(k.notBefore), u64be(k.notAfter), u16be(k.certification.length), k.certification),
  );
  const ringLength = entries.reduce((n, e) => n + e.length, 0);
  const body = new Uint8Array(head.length + ringLength + 4 + macKeys.length * MAC_KEY_LENGTH);
  body.set(head);
  let offset = head.length;
  for (const e of entries) {
    body.set(e, offset);
    offset += e.length;
  }
  body.set(u32be(macKeys.length), offset);
  offset += 4;
  for (const key of macKeys) {
    body.set(key, offset);
    offset += MAC_KEY_LENGTH;
  }
  return concatBytes(body, checksum(body));
}

export function decodeBundle(bytes: Uint8Array): Bundle {
  expectType(bytes, MessageType.Bundle);
  if (bytes.length < PREFIX_LENGTH + 1 + 32) fail('malformed', 'bundle: truncated');
  const body = bytes.subarray(0, bytes.length - 32);
  if (!equalBytes(checksum(body), bytes.subarray(bytes.length - 32))) fail('malformed', 'bundle: checksum mismatch (truncated or altered)');
  const r = new Reader(body.subarray(PREFIX_LENGTH), 'bundle');
  const format = r.take(1, 'format')[0]!;
  if (!SUPPORTED_BUNDLE_FORMATS.includes(format))
    fail('unsupported_version', `bundle format ${format} is not supported (supported: ${SUPPORTED_BUNDLE_FORMATS.join(', ')})`);
  const identity = r.take(FINGERPRINT_LENGTH, 'identity fingerprint');
  const created = r.timestamp('created');
  const certLength = r.u16('certificate length');
  if (certLength === 0) fail('malformed', 'bundle: empty identity certificate');
  if (certLength > LIMITS.maxBundleCertificate) fail('too_large', 'bundle: identity certificate over its limit');
  const certificate = r.take(certLength, 'identity certificate');
  const ringCount = r.u16('ring key count');
  if (ringCount > LIMITS.maxBundleRingKeys) fail('too_large', 'bundle: too many ring keys');
  const ringKeys: SecretRingKey[] = [];
  for (let i = 0; i < ringCount; i++) {
    const publicKey = r.take(RING_KEY_LENGTH, 'ring public key');
    const secret = r.take(32, 'ring secret');
    if (!isCanonicalScalar(secret)) fail('malformed', 'bundle: ring secret is not a canonical scalar');
    const notBefore = r.timestamp('ring key start');
    const notAfter = r.timestamp('ring key expiry');
    if (!(notBefore < notAfter)) fail('malformed', 'bundle: ring key validity must be not_before < not_after');
    const length = r.u16('certification length');
    if (length < MIN_RING_CERTIFICATION || length > MAX_RING_CERTIFICATION)
      fail('malformed', 'bundle: ring key certification length out of range');
    ringKeys.push({ public: publicKey, secret, notBefore, notAfter, certification: r.take(length, 'ring key certification') });
  }
  const macCount = r.u32('MAC key count');
  if (macCount > LIMITS.maxBundleMacKeys) fail('too_large', 'bundle: too many MAC keys');
  const macKeys: Uint8Array[] = [];
  for (let i = 0; i < macCount; i++) macKeys.push(r.take(MAC_KEY_LENGTH, 'MAC key'));
  r.end();
  if (!strictlyAscending(ringKeys.map((k) => k.public)) || !strictlyAscending(macKeys)) {
    fail('malformed', 'bundle: entries are not in strictly ascending order');
  }
  return { identity, created, certificate, ringKeys, macKeys };
}

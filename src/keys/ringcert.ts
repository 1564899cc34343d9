// Certification of short-lived ring keys by the identity.
//
// A ring key (a 32-byte edwards25519 point, src/crypto/ring.ts) is bound to an identity by a
// detached OpenPGP v4 signature of the identity's primary key over the canonical statement
//
//   statement = "offrecord ring key v1"        (21 bytes ASCII, no terminator)
//            || identity fingerprint           (20 bytes, v4)
//            || ring public key                (32 bytes)
//            || not_before                     (u64 big-endian, ms since the epoch)
//            || not_after                      (u64 big-endian, ms since the epoch)
//
// The signature is one OpenPGP signature packet (tag 2, new format), version 4, type 0x00
// (binary document) over a literal packet holding exactly `statement`, hash SHA-512, made by the
// primary key (EdDSA-legacy for our identities), with issuer fingerprint and creation time
// subpackets. It signs a statement about a key, never message content: the tag and the fixed
// length keep it from being read as anything else.
//
// Its hashed area carries the ring key's proof of possession (docs/PROTOCOL.md §15.3): a
// non-critical notation RING_PROOF_NOTATION whose value is a Schnorr proof by the ring key over
// `statement` (src/crypto/ring.ts provePossession). Whatever carries a certification (the
// Offrecord-Keys header, bundles, exported keys) carries the proof with it.
//
// openpgp.sign() refuses to sign with a certify-only primary key (it wants the sign-data flag,
// which our identities deliberately lack), so the packet is made and checked here with
// openpgp.js's SignaturePacket directly: same bytes as a detached openpgp.sign() signature.
import * as openpgp from 'openpgp';
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, equalBytes, u64be } from '../crypto/bytes.ts';
import { POSSESSION_PROOF_LENGTH, provePossession, ringPublicKey, verifyPossession } from '../crypto/ring.ts';
import { RingError } from '../crypto/errors.ts';
import { KeyError } from './errors.ts';
import { assertTime, fingerprintBytes, signPacket } from './pgp.ts';
import { systemClock } from '../protocol/env.ts';

export const RING_STATEMENT_TAG = 'offrecord ring key v1';
const TAG_BYTES = new TextEncoder().encode(RING_STATEMENT_TAG);
export const RING_PUBLIC_LENGTH = 32;
/** Name of the notation that carries the proof of possession (§15.3). */
export const RING_PROOF_NOTATION = 'ring-key-proof@offrecord';
/** Bounds on the encoded certification (an EdDSA v4 signature packet is ~120-200 bytes). */
export const MIN_CERTIFICATION_LENGTH = 40;
export const MAX_CERTIFICATION_LENGTH = 512;
/** Largest time accepted in a statement: JavaScript's exact integer range. */
const MAX_TIME = Number.MAX_SAFE_INTEGER;

/**
 * Throws KeyError('bad_ring_key') unless `bytes` is a canonical encoding of a prime-order,
 * non-identity edwards25519 point: the checks ring verification applies to a ring member.
 */
export function checkRingPublicKey(bytes: Uint8Array): void {
  if (!(bytes instanceof Uint8Array) || bytes.length !== RING_PUBLIC_LENGTH) {
    throw new KeyError('bad_ring_key', 'a ring key must be 32 bytes');
  }
  let point;
  try {
    point = ed25519.Point.fromBytes(bytes, false);
  } catch {
    throw new KeyError('bad_ring_key', 'the ring key is not a valid point encoding');
  }
  if (!equalBytes(point.toBytes(), bytes)) throw new KeyError('bad_ring_key', 'the ring key is not canonically encoded');
  if (point.is0() || point.isSmallOrder() || !point.isTorsionFree()) {
    throw new KeyError('bad_ring_key', 'the ring key is not a prime-order point');
  }
}

export function checkValidity(notBefore: number, notAfter: number): void {
  assertTime(notBefore, 'not_before');
  assertTime(notAfter, 'not_after');
  if (notBefore > MAX_TIME || notAfter > MAX_TIME || notAfter <= notBefore) {
    throw new KeyError('bad_argument', 'a ring key needs not_before < not_after');
  }
}

/** The canonical statement bytes (see the module comment). */
export function ringKeyStatement(fingerprint: Uint8Array, ringPublic: Uint8Array, notBefore: number, notAfter: number): Uint8Array {
  if (!(fingerprint instanceof Uint8Array) || fingerprint.length !== 20) {
    throw new KeyError('bad_argument', 'the identity fingerprint must be 20 bytes');
  }
  if (!(ringPublic instanceof Uint8Array) || ringPublic.length !== RING_PUBLIC_LENGTH) {
    throw new KeyError('bad_ring_key', 'a ring key must be 32 bytes');
  }
  checkValidity(notBefore, notAfter);
  return concatBytes(TAG_BYTES, fingerprint, ringPublic, u64be(notBefore), u64be(notAfter));
}

async function literal(statement: Uint8Array): Promise<openpgp.LiteralDataPacket> {
  const message = await openpgp.createMessage({ binary: statement, format: 'binary' });
  const packet = message.packets[0];
  if (!(packet instanceof openpgp.LiteralDataPacket)) throw new Error('ringcert: no literal packet');
  return packet;
}

export interface CertifyOptions {
  /** Signature creation time (ms); defaults to the system clock. */
  now?: number;
}

/**
 * Detached signature bytes (one OpenPGP signature packet) certifying the ring key of
 * `ringSecret` for [notBefore, notAfter), with its proof of possession (§15.3).
 */
export async function certifyRingKey(
  privateKey: openpgp.PrivateKey,
  ringSecret: Uint8Array,
  notBefore: number,
  notAfter: number,
  options: CertifyOptions = {},
): Promise<Uint8Array> {
  let ringPublic: Uint8Array;
  try {
    ringPublic = ringPublicKey(ringSecret);
  } catch {
    throw new KeyError('bad_ring_key', 'a ring secret must be a canonical non-zero 32-byte scalar');
  }
  const proof = provePossession(ringSecret, ringKeyStatement(fingerprintBytes(privateKey), ringPublic, notBefore, notAfter));
  return signRingCertification(privateKey, ringPublic, notBefore, notAfter, proof, options);
}

/**
 * The certification packet over the statement with `proof` as its possession notation, as
 * given: certifyRingKey is the honest path (tests use this to play a correspondent who
 * certifies a key without holding its secret).
 */
export async function signRingCertification(
  privateKey: openpgp.PrivateKey,
  ringPublic: Uint8Array,
  notBefore: number,
  notAfter: number,
  proof: Uint8Array,
  options: CertifyOptions = {},
): Promise<Uint8Array> {
  checkRingPublicKey(ringPublic);
  if (!(proof instanceof Uint8Array) || proof.length !== POSSESSION_PROOF_LENGTH) {
    throw new KeyError('bad_argument', `a proof of possession is ${POSSESSION_PROOF_LENGTH} bytes`);
  }
  const now = options.now ?? systemClock();
  assertTime(now, 'now');
  const primary = privateKey.keyPacket as openpgp.SecretKeyPacket;
  if (!privateKey.isPrivate() || primary.isDummy() || primary.isMissingSecretKeyMaterial()) {
    throw new KeyError('not_a_secret_key', 'certifying a ring key needs the identity secret key');
  }
  if (!primary.isDecrypted()) throw new KeyError('locked', 'the identity key is locked: unlock it first');
  if (now < primary.getCreationTime().getTime()) {
    throw new KeyError('bad_argument', 'cannot certify before the identity was created');
  }
  const statement = ringKeyStatement(fingerprintBytes(privateKey), ringPublic, notBefore, notAfter);
  const sig = new openpgp.SignaturePacket();
  sig.signatureType = openpgp.enums.signature.binary;
  sig.publicKeyAlgorithm = primary.algorithm;
  sig.hashAlgorithm = openpgp.enums.hash.sha512;
  sig.rawNotations = [{ name: RING_PROOF_NOTATION, value: Uint8Array.from(proof), humanReadable: false, critical: false }];
  await signPacket(sig, primary, await literal(statement), new Date(now));
  const list = new openpgp.PacketList<openpgp.SignaturePacket>();
  list.push(sig);
  return list.write();
}

export interface VerifyCertificationOptions {
  /** Verification time (ms); defaults to the system clock. The identity must be valid then. */
  now?: number;
  /** Tolerated clock difference for the signature's creation time (default 24 h). */
  maxClockSkewMs?: number;
}

const ACCEPTED_HASHES = new Set<number>([openpgp.enums.hash.sha256, openpgp.enums.hash.sha384, openpgp.enums.hash.sha512]);

/**
 * Throws a KeyError unless `signature` certifies `ringPublic` for exactly [notBefore, notAfter)
 * by the primary key of `certificate`, that primary key is valid (not revoked, not expired) at
 * `now`, and the certification carries a valid proof of possession of the ring key (§15.3).
 * Codes: bad_ring_key, bad_argument, bad_certification, bad_proof, revoked, expired.
 */
export async function checkRingKeyCertification(
  certificate: openpgp.PublicKey,
  ringPublic: Uint8Array,
  notBefore: number,
  notAfter: number,
  signature: Uint8Array,
  options: VerifyCertificationOptions = {},
): Promise<void> {
  const now = options.now ?? systemClock();
  const skew = options.maxClockSkewMs ?? 24 * 60 * 60 * 1000;
  assertTime(now, 'now');
  assertTime(skew, 'maxClockSkewMs');
  checkRingPublicKey(ringPublic);
  const statement = ringKeyStatement(fingerprintBytes(certificate), ringPublic, notBefore, notAfter);
  if (!(signature instanceof Uint8Array) || signature.length < MIN_CERTIFICATION_LENGTH || signature.length > MAX_CERTIFICATION_LENGTH) {
    throw new KeyError('bad_certification', 'the ring key certification has a bad length');
  }
  await checkPrimaryValid(certificate, now);

  let packets: openpgp.PacketList<openpgp.SignaturePacket>;
  try {
    packets = (await openpgp.readSignature({ binarySignature: signature })).packets;
  } catch {
    throw new KeyError('bad_certification', 'the ring key certification is not an OpenPGP signature');
  }
  const sig = packets[0];
  if (packets.length !== 1 || !sig) throw new KeyError('bad_certification', 'the ring key certification must be exactly one signature');
  const primary = certificate.keyPacket;
  const issuerFingerprint = sig.issuerFingerprint;
  if (
    sig.version !== 4 ||
    sig.signatureType !== openpgp.enums.signature.binary ||
    sig.publicKeyAlgorithm !== primary.algorithm ||
    sig.hashAlgorithm === null ||
    !ACCEPTED_HASHES.has(sig.hashAlgorithm) ||
    !sig.issuerKeyID.equals(primary.getKeyID()) ||
    (issuerFingerprint !== null && !equalBytes(Uint8Array.from(issuerFingerprint), fingerprintBytes(certificate)))
  ) {
    throw new KeyError('bad_certification', 'the ring key certification was not made by this identity');
  }
  if (sig.created === null || sig.created.getTime() < primary.getCreationTime().getTime()) {
    throw new KeyError('bad_certification', 'the ring key certification predates the identity');
  }
  try {
    await sig.verify(primary, openpgp.enums.signature.binary, await literal(statement), new Date(now + skew));
  } catch {
    throw new KeyError('bad_certification', 'the ring key certification does not verify');
  }
  checkPossessionProof(sig, ringPublic, statement);
}

/**
 * §15.3: exactly one RING_PROOF_NOTATION in the (verified) hashed area, not human-readable,
 * 64 bytes, a valid proof by the ring key over the statement. Without it the key might be one
 * nobody can use, and signing toward it would make our ring signatures proof of authorship.
 */
function checkPossessionProof(sig: openpgp.SignaturePacket, ringPublic: Uint8Array, statement: Uint8Array): void {
  const notations = sig.rawNotations.filter((n) => n.name === RING_PROOF_NOTATION);
  if (notations.length === 0) {
    throw new KeyError('bad_proof', 'the ring key comes without a proof that its holder knows its secret');
  }
  const notation = notations[0]!;
  if (notations.length > 1 || notation.humanReadable || notation.value.length !== POSSESSION_PROOF_LENGTH) {
    throw new KeyError('bad_proof', 'the proof of possession of the ring key is malformed');
  }
  try {
    verifyPossession(ringPublic, statement, Uint8Array.from(notation.value));
  } catch (error) {
    if (!(error instanceof RingError)) throw error;
    throw new KeyError(
      'bad_proof',
      'the proof of possession of the ring key does not verify: whoever advertised it may not hold its secret',
    );
  }
}

/** True iff checkRingKeyCertification accepts; false for any invalid key, statement or signature. */
export async function verifyRingKeyCertification(
  certificate: openpgp.PublicKey,
  ringPublic: Uint8Array,
  notBefore: number,
  notAfter: number,
  signature: Uint8Array,
  options: VerifyCertificationOptions = {},
): Promise<boolean> {
  try {
    await checkRingKeyCertification(certificate, ringPublic, notBefore, notAfter, signature, options);
    return true;
  } catch (error) {
    if (error instanceof KeyError) return false;
    throw error;
  }
}

/** Throws KeyError('revoked' | 'expired' | 'not_yet_valid' | 'no_user_id') unless the primary key is usable at `now`. */
export async function checkPrimaryValid(certificate: openpgp.PublicKey, now: number): Promise<void> {
  const date = new Date(now);
  if (await certificate.isRevoked(undefined, undefined, date)) {
    throw new KeyError('revoked', 'the identity key has been revoked');
  }
  if (certificate.getCreationTime().getTime() > now) {
    throw new KeyError('not_yet_valid', 'the identity key was created in the future');
  }
  let expiry: Date | number | null;
  try {
    expiry = await certificate.getExpirationTime();
  } catch {
    throw new KeyError('no_user_id', 'the identity key has no valid self-signed user ID');
  }
  if (expiry instanceof Date && expiry.getTime() <= now) {
    throw new KeyError('expired', 'the identity key has expired');
  }
  try {
    await certificate.verifyPrimaryKey(date);
  } catch {
    throw new KeyError('no_user_id', 'the identity key has no valid self-signed user ID');
  }
}

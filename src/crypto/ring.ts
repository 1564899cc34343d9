// Two-member Schnorr ring signature (AOS: Abe, Ohkubo, Suzuki, "1-out-of-n signatures from a
// variety of keys", ASIACRYPT 2002, §4 "discrete-log" instantiation / §5 for the type-H scheme)
// on edwards25519. A signature proves "one of P0, P1 signed m" without saying which, which is
// what makes a message deniable to a third party: the recipient could have produced it too.
//
// Ring of two, indices 0 and 1, challenge chain c_{i+1} = H(R_i):
//   sign (signer j, other o = 1-j):  R_j = α·G, c_o = H(R_j), R_o = s_o·G + c_o·P_o,
//                                     c_j = H(R_o), s_j = α − c_j·x
//   verify: R0 = s0·G + c0·P0, c1 = H(R0), R1 = s1·G + c1·P1, accept iff H(R1) == c0.
// Signature = c0 || s0 || s1 (each 32-byte little-endian scalar).
//
// Caveat: scalar arithmetic uses JS bigints, which have no constant-time guarantee (the same
// limitation as noble's own ed25519.sign). Point multiplications on secrets use noble's
// constant-time `multiply`.
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { EdwardsPoint } from '@noble/curves/abstract/edwards.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { RingError } from './errors.ts';
import { compareBytes, equalBytes, u64be, wipe } from './bytes.ts';

const Point = ed25519.Point;
const ORDER = Point.Fn.ORDER;
const G = Point.BASE;

export const RING_SIGNATURE_LENGTH = 96;
export const RING_KEY_LENGTH = 32;
const SCALAR_LENGTH = 32;
const RAND_LENGTH = 32;

// wNAF window for the per-ring-member tables (noble builds ceil(253/W)+1 windows of 2^(W-1)
// points; a multiplication is one addition per window). Measured end to end on Node 20 / noble
// 2.4 (verify/s, prepareRing ms): W=6 ~1700, 20 ms; W=7 ~1860, 33 ms; W=8 ~1900, 50 ms;
// W=10 ~1990, 175 ms. Signing barely moves (its three blinded base mults dominate). A handshake
// signs or verifies once or twice per ring, so sessions build tables only for a pair used again
// and again (src/protocol/rings.ts).
const RING_WINDOW = 8;

// Domain-separation tags (ASCII, no terminator). Normative: see fixtures/vectors/ring-signature.json.
const TAG_CHALLENGE = Buffer.from('offrecord/v1 ring challenge', 'ascii');
const TAG_NONCE = Buffer.from('offrecord/v1 ring nonce', 'ascii');
const TAG_FILL = Buffer.from('offrecord/v1 ring fill', 'ascii');
const TAG_POSSESSION_CHALLENGE = Buffer.from('offrecord/v1 possession challenge', 'ascii');
const TAG_POSSESSION_NONCE = Buffer.from('offrecord/v1 possession nonce', 'ascii');

/** A proof of possession of a ring secret: enc(R) || s, a Schnorr signature (PROTOCOL.md §15.3). */
export const POSSESSION_PROOF_LENGTH = 64;

function assertBytes(value: unknown, length: number, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw new RingError('bad_length', `${what} must be ${length} bytes`);
  }
}

const scalarToBytes = (n: bigint): Uint8Array => numberToBytesLE(n, SCALAR_LENGTH);

/** 64-byte digest read as a little-endian integer, reduced mod ℓ: the bias is ~2^-259. */
const wideReduce = (digest: Uint8Array): bigint => bytesToNumberLE(digest) % ORDER;

/** Canonical scalar decoding: rejecting s >= ℓ makes signatures non-malleable (s and s+ℓ). */
function decodeScalar(bytes: Uint8Array, what: string): bigint {
  const n = bytesToNumberLE(bytes);
  if (n >= ORDER) throw new RingError('non_canonical_scalar', `${what} is not a canonical scalar`);
  return n;
}

/** A ring secret is a canonical scalar 1 <= x < ℓ; anything else is refused, not reduced. */
function decodeSecret(secret: Uint8Array): bigint {
  if (!(secret instanceof Uint8Array) || secret.length !== SCALAR_LENGTH) {
    throw new RingError('bad_secret', 'secret must be a 32-byte scalar');
  }
  const x = bytesToNumberLE(secret);
  if (x === 0n || x >= ORDER) throw new RingError('bad_secret', 'secret is not a canonical non-zero scalar');
  return x;
}

/** x = LE(random64) mod ℓ: 64 bytes make the reduction bias negligible. */
export function generateRingSecret(random64: Uint8Array = randomBytes(64)): Uint8Array {
  if (!(random64 instanceof Uint8Array) || random64.length !== 64) {
    throw new RingError('bad_length', 'secret randomness must be 64 bytes');
  }
  const x = wideReduce(random64);
  if (x === 0n) throw new RingError('bad_secret', 'secret reduced to zero');
  return scalarToBytes(x);
}

export function ringPublicKey(secret: Uint8Array): Uint8Array {
  return G.multiply(decodeSecret(secret)).toBytes();
}

/** Canonical ring order (unsigned lexicographic on encodings) so both members build the same ring. */
export function sortRing(a: Uint8Array, b: Uint8Array): [Uint8Array, Uint8Array] {
  assertBytes(a, RING_KEY_LENGTH, 'ring key');
  assertBytes(b, RING_KEY_LENGTH, 'ring key');
  const order = compareBytes(a, b);
  if (order === 0) throw new RingError('ring_order', 'ring members must be distinct');
  return order < 0 ? [a, b] : [b, a];
}

/**
 * Step 3 of verification for one key. Strict RFC 8032 decoding plus re-encoding means exactly
 * one byte string per point, so the hashed ring cannot be varied without changing the key; the
 * identity and torsion checks stop a member from being a key nobody (or everybody) controls, and
 * stop the cofactor from making signatures malleable.
 */
function decodeRingKey(bytes: Uint8Array): EdwardsPoint {
  assertBytes(bytes, RING_KEY_LENGTH, 'ring key');
  let point: EdwardsPoint;
  try {
    point = Point.fromBytes(bytes, false);
  } catch {
    throw new RingError('non_canonical_point', 'ring key is not a canonical point encoding');
  }
  if (!equalBytes(point.toBytes(), bytes)) {
    throw new RingError('non_canonical_point', 'ring key is not a canonical point encoding');
  }
  if (point.is0()) throw new RingError('identity_point', 'ring key is the identity point');
  if (point.isSmallOrder()) throw new RingError('torsion_point', 'ring key has small order');
  if (!point.isTorsionFree()) throw new RingError('torsion_point', 'ring key has a torsion component');
  return point;
}

interface RingState {
  /** Private copies of the encodings: the hashed bytes must stay the bytes that were validated. */
  readonly keys: readonly [Uint8Array, Uint8Array];
  readonly points: readonly [EdwardsPoint, EdwardsPoint];
  /** False only for the vector generator's deliberately broken rings; verification refuses them. */
  readonly checked: boolean;
  /**
   * Member index per signing secret (keyed by SHA-256 of the secret), so a live session does not
   * pay a base multiplication per signature to find which member it is.
   */
  readonly signers: Map<string, 0 | 1>;
}

// State lives outside the object so that nothing but this module can build or read a ring.
const ringStates = new WeakMap<PreparedRing, RingState>();
const BRAND: unique symbol = Symbol('PreparedRing');

/**
 * A validated, canonically ordered two-member ring. Decoded points keep wNAF tables so the
 * variable-base multiplications of a live session cost ~33 additions each.
 */
export class PreparedRing {
  /** Copies of the member encodings [P0, P1]; mutating them does not affect the ring. */
  readonly keys: readonly [Uint8Array, Uint8Array];

  /** Not for direct use: call prepareRing(). */
  constructor(brand: typeof BRAND, state: RingState) {
    if (brand !== BRAND) throw new TypeError('ring: use prepareRing()');
    ringStates.set(this, state);
    this.keys = Object.freeze([Uint8Array.from(state.keys[0]), Uint8Array.from(state.keys[1])] as const);
  }
}

function stateOf(ring: PreparedRing): RingState {
  const state = ringStates.get(ring);
  if (state === undefined) throw new TypeError('ring: expected a ring from prepareRing()');
  return state;
}

function buildRing(p0: Uint8Array, p1: Uint8Array, tables: boolean): PreparedRing {
  const points = [decodeRingKey(p0), decodeRingKey(p1)] as const;
  // Step 4 after step 3, so a bad key reports its own code even when the order is also wrong.
  if (compareBytes(p0, p1) >= 0) throw new RingError('ring_order', 'ring keys must be distinct and sorted (P0 < P1)');
  if (tables) for (const p of points) p.precompute(RING_WINDOW, false);
  const keys = [Uint8Array.from(p0), Uint8Array.from(p1)] as const;
  return new PreparedRing(BRAND, { keys, points, checked: true, signers: new Map() });
}

/** Validates [P0, P1] (canonical, prime-order, non-identity, P0 < P1) and builds multiplication tables. */
export function prepareRing(p0: Uint8Array, p1: Uint8Array): PreparedRing {
  return buildRing(p0, p1, true);
}

/**
 * Validates [P0, P1] as prepareRing does but builds no tables: for a ring used once or twice, as
 * a session's handshake uses it. Tables cost ~60 ms and ~2.3 MB of heap per ring (W=8), a
 * signature without them ~3 ms, a verification ~10 ms.
 */
export function prepareRingWithoutTables(p0: Uint8Array, p1: Uint8Array): PreparedRing {
  return buildRing(p0, p1, false);
}

/**
 * Builds a ring WITHOUT validating its keys (zip215 decoding, no tables), so the vector generator
 * can produce signatures whose only defect is a bad ring key. ringVerify refuses such rings.
 * Never use outside scripts/gen-ring-vectors.ts.
 */
export function _prepareRingUncheckedForVectors(p0: Uint8Array, p1: Uint8Array): PreparedRing {
  const points = [Point.fromBytes(p0, true), Point.fromBytes(p1, true)] as const;
  const keys = [Uint8Array.from(p0), Uint8Array.from(p1)] as const;
  return new PreparedRing(BRAND, { keys, points, checked: false, signers: new Map() });
}

/** Everything up to and including m is fixed for one signature; both challenges extend a copy. */
function challengePrefix(keys: readonly [Uint8Array, Uint8Array], message: Uint8Array): Hash {
  return createHash('sha512').update(TAG_CHALLENGE).update(keys[0]).update(keys[1]).update(u64be(message.length)).update(message);
}

/** H(R) = SHA-512(tag || P0 || P1 || len64(m) || m || enc(R)) as LE integer mod ℓ. */
function challenge(prefix: Hash, encodedR: Uint8Array): bigint {
  return wideReduce(prefix.copy().update(encodedR).digest());
}

/** Hedged derivation: secret-keyed so a bad RNG cannot leak x, randomised so faults cannot either. */
function hedged(
  tag: Uint8Array,
  secret: Uint8Array,
  keys: readonly [Uint8Array, Uint8Array],
  message: Uint8Array,
  rand: Uint8Array,
): bigint {
  const digest = createHash('sha512')
    .update(tag)
    .update(secret)
    .update(keys[0])
    .update(keys[1])
    .update(u64be(message.length))
    .update(message)
    .update(rand)
    .digest();
  const n = wideReduce(digest);
  wipe(digest);
  return n;
}

/** Intermediates of one signing run. `alpha` alone with the signature reveals the secret. */
export interface RingSignTrace {
  signerIndex: 0 | 1;
  alpha: Uint8Array;
  sOther: Uint8Array;
  rSigner: Uint8Array;
  cOther: Uint8Array;
  rOther: Uint8Array;
  cSigner: Uint8Array;
  sSigner: Uint8Array;
  signature: Uint8Array;
}

/**
 * Signs and returns every intermediate. This IS the signing code (ringSign only drops the
 * intermediates); exported for test vectors. The result contains the nonce: treat as secret.
 */
export function ringSignTrace(
  ring: PreparedRing,
  secret: Uint8Array,
  message: Uint8Array,
  rand: Uint8Array = randomBytes(RAND_LENGTH),
): RingSignTrace {
  const { keys, points, signers } = stateOf(ring);
  if (!(message instanceof Uint8Array)) throw new TypeError('ring: message must be a Uint8Array');
  assertBytes(rand, RAND_LENGTH, 'signing randomness');
  const x = decodeSecret(secret);

  const signerId = createHash('sha256').update(secret).digest('hex');
  let j = signers.get(signerId);
  if (j === undefined) {
    // Find our index without an early exit on which member matched; the index is what the ring hides.
    const own = G.multiply(x).toBytes();
    const is0 = equalBytes(own, keys[0]);
    const is1 = equalBytes(own, keys[1]);
    if (!is0 && !is1) throw new RingError('not_a_member', 'secret does not belong to a ring member');
    j = is0 ? 0 : 1;
    signers.set(signerId, j);
  }
  const o: 0 | 1 = j === 0 ? 1 : 0;

  const alpha = hedged(TAG_NONCE, secret, keys, message, rand);
  const sO = hedged(TAG_FILL, secret, keys, message, rand);
  if (alpha === 0n || sO === 0n) throw new Error('ring: derived a zero nonce; retry with fresh randomness');

  const prefix = challengePrefix(keys, message);
  // AOS §4: start the chain at our own index with a fresh commitment...
  const rJ = G.multiply(alpha).toBytes();
  const cO = challenge(prefix, rJ);
  // ...simulate the other member with a random response (a zero challenge only happens if
  // SHA-512 is broken). s_o is published in the signature and c_o is what every verifier
  // recomputes, so this step handles public values only and may use variable-time arithmetic;
  // alpha and x, the secrets, stay on the constant-time path.
  if (cO === 0n) throw new Error('ring: zero challenge; retry with fresh randomness');
  const rO = G.multiplyUnsafe(sO).add(points[o].multiplyUnsafe(cO)).toBytes();
  const cJ = challenge(prefix, rO);
  // ...and close the ring with our secret.
  const sJ = (((alpha - cJ * x) % ORDER) + ORDER) % ORDER;

  const [c0, s0, s1] = j === 0 ? [cJ, sJ, sO] : [cO, sO, sJ];
  const signature = new Uint8Array(RING_SIGNATURE_LENGTH);
  signature.set(scalarToBytes(c0), 0);
  signature.set(scalarToBytes(s0), 32);
  signature.set(scalarToBytes(s1), 64);
  return {
    signerIndex: j,
    alpha: scalarToBytes(alpha),
    sOther: scalarToBytes(sO),
    rSigner: rJ,
    cOther: scalarToBytes(cO),
    rOther: rO,
    cSigner: scalarToBytes(cJ),
    sSigner: scalarToBytes(sJ),
    signature,
  };
}

/** 96-byte signature c0 || s0 || s1 by the holder of `secret`, one of the ring's members. */
export function ringSign(
  ring: PreparedRing,
  secret: Uint8Array,
  message: Uint8Array,
  rand: Uint8Array = randomBytes(RAND_LENGTH),
): Uint8Array {
  const trace = ringSignTrace(ring, secret, message, rand);
  wipe(trace.alpha);
  return trace.signature;
}

/** Steps 1-2: length and scalar canonicity, before any curve work. */
function parseSignature(signature: Uint8Array): [bigint, bigint, bigint] {
  assertBytes(signature, RING_SIGNATURE_LENGTH, 'signature');
  return [
    decodeScalar(signature.subarray(0, 32), 'c0'),
    decodeScalar(signature.subarray(32, 64), 's0'),
    decodeScalar(signature.subarray(64, 96), 's1'),
  ];
}

/** Step 5. Everything here is public, so the faster variable-time multiplications are fine. */
function verifyEquation(ring: PreparedRing, message: Uint8Array, signature: Uint8Array, scalars: [bigint, bigint, bigint]): void {
  const { keys, points, checked } = stateOf(ring);
  if (!checked) throw new TypeError('ring: cannot verify against an unchecked ring');
  if (!(message instanceof Uint8Array)) throw new TypeError('ring: message must be a Uint8Array');
  const [c0, s0, s1] = scalars;
  const prefix = challengePrefix(keys, message);
  const r0 = G.multiplyUnsafe(s0).add(points[0].multiplyUnsafe(c0)).toBytes();
  const c1 = challenge(prefix, r0);
  const r1 = G.multiplyUnsafe(s1).add(points[1].multiplyUnsafe(c1)).toBytes();
  const c0Again = scalarToBytes(challenge(prefix, r1));
  if (!equalBytes(c0Again, signature.subarray(0, 32))) {
    throw new RingError('invalid_signature', 'signature does not verify');
  }
}

/** Throws RingError unless `signature` is a valid ring signature on `message` by a member of `ring`. */
export function ringVerify(ring: PreparedRing, message: Uint8Array, signature: Uint8Array): void {
  verifyEquation(ring, message, signature, parseSignature(signature));
}

/**
 * One-shot verification from raw keys. Skips building the wNAF tables: for a single verification
 * they cost far more (~40 ms) than they save.
 */
export function ringVerifyKeys(p0: Uint8Array, p1: Uint8Array, message: Uint8Array, signature: Uint8Array): void {
  const scalars = parseSignature(signature);
  verifyEquation(buildRing(p0, p1, false), message, signature, scalars);
}

// ─── proof of possession (PROTOCOL.md §15.3) ─────────────────────────────────────────────
//
// A Schnorr signature by the ring key itself over the key's certification statement. Without
// it a correspondent could advertise a key nobody can use (a hash-to-curve point) or someone
// else's, and a ring signature over {our key, that key} would prove that we wrote it.

/** Intermediates of one proof. `nonce` with the proof reveals the secret: treat as secret. */
export interface PossessionTrace {
  nonce: Uint8Array;
  commitment: Uint8Array;
  challenge: Uint8Array;
  response: Uint8Array;
  proof: Uint8Array;
}

/** c = SHA-512(tag || P || len64(m) || m || enc(R)) as LE integer mod ℓ. */
function possessionChallenge(publicKey: Uint8Array, message: Uint8Array, encodedR: Uint8Array): bigint {
  return wideReduce(
    createHash('sha512')
      .update(TAG_POSSESSION_CHALLENGE)
      .update(publicKey)
      .update(u64be(message.length))
      .update(message)
      .update(encodedR)
      .digest(),
  );
}

/**
 * Proves knowledge of `secret` over `message`, returning every intermediate. This IS the proving
 * code (provePossession only drops the intermediates); exported for test vectors.
 */
export function provePossessionTrace(
  secret: Uint8Array,
  message: Uint8Array,
  rand: Uint8Array = randomBytes(RAND_LENGTH),
): PossessionTrace {
  if (!(message instanceof Uint8Array)) throw new TypeError('ring: message must be a Uint8Array');
  assertBytes(rand, RAND_LENGTH, 'proving randomness');
  const x = decodeSecret(secret);
  const publicKey = G.multiply(x).toBytes();
  const digest = createHash('sha512')
    .update(TAG_POSSESSION_NONCE)
    .update(secret)
    .update(publicKey)
    .update(u64be(message.length))
    .update(message)
    .update(rand)
    .digest();
  const k = wideReduce(digest);
  wipe(digest);
  if (k === 0n) throw new Error('ring: derived a zero nonce; retry with fresh randomness');
  const commitment = G.multiply(k).toBytes();
  const c = possessionChallenge(publicKey, message, commitment);
  const s = (k + c * x) % ORDER;
  const proof = new Uint8Array(POSSESSION_PROOF_LENGTH);
  proof.set(commitment, 0);
  proof.set(scalarToBytes(s), 32);
  return { nonce: scalarToBytes(k), commitment, challenge: scalarToBytes(c), response: scalarToBytes(s), proof };
}

/** The 64-byte proof enc(R) || s that the holder of `secret` knows it, bound to `message`. */
export function provePossession(secret: Uint8Array, message: Uint8Array, rand: Uint8Array = randomBytes(RAND_LENGTH)): Uint8Array {
  const trace = provePossessionTrace(secret, message, rand);
  wipe(trace.nonce);
  return trace.proof;
}

/**
 * Throws RingError unless `proof` proves possession of the secret of `publicKey` over `message`.
 * Checks in order: length (bad_length), s < ℓ (non_canonical_scalar), the key as a ring member
 * (non_canonical_point, identity_point, torsion_point), then enc(s·G − c·P) = R (invalid_proof).
 */
export function verifyPossession(publicKey: Uint8Array, message: Uint8Array, proof: Uint8Array): void {
  if (!(message instanceof Uint8Array)) throw new TypeError('ring: message must be a Uint8Array');
  assertBytes(proof, POSSESSION_PROOF_LENGTH, 'proof');
  const s = decodeScalar(proof.subarray(32, 64), 's');
  const point = decodeRingKey(publicKey);
  const encodedR = proof.subarray(0, 32);
  const c = possessionChallenge(publicKey, message, encodedR);
  // Public values only: variable-time multiplication is fine.
  const expected = G.multiplyUnsafe(s).subtract(point.multiplyUnsafe(c)).toBytes();
  if (!equalBytes(expected, encodedR)) throw new RingError('invalid_proof', 'the proof of possession does not verify');
}

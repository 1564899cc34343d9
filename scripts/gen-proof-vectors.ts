// Regenerates fixtures/vectors/ring-key-proof.json: `node --import tsx scripts/gen-proof-vectors.ts`.
// The proof of possession of a ring key (docs/PROTOCOL.md §15.3) over its certification
// statement (§15.1). Everything derives from fixed labels, so the output is reproducible and
// test/crypto/ring.test.ts checks the committed file against buildProofVectors().
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ed25519, ed25519_hasher, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { fromHex, toHex } from '../src/crypto/bytes.ts';
import { provePossession, provePossessionTrace, ringPublicKey, verifyPossession } from '../src/crypto/ring.ts';
import { RingError, type RingErrorCode } from '../src/crypto/errors.ts';
import { ringKeyStatement } from '../src/keys/ringcert.ts';
import { addOrderAt, offCurveEncoding, randFor, secretFor, text } from './gen-ring-vectors.ts';
import {
  PROOF_VECTORS_PATH,
  renderVectors,
  type PositiveProofVector,
  type NegativeProofVector,
  type ProofVectors,
} from '../fixtures/vectors/format.ts';

const fingerprintFor = (name: string): Uint8Array => text(`${name}`.padEnd(20, '.')).subarray(0, 20);
const NOT_BEFORE = Date.UTC(2026, 0, 1);
const NOT_AFTER = NOT_BEFORE + 14 * 24 * 3600 * 1000;

export function buildProofVectors(): ProofVectors {
  const positive: PositiveProofVector[] = [];
  const positiveCase = (comment: string, name: string, identity: string, notBefore: number, notAfter: number, label: string) => {
    const secret = secretFor(name);
    const publicKey = ringPublicKey(secret);
    const fingerprint = fingerprintFor(identity);
    const statement = ringKeyStatement(fingerprint, publicKey, notBefore, notAfter);
    const rand = randFor(label);
    const t = provePossessionTrace(secret, statement, rand);
    verifyPossession(publicKey, statement, t.proof);
    positive.push({
      comment,
      secret: toHex(secret),
      rand: toHex(rand),
      public: toHex(publicKey),
      fingerprint: toHex(fingerprint),
      not_before: notBefore,
      not_after: notAfter,
      statement: toHex(statement),
      nonce: toHex(t.nonce),
      R: toHex(t.commitment),
      c: toHex(t.challenge),
      s: toHex(t.response),
      proof: toHex(t.proof),
    });
    return { secret, publicKey, fingerprint, statement, proof: t.proof };
  };
  const base = positiveCase('alice ring key certified by identity "alice", 14 days', 'alice', 'alice', NOT_BEFORE, NOT_AFTER, 'proof-1');
  positiveCase('same key and statement, other randomness: another valid proof', 'alice', 'alice', NOT_BEFORE, NOT_AFTER, 'proof-2');
  positiveCase('bob ring key, validity [0, 2^53 - 1)', 'bob', 'bob', 0, Number.MAX_SAFE_INTEGER, 'proof-3');

  const negative: NegativeProofVector[] = [];
  const negativeCase = (comment: string, publicKey: Uint8Array, statement: Uint8Array, proof: Uint8Array, expect: RingErrorCode) => {
    // Refuse to write a vector that does not fail the way it claims.
    try {
      verifyPossession(publicKey, statement, proof);
      throw new Error(`negative vector verifies: ${comment}`);
    } catch (e) {
      if (!(e instanceof RingError) || e.code !== expect) throw new Error(`negative vector fails wrongly: ${comment}: ${String(e)}`);
    }
    negative.push({ comment, public: toHex(publicKey), statement: toHex(statement), proof: toHex(proof), expect });
  };
  const { publicKey, statement, proof } = base;
  negativeCase('positive[0] truncated to 63 bytes', publicKey, statement, proof.subarray(0, 63), 'bad_length');
  negativeCase(
    'positive[0] with s replaced by s + l (same residue, not canonical)',
    publicKey,
    statement,
    addOrderAt(proof, 32),
    'non_canonical_scalar',
  );
  const flippedR = Uint8Array.from(proof);
  flippedR[0]! ^= 0x01;
  negativeCase('positive[0] with the lowest bit of R flipped', publicKey, statement, flippedR, 'invalid_proof');
  const flippedS = Uint8Array.from(proof);
  flippedS[32]! ^= 0x01;
  negativeCase('positive[0] with the lowest bit of s flipped (still canonical)', publicKey, statement, flippedS, 'invalid_proof');
  const otherValidity = ringKeyStatement(base.fingerprint, publicKey, NOT_BEFORE, NOT_AFTER + 1);
  negativeCase('positive[0] presented for the statement with not_after + 1', publicKey, otherValidity, proof, 'invalid_proof');
  const otherIdentity = ringKeyStatement(fingerprintFor('mallory'), publicKey, NOT_BEFORE, NOT_AFTER);
  negativeCase(
    'positive[0] replayed by another identity: the statement with the fingerprint "mallory"',
    publicKey,
    otherIdentity,
    proof,
    'invalid_proof',
  );
  const carol = ringPublicKey(secretFor('carol'));
  negativeCase(
    "positive[0] presented for carol's key (statement naming carol's key, proof by alice's)",
    carol,
    ringKeyStatement(base.fingerprint, carol, NOT_BEFORE, NOT_AFTER),
    proof,
    'invalid_proof',
  );
  // The attack of §15.3: a point nobody knows the discrete log of, with the best a non-holder
  // can offer, a valid proof by another key over that point's statement.
  const nobodys = ed25519_hasher.hashToCurve(text('offrecord proof vector: a key nobody holds')).toBytes();
  const nobodysStatement = ringKeyStatement(fingerprintFor('mallory'), nobodys, NOT_BEFORE, NOT_AFTER);
  negativeCase(
    'hash-to-curve point (discrete log unknown) with a proof by alice over its statement',
    nobodys,
    nobodysStatement,
    provePossession(base.secret, nobodysStatement, randFor('proof-n-nobody')),
    'invalid_proof',
  );
  // Bad keys: the key check precedes the equation, so positive[0]'s proof serves.
  negativeCase('key is not on the curve; otherwise positive[0]', offCurveEncoding(), statement, proof, 'non_canonical_point');
  negativeCase(
    'key is the identity point 0100..00; otherwise positive[0]',
    fromHex(ED25519_TORSION_SUBGROUP[0]!),
    statement,
    proof,
    'identity_point',
  );
  negativeCase(
    'key is a small-order point (order 8); otherwise positive[0]',
    fromHex(ED25519_TORSION_SUBGROUP[1]!),
    statement,
    proof,
    'torsion_point',
  );
  const mixed = ed25519.Point.fromBytes(publicKey).add(ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1]!)).toBytes();
  negativeCase(
    "key is alice's plus an order-8 point (canonical, not torsion-free); otherwise positive[0]",
    mixed,
    statement,
    proof,
    'torsion_point',
  );

  return {
    description:
      'Test vectors for the proof of possession of an offrecord ring key (docs/PROTOCOL.md section 15.3, src/crypto/ring.ts provePossession). ' +
      'All byte strings are lowercase hex. Regenerate with: node --import tsx scripts/gen-proof-vectors.ts',
    construction: [
      'A Schnorr signature on edwards25519 by the ring key P = x*G over m = the 89-byte certification statement of section 15.1:',
      '"offrecord ring key v1" || fingerprint (20) || P (32) || u64be(not_before) || u64be(not_after). Scalars are 32-byte little-endian; len64(m) is the 8-byte big-endian length of m.',
      'k = SHA-512("offrecord/v1 possession nonce" || x || P || len64(m) || m || rand) LE mod l (rand: 32 random bytes; retry if k = 0); R = k*G;',
      'c = SHA-512("offrecord/v1 possession challenge" || P || len64(m) || m || enc(R)) LE mod l; s = k + c*x mod l; proof = enc(R) || s (64 bytes).',
      'Verify, in this order: length 64 (bad_length); s < l (non_canonical_scalar); P decodes under RFC 8032, re-encodes identically, is not the identity and is torsion-free',
      '(non_canonical_point, identity_point, torsion_point); c from the 32 bytes of R as given; valid iff enc(s*G - c*P) equals those 32 bytes (invalid_proof).',
      'Vector secrets and rand as in ring-signature.json; fingerprints are the ASCII name padded with "." to 20 bytes.',
    ].join(' '),
    positive,
    negative,
  };
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  writeFileSync(PROOF_VECTORS_PATH, renderVectors(buildProofVectors()));
  console.log(`wrote ${PROOF_VECTORS_PATH}`);
}

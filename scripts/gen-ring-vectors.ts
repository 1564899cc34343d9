// Regenerates fixtures/vectors/ring-signature.json: `npx tsx scripts/gen-ring-vectors.ts`.
// Everything is derived from fixed labels, so the output is byte-for-byte reproducible and
// test/crypto/ring.test.ts checks the committed file against buildRingVectors().
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ed25519, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { fromHex, toHex } from '../src/crypto/bytes.ts';
import {
  _prepareRingUncheckedForVectors,
  generateRingSecret,
  prepareRing,
  ringPublicKey,
  ringSignTrace,
  ringVerifyKeys,
  sortRing,
} from '../src/crypto/ring.ts';
import { RingError, type RingErrorCode } from '../src/crypto/errors.ts';
import {
  RING_VECTORS_PATH,
  renderVectors,
  type PositiveRingVector,
  type NegativeRingVector,
  type RingVectors,
} from '../fixtures/vectors/format.ts';

const Point = ed25519.Point;
const ORDER = Point.Fn.ORDER;

const sha512 = (label: string): Uint8Array => new Uint8Array(createHash('sha512').update(label, 'utf8').digest());
export const secretFor = (name: string): Uint8Array => generateRingSecret(sha512(`offrecord/v1 ring vector secret|${name}`));
export const randFor = (label: string): Uint8Array => sha512(`offrecord/v1 ring vector rand|${label}`).subarray(0, 32);
export const text = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'utf8'));

/** n bytes of SHA-512 counter-mode output: a long message nobody has to store. */
function longMessage(label: string, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i * 64 < n; i++) out.set(sha512(`${label}|${i}`).subarray(0, Math.min(64, n - i * 64)), i * 64);
  return out;
}

const byteCompare = (a: Uint8Array, b: Uint8Array): number => Buffer.compare(a, b);
const ordered = (a: Uint8Array, b: Uint8Array): [Uint8Array, Uint8Array] => (byteCompare(a, b) <= 0 ? [a, b] : [b, a]);

/** Replace the 32-byte scalar at `offset` by its value plus ℓ: same residue, non-canonical bytes. */
export function addOrderAt(signature: Uint8Array, offset: number): Uint8Array {
  const out = Uint8Array.from(signature);
  out.set(numberToBytesLE(bytesToNumberLE(signature.subarray(offset, offset + 32)) + ORDER, 32), offset);
  return out;
}

/** Signature by `secret` over a ring that may contain an invalid key (same signing code, no checks). */
function uncheckedSign(ring: [Uint8Array, Uint8Array], secret: Uint8Array, message: Uint8Array, label: string): Uint8Array {
  return ringSignTrace(_prepareRingUncheckedForVectors(ring[0], ring[1]), secret, message, randFor(label)).signature;
}

/** Smallest y (as little-endian bytes, sign bit clear) that is not the y-coordinate of any curve point. */
export function offCurveEncoding(): Uint8Array {
  for (let y = 2n; ; y++) {
    const bytes = numberToBytesLE(y, 32);
    try {
      Point.fromBytes(bytes, true);
    } catch {
      return bytes;
    }
  }
}

export function buildRingVectors(): RingVectors {
  const secrets = { alice: secretFor('alice'), bob: secretFor('bob'), carol: secretFor('carol'), dave: secretFor('dave') };
  const pub = {
    alice: ringPublicKey(secrets.alice),
    bob: ringPublicKey(secrets.bob),
    carol: ringPublicKey(secrets.carol),
    dave: ringPublicKey(secrets.dave),
  };
  const secretOf = (key: Uint8Array): Uint8Array => {
    for (const name of ['alice', 'bob', 'carol', 'dave'] as const) if (byteCompare(pub[name], key) === 0) return secrets[name];
    throw new Error('unknown key');
  };

  const positive: PositiveRingVector[] = [];
  const positiveCase = (comment: string, a: Uint8Array, b: Uint8Array, index: 0 | 1, message: Uint8Array, label: string) => {
    const ring = sortRing(a, b);
    const secret = secretOf(ring[index]);
    const rand = randFor(label);
    const t = ringSignTrace(prepareRing(ring[0], ring[1]), secret, message, rand);
    if (t.signerIndex !== index) throw new Error('signer index mismatch');
    positive.push({
      comment,
      secret: toHex(secret),
      rand: toHex(rand),
      ring: [toHex(ring[0]), toHex(ring[1])],
      signer_index: t.signerIndex,
      message: toHex(message),
      alpha: toHex(t.alpha),
      s_other: toHex(t.sOther),
      R_signer: toHex(t.rSigner),
      c_other: toHex(t.cOther),
      R_other: toHex(t.rOther),
      c_signer: toHex(t.cSigner),
      s_signer: toHex(t.sSigner),
      signature: toHex(t.signature),
    });
    return { ring, message, signature: t.signature };
  };

  const hello = text('offrecord ring vector: hello');
  const base = positiveCase('alice+bob ring, signer index 0, short message', pub.alice, pub.bob, 0, hello, 'p1');
  positiveCase('alice+bob ring, signer index 1, same message', pub.alice, pub.bob, 1, hello, 'p2');
  positiveCase('alice+carol ring, signer index 0, empty message', pub.alice, pub.carol, 0, new Uint8Array(0), 'p3');
  positiveCase(
    'bob+dave ring, signer index 1, 1000-byte message',
    pub.bob,
    pub.dave,
    1,
    longMessage('offrecord ring vector long', 1000),
    'p4',
  );
  positiveCase('carol+dave ring, signer index 0, one zero byte', pub.carol, pub.dave, 0, new Uint8Array(1), 'p5');

  const negative: NegativeRingVector[] = [];
  const negativeCase = (
    comment: string,
    ring: [Uint8Array, Uint8Array],
    message: Uint8Array,
    signature: Uint8Array,
    expect: RingErrorCode,
  ) => {
    // Refuse to write a vector that does not fail the way it claims.
    try {
      ringVerifyKeys(ring[0], ring[1], message, signature);
      throw new Error(`negative vector verifies: ${comment}`);
    } catch (e) {
      if (!(e instanceof RingError) || e.code !== expect) throw new Error(`negative vector fails wrongly: ${comment}: ${String(e)}`);
    }
    negative.push({ comment, ring: [toHex(ring[0]), toHex(ring[1])], message: toHex(message), signature: toHex(signature), expect });
  };
  const [b0, b1] = base.ring;
  const sig = base.signature;

  const otherMessage = Uint8Array.from(hello);
  otherMessage[otherMessage.length - 1]! ^= 0x01;
  negativeCase('valid signature of positive[0], message with its last bit flipped', base.ring, otherMessage, sig, 'invalid_signature');
  negativeCase('valid signature of positive[0], ring given as [P1, P0]', [b1, b0], hello, sig, 'ring_order');
  negativeCase(
    'positive[0] with s0 replaced by s0 + l (same residue, not canonical)',
    base.ring,
    hello,
    addOrderAt(sig, 32),
    'non_canonical_scalar',
  );
  negativeCase(
    'positive[0] with c0 replaced by c0 + l (same residue, not canonical)',
    base.ring,
    hello,
    addOrderAt(sig, 0),
    'non_canonical_scalar',
  );
  negativeCase(
    'positive[0] with s1 replaced by s1 + l (same residue, not canonical)',
    base.ring,
    hello,
    addOrderAt(sig, 64),
    'non_canonical_scalar',
  );
  negativeCase('positive[0] truncated to 95 bytes', base.ring, hello, sig.subarray(0, 95), 'bad_length');
  const flipped = Uint8Array.from(sig);
  flipped[64]! ^= 0x01; // lowest bit of s1; stays canonical
  negativeCase('positive[0] with the lowest bit of s1 flipped', base.ring, hello, flipped, 'invalid_signature');

  const outsiderRing = sortRing(pub.carol, pub.bob);
  const outsiderSig = ringSignTrace(prepareRing(outsiderRing[0], outsiderRing[1]), secrets.carol, hello, randFor('n-outsider')).signature;
  negativeCase(
    'carol (not a member) signed over ring {carol, bob}; verified against ring {alice, bob}',
    base.ring,
    hello,
    outsiderSig,
    'invalid_signature',
  );

  // Bad ring keys. Alice signs over a ring whose other member is the bad key, so the ring
  // equation holds (zip215 decoding, hashing the bytes as given) and the key is the one defect.
  const badKeyCase = (comment: string, badKey: Uint8Array, expect: RingErrorCode, label: string) => {
    const ring = ordered(pub.alice, badKey);
    negativeCase(comment, ring, hello, uncheckedSign(ring, secrets.alice, hello, label), expect);
  };
  const p = Point.Fp.ORDER;
  const yAbove = numberToBytesLE(p + 3n, 32); // y = p + 3 < 2^255: a curve point's y, encoded without reduction
  badKeyCase(
    'ring key encodes y = p + 3 (>= p, RFC 8032 rejects; zip215 would read it as a mixed-order point with y = 3); signature valid under that reading',
    yAbove,
    'non_canonical_point',
    'n-y-above-p',
  );
  const xZeroSign = new Uint8Array(32);
  xZeroSign[0] = 0x01;
  xZeroSign[31] = 0x80;
  badKeyCase(
    'ring key 0100..0080: y = 1 so x = 0, with the x sign bit set (RFC 8032 rejects before the identity check)',
    xZeroSign,
    'non_canonical_point',
    'n-x0-sign',
  );
  // No signature can exist for a key that is not a point; positive[0]'s is used with the ring {alice, bad key}.
  negativeCase(
    'ring key is not on the curve (no x for this y); otherwise positive[0]',
    ordered(pub.alice, offCurveEncoding()),
    hello,
    sig,
    'non_canonical_point',
  );
  badKeyCase('ring key is the identity point 0100..00', fromHex(ED25519_TORSION_SUBGROUP[0]!), 'identity_point', 'n-identity');
  badKeyCase('ring key is a small-order point (order 8)', fromHex(ED25519_TORSION_SUBGROUP[1]!), 'torsion_point', 'n-order-8');
  badKeyCase('ring key is a small-order point (order 4)', fromHex(ED25519_TORSION_SUBGROUP[2]!), 'torsion_point', 'n-order-4');
  const mixed = Point.fromBytes(pub.bob).add(Point.fromHex(ED25519_TORSION_SUBGROUP[1]!)).toBytes();
  badKeyCase('ring key is mixed order: bob + an order-8 point (canonical encoding, not torsion-free)', mixed, 'torsion_point', 'n-mixed');

  // Order of the checks (PROTOCOL.md section 4.4): key by key (all of 3a-3c for P0, then for P1),
  // and every point check before the ring order. These two vectors each have two defects on purpose.
  const torsion8 = fromHex(ED25519_TORSION_SUBGROUP[1]!);
  if (byteCompare(torsion8, yAbove) >= 0) throw new Error('vector needs the torsion point below y = p + 3');
  negativeCase(
    "ring [order-8 point, y = p + 3] (two defects on purpose): P0 fails 3c, P1 fails 3a; checked key by key, so P0's torsion_point comes first",
    [torsion8, yAbove],
    hello,
    sig,
    'torsion_point',
  );
  const descending: [Uint8Array, Uint8Array] = [yAbove, pub.alice];
  if (byteCompare(yAbove, pub.alice) <= 0) throw new Error('vector needs y = p + 3 above alice');
  negativeCase(
    "ring [y = p + 3, alice] (two defects on purpose): out of order and one key non-canonical; the point checks come before the ring order. The signature is alice's for this ring as given",
    descending,
    hello,
    uncheckedSign(descending, secrets.alice, hello, 'n-descending'),
    'non_canonical_point',
  );

  const dup = [pub.alice, pub.alice] as [Uint8Array, Uint8Array];
  negativeCase(
    'duplicated member: ring [alice, alice], signature valid for that ring',
    dup,
    hello,
    uncheckedSign(dup, secrets.alice, hello, 'n-dup'),
    'ring_order',
  );

  return {
    description:
      'Test vectors for the offrecord two-member AOS Schnorr ring signature on edwards25519 (src/crypto/ring.ts). ' +
      'All byte strings are lowercase hex. Regenerate with: npx tsx scripts/gen-ring-vectors.ts',
    construction: [
      'Abe-Ohkubo-Suzuki 1-out-of-n Schnorr ring signature (ASIACRYPT 2002, section 4) for n = 2 on edwards25519, base point G, group order l.',
      'Scalars are 32-byte little-endian. A secret is a canonical scalar 1 <= x < l (not an RFC 8032 seed); public key P = x*G in the standard 32-byte point encoding.',
      'The ring is [P0, P1] with P0 < P1 as unsigned lexicographic byte strings. len64(m) is the 8-byte big-endian length of m.',
      'H(R) = SHA-512("offrecord/v1 ring challenge" || P0 || P1 || len64(m) || m || enc(R)) read as a 64-byte little-endian integer, mod l. Tags are ASCII without terminator.',
      'Signer j holds x with x*G = P_j; o = 1 - j; rand = 32 random bytes. alpha = SHA-512("offrecord/v1 ring nonce" || x || P0 || P1 || len64(m) || m || rand) LE mod l; s_o = SHA-512("offrecord/v1 ring fill" || x || P0 || P1 || len64(m) || m || rand) LE mod l.',
      'R_j = alpha*G; c_o = H(R_j); R_o = s_o*G + c_o*P_o; c_j = H(R_o); s_j = alpha - c_j*x mod l. Signature = c_0 || s_0 || s_1 (96 bytes).',
      'Verify: length 96; c0, s0, s1 < l; each key decodes under RFC 8032 (y < p, no x = 0 with sign bit), re-encodes identically, is not the identity and is torsion-free; P0 < P1;',
      'R0 = s0*G + c0*P0; c1 = H(R0); R1 = s1*G + c1*P1; valid iff H(R1) == c0. Error codes, in check order: bad_length, non_canonical_scalar, non_canonical_point, identity_point, torsion_point, ring_order, invalid_signature.',
      'Vector secrets are generateRingSecret(SHA-512("offrecord/v1 ring vector secret|" + name)); rand is the first 32 bytes of SHA-512("offrecord/v1 ring vector rand|" + label).',
    ].join(' '),
    positive,
    negative,
  };
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  writeFileSync(RING_VECTORS_PATH, renderVectors(buildRingVectors()));
  console.log(`wrote ${RING_VECTORS_PATH}`);
}

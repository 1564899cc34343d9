import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { fromHex, toHex } from '../../src/crypto/bytes.ts';
import {
  PreparedRing,
  RING_KEY_LENGTH,
  RING_SIGNATURE_LENGTH,
  _prepareRingUncheckedForVectors,
  generateRingSecret,
  prepareRing,
  provePossession,
  provePossessionTrace,
  ringPublicKey,
  ringSign,
  ringSignTrace,
  ringVerify,
  ringVerifyKeys,
  sortRing,
  verifyPossession,
} from '../../src/crypto/ring.ts';
import { RingError, type RingErrorCode } from '../../src/crypto/errors.ts';
import {
  PROOF_VECTORS_PATH,
  RING_VECTORS_PATH,
  renderVectors,
  type ProofVectors,
  type RingVectors,
} from '../../fixtures/vectors/format.ts';
import { buildProofVectors } from '../../scripts/gen-proof-vectors.ts';
import { buildRingVectors } from '../../scripts/gen-ring-vectors.ts';
import { runs } from '../../kit/runs.ts';

const vectors = JSON.parse(readFileSync(RING_VECTORS_PATH, 'utf8')) as RingVectors;
const ORDER = ed25519.Point.Fn.ORDER;
// Each case signs and verifies on the curve (tens of ms): the unit set tries fewer (kit/runs.ts).
const RUNS = runs({ full: 50, unit: 12 });

function expectRingError(fn: () => unknown, code: RingErrorCode | readonly RingErrorCode[]): RingError {
  const codes: readonly RingErrorCode[] = typeof code === 'string' ? [code] : code;
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof RingError, `expected RingError, got ${String(e)}`);
    assert.ok(codes.includes(e.code), `expected ${codes.join('|')}, got ${e.code}`);
    return e;
  }
  assert.fail(`expected RingError ${codes.join('|')}, nothing thrown`);
}

/**
 * Independent evaluation of the ring equation straight from the construction text (zip215
 * decoding, scalars reduced mod l): lets the tests confirm a negative vector's only defect is
 * the one it names, and cross-checks the challenge hash of the module.
 */
function referenceEquationHolds(ring: [string, string], messageHex: string, signatureHex: string): boolean {
  const [k0, k1] = ring.map(fromHex) as [Uint8Array, Uint8Array];
  const m = fromHex(messageHex);
  const sig = fromHex(signatureHex);
  const P = [ed25519.Point.fromBytes(k0, true), ed25519.Point.fromBytes(k1, true)];
  const len = Buffer.alloc(8);
  len.writeBigUInt64BE(BigInt(m.length));
  const H = (R: Uint8Array): bigint =>
    bytesToNumberLE(
      createHash('sha512').update('offrecord/v1 ring challenge').update(k0).update(k1).update(len).update(m).update(R).digest(),
    ) % ORDER;
  const [c0, s0, s1] = [0, 32, 64].map((o) => bytesToNumberLE(sig.subarray(o, o + 32)) % ORDER) as [bigint, bigint, bigint];
  const mul = (p: typeof ed25519.Point.BASE, k: bigint) => p.multiplyUnsafe(k);
  const c1 = H(mul(ed25519.Point.BASE, s0).add(mul(P[0]!, c0)).toBytes());
  return H(mul(ed25519.Point.BASE, s1).add(mul(P[1]!, c1)).toBytes()) === c0;
}

describe('ring signature vectors', () => {
  it('the committed file is exactly what scripts/gen-ring-vectors.ts produces', () => {
    assert.equal(readFileSync(RING_VECTORS_PATH, 'utf8'), renderVectors(buildRingVectors()));
    assert.deepEqual(buildRingVectors(), vectors);
  });

  it('covers both signer indices, an empty and a 1000-byte message', () => {
    assert.ok(vectors.positive.length >= 4);
    assert.ok(vectors.positive.some((v) => v.signer_index === 0));
    assert.ok(vectors.positive.some((v) => v.signer_index === 1));
    assert.ok(vectors.positive.some((v) => v.message === ''));
    assert.ok(vectors.positive.some((v) => v.message.length === 2000));
  });

  for (const [i, v] of vectors.positive.entries()) {
    it(`positive[${i}]: ${v.comment}`, () => {
      const secret = fromHex(v.secret);
      const [p0, p1] = v.ring.map(fromHex) as [Uint8Array, Uint8Array];
      const message = fromHex(v.message);
      assert.equal(toHex(ringPublicKey(secret)), v.ring[v.signer_index]);
      const ring = prepareRing(p0, p1);
      assert.equal(toHex(ringSign(ring, secret, message, fromHex(v.rand))), v.signature);
      const t = ringSignTrace(ring, secret, message, fromHex(v.rand));
      assert.deepEqual(
        {
          signer_index: t.signerIndex,
          alpha: toHex(t.alpha),
          s_other: toHex(t.sOther),
          R_signer: toHex(t.rSigner),
          c_other: toHex(t.cOther),
          R_other: toHex(t.rOther),
          c_signer: toHex(t.cSigner),
          s_signer: toHex(t.sSigner),
          signature: toHex(t.signature),
        },
        {
          signer_index: v.signer_index,
          alpha: v.alpha,
          s_other: v.s_other,
          R_signer: v.R_signer,
          c_other: v.c_other,
          R_other: v.R_other,
          c_signer: v.c_signer,
          s_signer: v.s_signer,
          signature: v.signature,
        },
      );
      // The signature layout is c_0 || s_0 || s_1, whichever index signed.
      const [c0, s0, s1] = v.signer_index === 0 ? [v.c_signer, v.s_signer, v.s_other] : [v.c_other, v.s_other, v.s_signer];
      assert.equal(v.signature, c0 + s0 + s1);
      ringVerify(ring, message, fromHex(v.signature));
      ringVerifyKeys(p0, p1, message, fromHex(v.signature));
      assert.ok(referenceEquationHolds(v.ring, v.message, v.signature));
    });
  }

  for (const [i, v] of vectors.negative.entries()) {
    it(`negative[${i}] -> ${v.expect}: ${v.comment}`, () => {
      const [p0, p1] = v.ring.map(fromHex) as [Uint8Array, Uint8Array];
      expectRingError(() => ringVerifyKeys(p0, p1, fromHex(v.message), fromHex(v.signature)), v.expect);
    });
  }

  it('negative vectors with a bad key or scalar are otherwise valid (one defect each)', () => {
    // The check-order vectors have two defects on purpose (PROTOCOL.md section 4.4).
    const oneDefect = vectors.negative.filter(
      (v) =>
        !v.comment.includes('two defects on purpose') &&
        (v.expect === 'non_canonical_scalar' ||
          v.expect === 'identity_point' ||
          v.expect === 'torsion_point' ||
          (v.expect === 'ring_order' && v.ring[0] === v.ring[1]) ||
          (v.expect === 'non_canonical_point' && !v.comment.includes('not on the curve'))),
    );
    assert.ok(oneDefect.length >= 8);
    for (const v of oneDefect) assert.ok(referenceEquationHolds(v.ring, v.message, v.signature), v.comment);
    // ...and the oracle is not vacuous: it rejects the vectors whose defect is the equation itself.
    for (const v of vectors.negative.filter((n) => n.expect === 'invalid_signature')) {
      assert.equal(referenceEquationHolds(v.ring, v.message, v.signature), false, v.comment);
    }
  });
});

describe('ring signature API', () => {
  const alice = generateRingSecret();
  const bob = generateRingSecret();
  const [k0, k1] = sortRing(ringPublicKey(alice), ringPublicKey(bob));
  const ring = prepareRing(k0, k1);
  const secrets = toHex(ringPublicKey(alice)) === toHex(k0) ? [alice, bob] : [bob, alice];
  const message = new TextEncoder().encode('meet at noon');

  it('exports the fixed lengths', () => {
    assert.equal(RING_SIGNATURE_LENGTH, 96);
    assert.equal(RING_KEY_LENGTH, 32);
    assert.equal(ringSign(ring, alice, message).length, 96);
  });

  it('generateRingSecret reduces 64 bytes mod l and rejects zero', () => {
    assert.equal(toHex(generateRingSecret(numberToBytesLE(ORDER + 5n, 64))), toHex(numberToBytesLE(5n, 32)));
    expectRingError(() => generateRingSecret(new Uint8Array(64)), 'bad_secret');
    expectRingError(() => generateRingSecret(numberToBytesLE(ORDER * 3n, 64)), 'bad_secret');
    expectRingError(() => generateRingSecret(new Uint8Array(32)), 'bad_length');
  });

  it('ringPublicKey refuses secrets that are not canonical non-zero scalars', () => {
    expectRingError(() => ringPublicKey(new Uint8Array(32)), 'bad_secret');
    expectRingError(() => ringPublicKey(numberToBytesLE(ORDER, 32)), 'bad_secret');
    expectRingError(() => ringPublicKey(new Uint8Array(31).fill(1)), 'bad_secret');
    assert.equal(toHex(ringPublicKey(numberToBytesLE(1n, 32))), ed25519.Point.BASE.toHex());
  });

  it('sortRing orders by bytes and rejects equal keys', () => {
    assert.deepEqual(sortRing(k1, k0), [k0, k1]);
    assert.deepEqual(sortRing(k0, k1), [k0, k1]);
    expectRingError(() => sortRing(k0, Uint8Array.from(k0)), 'ring_order');
    expectRingError(() => sortRing(k0, k1.subarray(1)), 'bad_length');
  });

  it('prepareRing rejects an unsorted ring and copies its keys', () => {
    expectRingError(() => prepareRing(k1, k0), 'ring_order');
    expectRingError(() => prepareRing(k0, k0), 'ring_order');
    const a = Uint8Array.from(k0);
    const b = Uint8Array.from(k1);
    const r = prepareRing(a, b);
    a.fill(0);
    r.keys[1].fill(0);
    ringVerify(r, message, ringSign(r, alice, message));
    assert.equal(toHex(prepareRing(k0, k1).keys[0]), toHex(k0));
  });

  it('PreparedRing cannot be forged, and verification refuses unchecked rings', () => {
    assert.throws(() => new (PreparedRing as unknown as new (...a: unknown[]) => unknown)(Symbol('PreparedRing'), {}), TypeError);
    const forged = Object.create(PreparedRing.prototype) as PreparedRing;
    assert.throws(() => ringVerify(forged, message, new Uint8Array(96)), TypeError);
    const unchecked = _prepareRingUncheckedForVectors(k0, k1);
    assert.throws(() => ringVerify(unchecked, message, ringSign(unchecked, alice, message)), TypeError);
  });

  it('signing refuses non-members, bad randomness and bad secrets', () => {
    expectRingError(() => ringSign(ring, generateRingSecret(), message), 'not_a_member');
    expectRingError(() => ringSign(ring, alice, message, new Uint8Array(31)), 'bad_length');
    expectRingError(() => ringSign(ring, numberToBytesLE(ORDER + 1n, 32), message), 'bad_secret');
  });

  it('signing is deterministic in rand and hedged across rand', () => {
    const rand = new Uint8Array(32).fill(7);
    assert.equal(toHex(ringSign(ring, alice, message, rand)), toHex(ringSign(ring, alice, message, rand)));
    assert.notEqual(toHex(ringSign(ring, alice, message)), toHex(ringSign(ring, alice, message)));
  });

  it('error messages carry no secret material', () => {
    const outsider = generateRingSecret();
    const e1 = expectRingError(() => ringSign(ring, outsider, message), 'not_a_member');
    assert.ok(!e1.message.includes(toHex(outsider)));
    assert.ok(!(e1.stack ?? '').includes(toHex(outsider)));
    const bad = numberToBytesLE(ORDER + 12345n, 32);
    const e2 = expectRingError(() => ringSign(ring, bad, message), 'bad_secret');
    assert.ok(!e2.message.includes(toHex(bad)));
    const rand = new Uint8Array(33).fill(0xab);
    const e3 = expectRingError(() => ringSign(ring, alice, message, rand), 'bad_length');
    assert.ok(!e3.message.includes(toHex(alice)) && !e3.message.includes('abab'));
  });

  const secretArb = fc.uint8Array({ minLength: 64, maxLength: 64 }).map((b) => generateRingSecret(b));
  const messageArb = fc.uint8Array({ minLength: 0, maxLength: 300 });

  it('property: sign/verify round trip for random secrets, messages and signer index', () => {
    fc.assert(
      fc.property(secretArb, secretArb, messageArb, fc.constantFrom(0, 1), (x, y, m, index) => {
        const [a, b] = [ringPublicKey(x), ringPublicKey(y)];
        fc.pre(toHex(a) !== toHex(b));
        const keys = sortRing(a, b);
        const signer = toHex(keys[index]) === toHex(a) ? x : y;
        const r = prepareRing(keys[0], keys[1]);
        const trace = ringSignTrace(r, signer, m);
        assert.equal(trace.signerIndex, index);
        ringVerify(r, m, trace.signature);
        ringVerifyKeys(keys[0], keys[1], m, trace.signature);
      }),
      { numRuns: RUNS },
    );
  });

  it('property: any single-bit flip of signature or message is rejected', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat(), fc.boolean(), (m, bitSeed, who) => {
        const sig = ringSign(ring, who ? alice : bob, m);
        const bits = (sig.length + m.length) * 8;
        const bit = bitSeed % bits;
        const s = Uint8Array.from(sig);
        const n = Uint8Array.from(m);
        if (bit < sig.length * 8) s[bit >> 3]! ^= 1 << (bit & 7);
        else n[(bit >> 3) - sig.length]! ^= 1 << (bit & 7);
        expectRingError(() => ringVerify(ring, n, s), ['invalid_signature', 'non_canonical_scalar']);
      }),
      { numRuns: RUNS },
    );
  });

  it('property: a signature over a ring with a third key does not verify for the original ring', () => {
    fc.assert(
      fc.property(secretArb, messageArb, fc.boolean(), (z, m, keepAlice) => {
        const member = keepAlice ? alice : bob;
        const keys = sortRing(ringPublicKey(z), ringPublicKey(member));
        const other = prepareRing(keys[0], keys[1]);
        // Either signer of the foreign ring: a non-member, or a member using the wrong ring.
        for (const signer of [z, member]) {
          expectRingError(() => ringVerify(ring, m, ringSign(other, signer, m)), 'invalid_signature');
        }
      }),
      { numRuns: runs({ full: 20, unit: 6 }) },
    );
  });

  it('property: signatures by index 0 and by index 1 over the same message both verify', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const t0 = ringSignTrace(ring, secrets[0]!, m);
        const t1 = ringSignTrace(ring, secrets[1]!, m);
        assert.equal(t0.signerIndex, 0);
        assert.equal(t1.signerIndex, 1);
        ringVerify(ring, m, t0.signature);
        ringVerify(ring, m, t1.signature);
        assert.equal(t0.signature.length, t1.signature.length);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('proof of possession (PROTOCOL.md §15.3)', () => {
  const proofVectors = JSON.parse(readFileSync(PROOF_VECTORS_PATH, 'utf8')) as ProofVectors;

  /** Independent of ring.ts: s·G = R + c·P with c hashed as §15.3 says. */
  function independentlyValid(publicKey: Uint8Array, m: Uint8Array, proof: Uint8Array): boolean {
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(m.length));
    const R = proof.subarray(0, 32);
    const c =
      bytesToNumberLE(
        createHash('sha512').update('offrecord/v1 possession challenge').update(publicKey).update(len).update(m).update(R).digest(),
      ) % ORDER;
    const s = bytesToNumberLE(proof.subarray(32));
    return (
      s < ORDER &&
      ed25519.Point.BASE.multiplyUnsafe(s).equals(ed25519.Point.fromBytes(R).add(ed25519.Point.fromBytes(publicKey).multiplyUnsafe(c)))
    );
  }

  it('the committed file is exactly what scripts/gen-proof-vectors.ts produces', () => {
    assert.equal(readFileSync(PROOF_VECTORS_PATH, 'utf8'), renderVectors(buildProofVectors()));
    assert.deepEqual(buildProofVectors(), proofVectors);
  });

  it('positive vectors: the prover reproduces every intermediate, and the proof verifies (also independently)', () => {
    for (const v of proofVectors.positive) {
      const t = provePossessionTrace(fromHex(v.secret), fromHex(v.statement), fromHex(v.rand));
      assert.deepEqual([t.nonce, t.commitment, t.challenge, t.response, t.proof].map(toHex), [v.nonce, v.R, v.c, v.s, v.proof], v.comment);
      assert.equal(toHex(ringPublicKey(fromHex(v.secret))), v.public);
      verifyPossession(fromHex(v.public), fromHex(v.statement), fromHex(v.proof));
      assert.ok(independentlyValid(fromHex(v.public), fromHex(v.statement), fromHex(v.proof)), v.comment);
    }
  });

  it('negative vectors fail with their stated code, one defect each', () => {
    assert.ok(proofVectors.negative.length >= 10);
    for (const v of proofVectors.negative) {
      assert.throws(
        () => verifyPossession(fromHex(v.public), fromHex(v.statement), fromHex(v.proof)),
        (e: unknown) => e instanceof RingError && e.code === v.expect,
        v.comment,
      );
    }
  });

  it('property: a proof verifies for its key and message only', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.uint8Array({ minLength: 1, maxLength: 200 }), (m, other) => {
        const [x, y] = [generateRingSecret(), generateRingSecret()];
        const proof = provePossession(x, m);
        verifyPossession(ringPublicKey(x), m, proof);
        assert.throws(
          () => verifyPossession(ringPublicKey(y), m, proof),
          (e: unknown) => e instanceof RingError && e.code === 'invalid_proof',
        );
        if (toHex(other) !== toHex(m))
          assert.throws(
            () => verifyPossession(ringPublicKey(x), other, proof),
            (e: unknown) => e instanceof RingError,
          );
      }),
      { numRuns: RUNS },
    );
  });
});

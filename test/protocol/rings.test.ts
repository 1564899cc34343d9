// The session's ring cache (src/protocol/rings.ts): tables only for pairs used again and again,
// and bounded however many correspondents sign and verify (issue 15 item 3).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateRingSecret, ringPublicKey, ringSign, ringVerify } from '../../src/crypto/ring.ts';
import { RING_TABLES_AT_USE, RING_TABLES_KEPT, RING_USES_KEPT, ringCacheSizes, ringFor } from '../../src/protocol/rings.ts';

const ours = generateRingSecret();
const ourKey = ringPublicKey(ours);
const peerKey = () => ringPublicKey(generateRingSecret());

describe('session rings', () => {
  it('a pair used once or twice gets no tables; its rings still sign and verify', () => {
    const before = ringCacheSizes().tabled;
    const peer = peerKey();
    for (let use = 1; use < RING_TABLES_AT_USE; use++) {
      const ring = ringFor(ourKey, peer);
      ringVerify(ring, Buffer.from('m'), ringSign(ring, ours, Buffer.from('m')));
    }
    assert.equal(ringCacheSizes().tabled, before);
    ringFor(peer, ourKey); // either order is the same pair
    assert.equal(ringCacheSizes().tabled, Math.min(before + 1, RING_TABLES_KEPT));
  });

  it('at most RING_TABLES_KEPT rings keep tables and RING_USES_KEPT pairs are counted', () => {
    for (let i = 0; i < RING_TABLES_KEPT + 2; i++) {
      const peer = peerKey();
      for (let use = 0; use < RING_TABLES_AT_USE; use++) ringFor(ourKey, peer);
    }
    assert.equal(ringCacheSizes().tabled, RING_TABLES_KEPT);
    for (let i = 0; i < RING_USES_KEPT + 10; i++) ringFor(ourKey, peerKey());
    assert.equal(ringCacheSizes().counted, RING_USES_KEPT);
    assert.equal(ringCacheSizes().tabled, RING_TABLES_KEPT);
  });

  it('a bad pair is refused and not counted', () => {
    const counted = ringCacheSizes().counted;
    assert.throws(() => ringFor(ourKey, ourKey), { name: 'RingError' });
    assert.throws(() => ringFor(ourKey, new Uint8Array(32)), { name: 'RingError' });
    assert.equal(ringCacheSizes().counted, counted);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { Conversation } from '../../src/protocol/context.ts';
import { MemorySessionStore } from '../../src/protocol/store.ts';
import { assertExchange, conversationPair, identity, text } from '../../kit/parties.ts';

describe('conversation', () => {
  it('first mail, reply, then data messages both ways', async () => {
    const { alice, bob } = await conversationPair();
    await assertExchange(alice, bob);
  });

  it('a peer ring key equal to ours is a typed refusal of the step, not a RingError (§15.1)', async () => {
    const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
    const store = new MemorySessionStore();
    const alice = new Conversation({
      store,
      parties: {
        local: { fingerprint: a.fingerprint, ringKeys: [a.ring] },
        peer: { fingerprint: b.fingerprint, ringKeys: [a.ring.public] },
      },
      peerEncryptionKey: b.publicKey,
      sealer: new OpenPgpSealer([a.privateKey]),
    });
    const result = await alice.send(text('never signed'));
    assert.equal(result.kind, 'error');
    assert.equal(result.kind === 'error' && result.code, 'unknown_key');
    assert.equal(await alice.state(), null, 'nothing stored');
  });
});

// Tampering: every single-bit flip of a data message, a reply or a first mail is refused
// with no state change; a flip that leaves the message well-formed is the one 'auth' error.
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { Conversation } from '../../src/protocol/context.ts';
import { MemorySessionStore } from '../../src/protocol/store.ts';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { receiveFirst } from '../../src/protocol/session.ts';
import { decodeFirstInner } from '../../src/protocol/wire.ts';
import { decodeFirstOuter, decodeSealed, MAC_LENGTH, PREFIX_LENGTH } from '../../src/protocol/wire.ts';
import { conversationPair, partiesFor, sent, str, text } from '../../kit/parties.ts';

function flip(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

function wellFormed(decode: () => unknown): boolean {
  try {
    decode();
    return true;
  } catch {
    return false;
  }
}

async function assertRejected(receiver: Conversation, bytes: Uint8Array, bits: Iterable<number>, decode: (b: Uint8Array) => unknown) {
  const before = await receiver.state();
  for (const bit of bits) {
    const tampered = flip(bytes, bit);
    const result = await receiver.receive(tampered);
    assert.equal(result.kind, 'error', `bit ${bit} was accepted`);
    if (result.kind !== 'error') continue;
    if (bit >= PREFIX_LENGTH * 8 && wellFormed(() => decode(tampered))) {
      assert.equal(result.code, 'auth', `bit ${bit}: ${result.code} (${result.message})`);
    } else {
      // A changed type byte can turn the message into another, well-formed kind of message.
      const allowed =
        bit < PREFIX_LENGTH * 8 ? ['malformed', 'too_large', 'unsupported_version', 'unexpected', 'auth'] : ['malformed', 'too_large'];
      assert.ok(allowed.includes(result.code), `bit ${bit}: ${result.code} (${result.message})`);
    }
    assert.deepEqual(result.outgoing, []);
  }
  assert.deepEqual(await receiver.state(), before, 'state unchanged after every tampered copy');
}

function freshReceiver(pair: Awaited<ReturnType<typeof conversationPair>>): Conversation {
  return new Conversation({
    store: new MemorySessionStore(),
    parties: partiesFor(pair.ids.bob, pair.ids.alice),
    peerEncryptionKey: pair.ids.alice.publicKey,
    sealer: new OpenPgpSealer([pair.ids.bob.privateKey]),
    env: pair.env,
  });
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('tampering', () => {
  it('data message: every bit of the authenticated region and MAC', async () => {
    const pair = await conversationPair();
    await pair.bob.receive(sent(await pair.alice.send(text('first'))));
    await pair.alice.receive(sent(await pair.bob.send(text('reply'))));
    const data = sent(await pair.alice.send(text('the data message under test')));
    const { authenticated } = decodeSealed(data);
    await assertRejected(pair.bob, data, range((authenticated.length + MAC_LENGTH) * 8), decodeSealed);
    assert.equal((await pair.bob.receive(data)).kind, 'plaintext', 'the genuine message still goes through');
  });

  it('reply: every bit (its ring signature travels inside the encryption)', async () => {
    const pair = await conversationPair();
    await pair.bob.receive(sent(await pair.alice.send(text('first'))));
    const reply = sent(await pair.bob.send(text('reply')));
    await assertRejected(pair.alice, reply, range(reply.length * 8), decodeSealed);
    assert.equal((await pair.alice.receive(reply)).kind, 'plaintext');
  });

  it('first mail: the prefix and a sample of bits across the OpenPGP envelope', async () => {
    const pair = await conversationPair();
    const original = 'first mail under test';
    const first = sent(await pair.alice.send(text(original)));
    const bits = new Set([...range(PREFIX_LENGTH * 8)]);
    while (bits.size < 400) bits.add(randomInt(first.length * 8));
    let sameContent = 0;
    for (const bit of bits) {
      const bob = freshReceiver(pair); // each copy meets Bob as if it came first
      const result = await bob.receive(flip(first, bit));
      if (result.kind === 'plaintext') {
        // OpenPGP leaves some framing unprotected (the key id, MPI bit counts): such a copy
        // still carries exactly the signed content, and a second copy is a replay.
        assert.equal(str(result.plaintext), original, `bit ${bit} changed the content`);
        sameContent++;
        continue;
      }
      assert.equal(result.kind, 'error', `bit ${bit}`);
      // A flip in a packet header breaks §5.2's two-packet structure, which anyone can see: malformed.
      const allowed =
        bit < PREFIX_LENGTH * 8 ? ['malformed', 'too_large', 'unsupported_version', 'unexpected', 'auth'] : ['auth', 'malformed'];
      assert.ok(result.kind === 'error' && allowed.includes(result.code), `bit ${bit}: ${JSON.stringify(result)}`);
      assert.equal(await bob.state(), null, 'nothing stored');
    }
    assert.ok(sameContent < bits.size / 20, `${sameContent} flips left the envelope valid`);
  });
});

describe('tampering inside the envelope', () => {
  it('first mail: every bit of the signed inner message is caught by the ring signature', async () => {
    const pair = await conversationPair();
    const first = sent(await pair.alice.send(text('signed words')));
    const { plaintext: inner } = await new OpenPgpSealer([pair.ids.bob.privateKey]).open(decodeFirstOuter(first));
    const parties = partiesFor(pair.ids.bob, pair.ids.alice);
    for (const bit of range(inner.length * 8).slice(PREFIX_LENGTH * 8)) {
      const tampered = flip(inner, bit);
      try {
        receiveFirst(null, parties, tampered, pair.env);
        assert.fail(`bit ${bit} was accepted`);
      } catch (error) {
        assert.ok(error instanceof ProtocolError, String(error));
        const expected = wellFormed(() => decodeFirstInner(tampered)) ? ['auth'] : ['malformed'];
        assert.ok(expected.includes(error.code), `bit ${bit}: ${error.code} (${error.message})`);
      }
    }
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { x25519 } from '@noble/curves/ed25519.js';
import { concatBytes, equalBytes, toHex } from '../../src/crypto/bytes.ts';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { Conversation, type ReceiveResult } from '../../src/protocol/context.ts';
import { deriveDirectionKeys, generateDhKeyPair, hmacSha256, x25519PublicKey } from '../../src/protocol/keyschedule.ts';
import { signAuthBlock } from '../../src/protocol/authentication.ts';
import { DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import { initiate, nakFor, receiveFirst, receiveSealed, send, type SendStep } from '../../src/protocol/session.ts';
import { prepareRing, sortRing } from '../../src/crypto/ring.ts';
import { firstContext } from '../../src/protocol/contexts.ts';
import { liveOwnSecrets, type EstablishedState, type SessionState } from '../../src/protocol/state.ts';
import { MemorySessionStore } from '../../src/protocol/store.ts';
import * as openpgp from 'openpgp';
import {
  decodeFirstOuter,
  decodeSealed,
  encodeFirstInner,
  encodeFirstOuter,
  encodeNak,
  isLowOrderX25519,
  type AuthBlock,
  MessageType,
  peekType,
} from '../../src/protocol/wire.ts';
import type { ProtocolError } from '../../src/protocol/errors.ts';
import { conversationPair, identity, type Pair, partiesFor, sent, str, TestEnv, text } from '../../kit/parties.ts';

function plaintextOf(result: ReceiveResult): string {
  if (result.kind !== 'plaintext') assert.fail(`expected plaintext, got ${JSON.stringify(result)}`);
  return str(result.plaintext);
}

/** First mail, reply and one data message each way: both sides established. */
async function established(pair: Pair): Promise<void> {
  plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('first')))));
  plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('reply')))));
  plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('data')))));
}

describe('key schedule', () => {
  it('derives X25519 public values like an independent implementation', () => {
    for (let i = 0; i < 20; i++) {
      const secret = new Uint8Array(randomBytes(32));
      assert.ok(equalBytes(x25519PublicKey(secret), x25519.getPublicKey(secret)));
    }
  });
});

describe('small-order shares', () => {
  it('the wire refuses exactly the canonical values whose shared secret is zero', () => {
    for (let i = 0; i < 256; i++) {
      const u = new Uint8Array(32);
      u[0] = i;
      const zero = (() => {
        try {
          x25519.getSharedSecret(new Uint8Array(randomBytes(32)), u);
          return false;
        } catch {
          return true;
        }
      })();
      assert.equal(isLowOrderX25519(u), zero, `u = ${i}`);
    }
    const p1 = Uint8Array.from([0xec, ...new Array<number>(30).fill(0xff), 0x7f]);
    assert.ok(isLowOrderX25519(p1));
    assert.throws(() => x25519.getSharedSecret(new Uint8Array(randomBytes(32)), p1));
  });
});

describe('forgetting (paper 4.2)', () => {
  it('holds two own secrets while the peer is silent, however many messages go out', async () => {
    const pair = await conversationPair();
    await established(pair);
    for (let i = 0; i < 10; i++) sent(await pair.alice.send(text(`m${i}`)));
    const state = (await pair.alice.state())!;
    assert.equal(liveOwnSecrets(state).length, 2); // sending and next: no new key without an answer
  });

  it('forgets retired keys after the grace window; late mail under them is expired', async () => {
    const pair = await conversationPair();
    await established(pair);
    const late = sent(await pair.alice.send(text('late')));
    plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('b1')))));
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('a2')))));
    pair.env.advance(DEFAULT_POLICY.graceMs + 1);
    plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('b2')))));
    const before = await pair.bob.state();
    const result = await pair.bob.receive(late);
    assert.equal(result.kind === 'error' && result.code, 'expired');
    assert.deepEqual(await pair.bob.state(), before);
    assert.equal(liveOwnSecrets((await pair.bob.state())!).length, 2);
  });
});

describe('acknowledgement', () => {
  it('is due only after the delay, and lets the other side retire its key', async () => {
    const pair = await conversationPair();
    await established(pair);
    sent(await pair.alice.send(text('news')));
    const news = sent(await pair.alice.send(text('more news')));
    plaintextOf(await pair.bob.receive(news));
    assert.equal(await pair.bob.acknowledgeIfDue(), null);
    pair.env.advance(DEFAULT_POLICY.ackDelayMs);
    const ack = await pair.bob.acknowledgeIfDue();
    assert.ok(ack && ack.kind === 'encrypted');
    assert.equal(peekType(ack.message), MessageType.Ack);
    const before = liveOwnSecrets((await pair.alice.state())!).map((k) => k.id);
    const result = await pair.alice.receive(ack.message);
    assert.equal(result.kind, 'ignore');
    const after = liveOwnSecrets((await pair.alice.state())!).map((k) => k.id);
    assert.ok(Math.max(...after) > Math.max(...before), 'the ack made Alice rotate');
    assert.equal(await pair.bob.acknowledgeIfDue(), null, 'no second ack for the same share');
  });

  it('is due again when the peer still writes under its older key: the first one was lost', async () => {
    const pair = await conversationPair();
    await established(pair);
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('news')))));
    pair.env.advance(DEFAULT_POLICY.ackDelayMs);
    const lost = await pair.bob.acknowledgeIfDue();
    assert.ok(lost && lost.kind === 'encrypted', 'an ack that never reaches Alice');
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('still under the old key')))));
    assert.equal(await pair.bob.acknowledgeIfDue(), null, 'not before the delay');
    pair.env.advance(DEFAULT_POLICY.ackDelayMs);
    const again = await pair.bob.acknowledgeIfDue();
    assert.ok(again && again.kind === 'encrypted', 'acknowledged again');
    const before = liveOwnSecrets((await pair.alice.state())!).map((k) => k.id);
    assert.equal((await pair.alice.receive(again.message)).kind, 'ignore');
    const after = liveOwnSecrets((await pair.alice.state())!).map((k) => k.id);
    assert.ok(Math.max(...after) > Math.max(...before), 'this one made Alice rotate');
  });
});

describe('MAC key revelation (paper 4.4)', () => {
  it('reveals a used MAC key once its pair is forgotten, so anyone can re-MAC the old message', async () => {
    const pair = await conversationPair();
    await established(pair);
    const old = sent(await pair.alice.send(text('secret words')));
    plaintextOf(await pair.bob.receive(old));
    plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('ok')))));
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('ok2')))));
    plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('ok3')))));
    pair.env.advance(DEFAULT_POLICY.graceMs + 1);
    const carrying = sent(await pair.bob.send(text('later')));
    const { message } = decodeSealed(carrying);
    assert.ok(message.reveals.length > 0, 'Bob reveals MAC keys of forgotten pairs');
    const decoded = decodeSealed(old);
    const forged = message.reveals.some((key) => equalBytes(hmacSha256(key, decoded.authenticated), decoded.message.mac));
    assert.ok(forged, 'the revealed key authenticates the old message: it is forgeable now');
  });
});

describe('replay', () => {
  it('rejects a duplicate data message and leaves the state alone', async () => {
    const pair = await conversationPair();
    await established(pair);
    const m = sent(await pair.alice.send(text('once')));
    assert.equal(plaintextOf(await pair.bob.receive(m)), 'once');
    const before = await pair.bob.state();
    const again = await pair.bob.receive(m);
    assert.equal(again.kind === 'error' && again.code, 'replay');
    assert.deepEqual(await pair.bob.state(), before);
  });

  it('rejects a duplicate first mail', async () => {
    const pair = await conversationPair();
    const first = sent(await pair.alice.send(text('hi')));
    plaintextOf(await pair.bob.receive(first));
    const again = await pair.bob.receive(first);
    assert.equal(again.kind === 'error' && again.code, 'replay');
  });
});

describe('crossing first mails', () => {
  it('both start at once: both plaintexts arrive and one session results', async () => {
    const pair = await conversationPair();
    const fromAlice = sent(await pair.alice.send(text('alice starts')));
    const fromBob = sent(await pair.bob.send(text('bob starts')));
    assert.equal(plaintextOf(await pair.bob.receive(fromAlice)), 'alice starts');
    assert.equal(plaintextOf(await pair.alice.receive(fromBob)), 'bob starts');
    const kinds = [(await pair.alice.state())!.kind, (await pair.bob.state())!.kind].sort();
    assert.deepEqual(kinds, ['initiating', 'responding']);
    const [initiator, responder] = (await pair.alice.state())!.kind === 'initiating' ? [pair.alice, pair.bob] : [pair.bob, pair.alice];
    plaintextOf(await initiator.receive(sent(await responder.send(text('reply')))));
    assert.equal(plaintextOf(await responder.receive(sent(await initiator.send(text('data'))))), 'data');
    assert.equal((await pair.alice.state())!.kind, 'established');
    assert.equal((await pair.bob.state())!.kind, 'established');
  });
});

describe('crossing first mails, delivered late', () => {
  it("the losing side's first mail arriving after the session is set up only delivers its text", async () => {
    const pair = await conversationPair();
    const fromAlice = sent(await pair.alice.send(text('alice starts')));
    pair.env.advance(10);
    const fromBob = sent(await pair.bob.send(text('bob starts')));
    const aliceWins = Buffer.compare((await pair.alice.state())!.origin.share, (await pair.bob.state())!.origin.share) > 0;
    const [winner, loser, winnersFirst, losersFirst] = aliceWins
      ? [pair.alice, pair.bob, fromAlice, fromBob]
      : [pair.bob, pair.alice, fromBob, fromAlice];
    plaintextOf(await loser.receive(winnersFirst));
    pair.env.advance(10);
    plaintextOf(await winner.receive(sent(await loser.send(text('reply')))));
    plaintextOf(await loser.receive(sent(await winner.send(text('data')))));
    const before = (await winner.state())!;
    plaintextOf(await winner.receive(losersFirst));
    const after = (await winner.state())!;
    assert.equal(after.kind, 'established');
    assert.deepEqual(after.kind === 'established' && after.keys, before.kind === 'established' && before.keys);
    assert.equal(plaintextOf(await loser.receive(sent(await winner.send(text('still one session'))))), 'still one session');
  });
});

describe('lost state and NAK (paper 5.1)', () => {
  async function bobLosesState(pair: Pair) {
    const b = pair.ids.bob;
    const a = pair.ids.alice;
    return new Conversation({
      store: new MemorySessionStore(),
      parties: partiesFor(b, a),
      peerEncryptionKey: a.publicKey,
      sealer: new OpenPgpSealer([b.privateKey]),
      env: pair.env,
    });
  }

  it('answers an unreadable message with a NAK and a fresh start; the cached message is re-sent once authenticated', async () => {
    const pair = await conversationPair();
    await established(pair);
    const bob2 = await bobLosesState(pair);
    pair.env.advance(1000);
    const lost = sent(await pair.alice.send(text('did you get this?')));
    const result = await bob2.receive(lost);
    assert.equal(result.kind === 'error' && result.code, 'no_session');
    assert.equal(result.outgoing.length, 2);
    const [nak, fresh] = result.outgoing as [Uint8Array, Uint8Array];
    assert.equal(peekType(nak), MessageType.Nak);
    assert.equal(peekType(fresh), MessageType.First);

    const onNak = await pair.alice.receive(nak);
    assert.equal(onNak.kind, 'ignore');
    assert.equal(onNak.outgoing.length, 0, 'an unauthenticated NAK makes nothing be re-sent');

    const onFresh = await pair.alice.receive(fresh);
    assert.equal(onFresh.kind, 'ignore');
    assert.equal(onFresh.outgoing.length, 1, 'the ring-signed fresh start lets the cached message go out');
    assert.equal(plaintextOf(await bob2.receive(onFresh.outgoing[0]!)), 'did you get this?');
  });

  it('never re-sends after a NAK alone, nor after a first mail from someone else', async () => {
    const pair = await conversationPair();
    await established(pair);
    sent(await pair.alice.send(text('private')));
    const bob2 = await bobLosesState(pair);
    const nak = (await bob2.receive(sent(await pair.alice.send(text('x'))))).outgoing[0]!;
    assert.equal((await pair.alice.receive(nak)).outgoing.length, 0);
    // Mallory, with her own keys, sends a first mail to Alice claiming nothing special.
    const mallory = await identity('mallory');
    const fake = new Conversation({
      store: new MemorySessionStore(),
      parties: partiesFor(mallory, pair.ids.alice),
      peerEncryptionKey: pair.ids.alice.publicKey,
      sealer: new OpenPgpSealer([mallory.privateKey]),
      env: pair.env,
    });
    const first = sent(await fake.send(text('please resend')));
    const result = await pair.alice.receive(first);
    assert.equal(result.kind, 'error');
    assert.equal(result.outgoing.length, 0);
  });
});

describe('the OTR re-send attack (§13)', () => {
  /** Mallory holds Alice's current ring secret (stolen or leaked) and nothing else of hers. */
  async function mallory(pair: Pair): Promise<Conversation> {
    const m = await identity('mallory');
    return new Conversation({
      store: new MemorySessionStore(),
      parties: partiesFor(pair.ids.alice, pair.ids.bob),
      peerEncryptionKey: pair.ids.bob.publicKey,
      sealer: new OpenPgpSealer([m.privateKey]),
      env: pair.env,
    });
  }

  /** Established, then Bob's secret under (his key 2, Alice's key 2), not yet read by Alice. */
  async function bobSendsSecret(pair: Pair): Promise<Uint8Array> {
    await established(pair);
    return sent(await pair.bob.send(text('TOP SECRET from Bob')));
  }

  /** Mallory's fresh start, signed a second later than anything Alice signed: Bob's session is replaced. */
  async function assertNoResend(pair: Pair, payload = ''): Promise<void> {
    pair.env.advance(1000);
    const result = await pair.bob.receive(sent(await (await mallory(pair)).send(text(payload))));
    assert.notEqual(result.kind, 'error', 'the forged fresh start is accepted: it is ring-signed');
    assert.deepEqual(result.outgoing, [], 'Bob re-sends nothing into the new session');
    const state = (await pair.bob.state())!;
    assert.equal(state.kind, 'responding', 'the session was replaced');
    assert.equal(state.lastSent, null, 'and no copy of the old plaintext is kept');
  }

  it('a NAK naming nothing of ours, authenticated mail, then a fresh first mail days later: nothing re-sent', async () => {
    const pair = await conversationPair();
    const secret = await bobSendsSecret(pair);
    plaintextOf(await pair.alice.receive(secret));
    const stray = await pair.bob.receive(encodeNak({ senderKeyId: 7, recipientKeyId: 7, counter: 7 }));
    assert.equal(stray.kind, 'ignore');
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('thanks')))));
    pair.env.advance(4 * 24 * 3_600_000);
    await assertNoResend(pair, 'hi again, resend please');
  });

  it('a NAK that names the message (its ids are on the wire) counts only within the short window', async () => {
    const pair = await conversationPair();
    const secret = await bobSendsSecret(pair);
    const before = await pair.bob.state();
    assert.equal((await pair.bob.receive(nakFor(secret))).kind, 'ignore');
    assert.notDeepEqual(await pair.bob.state(), before, 'the naming NAK is recorded');
    pair.env.advance(DEFAULT_POLICY.nakResendWindowMs + 1);
    await assertNoResend(pair);
  });

  it('a NAK naming the message is cancelled by any authenticated mail from the peer', async () => {
    const pair = await conversationPair();
    const secret = await bobSendsSecret(pair);
    await pair.bob.receive(nakFor(secret));
    // Alice is alive: her mail (written before she read Bob's) proves the NAK false.
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('still here')))));
    assert.ok((await pair.bob.state())!.lastSent, 'this mail does not acknowledge the secret: the copy stays');
    await assertNoResend(pair);
  });

  it('a message the peer acknowledged is no longer kept, so no NAK can name it', async () => {
    const pair = await conversationPair();
    const secret = await bobSendsSecret(pair);
    plaintextOf(await pair.alice.receive(secret));
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('got it')))));
    assert.equal((await pair.bob.state())!.lastSent, null, 'Alice answered under the key Bob announced with it');
    const before = await pair.bob.state();
    await pair.bob.receive(nakFor(secret));
    assert.deepEqual(await pair.bob.state(), before, 'the NAK names nothing we keep: ignored');
    await assertNoResend(pair);
  });

  it('control: a naming NAK and the fresh start within the window do re-send (what the attacks lack)', async () => {
    const pair = await conversationPair();
    const secret = await bobSendsSecret(pair);
    await pair.bob.receive(nakFor(secret));
    pair.env.advance(DEFAULT_POLICY.nakResendWindowMs); // the window's last instant (now − nakAt ≤ nakResendWindowMs)
    const result = await pair.bob.receive(sent(await (await mallory(pair)).send(text(''))));
    assert.equal(result.outgoing.length, 1, 'the re-send: a thief with the NAK in time gets the one unacknowledged message');
  });

  it('a NAK for an older message than the copy does not count', async () => {
    const pair = await conversationPair();
    const older = await bobSendsSecret(pair);
    sent(await pair.bob.send(text('a later message')));
    const before = await pair.bob.state();
    await pair.bob.receive(nakFor(older));
    assert.deepEqual(await pair.bob.state(), before);
  });
});

describe('keystream never repeats (§7, §8.4, §9.3)', () => {
  const xor = (a: Uint8Array, b: Uint8Array): Uint8Array => a.map((x, i) => x ^ b[i]!);

  it('a hostile peer re-announcing its current share is refused, so counters never restart under old keys', async () => {
    const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
    const env = new TestEnv();
    const pa = partiesFor(a, b);
    const pb = partiesFor(b, a);
    const first = send(initiate(env), pa, text('first'), env);
    let alice = first.state;
    assert.equal(first.outgoing.kind, 'first');
    let bob = receiveFirst(null, pb, (first.outgoing as { inner: Uint8Array }).inner, env).state!;
    const wire = (step: SendStep): Uint8Array => (step.outgoing as { bytes: Uint8Array }).bytes;
    let step = send(bob, pb, text('reply'), env);
    bob = step.state;
    alice = receiveSealed(alice, pa, wire(step), env).state!;
    step = send(alice, pa, text('data'), env);
    alice = step.state;
    bob = receiveSealed(bob, pb, wire(step), env).state!;
    assert.equal(bob.kind, 'established');
    // Hostile Bob announces, as his "next" share, the one he sends under.
    const keys = (bob as EstablishedState).keys;
    const hostile: EstablishedState = {
      ...(bob as EstablishedState),
      keys: { ...keys, ours: { ...keys.ours, next: { ...keys.ours.sending, id: keys.ours.next.id } } },
    };
    const reannounce = wire(send(hostile, pb, text('same share again'), env));
    assert.throws(
      () => receiveSealed(alice, pa, reannounce, env),
      (error: ProtocolError) => error.code === 'unexpected',
      'Alice refuses it: she would otherwise count again from 1 under keys she already used',
    );
  });

  it('the key ids are in the key schedule: the same two shares under other ids give other keys', () => {
    const ours = generateDhKeyPair();
    const theirs = generateDhKeyPair();
    const k1 = deriveDirectionKeys(ours.secret, { id: 1, public: ours.public }, { id: 2, public: theirs.public }, 'send');
    const k2 = deriveDirectionKeys(ours.secret, { id: 1, public: ours.public }, { id: 3, public: theirs.public }, 'send');
    assert.ok(!equalBytes(k1.key, k2.key) && !equalBytes(k1.macKey, k2.macKey));
  });

  async function restoredBob(pair: Pair, backup: SessionState): Promise<Conversation> {
    const store = new MemorySessionStore();
    await store.save(toHex(pair.ids.bob.fingerprint), toHex(pair.ids.alice.fingerprint), backup, 0);
    return new Conversation({
      store,
      parties: partiesFor(pair.ids.bob, pair.ids.alice),
      peerEncryptionKey: pair.ids.alice.publicKey,
      sealer: new OpenPgpSealer([pair.ids.bob.privateKey]),
      env: pair.env,
    });
  }

  /** Two messages under the same pair and counter: their ciphertexts do not xor to the plaintexts' xor. */
  function assertNoKeystreamReuse(c1: Uint8Array, c2: Uint8Array, p1: Uint8Array, p2: Uint8Array): void {
    const m1 = decodeSealed(c1).message;
    const m2 = decodeSealed(c2).message;
    assert.deepEqual(
      [m2.senderKeyId, m2.recipientKeyId, m2.counter],
      [m1.senderKeyId, m1.recipientKeyId, m1.counter],
      'same pair, same counter',
    );
    assert.equal(p1.length, p2.length);
    assert.ok(!equalBytes(xor(m1.ciphertext, m2.ciphertext), xor(p1, p2)), 'c1 xor c2 is not p1 xor p2: no keystream repeats');
  }

  it('a store restored from a backup repeats no keystream; the receiver says rewound and the conversation recovers', async () => {
    const pair = await conversationPair();
    await established(pair);
    const backup = (await pair.bob.state())!;
    const p1 = text('written before the crash');
    const p2 = text('written after a restore!');
    const c1 = sent(await pair.bob.send(p1));
    assert.equal(plaintextOf(await pair.alice.receive(c1)), str(p1));
    const bob = await restoredBob(pair, backup);
    pair.env.advance(1000);
    const c2 = sent(await bob.send(p2));
    assertNoKeystreamReuse(c1, c2, p1, p2);

    const before = await pair.alice.state();
    const result = await pair.alice.receive(c2);
    assert.equal(result.kind === 'error' && result.code, 'rewound', 'authentic, but the counter was used with another nonce');
    assert.notDeepEqual(await pair.alice.state(), before, 'Alice starts again');
    const [nak, fresh] = result.outgoing as [Uint8Array, Uint8Array];
    assert.equal(peekType(nak), MessageType.Nak);
    assert.equal(peekType(fresh), MessageType.First);
    // Recovery as for lost state (§13): the NAK names Bob's last message, the fresh start re-sends it.
    await bob.receive(nak);
    const restarted = await bob.receive(fresh);
    assert.equal(restarted.outgoing.length, 1, 'Bob re-sends what Alice could not accept');
    assert.equal(plaintextOf(await pair.alice.receive(restarted.outgoing[0]!)), str(p2));
    assert.equal(plaintextOf(await bob.receive(sent(await pair.alice.send(text('all good again'))))), 'all good again');
    assert.equal(plaintextOf(await pair.alice.receive(sent(await bob.send(text('yes'))))), 'yes');
  });

  it('a store copied to a second machine repeats no keystream; the second copy is refused as rewound', async () => {
    const pair = await conversationPair();
    await established(pair);
    const copy = await restoredBob(pair, (await pair.bob.state())!);
    const p1 = text('from the laptop');
    const p2 = text('from a desktop');
    const padded = concatBytes(p2, text('!'));
    const c1 = sent(await pair.bob.send(p1));
    const c2 = sent(await copy.send(padded));
    assertNoKeystreamReuse(c1, c2, p1, padded);
    assert.equal(plaintextOf(await pair.alice.receive(c1)), str(p1));
    const result = await pair.alice.receive(c2);
    assert.equal(result.kind === 'error' && result.code, 'rewound');
    assert.equal(result.outgoing.length, 2, 'NAK and fresh start');
  });
});

describe('key-compromise impersonation (§20.9)', () => {
  it("whoever holds Bob's ring secret makes Bob accept a first mail naming Alice, with nothing of hers", async () => {
    const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
    const env = new TestEnv();
    const dhShare = env.newDhKey().public;
    const payload = text('from "Alice", signed with the secret stolen from Bob');
    const unsigned: AuthBlock = {
      senderFingerprint: a.fingerprint,
      recipientFingerprint: b.fingerprint,
      senderRingKey: a.ring.public,
      recipientRingKey: b.ring.public,
      created: env.now(),
      messageId: env.random(16),
      signature: new Uint8Array(0),
    };
    const ring = prepareRing(...sortRing(a.ring.public, b.ring.public));
    const auth = signAuthBlock(unsigned, ring, b.ring.secret, firstContext(unsigned, dhShare, payload), env.random(32));
    const step = receiveFirst(null, partiesFor(b, a), encodeFirstInner({ auth, dhShare, payload }), env);
    assert.equal(
      str(step.payload!),
      str(payload),
      'accepted as authentic mail from Alice: the price of deniability toward the correspondent',
    );
  });
});

describe('restart', () => {
  it('a newer first mail from the peer restarts; an older delayed one is only delivered', async () => {
    const pair = await conversationPair();
    const early = sent(await pair.alice.send(text('early copy')));
    plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('first')))));
    await (async () => {
      plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('reply')))));
      plaintextOf(await pair.bob.receive(sent(await pair.alice.send(text('data')))));
    })();
    assert.equal(plaintextOf(await pair.bob.receive(early)), 'early copy');
    assert.equal((await pair.bob.state())!.kind, 'established');
  });
});

describe('forgetting on schedule', () => {
  it('forgetExpired drops retired keys and the re-send copy without any traffic', async () => {
    const pair = await conversationPair();
    await established(pair);
    plaintextOf(await pair.alice.receive(sent(await pair.bob.send(text('b1')))));
    sent(await pair.alice.send(text('a2, not yet acknowledged')));
    assert.equal(liveOwnSecrets((await pair.alice.state())!).length, 3);
    assert.ok((await pair.alice.state())!.lastSent);
    pair.env.advance(DEFAULT_POLICY.resendWindowMs + 1);
    await pair.alice.forgetExpired();
    const state = (await pair.alice.state())!;
    assert.equal(liveOwnSecrets(state).length, 2);
    assert.equal(state.lastSent, null, 'the plaintext copy is gone');
  });
});

describe('NAK rate limit', () => {
  it('answers a burst of unreadable mail with one NAK and fresh start per interval', async () => {
    const pair = await conversationPair();
    await established(pair);
    const stranger = new Conversation({
      store: new MemorySessionStore(),
      parties: partiesFor(pair.ids.bob, pair.ids.alice),
      peerEncryptionKey: pair.ids.alice.publicKey,
      sealer: new OpenPgpSealer([pair.ids.bob.privateKey]),
      env: pair.env,
    });
    const first = await stranger.receive(sent(await pair.alice.send(text('one'))));
    assert.equal(first.outgoing.length, 2);
    const second = await stranger.receive(sent(await pair.alice.send(text('two'))));
    assert.equal(second.kind === 'error' && second.code, 'no_session');
    assert.equal(second.outgoing.length, 0);
    pair.env.advance(DEFAULT_POLICY.nakIntervalMs);
    assert.equal((await stranger.receive(sent(await pair.alice.send(text('three'))))).outgoing.length, 2);
  });
});

describe('first mail envelope', () => {
  it('refuses a first mail that carries an OpenPGP signature', async () => {
    const pair = await conversationPair();
    const first = sent(await pair.alice.send(text('hello')));
    const { plaintext: inner } = await new OpenPgpSealer([pair.ids.bob.privateKey]).open(decodeFirstOuter(first));
    const signed = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: inner }),
      encryptionKeys: pair.ids.bob.publicKey,
      signingKeys: pair.ids.alice.privateKey,
      format: 'binary',
    });
    const result = await pair.bob.receive(encodeFirstOuter(signed));
    assert.equal(result.kind === 'error' && result.code, 'malformed');
    assert.equal(await pair.bob.state(), null);
  });

  it('refuses signed times far in the future or too old', async () => {
    const pair = await conversationPair();
    const first = sent(await pair.alice.send(text('hello')));
    const { plaintext: inner } = await new OpenPgpSealer([pair.ids.bob.privateKey]).open(decodeFirstOuter(first));
    const parties = partiesFor(pair.ids.bob, pair.ids.alice);
    const at = (time: number) => new TestEnv(time);
    const code = (time: number) => {
      try {
        receiveFirst(null, parties, inner, at(time));
        return 'accepted';
      } catch (error) {
        return (error as ProtocolError).code;
      }
    };
    assert.equal(code(pair.env.time - DEFAULT_POLICY.maxClockSkewMs - 1), 'unexpected');
    assert.equal(code(pair.env.time + DEFAULT_POLICY.maxAuthAgeMs + 1), 'expired');
    assert.equal(code(pair.env.time + 1000), 'accepted');
  });
});

describe('restart keeps deniability', () => {
  it('MAC keys of the replaced session are revealed by the new one', async () => {
    const pair = await conversationPair();
    await established(pair);
    const old = sent(await pair.alice.send(text('under the old session')));
    plaintextOf(await pair.bob.receive(old));
    // Alice loses her state and starts over; Bob restarts as responder.
    const alice2 = new Conversation({
      store: new MemorySessionStore(),
      parties: partiesFor(pair.ids.alice, pair.ids.bob),
      peerEncryptionKey: pair.ids.bob.publicKey,
      sealer: new OpenPgpSealer([pair.ids.alice.privateKey]),
      env: pair.env,
    });
    pair.env.advance(1000);
    plaintextOf(await pair.bob.receive(sent(await alice2.send(text('new start')))));
    const reply = decodeSealed(sent(await pair.bob.send(text('welcome back'))));
    const decoded = decodeSealed(old);
    assert.ok(reply.message.reveals.some((key) => equalBytes(hmacSha256(key, decoded.authenticated), decoded.message.mac)));
  });
});

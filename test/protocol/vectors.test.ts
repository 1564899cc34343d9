// Checks fixtures/vectors/messages.json: the committed file is what the generator produces,
// every positive vector decodes, re-encodes and recomputes from its recorded intermediates
// (independently, with @noble/curves and @noble/hashes where node:crypto was used to make
// them), the engine accepts the positive vectors in sequence, and every negative vector fails
// with exactly its stated code.
import assert from 'node:assert/strict';
import { createCipheriv, createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { x25519 } from '@noble/curves/ed25519.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';
import {
  MESSAGE_VECTORS_PATH,
  renderVectors,
  type AuthRecord,
  type BundleVector,
  type DecoderName,
  type FirstVector,
  type MessageVectors,
  type NakVector,
  type Party,
  type PositiveVector,
  type SealedFields,
  type SealedVector,
} from '../../fixtures/vectors/format.ts';
import { buildMessageVectors } from '../../scripts/gen-message-vectors.ts';
import { concatBytes, fromHex, toHex, u32be, u64be, utf8 } from '../../src/crypto/bytes.ts';
import { generateRingSecret, prepareRing, ringPublicKey, ringSign, ringVerifyKeys } from '../../src/crypto/ring.ts';
import { ProtocolError, type ProtocolErrorCode } from '../../src/protocol/errors.ts';
import type { Parties } from '../../src/protocol/authentication.ts';
import { acknowledge, initiate, nakFor, receiveFirst, receiveNak, receiveSealed, send } from '../../src/protocol/session.ts';
import { LABELS } from '../../src/protocol/keyschedule.ts';
import type { SessionState } from '../../src/protocol/state.ts';
import {
  decodeBundle,
  decodeFirstInner,
  decodeFirstOuter,
  decodeNak,
  decodeReplyPlaintext,
  decodeSealed,
  encodeAuthenticated,
  encodeBundle,
  encodeFirstInner,
  encodeFirstOuter,
  encodeNak,
  encodeSealed,
  MessageType,
  peekType,
  type SealedMessage,
} from '../../src/protocol/wire.ts';
import { TestEnv } from '../../kit/parties.ts';

const fileText = readFileSync(MESSAGE_VECTORS_PATH, 'utf8');
const vectors = JSON.parse(fileText) as MessageVectors;
const h = fromHex;
const sha512 = (label: string): Uint8Array => new Uint8Array(createHash('sha512').update(label, 'utf8').digest());
const byName = new Map<string, PositiveVector>(vectors.positive.map((v) => [v.name, v]));

function named<K extends PositiveVector['kind']>(name: string, kind: K): Extract<PositiveVector, { kind: K }> {
  const v = byName.get(name);
  assert.ok(v && v.kind === kind, `vector ${name} of kind ${kind}`);
  return v as Extract<PositiveVector, { kind: K }>;
}

function assertHex(actual: Uint8Array, expected: string, what: string): void {
  assert.equal(toHex(actual), expected, what);
}

function expectProtocolError(fn: () => unknown, code: ProtocolErrorCode, what: string): void {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `${what}: expected a ProtocolError, got ${String(error)}`);
    assert.equal(error.code, code, `${what}: ${error.message}`);
    return;
  }
  assert.fail(`${what}: expected ProtocolError ${code}, nothing thrown`);
}

// ---------------------------------------------------------------- parties from the setup

function partiesFromSetup(v: MessageVectors): Record<Party, Parties> {
  const ring = (p: 'alice' | 'bob') => ({ secret: h(v.setup[p].ring_secret), public: h(v.setup[p].ring_public) });
  const a = ring('alice');
  const b = ring('bob');
  return {
    alice: {
      local: { fingerprint: h(v.setup.alice.fingerprint), ringKeys: [a] },
      peer: { fingerprint: h(v.setup.bob.fingerprint), ringKeys: [b.public] },
    },
    bob: {
      local: { fingerprint: h(v.setup.bob.fingerprint), ringKeys: [b] },
      peer: { fingerprint: h(v.setup.alice.fingerprint), ringKeys: [a.public] },
    },
  };
}
const parties = partiesFromSetup(vectors);
const ringSecretOf = (party: Party): Uint8Array => h(vectors.setup[party].ring_secret);

// ---------------------------------------------------------------- independent recomputation

function aes256ctr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  return new Uint8Array(Buffer.concat([cipher.update(data), cipher.final()]));
}

const macKeyOf = (key: Uint8Array): Uint8Array => sha256(concatBytes(utf8(LABELS.macKey), key));

function checkAuth(auth: AuthRecord, signer: Party, payload: Uint8Array, context: Uint8Array): void {
  assertHex(
    concatBytes(
      h(auth.sender_fingerprint),
      h(auth.recipient_fingerprint),
      h(auth.sender_ring_key),
      h(auth.recipient_ring_key),
      u64be(auth.created),
      h(auth.message_id),
      h(auth.signature),
    ),
    auth.encoded,
    'auth block encoding',
  );
  assertHex(sha256(payload), auth.payload_sha256, 'payload hash');
  assertHex(context, auth.context, 'signing context');
  const [p0, p1] = auth.ring;
  assert.ok(Buffer.compare(h(p0), h(p1)) < 0, 'ring is sorted');
  assert.deepEqual([...auth.ring].sort(), [auth.sender_ring_key, auth.recipient_ring_key].sort(), 'ring = {sender, recipient}');
  assert.equal(auth.ring[auth.signer_index], auth.sender_ring_key, 'signer index');
  assert.equal(auth.sender_ring_key, vectors.setup[signer].ring_public, 'signed by the sender');
  ringVerifyKeys(h(p0), h(p1), context, h(auth.signature));
  assertHex(ringSign(prepareRing(h(p0), h(p1)), ringSecretOf(signer), context, h(auth.rand)), auth.signature, 'signature from rand');
}

function firstContextOf(auth: AuthRecord, dhShare: string, payload: Uint8Array): Uint8Array {
  return concatBytes(
    utf8('offrecord/v1 first mail'),
    h('4f520101'),
    h(auth.sender_fingerprint),
    h(auth.recipient_fingerprint),
    h(auth.sender_ring_key),
    h(auth.recipient_ring_key),
    h(dhShare),
    u64be(auth.created),
    h(auth.message_id),
    sha256(payload),
  );
}

function replyContextOf(auth: AuthRecord, senderDh: string, answeredDh: string, nextDh: string, payload: Uint8Array): Uint8Array {
  return concatBytes(
    utf8('offrecord/v1 reply'),
    h('4f520102'),
    h(auth.sender_fingerprint),
    h(auth.recipient_fingerprint),
    h(auth.sender_ring_key),
    h(auth.recipient_ring_key),
    h(senderDh),
    h(answeredDh),
    h(nextDh),
    u64be(auth.created),
    h(auth.message_id),
    sha256(payload),
  );
}

function fieldsOf(m: SealedMessage): SealedFields {
  return {
    type: m.type,
    sender_key_id: m.senderKeyId,
    recipient_key_id: m.recipientKeyId,
    next_dh: toHex(m.nextDh),
    counter: m.counter,
    nonce: toHex(m.nonce),
    sender_dh: m.senderDh ? toHex(m.senderDh) : null,
    ciphertext_length: m.ciphertext.length,
    ciphertext: toHex(m.ciphertext),
    mac: toHex(m.mac),
    reveals: m.reveals.map(toHex),
  };
}

function checkSealed(v: SealedVector): void {
  const bytes = h(v.bytes);
  const { message, authenticated } = decodeSealed(bytes);
  assert.deepEqual(fieldsOf(message), v.fields, 'decoded fields');
  assert.equal(message.type, MessageType[v.type_name], 'type');
  assertHex(authenticated, v.authenticated, 'authenticated region');
  assertHex(encodeAuthenticated(message), v.authenticated, 're-encoded authenticated region');
  assertHex(encodeSealed(encodeAuthenticated(message), message.mac, message.reveals), v.bytes, 're-encoding');
  assertHex(concatBytes(h(v.authenticated), h(v.mac), ...v.fields.reveals.map(h)), v.bytes, 'authenticated || mac || reveals');

  // X25519 (noble) for every recorded key pair.
  const { dh, hkdf: k } = v;
  assertHex(x25519.getPublicKey(h(dh.sender_secret)), dh.sender_public, 'sender public');
  assertHex(x25519.getPublicKey(h(dh.recipient_secret)), dh.recipient_public, 'recipient public');
  assertHex(x25519.getPublicKey(h(dh.next_secret)), dh.next_public, 'next public');
  assert.equal(dh.sender_key_id, v.fields.sender_key_id);
  assert.equal(dh.recipient_key_id, v.fields.recipient_key_id);
  assert.equal(dh.next_public, v.fields.next_dh);
  if (v.fields.sender_dh !== null) assert.equal(v.fields.sender_dh, dh.sender_public, 'a reply carries the sender share');
  assertHex(x25519.getSharedSecret(h(dh.sender_secret), h(dh.recipient_public)), dh.shared_secret, 'shared secret (sender side)');
  assertHex(x25519.getSharedSecret(h(dh.recipient_secret), h(dh.sender_public)), dh.shared_secret, 'shared secret (recipient side)');

  // HKDF split, MAC keys, direction.
  const senderIsLow = Buffer.compare(h(dh.sender_public), h(dh.recipient_public)) < 0;
  assert.equal(k.sender_is_low, senderIsLow);
  assert.equal(k.low_public, senderIsLow ? dh.sender_public : dh.recipient_public);
  assert.equal(k.high_public, senderIsLow ? dh.recipient_public : dh.sender_public);
  assert.equal(k.low_key_id, senderIsLow ? dh.sender_key_id : dh.recipient_key_id);
  assert.equal(k.high_key_id, senderIsLow ? dh.recipient_key_id : dh.sender_key_id);
  assertHex(utf8(LABELS.sessionSalt), k.salt, 'salt');
  assertHex(
    concatBytes(utf8(LABELS.sessionInfo), h(k.low_public), u32be(k.low_key_id), h(k.high_public), u32be(k.high_key_id)),
    k.info,
    'info',
  );
  const okm = hkdf(sha256, h(dh.shared_secret), h(k.salt), h(k.info), 64);
  assertHex(okm, k.okm, 'HKDF output');
  assertHex(okm.subarray(0, 32), k.key_low_to_high, 'low-to-high key');
  assertHex(okm.subarray(32), k.key_high_to_low, 'high-to-low key');
  assertHex(macKeyOf(okm.subarray(0, 32)), k.mac_key_low_to_high, 'low-to-high MAC key');
  assertHex(macKeyOf(okm.subarray(32)), k.mac_key_high_to_low, 'high-to-low MAC key');
  assert.equal(v.direction_key, senderIsLow ? k.key_low_to_high : k.key_high_to_low, 'direction key is the sender direction');
  assert.equal(v.message_mac_key, senderIsLow ? k.mac_key_low_to_high : k.mac_key_high_to_low, 'message MAC key');
  assertHex(hmac(sha256, h(v.direction_key), concatBytes(utf8(LABELS.messageKey), h(v.fields.nonce))), v.message_key, 'message key');

  // Counter, IV, AES-CTR, MAC.
  const iv = concatBytes(u64be(v.fields.counter), new Uint8Array(8));
  assertHex(iv, v.iv, 'iv');
  assertHex(aes256ctr(h(v.message_key), iv, h(v.plaintext)), v.fields.ciphertext, 'AES-256-CTR');
  assertHex(hmac(sha256, h(v.message_mac_key), h(v.authenticated)), v.mac, 'HMAC-SHA256');
  assert.equal(v.mac, v.fields.mac);

  // Plaintext: the payload, or for a reply the auth block then the payload.
  if (v.type_name === 'Reply') {
    assert.ok(v.auth);
    assertHex(concatBytes(h(v.auth.encoded), h(v.payload)), v.plaintext, 'reply plaintext');
    const reply = decodeReplyPlaintext(h(v.plaintext));
    assertHex(reply.payload, v.payload, 'reply payload');
    assertHex(reply.auth.signature, v.auth.signature, 'reply signature');
    const first = named('alice_first', 'first_inner');
    assert.equal(v.dh.recipient_public, first.fields.dh_share, 'the reply answers the first share');
    checkAuth(v.auth, v.sender, h(v.payload), replyContextOf(v.auth, dh.sender_public, dh.recipient_public, dh.next_public, h(v.payload)));
  } else {
    assert.equal(v.auth, null);
    assert.equal(v.plaintext, v.payload);
    assert.equal(v.fields.ciphertext_length === 0, v.type_name === 'Ack', 'only an ack is empty');
  }
  assert.equal(v.revealed.length, v.fields.reveals.length);
  v.revealed.forEach((r, i) => {
    assert.equal(r.mac_key, v.fields.reveals[i], 'revealed key on the wire');
    assert.equal(named(r.of_vector, 'sealed').message_mac_key, r.mac_key, `revealed key is the MAC key of ${r.of_vector}`);
  });
}

function checkFirst(v: FirstVector): void {
  const bytes = h(v.bytes);
  const m = decodeFirstInner(bytes);
  assertHex(m.dhShare, v.fields.dh_share, 'DH share');
  assertHex(m.payload, v.fields.payload, 'payload');
  assert.equal(v.fields.payload, v.payload);
  assert.deepEqual(
    {
      sender_fingerprint: toHex(m.auth.senderFingerprint),
      recipient_fingerprint: toHex(m.auth.recipientFingerprint),
      sender_ring_key: toHex(m.auth.senderRingKey),
      recipient_ring_key: toHex(m.auth.recipientRingKey),
      created: m.auth.created,
      message_id: toHex(m.auth.messageId),
      signature: toHex(m.auth.signature),
    },
    {
      sender_fingerprint: v.auth.sender_fingerprint,
      recipient_fingerprint: v.auth.recipient_fingerprint,
      sender_ring_key: v.auth.sender_ring_key,
      recipient_ring_key: v.auth.recipient_ring_key,
      created: v.auth.created,
      message_id: v.auth.message_id,
      signature: v.auth.signature,
    },
  );
  assertHex(encodeFirstInner(m), v.bytes, 're-encoding');
  assertHex(
    concatBytes(h('4f520101'), h(v.fields.dh_share), h(v.auth.encoded), h(v.payload)),
    v.bytes,
    'prefix || share || auth || payload',
  );
  assertHex(x25519.getPublicKey(h(v.dh.secret)), v.dh.public, 'x1 public');
  assert.equal(v.dh.public, v.fields.dh_share);
  checkAuth(v.auth, v.sender, h(v.payload), firstContextOf(v.auth, v.fields.dh_share, h(v.payload)));
  // The outer framing rule: the prefix, then the (randomized) OpenPGP message.
  const sealed = h('c0ffee');
  assertHex(encodeFirstOuter(sealed), v.outer.prefix + 'c0ffee', 'outer framing');
  assertHex(decodeFirstOuter(h(v.outer.prefix + 'c0ffee')), 'c0ffee', 'outer body');
}

function checkNak(v: NakVector): void {
  const nak = decodeNak(h(v.bytes));
  assert.deepEqual({ sender_key_id: nak.senderKeyId, recipient_key_id: nak.recipientKeyId, counter: nak.counter }, v.fields);
  assertHex(encodeNak(nak), v.bytes, 're-encoding');
  const of = named(v.of_vector, 'sealed');
  assert.deepEqual(
    v.fields,
    { sender_key_id: of.fields.sender_key_id, recipient_key_id: of.fields.recipient_key_id, counter: of.fields.counter },
    'the NAK names the message it answers',
  );
  assertHex(nakFor(h(of.bytes)), v.bytes, 'nakFor');
}

function withoutLabel({ certificate_label: _label, ...rest }: BundleVector['fields']): Omit<BundleVector['fields'], 'certificate_label'> {
  return rest;
}

function checkBundle(v: BundleVector): void {
  const b = decodeBundle(h(v.bytes));
  assert.deepEqual(
    {
      format: 1,
      identity: toHex(b.identity),
      created: b.created,
      certificate: toHex(b.certificate),
      ring_keys: b.ringKeys.map((k) => ({
        public_key: toHex(k.public),
        secret: toHex(k.secret),
        not_before: k.notBefore,
        not_after: k.notAfter,
        certification: toHex(k.certification),
      })),
      mac_keys: b.macKeys.map(toHex),
    },
    {
      ...withoutLabel(v.fields),
      ring_keys: v.fields.ring_keys.map(({ secret_label: _label, certification_label: _cert, ...rest }) => rest),
    },
  );
  assertHex(encodeBundle(b), v.bytes, 're-encoding');
  assertHex(sha256(h(v.body)), v.checksum, 'checksum');
  assert.equal(v.body + v.checksum, v.bytes);
  for (const k of v.fields.ring_keys) {
    assertHex(generateRingSecret(sha512(k.secret_label)), k.secret, 'ring secret from its label');
    assertHex(ringPublicKey(h(k.secret)), k.public_key, 'published public key matches its secret');
  }
  const revealed = vectors.positive.flatMap((p) => (p.kind === 'sealed' ? p.revealed.map((r) => r.mac_key) : []));
  assert.deepEqual(v.fields.mac_keys, [...revealed].sort(), 'the bundle publishes the revealed MAC keys');
  assert.equal(v.fields.identity, vectors.setup.alice.fingerprint);
}

// ---------------------------------------------------------------- replay

interface Replay {
  /** Receiver state and time just before each vector is received. */
  before: Map<string, { party: Party; state: SessionState | null; time: number }>;
  final: Record<Party, SessionState | null>;
}

/** Drives the engine through `sequence`, feeding each receiver the vector's bytes (not a fresh send). */
function replay(v: MessageVectors): Replay {
  const env = new TestEnv(v.setup.start_time, h(v.setup.seed));
  const states: Record<Party, SessionState | null> = { alice: null, bob: null };
  const before: Replay['before'] = new Map();
  const bytesOf = (name: string): Uint8Array => h(named(name, byName.get(name)!.kind).bytes);
  for (const step of v.sequence) {
    env.time = step.time;
    const party = step.party;
    switch (step.action) {
      case 'initiate':
        assert.equal(states[party], null);
        states[party] = initiate(env);
        break;
      case 'send':
      case 'acknowledge': {
        const state = states[party];
        assert.ok(state, `${party} has a session to send from`);
        const out = step.action === 'send' ? send(state, parties[party], h(step.payload), env) : acknowledge(state, parties[party], env);
        const produced = out.outgoing.kind === 'first' ? out.outgoing.inner : out.outgoing.bytes;
        assertHex(produced, named(step.vector, byName.get(step.vector)!.kind).bytes, `${step.vector} is what the engine sends`);
        states[party] = out.state;
        break;
      }
      case 'receiveFirst':
      case 'receiveSealed': {
        before.set(step.vector, { party, state: states[party], time: step.time });
        const bytes = bytesOf(step.vector);
        const r =
          step.action === 'receiveFirst'
            ? receiveFirst(states[party], parties[party], bytes, env)
            : receiveSealed(states[party], parties[party], bytes, env);
        assert.equal(r.payload === null ? null : toHex(r.payload), step.payload, `${step.vector} payload`);
        const vec = byName.get(step.vector)!;
        if (vec.kind === 'sealed' || vec.kind === 'first_inner') assert.equal(step.payload ?? '', vec.payload);
        assert.ok(r.state, 'a session after receiving');
        states[party] = r.state;
        break;
      }
      case 'nakFor':
        assertHex(nakFor(bytesOf(step.of)), named(step.vector, 'nak').bytes, 'nakFor');
        break;
      case 'receiveNak': {
        before.set(step.vector, { party, state: states[party], time: step.time });
        const r = receiveNak(states[party], bytesOf(step.vector), env);
        assert.equal(r.payload, null);
        assert.equal(r.state?.nakAt, step.time, 'the NAK marks the session');
        states[party] = r.state;
        break;
      }
    }
  }
  return { before, final: states };
}

let replayed: Replay | null = null;
const replayOnce = (): Replay => (replayed ??= replay(vectors));

// ---------------------------------------------------------------- tests

const DECODERS: Record<DecoderName, (bytes: Uint8Array) => unknown> = {
  decodeSealed,
  decodeFirstInner,
  decodeFirstOuter,
  decodeNak,
  decodeBundle,
  peekType,
};

describe('message vectors: the file', () => {
  it('equals buildMessageVectors() (deep) and its rendering (byte for byte)', () => {
    assert.deepStrictEqual(vectors, buildMessageVectors());
    assert.equal(fileText, renderVectors(buildMessageVectors()));
  });

  it('setup: fingerprints and ring keys derive from their labels', () => {
    for (const p of ['alice', 'bob', 'mallory'] as const) {
      const s = vectors.setup[p];
      assertHex(sha512(s.fingerprint_label).subarray(0, 20), s.fingerprint, `${p} fingerprint`);
      assertHex(generateRingSecret(sha512(s.ring_secret_label)), s.ring_secret, `${p} ring secret`);
      assertHex(ringPublicKey(h(s.ring_secret)), s.ring_public, `${p} ring public`);
    }
    assertHex(utf8(vectors.setup.seed_text), vectors.setup.seed, 'seed');
  });

  it('covers every message type and the cases the spec names', () => {
    const kinds = vectors.positive.map((v) => v.type_name);
    for (const t of ['First', 'Reply', 'Data', 'Ack', 'Nak', 'Bundle'] as const) assert.ok(kinds.includes(t), t);
    assert.ok(
      vectors.positive.some((v) => v.kind === 'sealed' && v.revealed.length > 0),
      'a message with reveals',
    );
    assert.ok(vectors.negative.length >= 40);
    for (const v of vectors.negative) assert.ok(v.comment.length > 0 && v.decoder in DECODERS);
  });
});

describe('message vectors: positive', () => {
  for (const v of vectors.positive) {
    it(`${v.name} (${v.type_name}) decodes, re-encodes and recomputes`, () => {
      assert.equal(peekType(h(v.bytes)), MessageType[v.type_name]);
      switch (v.kind) {
        case 'sealed':
          return checkSealed(v);
        case 'first_inner':
          return checkFirst(v);
        case 'nak':
          return checkNak(v);
        case 'bundle':
          return checkBundle(v);
      }
    });
  }

  it('the engine accepts every message in sequence', () => {
    const { before, final } = replayOnce();
    for (const v of vectors.positive) if (v.kind !== 'bundle') assert.ok(before.has(v.name), `${v.name} was received`);
    assert.equal(final.alice?.kind, 'established');
    assert.equal(final.bob?.kind, 'established');
  });
});

describe('message vectors: negative (decoders)', () => {
  for (const v of vectors.negative) {
    it(`${v.decoder}: ${v.comment} -> ${v.expect}`, () => {
      expectProtocolError(() => DECODERS[v.decoder](h(v.bytes)), v.expect, v.comment);
    });
  }
});

describe('message vectors: negative (small-order shares)', () => {
  it('the next shares called small order give an all-zero X25519 result (noble refuses them)', () => {
    const small = vectors.negative.filter((v) => v.comment.startsWith('next DH share of small order'));
    assert.equal(small.length, 5);
    const secret = sha512('any secret').subarray(0, 32);
    for (const v of small) {
      const share = h(v.bytes).subarray(12, 44);
      assert.throws(() => x25519.getSharedSecret(secret, share), Error, v.comment);
    }
  });
});

describe('message vectors: negative (engine)', () => {
  for (const v of vectors.engine_negative) {
    it(`${v.step} by ${v.receiver} before ${v.before}: ${v.engine_expect}`, () => {
      const at = replayOnce().before.get(v.before);
      assert.ok(at && at.party === v.receiver, `the replay reaches ${v.before} at ${v.receiver}`);
      const env = new TestEnv(at.time);
      const bytes = h(v.bytes);
      // Structurally fine: only the engine refuses it.
      if (v.step === 'receiveFirst') decodeFirstInner(bytes);
      else decodeSealed(bytes);
      expectProtocolError(
        () =>
          v.step === 'receiveFirst'
            ? receiveFirst(at.state, parties[v.receiver], bytes, env)
            : receiveSealed(at.state, parties[v.receiver], bytes, env),
        v.engine_expect,
        v.comment,
      );
      if (v.wrong_mac_key !== undefined) {
        const { authenticated, message } = decodeSealed(bytes);
        assertHex(hmac(sha256, h(v.wrong_mac_key), authenticated), toHex(message.mac), 'MAC under the wrong key');
      }
      if (v.forged_auth && v.signed_by) {
        const f = v.forged_auth;
        ringVerifyKeys(h(f.ring[0]), h(f.ring[1]), h(f.context), h(f.signature)); // a valid signature, by the wrong ring
        assert.ok(f.ring.includes(v.signed_by) && !f.ring.includes(vectors.setup.bob.ring_public), 'signed outside {Alice, Bob}');
      }
    });
  }
});

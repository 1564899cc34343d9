// Regenerates fixtures/vectors/messages.json: `npx tsx scripts/gen-message-vectors.ts`.
// One conversation is driven through the real session engine (src/protocol/session.ts) with
// fixed identities and a seeded TestEnv, so every DH secret, message id and ring-signature
// nonce is reproducible; every intermediate is recomputed here with node:crypto following
// src/protocol/keyschedule.ts and checked against what the engine produced.
// test/protocol/vectors.test.ts checks the committed file against buildMessageVectors().
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { concatBytes, equalBytes, fromHex, toHex, u32be, u64be, utf8 } from '../src/crypto/bytes.ts';
import { generateRingSecret, prepareRing, ringPublicKey, ringSign, ringVerifyKeys, sortRing } from '../src/crypto/ring.ts';
import { ProtocolError, type ProtocolErrorCode } from '../src/protocol/errors.ts';
import { firstContext, replyContext } from '../src/protocol/contexts.ts';
import { aesCtr, deriveDirectionKeys, hmacSha256, LABELS, macKeyFor, messageKey, x25519PublicKey } from '../src/protocol/keyschedule.ts';
import type { Parties } from '../src/protocol/authentication.ts';
import { DEFAULT_POLICY } from '../src/protocol/policy.ts';
import {
  acknowledge,
  initiate,
  nakFor,
  receiveFirst,
  receiveNak,
  receiveSealed,
  send,
  type ReceiveStep,
  type SendStep,
} from '../src/protocol/session.ts';
import { liveOwnSecrets, type OwnDhKey, type SessionState } from '../src/protocol/state.ts';
import {
  AUTH_BLOCK_LENGTH,
  decodeBundle,
  decodeFirstInner,
  decodeFirstOuter,
  decodeNak,
  decodeReplyPlaintext,
  decodeSealed,
  encodeAuthenticated,
  encodeBundle,
  encodeFirstInner,
  encodeReplyPlaintext,
  encodeSealed,
  LIMITS,
  MessageType,
  peekType,
  type AuthBlock,
  type SealedMessage,
} from '../src/protocol/wire.ts';
import { TestEnv } from '../kit/parties.ts';
import {
  MESSAGE_VECTORS_PATH,
  renderVectors,
  type Party,
  type DecoderName,
  type PartySetup,
  type SequenceStep,
  type AuthRecord,
  type DhRecord,
  type HkdfRecord,
  type SealedFields,
  type PositiveVector,
  type NegativeVector,
  type EngineNegativeVector,
  type MessageVectors,
} from '../fixtures/vectors/format.ts';

// ---------------------------------------------------------------- fixed inputs

const SEED_TEXT = 'offrecord/v1 message vectors';
const START = 1_700_000_000_000;
const MINUTE = 60_000;
const HOUR = 3_600_000;

const sha512 = (label: string): Uint8Array => new Uint8Array(createHash('sha512').update(label, 'utf8').digest());
const sha256 = (data: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(data).digest());
const hex = toHex;
const text = (s: string): Uint8Array => utf8(s);
const fingerprintLabel = (name: string): string => `offrecord/v1 message vector fingerprint|${name}`;
const ringLabel = (name: string): string => `offrecord/v1 message vector ring secret|${name}`;

function partySetup(name: string): PartySetup & { secret: Uint8Array; public: Uint8Array; fp: Uint8Array } {
  const fp = sha512(fingerprintLabel(name)).subarray(0, 20);
  const secret = generateRingSecret(sha512(ringLabel(name)));
  const pub = ringPublicKey(secret);
  return {
    fingerprint: hex(fp),
    fingerprint_label: fingerprintLabel(name),
    ring_secret: hex(secret),
    ring_secret_label: ringLabel(name),
    ring_public: hex(pub),
    secret,
    public: pub,
    fp,
  };
}

/** A TestEnv that also keeps what it handed out, so ring-signature nonces can be recorded. */
class RecordingEnv extends TestEnv {
  draws: Uint8Array[] = [];
  override random(length: number): Uint8Array {
    const out = super.random(length);
    this.draws.push(Uint8Array.from(out));
    return out;
  }
}

// ---------------------------------------------------------------- recomputation (node:crypto)

const b64url = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');

/** X25519 through node:crypto, as keyschedule.ts does it (JWK import). */
function x25519(secret: Uint8Array, ownPublic: Uint8Array, theirPublic: Uint8Array): Uint8Array {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64url(secret), x: b64url(ownPublic) }, format: 'jwk' });
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64url(theirPublic) }, format: 'jwk' });
  return new Uint8Array(diffieHellman({ privateKey, publicKey }));
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`gen-message-vectors: self-check failed: ${what}`);
}

/**
 * The auth block written here from docs/PROTOCOL.md §5.4's table, on purpose apart from wire.ts's
 * encoder: test/protocol/vectors.test.ts checks `encoded || payload` against a REPLY's plaintext
 * as the engine (wire.ts) made it, which catches an encoder drifting from the spec only while the
 * two are separate.
 */
function encodeAuth(a: AuthBlock): Uint8Array {
  return concatBytes(
    a.senderFingerprint,
    a.recipientFingerprint,
    a.senderRingKey,
    a.recipientRingKey,
    u64be(a.created),
    a.messageId,
    a.signature,
  );
}

function authRecord(auth: AuthBlock, context: Uint8Array, payload: Uint8Array, rand: Uint8Array, signerSecret: Uint8Array): AuthRecord {
  const [p0, p1] = sortRing(auth.senderRingKey, auth.recipientRingKey);
  ringVerifyKeys(p0, p1, context, auth.signature); // the context rebuilt here is the one the engine signed
  check(equalBytes(ringSign(prepareRing(p0, p1), signerSecret, context, rand), auth.signature), 'ring signature reproduces from rand');
  const encoded = encodeAuth(auth);
  check(encoded.length === AUTH_BLOCK_LENGTH, 'auth block length');
  return {
    sender_fingerprint: hex(auth.senderFingerprint),
    recipient_fingerprint: hex(auth.recipientFingerprint),
    sender_ring_key: hex(auth.senderRingKey),
    recipient_ring_key: hex(auth.recipientRingKey),
    created: auth.created,
    message_id: hex(auth.messageId),
    signature: hex(auth.signature),
    encoded: hex(encoded),
    ring: [hex(p0), hex(p1)],
    signer_index: equalBytes(p0, auth.senderRingKey) ? 0 : 1,
    rand: hex(rand),
    payload_sha256: hex(sha256(payload)),
    context: hex(context),
  };
}

function ownKey(state: SessionState, match: (k: OwnDhKey) => boolean, what: string): OwnDhKey {
  const key = liveOwnSecrets(state).find(match);
  check(key !== undefined, `${what} is a live key`);
  return key;
}

/** A signing step's env draws begin with [message id, ring nonce rand]. */
function ringRand(draws: Uint8Array[], messageId: Uint8Array): Uint8Array {
  check(draws.length >= 2 && equalBytes(draws[0]!, messageId) && draws[1]!.length === 32, 'signing draws are [message id, rand, ...]');
  return draws[1]!;
}

/** The per-message key, recomputed with node:crypto's HMAC as PROTOCOL.md section 7 says. */
function messageKeyOf(directionKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha256', directionKey).update(utf8(LABELS.messageKey)).update(nonce).digest());
}

function keyRecords(
  sender: OwnDhKey,
  recipient: OwnDhKey,
  next: OwnDhKey,
): { dh: DhRecord; hkdf: HkdfRecord; sendKey: Uint8Array; sendMac: Uint8Array } {
  check(
    equalBytes(x25519PublicKey(sender.secret), sender.public) && equalBytes(x25519PublicKey(recipient.secret), recipient.public),
    'public values',
  );
  const shared = x25519(sender.secret, sender.public, recipient.public);
  check(equalBytes(shared, x25519(recipient.secret, recipient.public, sender.public)), 'DH agreement');
  const senderIsLow = Buffer.compare(sender.public, recipient.public) < 0;
  const [low, high] = senderIsLow ? [sender, recipient] : [recipient, sender];
  const salt = utf8(LABELS.sessionSalt);
  const info = concatBytes(utf8(LABELS.sessionInfo), low.public, u32be(low.id), high.public, u32be(high.id));
  const okm = new Uint8Array(hkdfSync('sha256', shared, salt, info, 64));
  const lowToHigh = okm.slice(0, 32);
  const highToLow = okm.slice(32);
  const macLowToHigh = sha256(concatBytes(utf8(LABELS.macKey), lowToHigh));
  const macHighToLow = sha256(concatBytes(utf8(LABELS.macKey), highToLow));
  const [sendKey, sendMac] = senderIsLow ? [lowToHigh, macLowToHigh] : [highToLow, macHighToLow];
  const engine = deriveDirectionKeys(sender.secret, sender, recipient, 'send');
  check(equalBytes(engine.key, sendKey) && equalBytes(engine.macKey, sendMac), 'HKDF split matches deriveDirectionKeys');
  check(equalBytes(macKeyFor(sendKey), sendMac), 'MAC key derivation');
  return {
    dh: {
      sender_key_id: sender.id,
      sender_secret: hex(sender.secret),
      sender_public: hex(sender.public),
      recipient_key_id: recipient.id,
      recipient_secret: hex(recipient.secret),
      recipient_public: hex(recipient.public),
      next_secret: hex(next.secret),
      next_public: hex(next.public),
      shared_secret: hex(shared),
    },
    hkdf: {
      salt: hex(salt),
      info: hex(info),
      low_public: hex(low.public),
      low_key_id: low.id,
      high_public: hex(high.public),
      high_key_id: high.id,
      okm: hex(okm),
      key_low_to_high: hex(lowToHigh),
      key_high_to_low: hex(highToLow),
      mac_key_low_to_high: hex(macLowToHigh),
      mac_key_high_to_low: hex(macHighToLow),
      sender_is_low: senderIsLow,
    },
    sendKey,
    sendMac,
  };
}

function sealedFields(m: SealedMessage): SealedFields {
  return {
    type: m.type,
    sender_key_id: m.senderKeyId,
    recipient_key_id: m.recipientKeyId,
    next_dh: hex(m.nextDh),
    counter: m.counter,
    nonce: hex(m.nonce),
    sender_dh: m.senderDh ? hex(m.senderDh) : null,
    ciphertext_length: m.ciphertext.length,
    ciphertext: hex(m.ciphertext),
    mac: hex(m.mac),
    reveals: m.reveals.map(hex),
  };
}

// ---------------------------------------------------------------- byte surgery for negatives

const clone = (b: Uint8Array): Uint8Array => Uint8Array.from(b);

function put(bytes: Uint8Array, offset: number, value: Uint8Array): Uint8Array {
  const out = clone(bytes);
  out.set(value, offset);
  return out;
}

function splice(bytes: Uint8Array, offset: number, remove: number, insert: Uint8Array = new Uint8Array(0)): Uint8Array {
  return concatBytes(bytes.subarray(0, offset), insert, bytes.subarray(offset + remove));
}

function flipBit(bytes: Uint8Array, offset: number, bit = 0): Uint8Array {
  const out = clone(bytes);
  out[offset]! ^= 1 << bit;
  return out;
}

const withChecksum = (body: Uint8Array): Uint8Array => concatBytes(body, sha256(body));
const u64max = Uint8Array.from(new Array<number>(8).fill(0xff));
const leBytes = (n: bigint): Uint8Array => {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 0xffn);
  return out;
};
const P25519 = 2n ** 255n - 19n;
/** The canonical X25519 u-coordinates of small order (RFC 7748 section 7; the same list as libsodium's, less p and p + 1). */
const SMALL_ORDER_X25519: [string, string][] = [
  ['u = 0', '00'.repeat(32)],
  ['u = 1', '01' + '00'.repeat(31)],
  ['an order-8 point', 'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800'],
  ['the other order-8 point', '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157'],
  ['u = p - 1 (order 4, on the twist)', 'ec' + 'ff'.repeat(30) + '7f'],
];
const ED25519_ORDER = 2n ** 252n + 27742317777372353535851937790883648493n;

// Offsets inside sealed messages and first inners (docs/PROTOCOL.md, "Wire format").
const S = { senderKeyId: 4, recipientKeyId: 8, nextDh: 12, counter: 44, nonce: 52, afterNonce: 68 } as const;
const F = {
  dhShare: 4,
  senderFp: 36,
  recipientFp: 56,
  senderRing: 76,
  recipientRing: 108,
  created: 140,
  messageId: 148,
  signature: 164,
  payload: 260,
} as const;

// ---------------------------------------------------------------- the conversation

interface Snapshot {
  alice: SessionState | null;
  bob: SessionState | null;
}

export function buildMessageVectors(): MessageVectors {
  const A = partySetup('alice');
  const B = partySetup('bob');
  const M = partySetup('mallory');
  const parties: Record<Party, Parties> = {
    alice: {
      local: { fingerprint: A.fp, ringKeys: [{ public: A.public, secret: A.secret }] },
      peer: { fingerprint: B.fp, ringKeys: [B.public] },
    },
    bob: {
      local: { fingerprint: B.fp, ringKeys: [{ public: B.public, secret: B.secret }] },
      peer: { fingerprint: A.fp, ringKeys: [A.public] },
    },
  };
  const ringSecretOf: Record<Party, Uint8Array> = { alice: A.secret, bob: B.secret };
  const other = (p: Party): Party => (p === 'alice' ? 'bob' : 'alice');
  const env = new RecordingEnv(START, utf8(SEED_TEXT));
  const states: Snapshot = { alice: null, bob: null };
  const sequence: SequenceStep[] = [];
  const positive: PositiveVector[] = [];
  const wireBytes = new Map<string, Uint8Array>();
  /** Receiver state (and time) just before each vector is received, for the engine negatives. */
  const beforeReceive = new Map<string, { state: SessionState | null; time: number }>();
  const comments: Record<string, string> = {
    alice_first: "Alice's first mail, inner bytes (what the OpenPGP envelope carries): her first DH share x1 and a ring signature.",
    bob_reply: "Bob's reply: sealed under (Bob key 1, Alice key 1), carrying his ring-signed auth block before the payload.",
    alice_data: "Alice's first data message: her key 1 to Bob's key 2 (announced in the reply), announcing her key 2.",
    bob_data: "Bob's data message: he rotated to key 2 on receiving Alice's message, and sends to her key 2.",
    alice_ack: 'An empty acknowledgement (type Ack) from Alice: answers the share Bob announced, carries no ciphertext.',
    alice_reveals: `Alice's data message after the clock moved ${DEFAULT_POLICY.graceMs / HOUR} + 1 hours (past graceMs): sweep() forgot her key 1 and Bob's key 1, so the MAC key of the reply is revealed after the MAC.`,
    bob_reveals: "Bob's data message after the grace period: it reveals the MAC key of Alice's first data message.",
    nak: "The NAK Bob would send had he lost his state when alice_reveals arrived (nakFor of its bytes). It names Alice's re-send copy exactly, so her engine records it (nakAt); bob_reveals, received next, clears it (section 13.2).",
  };

  const at = (time: number): void => {
    env.time = time;
    env.draws = [];
  };

  const doSend = (party: Party, time: number, name: string, payloadText: string | null): void => {
    at(time);
    const before = states[party]!;
    const payload = payloadText === null ? new Uint8Array(0) : text(payloadText);
    const step: SendStep = payloadText === null ? acknowledge(before, parties[party], env) : send(before, parties[party], payload, env);
    states[party] = step.state;
    sequence.push(
      payloadText === null
        ? { action: 'acknowledge', party, time, vector: name }
        : { action: 'send', party, time, payload: hex(payload), vector: name },
    );
    if (step.outgoing.kind === 'first') {
      check(before.kind === 'initiating', 'first mail from the initiating state');
      const inner = step.outgoing.inner;
      const decoded = decodeFirstInner(inner);
      const rand = ringRand(env.draws, decoded.auth.messageId);
      const context = firstContext(decoded.auth, decoded.dhShare, decoded.payload);
      check(equalBytes(decoded.dhShare, before.ours.first.public), 'first share is x1');
      wireBytes.set(name, inner);
      positive.push({
        name,
        kind: 'first_inner',
        comment: comments[name]!,
        type_name: 'First',
        sender: party,
        receiver: other(party),
        sent_at: time,
        decoder: 'decodeFirstInner',
        payload: hex(payload),
        payload_text: payloadText ?? '',
        fields: { dh_share: hex(decoded.dhShare), payload: hex(decoded.payload) },
        dh: { key_id: 1, secret: hex(before.ours.first.secret), public: hex(before.ours.first.public) },
        auth: authRecord(decoded.auth, context, decoded.payload, rand, ringSecretOf[party]),
        outer: {
          prefix: '4f520101',
          rule:
            'On the wire a first mail is the 4-byte prefix 4f 52 01 01 ("OR", version 1, type First) followed by a binary OpenPGP message ' +
            "(openpgp.js encrypt to the recipient's current encryption subkey, binary literal data, no signature) whose decrypted literal data " +
            'is exactly these inner bytes (which repeat the same prefix). The envelope is randomized, so only the inner bytes are fixed here; ' +
            'decodeFirstOuter refuses the prefix with an empty body, and an envelope that does not open is the single error "auth".',
        },
        bytes: hex(inner),
      });
      return;
    }
    const bytes = step.outgoing.bytes;
    const receiverState = states[other(party)];
    check(receiverState !== null, 'the receiver of a sealed message has a session');
    wireBytes.set(name, bytes);
    const { message, authenticated } = decodeSealed(bytes);
    const sender = ownKey(before, (k) => k.id === message.senderKeyId, 'sender key');
    const next = ownKey(before, (k) => equalBytes(k.public, message.nextDh), 'next key');
    const recipient = ownKey(receiverState, (k) => k.id === message.recipientKeyId, 'recipient key');
    const keys = keyRecords(sender, recipient, next);
    const iv = concatBytes(u64be(message.counter), new Uint8Array(8));
    const msgKey = messageKeyOf(keys.sendKey, message.nonce);
    check(equalBytes(messageKey(keys.sendKey, message.nonce), msgKey), 'message key derivation');
    const plaintext = aesCtr(msgKey, message.counter, message.ciphertext);
    check(equalBytes(env.draws.at(-1)!, message.nonce), 'a sealing send draws the nonce last');
    const mac = hmacSha256(keys.sendMac, authenticated);
    check(equalBytes(mac, message.mac), 'MAC recomputes');
    check(equalBytes(encodeSealed(authenticated, mac, message.reveals), bytes), 'sealed re-encodes');
    let auth: AuthRecord | null = null;
    if (message.type === MessageType.Reply) {
      const reply = decodeReplyPlaintext(plaintext);
      check(equalBytes(reply.payload, payload), 'reply payload');
      check(receiverState.kind === 'initiating', 'reply answers the first mail');
      const context = replyContext(reply.auth, message.senderDh!, receiverState.origin.share, message.nextDh, reply.payload);
      auth = authRecord(reply.auth, context, reply.payload, ringRand(env.draws, reply.auth.messageId), ringSecretOf[party]);
    } else {
      check(equalBytes(plaintext, payload), 'data plaintext');
      check(env.draws.length === 1, 'data messages draw only the nonce');
    }
    const revealed = message.reveals.map((key) => {
      const of = positive.find((v) => v.kind === 'sealed' && v.message_mac_key === hex(key));
      check(of !== undefined, 'revealed MAC key belongs to an earlier vector');
      return { mac_key: hex(key), of_vector: of.name };
    });
    positive.push({
      name,
      kind: 'sealed',
      comment: comments[name]!,
      type_name: message.type === MessageType.Reply ? 'Reply' : message.type === MessageType.Data ? 'Data' : 'Ack',
      sender: party,
      receiver: other(party),
      sent_at: time,
      decoder: 'decodeSealed',
      payload: hex(payload),
      payload_text: payloadText ?? '',
      fields: sealedFields(message),
      dh: keys.dh,
      hkdf: keys.hkdf,
      direction_key: hex(keys.sendKey),
      message_mac_key: hex(keys.sendMac),
      message_key: hex(msgKey),
      iv: hex(iv),
      plaintext: hex(plaintext),
      auth,
      authenticated: hex(authenticated),
      mac: hex(mac),
      revealed,
      bytes: hex(bytes),
    });
  };

  const doReceive = (party: Party, time: number, name: string): void => {
    at(time);
    const bytes = wireBytes.get(name)!;
    const state = states[party];
    beforeReceive.set(name, { state, time });
    const vector = positive.find((v) => v.name === name)!;
    let step: ReceiveStep;
    if (vector.kind === 'first_inner') step = receiveFirst(state, parties[party], bytes, env);
    else if (vector.kind === 'nak') step = receiveNak(state, bytes, env);
    else step = receiveSealed(state, parties[party], bytes, env);
    check(step.state !== null, 'receiver keeps a session');
    states[party] = step.state;
    if (vector.kind === 'nak') {
      check(step.payload === null && step.state.nakAt === time, 'NAK marks the session');
      sequence.push({ action: 'receiveNak', party, time, vector: name });
      return;
    }
    const expected = vector.kind === 'first_inner' || vector.kind === 'sealed' ? vector.payload : '';
    check((step.payload === null ? '' : hex(step.payload)) === expected, `${name} payload`);
    sequence.push({
      action: vector.kind === 'first_inner' ? 'receiveFirst' : 'receiveSealed',
      party,
      time,
      vector: name,
      payload: step.payload === null ? null : hex(step.payload),
    });
  };

  // The script: one minute between steps, then a jump past the grace period.
  let t = START;
  const tick = (): number => (t += MINUTE);
  at(t);
  states.alice = initiate(env);
  sequence.push({ action: 'initiate', party: 'alice', time: t });
  doSend('alice', t, 'alice_first', 'hello bob');
  doReceive('bob', tick(), 'alice_first');
  doSend('bob', tick(), 'bob_reply', 'hi alice');
  doReceive('alice', tick(), 'bob_reply');
  doSend('alice', tick(), 'alice_data', 'data from alice');
  doReceive('bob', tick(), 'alice_data');
  doSend('bob', tick(), 'bob_data', 'data from bob');
  doReceive('alice', tick(), 'bob_data');
  doSend('alice', tick(), 'alice_ack', null);
  doReceive('bob', tick(), 'alice_ack');
  t += DEFAULT_POLICY.graceMs + HOUR;
  doSend('alice', t, 'alice_reveals', 'after the grace period');
  doReceive('bob', tick(), 'alice_reveals');
  doSend('bob', tick(), 'bob_reveals', 'bob after the grace period');

  at(tick());
  const nak = nakFor(wireBytes.get('alice_reveals')!);
  const nakDecoded = decodeNak(nak);
  sequence.push({ action: 'nakFor', party: 'bob', time: t, of: 'alice_reveals', vector: 'nak' });
  wireBytes.set('nak', nak);
  positive.push({
    name: 'nak',
    kind: 'nak',
    comment: comments.nak!,
    type_name: 'Nak',
    sender: 'bob',
    receiver: 'alice',
    decoder: 'decodeNak',
    of_vector: 'alice_reveals',
    fields: { sender_key_id: nakDecoded.senderKeyId, recipient_key_id: nakDecoded.recipientKeyId, counter: nakDecoded.counter },
    bytes: hex(nak),
  });
  doReceive('alice', tick(), 'nak');
  // Authentic mail from Bob (under Alice's newest key) clears the NAK and acknowledges her copy.
  doReceive('alice', tick(), 'bob_reveals');
  check(states.alice!.nakAt === null && states.alice!.lastSent === null, 'bob_reveals clears the NAK and the re-send copy');

  // Alice's publication bundle: two retired ring keys and the MAC keys revealed in this conversation.
  // The certificate and certifications are opaque to the wire layer (src/keys/bundle-verification.ts checks
  // them): here they are labelled pseudo-random bytes of realistic size, so the vector stays fixed.
  const opaque = (label: string, length: number): Uint8Array =>
    concatBytes(sha512(`${label}|0`), sha512(`${label}|1`), sha512(`${label}|2`)).subarray(0, length);
  const oldRing = ['2023', '2024'].map((year) => {
    const label = `offrecord/v1 message vector ring secret|alice|${year}`;
    const secret = generateRingSecret(sha512(label));
    const certificationLabel = `offrecord/v1 message vector ring certification|alice|${year}`;
    return {
      public: ringPublicKey(secret),
      secret,
      label,
      notBefore: Date.UTC(Number(year), 11, 17),
      notAfter: Date.UTC(Number(year), 11, 31),
      certificationLabel,
      certification: opaque(certificationLabel, 119),
    };
  });
  const certificateLabel = 'offrecord/v1 message vector certificate|alice';
  const certificate = opaque(certificateLabel, 150);
  const macKeys = positive.flatMap((v) => (v.kind === 'sealed' ? v.revealed.map((r) => r.mac_key) : []));
  check(macKeys.length >= 2, 'at least two revealed MAC keys');
  const bundleCreated = tick();
  const bundle = encodeBundle({
    identity: A.fp,
    created: bundleCreated,
    certificate,
    ringKeys: oldRing.map(({ public: ringPublic, secret, notBefore, notAfter, certification }) => ({
      public: ringPublic,
      secret,
      notBefore,
      notAfter,
      certification,
    })),
    macKeys: macKeys.map(fromHex),
  });
  const sortedRing = [...oldRing].sort((x, y) => Buffer.compare(x.public, y.public));
  check(equalBytes(encodeBundle(decodeBundle(bundle)), bundle), 'bundle re-encodes');
  positive.push({
    name: 'alice_bundle',
    kind: 'bundle',
    comment:
      "Alice's publication bundle (format 1): her certificate, two retired ring keys with their secrets, validity and certification (sorted by public key) and the MAC keys revealed in this conversation (sorted), then SHA-256 of everything before it. " +
      'The certificate and certifications are opaque bytes to the wire layer; here they are SHA-512 expansions of their labels, not real OpenPGP packets.',
    type_name: 'Bundle',
    decoder: 'decodeBundle',
    fields: {
      format: 1,
      identity: A.fingerprint,
      created: bundleCreated,
      certificate: hex(certificate),
      certificate_label: certificateLabel,
      ring_keys: sortedRing.map((k) => ({
        public_key: hex(k.public),
        secret: hex(k.secret),
        secret_label: k.label,
        not_before: k.notBefore,
        not_after: k.notAfter,
        certification: hex(k.certification),
        certification_label: k.certificationLabel,
      })),
      mac_keys: [...macKeys].sort(),
    },
    body: hex(bundle.subarray(0, bundle.length - 32)),
    checksum: hex(bundle.subarray(bundle.length - 32)),
    bytes: hex(bundle),
  });
  wireBytes.set('alice_bundle', bundle);

  const negative = buildNegatives(wireBytes);
  const engineNegative = buildEngineNegatives(wireBytes, positive, beforeReceive, parties, { A, B, M }, env);

  const setupOf = (p: PartySetup): PartySetup => ({
    fingerprint: p.fingerprint,
    fingerprint_label: p.fingerprint_label,
    ring_secret: p.ring_secret,
    ring_secret_label: p.ring_secret_label,
    ring_public: p.ring_public,
  });

  return {
    description:
      'Test vectors for offrecord protocol messages (src/protocol/wire.ts, keyschedule.ts, session.ts): one conversation driven through the real session engine, ' +
      'then malformed inputs for the decoders and forged inputs for the engine. Regenerate with: npx tsx scripts/gen-message-vectors.ts',
    conventions:
      'Byte strings are lowercase hex; integers on the wire are big-endian (u32, u64); X25519 values and ed25519 scalars are little-endian as in RFC 7748 / RFC 8032. ' +
      'Times are milliseconds since the Unix epoch. "||" is concatenation. Every positive vector is accepted by the engine when the sequence is replayed in order ' +
      '(setup.random_rule gives the randomness each step consumes); every negative vector fails in the named decoder with exactly the named ProtocolError code, ' +
      'and every engine_negative vector fails with engine_expect when handed to the named step with the receiver state just before the vector named by "before" is received.',
    wire_format: {
      prefix:
        '"OR" (4f 52) || version (01) || type (1 First, 2 Reply, 3 Data, 4 Ack, 5 Nak, 6 Bundle). Version 0 or >1: unsupported_version; another type: malformed. A message over limits.maxMessage bytes is too_large before any parsing.',
      first_outer: 'prefix(First) || OpenPGP message (non-empty) sealing first_inner.',
      first_inner: 'prefix(First) || dh_share[32] || auth_block || payload[rest].',
      auth_block:
        'sender_fingerprint[20] || recipient_fingerprint[20] || sender_ring_key[32] || recipient_ring_key[32] || created u64 (<= 2^53-1) || message_id[16] || ring_signature[96] (224 bytes).',
      sealed:
        'prefix(Reply|Data|Ack) || sender_key_id u32 (!= 0) || recipient_key_id u32 (!= 0) || next_dh[32] || counter u64 (1 .. 2^53-1, above: too_large) || nonce[16] || [Reply only: sender_dh[32]] || ' +
        'ciphertext_length u32 || ciphertext || mac[32] || reveals (k * 32 bytes, k <= 256, more: too_large). Data needs a non-empty ciphertext, Ack an empty one, Reply at least 224 bytes (the auth block). ' +
        'X25519 values must be canonical (top bit clear, below p = 2^255 - 19) and not of small order (0, 1, p - 1, the two order-8 points): malformed.',
      reply_plaintext: 'auth_block || payload.',
      nak: 'prefix(Nak) || sender_key_id u32 (!= 0) || recipient_key_id u32 (!= 0) || counter u64 (1 .. 2^53-1): exactly 20 bytes.',
      bundle:
        'body = prefix(Bundle) || format u8 (1) || identity[20] || created u64 || cert_len u16 (1..16384) || certificate[cert_len] || ring_count u16 (<= 4096) || ' +
        'ring_count * (public_key[32] || secret[32] (canonical scalar, 1 <= s < l) || not_before u64 || not_after u64 (not_before < not_after) || len u16 (40..512) || certification[len]) || ' +
        'mac_count u32 (<= 750000) || mac_count * mac_key[32]; bundle = body || SHA-256(body). Ring keys strictly ascending by public key, MAC keys strictly ascending. Another format: unsupported_version.',
    },
    key_schedule:
      'shared = X25519(own secret, peer public); low/high = the two keys (public value and key id) in bytewise order of the public values; okm = HKDF-SHA256(ikm = shared, salt = "offrecord/v1 session salt", ' +
      'info = "offrecord/v1 session keys" || low_public || u32(low_key_id) || high_public || u32(high_key_id), L = 64); key_low_to_high = okm[0..32], key_high_to_low = okm[32..64] (the side with the lower public value sends with key_low_to_high); ' +
      'mac key = SHA-256("offrecord/v1 mac key" || direction key); message key = HMAC-SHA256(direction key, "offrecord/v1 message key" || nonce); iv = counter u64 || 0^64; ' +
      'ciphertext = AES-256-CTR(message key, iv, plaintext); mac = HMAC-SHA256(mac key, authenticated). ' +
      'First-mail signing context = "offrecord/v1 first mail" || 4f520101 || sender_fp || recipient_fp || sender_ring || recipient_ring || dh_share || created u64 || message_id || SHA-256(payload). ' +
      'Reply signing context = "offrecord/v1 reply" || 4f520102 || sender_fp || recipient_fp || sender_ring || recipient_ring || sender_dh || answered_dh (the first-mail share) || next_dh || created u64 || message_id || SHA-256(payload). ' +
      'Ring signatures are those of fixtures/vectors/ring-signature.json over the ring {sender_ring_key, recipient_ring_key}.',
    labels: LABELS,
    limits: LIMITS,
    setup: {
      seed: hex(utf8(SEED_TEXT)),
      seed_text: SEED_TEXT,
      random_rule:
        'One TestEnv (kit/parties.ts) serves both parties: the n-th call random(len) (n = 0, 1, ...) returns the first len bytes of SHA-512(seed || decimal(n)). ' +
        'initiate draws x1 then x2; receiveFirst draws the responder keys 1 and 2; a ring-signing send draws the message id (16) then the signing rand (32); a reply, data or ack send then draws its nonce (16); ' +
        'a receive that rotates our key draws the new next key (32). Time is set to each step\'s "time" before the step.',
      start_time: START,
      policy: DEFAULT_POLICY,
      alice: setupOf(A),
      bob: setupOf(B),
      mallory: setupOf(M),
    },
    sequence,
    positive,
    negative,
    engine_negative: engineNegative,
  };
}

// ---------------------------------------------------------------- negative vectors

const DECODERS: Record<DecoderName, (bytes: Uint8Array) => unknown> = {
  decodeSealed,
  decodeFirstInner,
  decodeFirstOuter,
  decodeNak,
  decodeBundle,
  peekType,
};

function buildNegatives(wire: Map<string, Uint8Array>): NegativeVector[] {
  const data = wire.get('alice_data')!;
  const reply = wire.get('bob_reply')!;
  const ack = wire.get('alice_ack')!;
  const reveals = wire.get('alice_reveals')!;
  const first = wire.get('alice_first')!;
  const nak = wire.get('nak')!;
  const bundle = wire.get('alice_bundle')!;
  const body = bundle.subarray(0, bundle.length - 32);
  const dataCtAt = S.afterNonce; // ciphertext length field of a data message
  const dataCtLength = new DataView(data.buffer, data.byteOffset + dataCtAt, 4).getUint32(0);
  const dataMacAt = dataCtAt + 4 + dataCtLength;
  const replyCtAt = S.afterNonce + 32;
  // Bundle layout: prefix 4, format 1, identity 20, created 8, certificate length 2, certificate,
  // ring count 2, entries (public 32, secret 32, not_before 8, not_after 8, length 2, certification),
  // MAC count 4, MAC keys. The vector's certifications all have one length, so entries do too.
  const certLength = (body[33]! << 8) | body[34]!;
  const B = {
    format: 4,
    identity: 5,
    created: 25,
    certLength: 33,
    certificate: 35,
    ringCount: 35 + certLength,
    ring0: 37 + certLength,
  } as const;
  const ringCount = (body[B.ringCount]! << 8) | body[B.ringCount + 1]!;
  const entryLength = 82 + ((body[B.ring0 + 80]! << 8) | body[B.ring0 + 81]!);
  const macCountAt = B.ring0 + entryLength * ringCount;
  const mac0 = macCountAt + 4;
  const entry = (i: number): Uint8Array => body.subarray(B.ring0 + entryLength * i, B.ring0 + entryLength * (i + 1));
  const macKey = (i: number): Uint8Array => body.subarray(mac0 + 32 * i, mac0 + 32 * (i + 1));
  const cutBundle = (end: number): Uint8Array => withChecksum(body.subarray(0, end));
  const half = (offset: number, length: number): number => offset + Math.max(1, length >> 1);

  const out: NegativeVector[] = [];
  const neg = (comment: string, decoder: DecoderName, bytes: Uint8Array, expect: NegativeVector['expect']): void => {
    try {
      DECODERS[decoder](bytes);
    } catch (error) {
      check(error instanceof ProtocolError && error.code === expect, `negative "${comment}" fails with ${expect} (got ${String(error)})`);
      out.push({ comment, decoder, expect, bytes: hex(bytes) });
      return;
    }
    check(false, `negative "${comment}" must fail`);
  };

  // Prefix.
  neg('empty input', 'peekType', new Uint8Array(0), 'malformed');
  neg('three bytes: shorter than the 4-byte prefix', 'peekType', Uint8Array.of(0x4f, 0x52, 0x01), 'malformed');
  neg('bad magic "OS" in front of a valid data message', 'decodeSealed', put(data, 1, Uint8Array.of(0x53)), 'malformed');
  neg('version 2 on a valid data message', 'decodeSealed', put(data, 2, Uint8Array.of(2)), 'unsupported_version');
  neg('version 0 on a valid data message', 'decodeSealed', put(data, 2, Uint8Array.of(0)), 'unsupported_version');
  neg('version 255 on a valid data message', 'decodeSealed', put(data, 2, Uint8Array.of(0xff)), 'unsupported_version');
  neg('unknown type 9 in front of a data message body', 'peekType', put(data, 3, Uint8Array.of(9)), 'malformed');
  neg('unknown type 0 (bare prefix)', 'peekType', Uint8Array.of(0x4f, 0x52, 1, 0), 'malformed');
  neg('unknown type 7 (bare prefix)', 'peekType', Uint8Array.of(0x4f, 0x52, 1, 7), 'malformed');
  neg('a valid NAK handed to the sealed-message decoder (wrong type)', 'decodeSealed', nak, 'malformed');
  neg('a valid data message handed to the NAK decoder (wrong type)', 'decodeNak', data, 'malformed');

  // Sealed messages: truncated inside each fixed field (half the field kept).
  const truncSealed: [string, Uint8Array, number, number][] = [
    ['sender key id', data, S.senderKeyId, 4],
    ['recipient key id', data, S.recipientKeyId, 4],
    ['next DH share', data, S.nextDh, 32],
    ['counter', data, S.counter, 8],
    ['nonce', data, S.nonce, 16],
    ['sender DH share (reply)', reply, S.afterNonce, 32],
    ['ciphertext length', data, dataCtAt, 4],
    ['ciphertext', data, dataCtAt + 4, dataCtLength],
    ['MAC', data, dataMacAt, 32],
  ];
  for (const [field, source, offset, length] of truncSealed) {
    neg(`sealed message truncated in the ${field}`, 'decodeSealed', source.subarray(0, half(offset, length)), 'malformed');
  }
  neg('sealed message that is only its prefix', 'decodeSealed', data.subarray(0, 4), 'malformed');

  // Sealed messages: one bad field each.
  neg('zero sender key id', 'decodeSealed', put(data, S.senderKeyId, u32be(0)), 'malformed');
  neg('zero recipient key id', 'decodeSealed', put(data, S.recipientKeyId, u32be(0)), 'malformed');
  neg('zero counter', 'decodeSealed', put(data, S.counter, u64be(0)), 'malformed');
  neg('counter = 2^53 (one over the largest exact counter)', 'decodeSealed', put(data, S.counter, u64be(2n ** 53n)), 'too_large');
  neg('counter = 2^64 - 1', 'decodeSealed', put(data, S.counter, u64max), 'too_large');
  neg('next DH share with the top bit set', 'decodeSealed', flipBit(data, S.nextDh + 31, 7), 'malformed');
  neg('next DH share = p = 2^255 - 19 (non-canonical)', 'decodeSealed', put(data, S.nextDh, leBytes(P25519)), 'malformed');
  neg('next DH share = p + 1 (non-canonical)', 'decodeSealed', put(data, S.nextDh, leBytes(P25519 + 1n)), 'malformed');
  neg('reply whose sender DH share has the top bit set', 'decodeSealed', flipBit(reply, S.afterNonce + 31, 7), 'malformed');
  for (const [label, value] of SMALL_ORDER_X25519) {
    neg(`next DH share of small order: ${label}`, 'decodeSealed', put(data, S.nextDh, fromHex(value)), 'malformed');
  }
  neg('reply whose sender DH share is 0 (small order)', 'decodeSealed', put(reply, S.afterNonce, new Uint8Array(32)), 'malformed');
  neg(
    'ciphertext length one larger than the rest of the message',
    'decodeSealed',
    put(data, dataCtAt, u32be(data.length - (dataCtAt + 4) + 1)),
    'malformed',
  );
  neg('ciphertext length 2^32 - 1 (over the payload limit)', 'decodeSealed', put(data, dataCtAt, u32be(0xffffffff)), 'too_large');
  // ct_len boundaries (section 5.5): the limit is checked before the announced bytes must be present.
  neg(
    `data ciphertext length ${LIMITS.maxPayload + 1} (payload limit + 1)`,
    'decodeSealed',
    put(data, dataCtAt, u32be(LIMITS.maxPayload + 1)),
    'too_large',
  );
  neg(
    `data ciphertext length ${LIMITS.maxPayload} (the limit itself: within it, so only the missing bytes fail)`,
    'decodeSealed',
    put(data, dataCtAt, u32be(LIMITS.maxPayload)),
    'malformed',
  );
  neg(
    `reply ciphertext length ${LIMITS.maxPayload + AUTH_BLOCK_LENGTH + 1} (payload limit + auth block + 1)`,
    'decodeSealed',
    put(reply, replyCtAt, u32be(LIMITS.maxPayload + AUTH_BLOCK_LENGTH + 1)),
    'too_large',
  );
  neg(
    `reply ciphertext length ${LIMITS.maxPayload + AUTH_BLOCK_LENGTH} (the limit itself: only the missing bytes fail)`,
    'decodeSealed',
    put(reply, replyCtAt, u32be(LIMITS.maxPayload + AUTH_BLOCK_LENGTH)),
    'malformed',
  );
  neg(
    'data message with an empty ciphertext (length 0, MAC follows)',
    'decodeSealed',
    splice(put(data, dataCtAt, u32be(0)), dataCtAt + 4, dataCtLength),
    'malformed',
  );
  neg(
    'acknowledgement carrying a 1-byte ciphertext',
    'decodeSealed',
    splice(put(ack, dataCtAt, u32be(1)), dataCtAt + 4, 0, Uint8Array.of(0)),
    'malformed',
  );
  {
    const short = AUTH_BLOCK_LENGTH - 1;
    const replyCt = new DataView(reply.buffer, reply.byteOffset + replyCtAt, 4).getUint32(0);
    neg(
      `reply whose ciphertext (${short} bytes) is shorter than the ${AUTH_BLOCK_LENGTH}-byte auth block`,
      'decodeSealed',
      splice(put(reply, replyCtAt, u32be(short)), replyCtAt + 4 + short, replyCt - short),
      'malformed',
    );
  }
  neg(
    'reveals not a multiple of 32 bytes (last revealed key cut by one byte)',
    'decodeSealed',
    reveals.subarray(0, reveals.length - 1),
    'malformed',
  );
  neg('a data message followed by one stray byte', 'decodeSealed', concatBytes(data, Uint8Array.of(0)), 'malformed');
  {
    const many = new Uint8Array(257 * 32);
    for (let i = 0; i < 257; i++) many.fill(i & 0xff, 32 * i, 32 * (i + 1));
    neg('257 revealed MAC keys (key i is 32 bytes of i mod 256)', 'decodeSealed', concatBytes(data, many), 'too_large');
  }

  // First mail.
  neg('First message whose sealed body is empty (bare prefix)', 'decodeFirstOuter', first.subarray(0, 4), 'malformed');
  neg('a data message handed to decodeFirstOuter (wrong type)', 'decodeFirstOuter', data, 'malformed');
  const truncFirst: [string, number, number][] = [
    ['DH share', F.dhShare, 32],
    ['sender fingerprint', F.senderFp, 20],
    ['recipient fingerprint', F.recipientFp, 20],
    ['sender ring key', F.senderRing, 32],
    ['recipient ring key', F.recipientRing, 32],
    ['created time', F.created, 8],
    ['message id', F.messageId, 16],
    ['ring signature', F.signature, 96],
  ];
  for (const [field, offset, length] of truncFirst) {
    neg(`first inner truncated in the ${field}`, 'decodeFirstInner', first.subarray(0, half(offset, length)), 'malformed');
  }
  neg('first inner whose DH share = p (non-canonical)', 'decodeFirstInner', put(first, F.dhShare, leBytes(P25519)), 'malformed');
  neg('first inner whose DH share has the top bit set', 'decodeFirstInner', flipBit(first, F.dhShare + 31, 7), 'malformed');
  neg('first inner whose DH share is 1 (small order)', 'decodeFirstInner', put(first, F.dhShare, leBytes(1n)), 'malformed');
  neg('first inner whose created time is 2^53 (out of range)', 'decodeFirstInner', put(first, F.created, u64be(2n ** 53n)), 'malformed');
  neg('first inner with version 2', 'decodeFirstInner', put(first, 2, Uint8Array.of(2)), 'unsupported_version');

  // NAK.
  for (const [field, offset, length] of [
    ['sender key id', 4, 4],
    ['recipient key id', 8, 4],
    ['counter', 12, 8],
  ] as const) {
    neg(`NAK truncated in the ${field}`, 'decodeNak', nak.subarray(0, half(offset, length)), 'malformed');
  }
  neg('trailing byte after a NAK', 'decodeNak', concatBytes(nak, Uint8Array.of(0)), 'malformed');
  neg('NAK with a zero sender key id', 'decodeNak', put(nak, 4, u32be(0)), 'malformed');
  neg('NAK with a zero recipient key id', 'decodeNak', put(nak, 8, u32be(0)), 'malformed');
  neg('NAK with a zero counter', 'decodeNak', put(nak, 12, u64be(0)), 'malformed');
  neg('NAK with counter = 2^53', 'decodeNak', put(nak, 12, u64be(2n ** 53n)), 'too_large');

  // Bundle. All but the checksum tests carry a correct checksum over the altered body.
  neg('bundle with a checksum mismatch (last bit flipped)', 'decodeBundle', flipBit(bundle, bundle.length - 1), 'malformed');
  neg('bundle truncated by one byte (checksum no longer matches)', 'decodeBundle', bundle.subarray(0, bundle.length - 1), 'malformed');
  neg('bundle shorter than prefix plus checksum', 'decodeBundle', bundle.subarray(0, 4 + 31), 'malformed');
  const truncBundle: [string, number, number][] = [
    ['identity fingerprint', B.identity, 20],
    ['created time', B.created, 8],
    ['certificate length', B.certLength, 2],
    ['certificate', B.certificate, certLength],
    ['ring key count', B.ringCount, 2],
    ['ring public key', B.ring0, 32],
    ['ring secret', B.ring0 + 32, 32],
    ['ring key start', B.ring0 + 64, 8],
    ['ring key expiry', B.ring0 + 72, 8],
    ['certification length', B.ring0 + 80, 2],
    ['certification', B.ring0 + 82, entryLength - 82],
    ['MAC key count', macCountAt, 4],
    ['MAC key', mac0, 32],
  ];
  for (const [field, offset, length] of truncBundle) {
    neg(`bundle body truncated in the ${field}, with a valid checksum`, 'decodeBundle', cutBundle(half(offset, length)), 'malformed');
  }
  neg(
    'bundle with a trailing byte inside the checksummed body',
    'decodeBundle',
    withChecksum(concatBytes(body, Uint8Array.of(0))),
    'malformed',
  );
  neg(
    'bundle with its two MAC keys swapped (not ascending)',
    'decodeBundle',
    withChecksum(concatBytes(body.subarray(0, mac0), macKey(1), macKey(0), body.subarray(mac0 + 64))),
    'malformed',
  );
  neg(
    'bundle with a duplicated MAC key',
    'decodeBundle',
    withChecksum(concatBytes(body.subarray(0, macCountAt), u32be(3), macKey(0), macKey(0), macKey(1))),
    'malformed',
  );
  neg(
    'bundle with its two ring keys swapped (not ascending)',
    'decodeBundle',
    withChecksum(concatBytes(body.subarray(0, B.ring0), entry(1), entry(0), body.subarray(macCountAt))),
    'malformed',
  );
  neg(
    'bundle with a duplicated ring key entry',
    'decodeBundle',
    withChecksum(concatBytes(body.subarray(0, B.ringCount), Uint8Array.of(0, 3), entry(0), entry(0), entry(1), body.subarray(macCountAt))),
    'malformed',
  );
  neg(
    'bundle whose first ring secret = l (not below the group order)',
    'decodeBundle',
    withChecksum(put(body, B.ring0 + 32, leBytes(ED25519_ORDER))),
    'malformed',
  );
  neg(
    'bundle whose first ring secret = 2^256 - 1',
    'decodeBundle',
    withChecksum(put(body, B.ring0 + 32, leBytes(2n ** 256n - 1n))),
    'malformed',
  );
  neg('bundle whose first ring secret is zero', 'decodeBundle', withChecksum(put(body, B.ring0 + 32, new Uint8Array(32))), 'malformed');
  neg(
    'bundle whose created time is 2^53 (out of range)',
    'decodeBundle',
    withChecksum(put(body, B.created, u64be(2n ** 53n))),
    'malformed',
  );
  neg(
    'bundle whose first ring key expiry is 2^64 - 1 (out of range)',
    'decodeBundle',
    withChecksum(put(body, B.ring0 + 72, u64max)),
    'malformed',
  );
  neg(
    'bundle whose first ring key starts when it expires',
    'decodeBundle',
    withChecksum(put(body, B.ring0 + 64, body.subarray(B.ring0 + 72, B.ring0 + 80))),
    'malformed',
  );
  neg(
    'bundle whose first certification length is 39 (under the minimum)',
    'decodeBundle',
    withChecksum(put(body, B.ring0 + 80, Uint8Array.of(0, 39))),
    'malformed',
  );
  neg(
    'bundle whose first certification length is 513 (over the maximum)',
    'decodeBundle',
    withChecksum(put(body, B.ring0 + 80, Uint8Array.of(2, 1))),
    'malformed',
  );
  neg(
    'bundle with an empty certificate',
    'decodeBundle',
    withChecksum(concatBytes(body.subarray(0, B.certLength), Uint8Array.of(0, 0), body.subarray(B.ringCount))),
    'malformed',
  );
  neg(
    'bundle claiming a 16385-byte certificate (over the limit)',
    'decodeBundle',
    withChecksum(put(body, B.certLength, Uint8Array.of(0x40, 0x01))),
    'too_large',
  );
  neg('bundle of format 2 (unknown)', 'decodeBundle', withChecksum(put(body, B.format, Uint8Array.of(2))), 'unsupported_version');
  neg('bundle of format 0 (unknown)', 'decodeBundle', withChecksum(put(body, B.format, Uint8Array.of(0))), 'unsupported_version');
  neg(
    'bundle claiming 4097 ring keys (over the limit)',
    'decodeBundle',
    withChecksum(put(body, B.ringCount, Uint8Array.of(0x10, 0x01))),
    'too_large',
  );
  neg('bundle claiming 750001 MAC keys (over the limit)', 'decodeBundle', withChecksum(put(body, macCountAt, u32be(750_001))), 'too_large');
  return out;
}

// ---------------------------------------------------------------- engine negative vectors

function buildEngineNegatives(
  wire: Map<string, Uint8Array>,
  positive: PositiveVector[],
  beforeReceive: Map<string, { state: SessionState | null; time: number }>,
  parties: Record<Party, Parties>,
  who: Record<'A' | 'B' | 'M', ReturnType<typeof partySetup>>,
  env: RecordingEnv,
): EngineNegativeVector[] {
  const out: EngineNegativeVector[] = [];
  const vec = <K extends PositiveVector['kind']>(name: string, kind: K): Extract<PositiveVector, { kind: K }> => {
    const v = positive.find((p) => p.name === name);
    check(v !== undefined && v.kind === kind, `vector ${name}`);
    return v as Extract<PositiveVector, { kind: K }>;
  };
  const add = (v: EngineNegativeVector, bytes: Uint8Array): void => {
    const at = beforeReceive.get(v.before)!;
    env.time = at.time;
    const drawsBefore = env.draws.length;
    try {
      if (v.step === 'receiveFirst') receiveFirst(at.state, parties[v.receiver], bytes, env);
      else receiveSealed(at.state, parties[v.receiver], bytes, env);
    } catch (error) {
      check(
        error instanceof ProtocolError && error.code === v.engine_expect,
        `engine negative "${v.comment}" gives ${v.engine_expect} (got ${String(error)})`,
      );
      check(env.draws.length === drawsBefore, 'a refused message draws no randomness');
      out.push(v);
      return;
    }
    check(false, `engine negative "${v.comment}" must fail`);
  };
  /** add() for the common case: a receiver, the step before which it gets `bytes`, and the code. */
  const refuse = (
    receiver: Party,
    before: string,
    step: EngineNegativeVector['step'],
    expect: ProtocolErrorCode,
    comment: string,
    bytes: Uint8Array,
  ): void => add({ comment, receiver, before, step, engine_expect: expect, bytes: hex(bytes) }, bytes);

  const { A, B } = who;
  const data = wire.get('alice_data')!;
  const dataVec = vec('alice_data', 'sealed');
  const macAt = data.length - 32;
  const flippedMac = flipBit(data, data.length - 1);
  refuse('bob', 'alice_data', 'receiveSealed', 'auth', 'alice_data with the lowest bit of its MAC flipped', flippedMac);
  const authenticated = data.subarray(0, macAt);
  const wrongKey = dataVec.hkdf.sender_is_low ? dataVec.hkdf.mac_key_high_to_low : dataVec.hkdf.mac_key_low_to_high;
  const wrongMac = concatBytes(authenticated, hmacSha256(fromHex(wrongKey), authenticated));
  add(
    {
      comment: "alice_data MAC'd with the wrong MAC key: the other direction's key of the same pair (Bob to Alice)",
      receiver: 'bob',
      before: 'alice_data',
      step: 'receiveSealed',
      engine_expect: 'auth',
      bytes: hex(wrongMac),
      wrong_mac_key: wrongKey,
    },
    wrongMac,
  );
  const flippedCt = flipBit(data, S.afterNonce + 4);
  refuse(
    'bob',
    'alice_data',
    'receiveSealed',
    'auth',
    'alice_data with the lowest bit of its first ciphertext byte flipped (MAC unchanged)',
    flippedCt,
  );
  refuse('bob', 'alice_ack', 'receiveSealed', 'replay', 'alice_data delivered a second time, after Bob accepted it', data);

  // Alice's data message again, sealed correctly under its pair, with its counter but another
  // nonce: what Alice sends if her state is restored from a backup taken before alice_data.
  const resealed = (label: string, edit: Partial<SealedMessage>, plaintext = text(label)): Uint8Array => {
    const { message } = decodeSealed(data);
    const nonce = edit.nonce ?? sha512(`offrecord/v1 message vector nonce|${label}`).subarray(0, 16);
    const counter = edit.counter ?? message.counter;
    const fields = {
      ...message,
      ...edit,
      nonce,
      ciphertext: aesCtr(messageKeyOf(fromHex(dataVec.direction_key), nonce), counter, plaintext),
    };
    const region = encodeAuthenticated(fields);
    return encodeSealed(region, hmacSha256(fromHex(dataVec.message_mac_key), region), []);
  };
  const rewound = resealed('rewound alice', {});
  refuse(
    'bob',
    'alice_ack',
    'receiveSealed',
    'rewound',
    "another message under alice_data's pair and counter with another nonce, correctly MAC'd (Alice's state restored from a backup), after Bob accepted alice_data: section 9.3",
    rewound,
  );
  const reannounced = resealed('reannounced share', { nextDh: fromHex(dataVec.dh.sender_public) });
  refuse(
    'bob',
    'alice_data',
    'receiveSealed',
    'unexpected',
    "alice_data with next_dh = Alice's share of key 1 (the one it is sent under), correctly MAC'd: a re-announced share is refused (section 8.4)",
    reannounced,
  );

  // Ids nobody announced (section 9.4 step 3): found before any key is derived, so the MAC is never reached.
  const unknownRecipient = put(data, S.recipientKeyId, u32be(3));
  refuse(
    'bob',
    'alice_data',
    'receiveSealed',
    'auth',
    "alice_data naming Bob's key 3, which Bob never announced (his next is 2): section 9.4 step 3",
    unknownRecipient,
  );
  const unknownSender = put(data, S.senderKeyId, u32be(2));
  refuse(
    'bob',
    'alice_data',
    'receiveSealed',
    'auth',
    "alice_data claiming Alice's key 2, which Bob has not seen announced (his view of her current is 1): section 9.4 step 3",
    unknownSender,
  );
  // A REPLY from the initiator to the responder: the MAC is checked first (section 9.4 step 4).
  const replyToResponder = resealed(
    'reply to the responder',
    { type: MessageType.Reply, counter: 2, senderDh: fromHex(dataVec.dh.sender_public) },
    new Uint8Array(AUTH_BLOCK_LENGTH),
  );
  refuse(
    'bob',
    'alice_data',
    'receiveSealed',
    'unexpected',
    "a REPLY from Alice to Bob, who is responding, sealed and MAC'd correctly under alice_data's pair (counter 2): authentic, does not fit the state",
    replyToResponder,
  );
  const replyToResponderBadMac = flipBit(replyToResponder, replyToResponder.length - 1);
  refuse(
    'bob',
    'alice_data',
    'receiveSealed',
    'auth',
    'the same REPLY to the responder with the last bit of its MAC flipped: the MAC comes before the type check',
    replyToResponderBadMac,
  );

  // First mails re-signed by Alice with one auth-block field changed (section 6.3 steps 4 and 5).
  const firstVec = vec('alice_first', 'first_inner');
  const signedFirst = (label: string, created: number, messageId: Uint8Array): Uint8Array => {
    const dhShare = fromHex(firstVec.fields.dh_share);
    const payload = text(label);
    const unsigned: AuthBlock = {
      senderFingerprint: A.fp,
      recipientFingerprint: B.fp,
      senderRingKey: A.public,
      recipientRingKey: B.public,
      created,
      messageId,
      signature: new Uint8Array(0),
    };
    const [p0, p1] = sortRing(A.public, B.public);
    const rand = sha512(`offrecord/v1 message vector rand|${label}`).subarray(0, 32);
    const signature = ringSign(prepareRing(p0, p1), A.secret, firstContext(unsigned, dhShare, payload), rand);
    return encodeFirstInner({ auth: { ...unsigned, signature }, dhShare, payload });
  };
  const freshId = (label: string): Uint8Array => sha512(`offrecord/v1 message vector message id|${label}`).subarray(0, 16);
  const firstAt = beforeReceive.get('alice_first')!.time;
  const future = signedFirst('signed too far ahead', firstAt + DEFAULT_POLICY.maxClockSkewMs + 1, freshId('signed too far ahead'));
  refuse(
    'bob',
    'alice_first',
    'receiveFirst',
    'unexpected',
    `alice_first re-signed with created = Bob's clock + maxClockSkewMs + 1 ms: section 6.3 step 4`,
    future,
  );
  const old = signedFirst('signed too long ago', firstAt - DEFAULT_POLICY.maxAuthAgeMs - 1, freshId('signed too long ago'));
  refuse(
    'bob',
    'alice_first',
    'receiveFirst',
    'expired',
    `alice_first re-signed with created = Bob's clock - maxAuthAgeMs - 1 ms: section 6.3 step 4`,
    old,
  );
  const dataAt = beforeReceive.get('alice_data')!.time;
  const repeatedId = signedFirst('same message id again', dataAt, fromHex(firstVec.auth.message_id));
  refuse(
    'bob',
    'alice_data',
    'receiveFirst',
    'replay',
    "a first mail from Alice, validly signed now, that repeats alice_first's message_id (other payload and created): section 6.3 step 5",
    repeatedId,
  );

  const first = wire.get('alice_first')!;
  const flippedSig = flipBit(first, F.signature);
  refuse(
    'bob',
    'alice_first',
    'receiveFirst',
    'auth',
    'alice_first inner with the lowest bit of its ring signature (c0) flipped',
    flippedSig,
  );
  const flippedPayload = flipBit(first, first.length - 1);
  refuse(
    'bob',
    'alice_first',
    'receiveFirst',
    'auth',
    'alice_first inner with the last payload bit flipped (the signature covers SHA-256(payload))',
    flippedPayload,
  );

  // Forged replies: sealed correctly under Bob's key 1 and Alice's key 1 (so the MAC is good),
  // but the ring signature is made by Mallory, whose key is outside the ring {Alice, Bob}.
  const replyVec = vec('bob_reply', 'sealed');
  const { M } = who;
  const forge = (comment: string, namedSender: Uint8Array, label: string, expect: ProtocolErrorCode): void => {
    const rand = sha512(`offrecord/v1 message vector rand|${label}`).subarray(0, 32);
    const payload = text('forged reply');
    const unsigned: AuthBlock = {
      senderFingerprint: B.fp,
      recipientFingerprint: A.fp,
      senderRingKey: namedSender,
      recipientRingKey: A.public,
      created: replyVec.auth!.created,
      messageId: sha512(`offrecord/v1 message vector message id|${label}`).subarray(0, 16),
      signature: new Uint8Array(0),
    };
    const senderDh = fromHex(replyVec.dh.sender_public);
    const answered = fromHex(replyVec.dh.recipient_public);
    const nextDh = fromHex(replyVec.dh.next_public);
    const context = replyContext(unsigned, senderDh, answered, nextDh, payload);
    const [p0, p1] = sortRing(M.public, A.public);
    const signature = ringSign(prepareRing(p0, p1), M.secret, context, rand);
    const auth = { ...unsigned, signature };
    const nonce = sha512(`offrecord/v1 message vector nonce|${label}`).subarray(0, 16);
    const ciphertext = aesCtr(messageKeyOf(fromHex(replyVec.direction_key), nonce), 1, encodeReplyPlaintext(auth, payload));
    const authenticatedRegion = encodeAuthenticated({
      type: MessageType.Reply,
      senderKeyId: 1,
      recipientKeyId: 1,
      nextDh,
      counter: 1,
      nonce,
      senderDh,
      ciphertext,
    });
    const bytes = encodeSealed(authenticatedRegion, hmacSha256(fromHex(replyVec.message_mac_key), authenticatedRegion), []);
    const record: AuthRecord = {
      sender_fingerprint: hex(auth.senderFingerprint),
      recipient_fingerprint: hex(auth.recipientFingerprint),
      sender_ring_key: hex(auth.senderRingKey),
      recipient_ring_key: hex(auth.recipientRingKey),
      created: auth.created,
      message_id: hex(auth.messageId),
      signature: hex(signature),
      encoded: hex(encodeAuth(auth)),
      ring: [hex(p0), hex(p1)],
      signer_index: equalBytes(p0, M.public) ? 0 : 1,
      rand: hex(rand),
      payload_sha256: hex(sha256(payload)),
      context: hex(context),
    };
    add(
      {
        comment,
        receiver: 'alice',
        before: 'bob_reply',
        step: 'receiveSealed',
        engine_expect: expect,
        bytes: hex(bytes),
        forged_auth: record,
        signed_by: hex(M.public),
      },
      bytes,
    );
  };
  forge(
    "a reply whose auth block names Bob's ring key but whose ring signature was made by Mallory over the ring {Mallory, Alice}: MAC valid, signature does not verify over {Bob, Alice}",
    B.public,
    'forged reply naming bob',
    'auth',
  );
  forge(
    "a reply whose auth block names Mallory's ring key (not a key of Bob's) and is validly signed over {Mallory, Alice}",
    M.public,
    'forged reply naming mallory',
    'unknown_key',
  );
  return out;
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  writeFileSync(MESSAGE_VECTORS_PATH, renderVectors(buildMessageVectors()));
  console.log(`wrote ${MESSAGE_VECTORS_PATH}`);
}

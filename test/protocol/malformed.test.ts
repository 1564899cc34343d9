// Malformed input, through the Conversation API of an established pair and through the raw
// decoders. Properties: receive() never throws, it answers junk with {kind: 'error'} and a code
// of the ProtocolErrorCode union, and the stored sessions are untouched. The one exception is
// a well-formed NAK, which is unauthenticated by design: it may set nakAt (if it names the
// re-send copy, §13.2) and nothing else.
// The raw decoders either throw a ProtocolError or return a value that re-encodes to exactly
// the input bytes (one encoding per message).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { concatBytes, toHex, u32be, u64be } from '../../src/crypto/bytes.ts';
import { generateRingSecret, ringPublicKey } from '../../src/crypto/ring.ts';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import type { ReceiveResult, SendResult } from '../../src/protocol/context.ts';
import { ProtocolError, type ProtocolErrorCode } from '../../src/protocol/errors.ts';
import { nakFor } from '../../src/protocol/session.ts';
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
  encodeReplyPlaintext,
  encodeSealed,
  LIMITS,
  MAGIC,
  peekType,
  VERSION,
} from '../../src/protocol/wire.ts';
import { conversationPair, type Pair, sent, text } from '../../kit/parties.ts';

/** Every code of the union, checked by the compiler in both directions. */
const CODE_TABLE: Record<ProtocolErrorCode, true> = {
  malformed: true,
  too_large: true,
  unsupported_version: true,
  auth: true,
  replay: true,
  rewound: true,
  expired: true,
  no_session: true,
  unexpected: true,
  unknown_key: true,
  state_conflict: true,
  counter_exhausted: true,
};
const CODES = new Set<string>(Object.keys(CODE_TABLE));
const RUNS = 150;

type Party = 'alice' | 'bob';
const PARTIES: readonly Party[] = ['alice', 'bob'];

interface Fixture {
  pair: Pair;
  ids: Record<Party, [string, string]>;
  valid: {
    firstOuter: Uint8Array;
    firstInner: Uint8Array;
    reply: Uint8Array;
    data: Uint8Array;
    dataFromBob: Uint8Array;
    ack: Uint8Array;
    nak: Uint8Array;
    bundle: Uint8Array;
  };
}

async function accepted(result: Promise<ReceiveResult>): Promise<void> {
  const r = await result;
  assert.notEqual(r.kind, 'error', r.kind === 'error' ? `${r.code}: ${r.message}` : '');
}

function sampleBundle(identity: Uint8Array): Uint8Array {
  const ring = ['a', 'b'].map((label) => {
    const secret = generateRingSecret(new Uint8Array(64).fill(label.charCodeAt(0)));
    return {
      public: ringPublicKey(secret),
      secret,
      notBefore: 1_690_000_000_000,
      notAfter: 1_700_000_000_000,
      certification: new Uint8Array(100).fill(9),
    };
  });
  const macKeys = [1, 2, 3].map((i) => new Uint8Array(32).fill(i * 17));
  return encodeBundle({ identity, created: 1_700_000_000_000, certificate: new Uint8Array(200).fill(5), ringKeys: ring, macKeys });
}

/** Alice and Bob both established, each having received a data message; plus one valid message of each type. */
async function establish(): Promise<Fixture> {
  const pair = await conversationPair();
  const { alice, bob } = pair;
  const firstOuter = sent(await alice.send(text('hello bob')));
  await accepted(bob.receive(firstOuter));
  const reply = sent(await bob.send(text('hi alice')));
  await accepted(alice.receive(reply));
  const data = sent(await alice.send(text('data from alice')));
  await accepted(bob.receive(data));
  const dataFromBob = sent(await bob.send(text('data from bob')));
  await accepted(alice.receive(dataFromBob));
  pair.env.advance(2 * 3_600_000);
  const ack = (await alice.acknowledgeIfDue()) as SendResult;
  assert.ok(ack, 'an acknowledgement is due');
  await accepted(bob.receive(sent(ack)));
  assert.equal((await alice.state())?.kind, 'established');
  assert.equal((await bob.state())?.kind, 'established');
  const { plaintext: firstInner } = await new OpenPgpSealer([pair.ids.bob.privateKey]).open(decodeFirstOuter(firstOuter));
  const a = toHex(pair.ids.alice.fingerprint);
  const b = toHex(pair.ids.bob.fingerprint);
  return {
    pair,
    ids: { alice: [a, b], bob: [b, a] },
    valid: {
      firstOuter,
      firstInner,
      reply,
      data,
      dataFromBob,
      ack: sent(ack),
      nak: nakFor(data),
      bundle: sampleBundle(pair.ids.alice.fingerprint),
    },
  };
}

let fixturePromise: Promise<Fixture> | null = null;
const fixture = (): Promise<Fixture> => (fixturePromise ??= establish());

function storeOf(f: Fixture, who: Party) {
  return who === 'alice' ? f.pair.aliceStore : f.pair.bobStore;
}

function isWellFormedNak(bytes: Uint8Array): boolean {
  try {
    decodeNak(bytes);
    return true;
  } catch {
    return false;
  }
}

/** receive() through the Conversation: never throws, refuses with a union code, and leaves the store alone. */
async function receiveChecked(f: Fixture, who: Party, bytes: Uint8Array, expect?: ProtocolErrorCode): Promise<ReceiveResult> {
  const [local, peer] = f.ids[who];
  const store = storeOf(f, who);
  const before = await store.load(local, peer);
  let result: ReceiveResult;
  try {
    result = await f.pair[who].receive(bytes);
  } catch (error) {
    assert.fail(`receive() threw for ${who} on ${toHex(bytes.subarray(0, 64))}…: ${String(error)}`);
  }
  const after = await store.load(local, peer);
  if (result.kind === 'error') {
    assert.ok(CODES.has(result.code), `unknown code ${result.code}`);
    if (expect) assert.equal(result.code, expect, `${who}: ${result.message}`);
    assert.deepEqual(result.outgoing, [], 'nothing to send for junk');
    assert.deepStrictEqual(after, before, `${who}'s stored session changed on a refused input (${result.code})`);
    return result;
  }
  // Only a well-formed NAK is accepted from junk. It marks the session only if it names the
  // re-send copy exactly (§13.2), and changes nothing else.
  assert.ok(isWellFormedNak(bytes), `${who} accepted ${result.kind} for ${toHex(bytes.subarray(0, 64))}…`);
  assert.equal(expect, undefined, `expected ${expect}, got ${result.kind}`);
  assert.equal(result.kind, 'ignore');
  assert.deepEqual(result.outgoing, []);
  assert.ok(before && after);
  const sentAs = before.state.lastSent?.sentAs;
  const nak = decodeNak(bytes);
  const names =
    sentAs !== undefined &&
    nak.senderKeyId === sentAs.senderKeyId &&
    nak.recipientKeyId === sentAs.recipientKeyId &&
    nak.counter === sentAs.counter;
  if (names) assert.equal(after.state.nakAt, f.pair.env.now());
  else assert.deepStrictEqual(after, before, 'a NAK that names nothing we keep changes nothing');
  assert.deepStrictEqual({ ...after.state, nakAt: null }, { ...before.state, nakAt: null }, 'a NAK only sets nakAt');
  return result;
}

async function receiveBoth(f: Fixture, bytes: Uint8Array, expect?: ProtocolErrorCode): Promise<void> {
  for (const who of PARTIES) await receiveChecked(f, who, bytes, expect);
}

// ---------------------------------------------------------------- raw decoders

type Decoder =
  'peekType' | 'decodeFirstOuter' | 'decodeFirstInner' | 'decodeSealed' | 'decodeNak' | 'decodeBundle' | 'decodeReplyPlaintext';

/** Each decoder with the encoder that must give the input back when decoding succeeds. */
const ROUND_TRIPS: Record<Decoder, (bytes: Uint8Array) => Uint8Array> = {
  peekType: (b) => concatBytes(MAGIC, Uint8Array.of(VERSION, peekType(b)), b.subarray(4)),
  decodeFirstOuter: (b) => encodeFirstOuter(decodeFirstOuter(b)),
  decodeFirstInner: (b) => encodeFirstInner(decodeFirstInner(b)),
  decodeSealed: (b) => {
    const { message, authenticated } = decodeSealed(b);
    const again = encodeAuthenticated(message);
    assert.equal(toHex(again), toHex(authenticated), 'authenticated region');
    return encodeSealed(again, message.mac, message.reveals);
  },
  decodeNak: (b) => encodeNak(decodeNak(b)),
  decodeBundle: (b) => encodeBundle(decodeBundle(b)),
  decodeReplyPlaintext: (b) => {
    const { auth, payload } = decodeReplyPlaintext(b);
    return encodeReplyPlaintext(auth, payload);
  },
};
const DECODER_NAMES = Object.keys(ROUND_TRIPS) as Decoder[];

/** Runs one decoder: a ProtocolError code on refusal (checked against the union), null on success (checked canonical). */
function decodeChecked(name: Decoder, bytes: Uint8Array): ProtocolErrorCode | null {
  let again: Uint8Array;
  try {
    again = ROUND_TRIPS[name](bytes);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `${name} threw ${String(error)} on ${toHex(bytes.subarray(0, 64))}…`);
    assert.ok(CODES.has(error.code));
    return error.code;
  }
  assert.equal(toHex(again), toHex(bytes), `${name} accepted a non-canonical encoding`);
  return null;
}

function allDecoders(bytes: Uint8Array): Record<Decoder, ProtocolErrorCode | null> {
  const out = {} as Record<Decoder, ProtocolErrorCode | null>;
  for (const name of DECODER_NAMES) out[name] = decodeChecked(name, bytes);
  return out;
}

async function everywhere(f: Fixture, bytes: Uint8Array): Promise<void> {
  allDecoders(bytes);
  await receiveBoth(f, bytes);
}

const prefixed = (type: number, body: Uint8Array): Uint8Array => concatBytes(MAGIC, Uint8Array.of(VERSION, type), body);
const setByte = (bytes: Uint8Array, offset: number, value: number): Uint8Array => {
  const out = Uint8Array.from(bytes);
  out[offset] = value;
  return out;
};
const put = (bytes: Uint8Array, offset: number, value: Uint8Array): Uint8Array => {
  const out = Uint8Array.from(bytes);
  out.set(value, offset);
  return out;
};

// ---------------------------------------------------------------- tests

describe('malformed input: random', () => {
  it('random bytes', async () => {
    const f = await fixture();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), (bytes) => everywhere(f, bytes)),
      { numRuns: RUNS },
    );
  });

  it('random bytes behind a valid prefix, for each type (and a few beyond)', async () => {
    const f = await fixture();
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 8 }), fc.uint8Array({ maxLength: 600 }), (type, body) =>
        everywhere(f, prefixed(type, body)),
      ),
      { numRuns: 2 * RUNS },
    );
  });

  it('random bytes behind a valid prefix of exactly the fixed-field size', async () => {
    const f = await fixture();
    // Sizes that reach deep into each decoder: a NAK, the headers of data and reply, a first inner.
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom([3, 48 + 32], [4, 48 + 32], [2, 80 + 32], [5, 16], [1, 32 + 224], [6, 20 + 8 + 2 + 4 + 32]),
        fc.uint8Array({ maxLength: 40 }),
        fc.uint8Array({ minLength: 256, maxLength: 256 }),
        ([type, size], tail, filler) => everywhere(f, prefixed(type!, concatBytes(filler.subarray(0, size!), tail))),
      ),
      { numRuns: RUNS },
    );
  });

  it('valid messages cut at a random point, with a random tail', async () => {
    const f = await fixture();
    const names = Object.keys(f.valid) as (keyof Fixture['valid'])[];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), fc.nat(), fc.uint8Array({ maxLength: 64 }), (name, cut, tail) => {
        const source = f.valid[name];
        return everywhere(f, concatBytes(source.subarray(0, cut % (source.length + 1)), tail));
      }),
      { numRuns: RUNS },
    );
  });

  it('valid messages with one byte changed', async () => {
    const f = await fixture();
    const names = Object.keys(f.valid) as (keyof Fixture['valid'])[];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), fc.nat(), fc.integer({ min: 1, max: 255 }), async (name, at, xor) => {
        const source = f.valid[name];
        const offset = at % source.length;
        const bytes = setByte(source, offset, source[offset]! ^ xor);
        await everywhere(f, bytes);
      }),
      { numRuns: RUNS },
    );
  });
});

describe('malformed input: truncation', () => {
  const cases: [string, (f: Fixture) => Uint8Array, Decoder][] = [
    ['data message', (f) => f.valid.data, 'decodeSealed'],
    ['reply', (f) => f.valid.reply, 'decodeSealed'],
    ['acknowledgement', (f) => f.valid.ack, 'decodeSealed'],
    ['NAK', (f) => f.valid.nak, 'decodeNak'],
    ['bundle', (f) => f.valid.bundle, 'decodeBundle'],
    ['first outer', (f) => f.valid.firstOuter, 'decodeFirstOuter'],
  ];
  for (const [label, pick, decoder] of cases) {
    it(`every truncation of a valid ${label}`, async () => {
      const f = await fixture();
      const source = pick(f);
      assert.equal(decodeChecked(decoder, source), null, 'the whole message decodes');
      for (let length = 0; length < source.length; length++) {
        const bytes = source.subarray(0, length);
        const codes = allDecoders(bytes);
        // A proper prefix never decodes, except an outer first mail (its OpenPGP body is opaque here).
        if (decoder !== 'decodeFirstOuter' || length <= 4) assert.equal(codes[decoder], 'malformed', `${label} cut to ${length} bytes`);
        await receiveBoth(f, bytes);
      }
    });
  }

  it('every truncation of a valid first inner, sealed to Bob and received', async () => {
    const f = await fixture();
    const inner = f.valid.firstInner;
    const payloadAt = 4 + 32 + 224;
    const sealer = new OpenPgpSealer([f.pair.ids.alice.privateKey]);
    assert.equal(decodeChecked('decodeFirstInner', inner), null);
    for (let length = 0; length < inner.length; length++) {
      const bytes = inner.subarray(0, length);
      // Cut before the payload: malformed; inside it: decodes (and the signature then fails).
      assert.equal(allDecoders(bytes).decodeFirstInner, length < payloadAt ? 'malformed' : null, `first inner cut to ${length}`);
      await receiveBoth(f, bytes); // the raw inner on the wire is an envelope that does not open
      const outer = encodeFirstOuter(await sealer.seal(bytes, f.pair.ids.bob.publicKey));
      await receiveChecked(f, 'bob', outer, length < 4 ? 'malformed' : length < payloadAt ? 'malformed' : 'auth');
    }
  });
});

describe('malformed input: fields', () => {
  it('huge length and count fields', async () => {
    const f = await fixture();
    const { data, reply, bundle } = f.valid;
    const dataCt = 68; // PROTOCOL.md §5.5: after the 16-byte nonce
    const replyCt = 100;
    const body = bundle.subarray(0, bundle.length - 32);
    const ringCountAt = 4 + 1 + 20 + 8 + 2 + 200; // prefix, format, identity, created, certificate length, certificate
    const macCountAt = ringCountAt + 2 + 2 * (82 + 100);
    const withChecksum = (b: Uint8Array): Uint8Array => concatBytes(b, new Uint8Array(createHash('sha256').update(b).digest()));
    const cases: [string, Uint8Array, Decoder, ProtocolErrorCode][] = [];
    // Over the payload limit is refused as such; within it, a length past the end is malformed.
    for (const n of [0xffffffff, 0x80000000, LIMITS.maxMessage + 1, LIMITS.maxMessage]) {
      cases.push([`data ciphertext length ${n}`, put(data, dataCt, u32be(n)), 'decodeSealed', 'too_large']);
      cases.push([`reply ciphertext length ${n}`, put(reply, replyCt, u32be(n)), 'decodeSealed', 'too_large']);
    }
    for (const n of [LIMITS.maxPayload, data.length]) {
      cases.push([`data ciphertext length ${n}`, put(data, dataCt, u32be(n)), 'decodeSealed', 'malformed']);
      cases.push([`reply ciphertext length ${n}`, put(reply, replyCt, u32be(n)), 'decodeSealed', 'malformed']);
    }
    for (const n of [0xffff, LIMITS.maxBundleRingKeys + 1]) {
      cases.push([
        `bundle ring count ${n}`,
        withChecksum(put(body, ringCountAt, Uint8Array.of(n >> 8, n & 0xff))),
        'decodeBundle',
        'too_large',
      ]);
    }
    cases.push([
      `bundle ring count ${LIMITS.maxBundleRingKeys}`,
      withChecksum(put(body, ringCountAt, Uint8Array.of(0x10, 0))),
      'decodeBundle',
      'malformed',
    ]);
    for (const n of [0xffffffff, LIMITS.maxBundleMacKeys + 1]) {
      cases.push([`bundle MAC count ${n}`, withChecksum(put(body, macCountAt, u32be(n))), 'decodeBundle', 'too_large']);
    }
    cases.push([
      `bundle MAC count ${LIMITS.maxBundleMacKeys}`,
      withChecksum(put(body, macCountAt, u32be(LIMITS.maxBundleMacKeys))),
      'decodeBundle',
      'malformed',
    ]);
    for (const counter of [2n ** 53n, 2n ** 63n, 2n ** 64n - 1n]) {
      cases.push([`data counter ${counter}`, put(data, 44, u64be(counter)), 'decodeSealed', 'too_large']);
      cases.push([`NAK counter ${counter}`, put(f.valid.nak, 12, u64be(counter)), 'decodeNak', 'too_large']);
    }
    cases.push(['257 reveals', concatBytes(data, new Uint8Array(257 * 32).fill(7)), 'decodeSealed', 'too_large']);
    for (const [label, bytes, decoder, code] of cases) {
      assert.equal(decodeChecked(decoder, bytes), code, label);
      allDecoders(bytes);
      await receiveBoth(f, bytes);
    }
    // The boundaries themselves are fine on the wire.
    assert.equal(decodeChecked('decodeSealed', concatBytes(data, new Uint8Array(256 * 32).fill(7))), null, '256 reveals');
    assert.equal(decodeChecked('decodeNak', put(f.valid.nak, 12, u64be(2n ** 53n - 1n))), null, 'counter 2^53 - 1');
  });

  it('every version byte except 1', async () => {
    const f = await fixture();
    const sources = [f.valid.data, f.valid.nak, f.valid.bundle, f.valid.firstOuter, f.valid.reply];
    for (let version = 0; version < 256; version++) {
      if (version === VERSION) continue;
      for (const source of sources) {
        const bytes = setByte(source, 2, version);
        for (const [name, code] of Object.entries(allDecoders(bytes))) {
          if (name !== 'decodeReplyPlaintext') assert.equal(code, 'unsupported_version', `${name}, version ${version}`);
        }
      }
      await receiveBoth(f, setByte(sources[version % sources.length]!, 2, version), 'unsupported_version');
    }
  });

  it('every type byte except 1..6', async () => {
    const f = await fixture();
    for (let type = 0; type < 256; type++) {
      if (type >= 1 && type <= 6) continue;
      for (const bytes of [prefixed(type, new Uint8Array(0)), setByte(f.valid.data, 3, type), setByte(f.valid.nak, 3, type)]) {
        for (const [name, code] of Object.entries(allDecoders(bytes))) {
          if (name !== 'decodeReplyPlaintext') assert.equal(code, 'malformed', `${name}, type ${type}`);
        }
      }
      await receiveBoth(f, setByte(f.valid.data, 3, type), 'malformed');
    }
  });

  it(`a message of ${LIMITS.maxMessage} + 1 bytes is too_large before any parsing`, async () => {
    const f = await fixture();
    // All zeros: parsing would say "bad magic"; a valid data message in front changes nothing.
    const zeros = new Uint8Array(LIMITS.maxMessage + 1);
    const looksValid = Uint8Array.from(zeros);
    looksValid.set(f.valid.data);
    for (const bytes of [zeros, looksValid]) {
      for (const [name, code] of Object.entries(allDecoders(bytes))) {
        if (name !== 'decodeReplyPlaintext') assert.equal(code, 'too_large', name);
      }
      await receiveBoth(f, bytes, 'too_large');
    }
    // At exactly the limit the length is fine and parsing decides.
    assert.equal(decodeChecked('peekType', zeros.subarray(0, LIMITS.maxMessage)), 'malformed');
  });
});

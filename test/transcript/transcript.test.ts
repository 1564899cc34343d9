// Deniability, demonstrated: before any key is public a third party cannot alter a transcript;
// after publication it can alter a mail of every kind so that it passes every check the
// genuine one passes, the receiver's own checks included, and the verifier cannot tell them apart.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { concatBytes, equalBytes } from '../../src/crypto/bytes.ts';
import { generateRingSecret, ringPublicKey } from '../../src/crypto/ring.ts';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { loadPublished } from '../../src/keys/bundle-reading.ts';
import { DirectoryTarget } from '../../src/keys/bundle-targets.ts';
import { PublishedKeys } from '../../src/keys/bundle-verification.ts';
import { publishDue } from '../../src/keys/publishing.ts';
import { composeInner } from '../../src/mail/mime.ts';
import { ForgeError } from '../../src/transcript/errors.ts';
import { forgeMail } from '../../src/transcript/forge.ts';
import { readTranscript, type TranscriptMail } from '../../src/transcript/read.ts';
import { verifyTranscript, type Claims } from '../../src/transcript/verify.ts';
import { unfold } from '../../src/keys/headers.ts';
import { forgeFirstInner } from '../../src/protocol/forge.ts';
import { aesCtr, deriveDirectionKeys, generateDhKeyPair, hmacSha256, messageKey } from '../../src/protocol/keyschedule.ts';
import { systemEnv } from '../../src/protocol/env.ts';
import { decodeFirstOuter, decodeSealed, encodeAuthenticated, encodeFirstOuter, encodeSealed } from '../../src/protocol/wire.ts';
import * as openpgp from 'openpgp';
import { replayInto, runConversation, silence, type Scenario, type Sent } from '../helpers/published-conversation.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const str = (b: Uint8Array): string => new TextDecoder().decode(b);
const files = (mails: Sent[]) => mails.map((m) => ({ name: `${m.name}.eml`, raw: m.eml }));

/** The plaintext of a reply, as the initiator decrypted it (from its state just before). */
function replyPlaintext(sent: Sent, protocol = sent.protocol): Uint8Array {
  const state = sent.receiver.state;
  assert.ok(state?.kind === 'initiating');
  const { message } = decodeSealed(protocol);
  const keys = deriveDirectionKeys(state.ours.first.secret, state.ours.first, { id: 1, public: message.senderDh! }, 'receive');
  return aesCtr(messageKey(keys.key, message.nonce), message.counter, message.ciphertext);
}

/** A first mail's inner form, as its recipient opened it with its (since destroyed) subkey. */
async function firstInner(sent: Sent, protocol = sent.protocol): Promise<Uint8Array> {
  const key = await openpgp.readPrivateKey({ armoredKey: sent.to.originalSecret });
  return (await new OpenPgpSealer([key]).open(decodeFirstOuter(protocol))).plaintext;
}

/** A new inner message from the same sender, with `body`, no longer than `limit` bytes. */
async function newPayload(sent: Sent, body: string, limit = Infinity): Promise<Uint8Array> {
  const payload = await composeInner({
    from: sent.from.address,
    to: sent.to.address,
    subject: sent.name,
    date: new Date(sent.receiver.time),
    text: body,
    attachments: [],
  });
  assert.ok(payload.length <= limit, `${payload.length} > ${limit}`);
  return payload;
}

function withForged(transcript: TranscriptMail[], forged: TranscriptMail): TranscriptMail[] {
  return transcript.map((t) => (t.name === forged.name ? forged : t));
}

describe('forge and verify', () => {
  let s: Scenario;
  let root: string;
  before(async () => {
    s = await runConversation();
    root = mkdtempSync(join(tmpdir(), 'offrecord-forge-'));
  });
  after(() => {
    s.cleanup();
    rmSync(root, { recursive: true, force: true });
  });

  it('before publication: nothing can be forged, and every altered mail is refused by its receiver', async () => {
    // The first five mails: no key of theirs is public yet (the later rounds reveal some in band).
    const early = s.mails.slice(0, 5);
    assert.deepEqual(
      early.map((m) => m.kind),
      ['first', 'reply', 'data', 'data', 'ack'],
    );
    const transcript = await readTranscript(files(early), Date.now());
    const none = new PublishedKeys([]);
    for (const t of transcript) {
      await assert.rejects(
        forgeMail(t, transcript, none, {
          payload: text('x'),
          known: new Uint8Array(decodeSealedLength(t)),
          answeredDh: new Uint8Array(32).fill(9),
        }),
        (e: unknown) => e instanceof ForgeError && e.code === 'not_published',
        t.name,
      );
    }
    // What a forger without keys can do to each kind, and what the receiver (as it was) says.
    const refused = async (sent: Sent, protocol: Uint8Array, codes: string[]) => {
      const got = await replayInto(s, sent, protocol);
      assert.ok(got.kind === 'error' && codes.includes(got.code), `${sent.name}: ${got.kind} ${got.kind === 'error' ? got.code : ''}`);
    };
    for (const sent of early.filter((m) => m.kind !== 'first')) {
      const { message } = decodeSealed(sent.protocol);
      // Flip a ciphertext bit (or, for an ACK, announce another share) and keep the MAC.
      const altered =
        message.ciphertext.length > 0
          ? { ...message, ciphertext: Uint8Array.from(message.ciphertext, (b, i) => (i === 0 ? b ^ 1 : b)) }
          : { ...message, nextDh: generateDhKeyPair().public };
      const authenticated = encodeAuthenticated(altered);
      await refused(sent, encodeSealed(authenticated, message.mac, message.reveals), ['auth']);
      // MAC it again under a key of the forger's choosing.
      await refused(sent, encodeSealed(authenticated, hmacSha256(new Uint8Array(32).fill(7), authenticated), message.reveals), ['auth']);
    }
    // A first mail signed with the forger's own ring key, for the ring {forger, Bob}, sealed to Bob.
    const first = early[0]!;
    const inner = await firstInner(first);
    const forgerSecret = generateRingSecret();
    const bobRing = first.receiver.parties.local.ringKeys[0]!.public;
    const fake = forgeFirstInner({
      senderFingerprint: inner.subarray(36, 56),
      recipientFingerprint: inner.subarray(56, 76),
      senderRingKey: ringPublicKey(forgerSecret),
      recipientRingKey: bobRing,
      ringSecret: forgerSecret,
      created: first.receiver.time,
      dhShare: generateDhKeyPair().public,
      payload: text('forged'),
      random: systemEnv.random,
    });
    const sealed = encodeFirstOuter(
      await new OpenPgpSealer([]).seal(fake, (await openpgp.readPrivateKey({ armoredKey: s.bob.originalSecret })).toPublic()),
    );
    await refused(first, sealed, ['unknown_key']);
    // The verifier, without keys: nothing is evidence, nothing is forgeable.
    for (const v of await verifyTranscript(transcript, null)) {
      assert.ok(!v.checks.some((c) => c.result === 'fail'), JSON.stringify(v));
      assert.match(v.meaning, /Nothing here is evidence/);
    }
  });

  describe('after publication', () => {
    let keys: PublishedKeys;
    let transcript: TranscriptMail[];
    let genuineClaims: Map<string, Uint8Array>;
    const reports = new Map<string, unknown[]>();

    before(async () => {
      genuineClaims = new Map([
        ['first.eml', await firstInner(s.byName('first'))],
        ['reply.eml', replyPlaintext(s.byName('reply'))],
      ]);
      await silence(s, 4); // retired pairs forgotten: their MAC keys queued
      await silence(s, 18); // ring keys past expiry plus the publication grace
      const dir = join(root, 'published');
      for (const side of [s.alice, s.bob])
        await publishDue({ store: side.store, target: new DirectoryTarget(dir), clock: () => s.clock.now() });
      keys = await loadPublished([join(dir, s.alice.fingerprint), join(dir, s.bob.fingerprint)]);
      assert.equal(keys.bundles.filter((b) => b.ringKeys.length > 0).length, 2, 'both ring secrets are published');
      transcript = await readTranscript(files(s.mails), Date.now());
    });

    /** The verifier's report on mail `name` within the transcript, the file name left out. */
    async function report(list: TranscriptMail[], name: string, claims: Claims = new Map()): Promise<unknown> {
      const v = (await verifyTranscript(list, keys, claims)).find((r) => r.file === `${name}.eml`)!;
      return { ...v, file: undefined };
    }

    async function checkForgery(
      name: string,
      forgedEml: Uint8Array,
      expect: (got: Awaited<ReturnType<typeof replayInto>>) => void,
      claims?: { genuine: Claims; forged: Claims },
    ) {
      const sent = s.byName(name);
      const [forged] = await readTranscript([{ name: `${name}.eml`, raw: forgedEml }], Date.now());
      assert.ok(!equalBytes(forged!.mail.protocol, sent.protocol), 'the forgery differs from the original');
      // The receiver, as it was when the genuine mail arrived, accepts the forgery as genuine.
      expect(await replayInto(s, sent, forged!.mail.protocol));
      // The third party's verifier says the same words about both.
      const genuine = await report(transcript, name);
      assert.deepEqual(await report(withForged(transcript, forged!), name), genuine);
      assert.match((genuine as { meaning: string }).meaning, /Anyone could have made this mail/);
      if (claims) {
        const a = await report(transcript, name, claims.genuine);
        assert.deepEqual(await report(withForged(transcript, forged!), name, claims.forged), a);
        assert.ok(
          (a as { checks: { check: string; result: string }[] }).checks.some((c) => c.check === 'ring signature' && c.result === 'pass'),
          JSON.stringify(a),
        );
      }
      reports.set(name, [genuine]);
      return forged!;
    }

    it('a data message: new content by XOR with the known plaintext, re-MACed with the revealed key', async () => {
      for (const [name, body] of [
        ['alice-data-0', 'I confess everything.'],
        ['bob-data-1', 'I did it.'],
      ] as const) {
        const sent = s.byName(name);
        const payload = await newPayload(sent, body, sent.payload.length);
        const eml = await forgeMail(
          transcript.find((t) => t.name === `${name}.eml`)!,
          transcript,
          keys,
          { known: sent.payload, payload },
        );
        await checkForgery(name, eml, (got) => assert.equal(got.kind === 'plaintext' && str(got.plaintext), str(payload)));
      }
    });

    it('an acknowledgement: another announced share, re-MACed', async () => {
      const eml = await forgeMail(
        transcript.find((t) => t.name === 'alice-ack.eml')!,
        transcript,
        keys,
      );
      await checkForgery('alice-ack', eml, (got) => assert.equal(got.kind, 'ignore', JSON.stringify(got)));
    });

    it('a reply: signed anew with a published ring secret, XORed and re-MACed', async () => {
      const sent = s.byName('reply');
      const payload = await newPayload(sent, 'No. I will not come.', sent.payload.length);
      const known = genuineClaims.get('reply.eml')!;
      const answeredDh = sent.receiver.state!.origin.share;
      const eml = await forgeMail(
        transcript.find((t) => t.name === 'reply.eml')!,
        transcript,
        keys,
        { known, payload, answeredDh },
      );
      const forgedProtocol = (await readTranscript([{ name: 'reply.eml', raw: eml }], Date.now()))[0]!.mail.protocol;
      await checkForgery('reply', eml, (got) => assert.equal(got.kind === 'plaintext' && str(got.plaintext), str(payload)), {
        genuine: genuineClaims,
        forged: new Map([...genuineClaims, ['reply.eml', replyPlaintext(sent, forgedProtocol)]]),
      });
    });

    it('a first mail: a new inner message ring-signed with a published secret and sealed to the recipient', async () => {
      const sent = s.byName('first');
      const payload = await newPayload(sent, 'Here are the stolen documents, as agreed.');
      const eml = await forgeMail(
        transcript.find((t) => t.name === 'first.eml')!,
        transcript,
        keys,
        { payload },
      );
      const forgedProtocol = (await readTranscript([{ name: 'first.eml', raw: eml }], Date.now()))[0]!.mail.protocol;
      const forgedInner = await firstInner(sent, forgedProtocol);
      await checkForgery('first', eml, (got) => assert.equal(got.kind === 'plaintext' && str(got.plaintext), str(payload)), {
        genuine: genuineClaims,
        forged: new Map([
          ['first.eml', forgedInner],
          ['reply.eml', genuineClaims.get('reply.eml')!],
        ]),
      });
    });

    it('a key header a relay refolded (a tab, a deeper indent) is forged as it was, unfolded by RFC 5322 §2.2.3', async () => {
      const original = transcript.find((t) => t.name === 'alice-ack.eml')!;
      const [refolded] = await readTranscript(
        [{ name: 'alice-ack.eml', raw: refold(s.byName('alice-ack').eml, 'Offrecord-Keys') }],
        Date.now(),
      );
      assert.notEqual(refolded!.mail.offrecordKeys, original.mail.offrecordKeys, 'the relay changed the folding');
      assert.deepEqual(refolded!.ringKeys, original.ringKeys, 'and nothing the header says');
      const [forged] = await readTranscript(
        [{ name: 'alice-ack.eml', raw: await forgeMail(refolded!, withForged(transcript, refolded!), keys) }],
        Date.now(),
      );
      assert.equal(unfold(forged!.mail.offrecordKeys!), unfold(refolded!.mail.offrecordKeys!));
    });

    it('clear errors for what cannot be done', async () => {
      const data = transcript.find((t) => t.name === 'alice-data-0.eml')!;
      const sent = s.byName('alice-data-0');
      const longer = concatBytes(sent.payload, text('more'));
      await assert.rejects(forgeMail(data, transcript, keys, { known: sent.payload, payload: longer }), /longer than the .* known/);
      await assert.rejects(
        forgeMail(data, transcript, keys, { known: sent.payload.subarray(1), payload: text('x') }),
        /must be the whole plaintext/,
      );
      await assert.rejects(
        forgeMail(data, transcript, keys, { payload: text('x') }),
        (e: unknown) => e instanceof ForgeError && e.code === 'needs_plaintext',
      );
      const last = transcript.find((t) => t.name === 'bob-data-3.eml')!;
      await assert.rejects(
        forgeMail(last, transcript, keys, { known: s.byName('bob-data-3').payload, payload: text('x') }),
        (e: unknown) => e instanceof ForgeError && e.code === 'not_published',
      );
    });
  });
});

/** Ciphertext length of a sealed message (0 for a first mail), to hand forgeMail a plausible known plaintext. */
function decodeSealedLength(t: TranscriptMail): number {
  try {
    return decodeSealed(t.mail.protocol).message.ciphertext.length;
  } catch {
    return 0;
  }
}

/** `eml` as a relay may pass it on: each fold of header `name` made with a tab and a deeper indent. */
function refold(eml: Uint8Array, name: string): Uint8Array {
  const raw = str(eml);
  const start = raw.indexOf(`\r\n${name}:`) + 2;
  let end = raw.indexOf('\r\n', start);
  while (raw[end + 2] === ' ' || raw[end + 2] === '\t') end = raw.indexOf('\r\n', end + 2);
  assert.ok(start > 1 && raw.slice(start, end).includes('\r\n '), `${name} is folded`);
  return text(raw.slice(0, start) + raw.slice(start, end).replaceAll('\r\n ', '\r\n\t  ') + raw.slice(end));
}

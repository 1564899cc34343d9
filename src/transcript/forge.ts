// How anyone can alter a transcript once its keys are published: the altered mail passes every
// check the original passes (docs/PROTOCOL.md §20.8).
import { fromHex } from '../crypto/bytes.ts';
import { envelopeKeyIds, sealToSubkey } from '../crypto/seal.ts';
import { unfold } from '../keys/headers.ts';
import type { PublishedKeys } from '../keys/bundle-verification.ts';
import { composeProtected } from '../mail/mime.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { findMacKey, forgeFirstInner, forgeReply, forgeSealed } from '../protocol/forge.ts';
import { generateDhKeyPair } from '../protocol/keyschedule.ts';
import { systemEnv } from '../protocol/env.ts';
import { decodeFirstOuter, decodeReplyPlaintext, encodeFirstOuter, MessageType } from '../protocol/wire.ts';
import { ForgeError } from './errors.ts';
import { party, publicMacKeys, ringInUse } from './parties.ts';
import { DESCRIPTIONS, type TranscriptMail } from './read.ts';

export interface ForgeRequest {
  /** The new payload (a whole inner MIME entity, see composeInner), for a first mail, reply or data message. */
  payload?: Uint8Array;
  /** Data message: its payload as known or guessed. Reply: its whole plaintext (auth block and payload). */
  known?: Uint8Array;
  /** Reply: the initiator's first share it answers (from the first mail's inner form). */
  answeredDh?: Uint8Array;
  /** Acknowledgement or data message: announce this DH share instead. */
  nextDh?: Uint8Array;
  /** Randomness (message ids, nonces, the forged first mail's share); node:crypto by default. */
  random?: (length: number) => Uint8Array;
}

/** The same mail with another protocol message: same headers (From, To, Date, Message-ID, keys). */
async function recompose(t: TranscriptMail, protocol: Uint8Array): Promise<Uint8Array> {
  const m = t.mail;
  return composeProtected({
    from: m.from,
    to: m.to.join(', '),
    protocol,
    ...(m.autocrypt[0] !== undefined ? { autocrypt: unfold(m.autocrypt[0]) } : {}),
    ...(m.offrecordKeys !== null ? { offrecordKeys: unfold(m.offrecordKeys) } : {}),
    ...(m.date ? { date: m.date } : {}),
    ...(m.messageId ? { messageId: m.messageId } : {}),
    ...(m.inReplyTo ? { inReplyTo: m.inReplyTo } : {}),
    ...(m.references ? { references: m.references } : {}),
  });
}

function requirePublishedMac(t: TranscriptMail, transcript: readonly TranscriptMail[], keys: PublishedKeys): Uint8Array {
  const key = findMacKey(t.mail.protocol, publicMacKeys(transcript, keys));
  if (!key)
    throw new ForgeError(
      'not_published',
      `${t.name}: the MAC key of this ${DESCRIPTIONS[t.mail.type]} is not published (yet): it cannot be altered`,
    );
  return key;
}

async function forgeFirst(
  t: TranscriptMail,
  transcript: readonly TranscriptMail[],
  keys: PublishedKeys,
  request: ForgeRequest,
  random: (n: number) => Uint8Array,
): Promise<Uint8Array> {
  if (!request.payload) throw new ForgeError('needs_plaintext', `${t.name}: say what the forged first mail should contain`);
  const [sender, recipient] = [await party(t.mail.from, transcript, keys), await party(t.mail.to[0] ?? '', transcript, keys)];
  if (!sender.fingerprint || !recipient.fingerprint || !recipient.certificate) {
    throw new ForgeError('missing', `${t.name}: the identities of both correspondents are needed (their Autocrypt headers or bundles)`);
  }
  const time = t.time;
  const { senderRing, recipientRing } = ringInUse(t, sender, recipient);
  if (!senderRing || !recipientRing)
    throw new ForgeError(
      'missing',
      `${t.name}: no ring key of ${senderRing ? recipient.address : sender.address} valid at the time of the mail is known`,
    );
  const signer = keys.ringKey(senderRing) ?? keys.ringKey(recipientRing);
  if (!signer) {
    throw new ForgeError(
      'not_published',
      `${t.name}: neither ring secret of this first mail's ring is published (yet): it cannot be signed anew`,
    );
  }
  const ids = await envelopeKeyIds(decodeFirstOuter(t.mail.protocol));
  if (ids.length !== 1) throw new ForgeError('unsupported', `${t.name}: the envelope is not sealed to exactly one key`);
  const share = generateDhKeyPair();
  share.secret.fill(0); // the forger never answers: its share only has to look like one
  const inner = forgeFirstInner({
    senderFingerprint: fromHex(sender.fingerprint),
    recipientFingerprint: fromHex(recipient.fingerprint),
    senderRingKey: senderRing,
    recipientRingKey: recipientRing,
    ringSecret: signer.secret,
    created: time,
    dhShare: share.public,
    payload: request.payload,
    random,
  });
  try {
    return encodeFirstOuter(await sealToSubkey(inner, recipient.certificate, ids[0]!, new Date(time)));
  } catch {
    throw new ForgeError('missing', `${t.name}: cannot seal to key ${ids[0]!.toUpperCase()} of ${recipient.address} as of the mail's date`);
  }
}

/**
 * An altered copy of mail `t` that passes every check the original passes, from the transcript
 * and published keys alone (plus, where CTR needs it, the known plaintext): a new .eml.
 */
export async function forgeMail(
  t: TranscriptMail,
  transcript: readonly TranscriptMail[],
  keys: PublishedKeys,
  request: ForgeRequest = {},
): Promise<Uint8Array> {
  const random = request.random ?? systemEnv.random;
  const bytes = t.mail.protocol;
  let forged: Uint8Array;
  try {
    switch (t.mail.type) {
      case MessageType.First:
        forged = await forgeFirst(t, transcript, keys, request, random);
        break;
      case MessageType.Data:
        if (!request.known || !request.payload)
          throw new ForgeError(
            'needs_plaintext',
            `${t.name}: a data message is altered through its known (or guessed) plaintext: give it, and the new content`,
          );
        forged = forgeSealed(bytes, requirePublishedMac(t, transcript, keys), {
          known: request.known,
          replacement: request.payload,
          ...(request.nextDh ? { nextDh: request.nextDh } : {}),
        });
        break;
      case MessageType.Ack:
        // An acknowledgement says only "this is my next share": the forgery announces another one.
        forged = forgeSealed(bytes, requirePublishedMac(t, transcript, keys), { nextDh: request.nextDh ?? generateDhKeyPair().public });
        break;
      case MessageType.Reply: {
        const macKey = requirePublishedMac(t, transcript, keys);
        if (!request.known || !request.payload || !request.answeredDh) {
          throw new ForgeError(
            'needs_plaintext',
            `${t.name}: a reply is altered through its whole known plaintext (auth block and payload) and the first share it answers: give both, and the new content`,
          );
        }
        const { auth } = decodeReplyPlaintext(request.known);
        const signer = keys.ringKey(auth.senderRingKey) ?? keys.ringKey(auth.recipientRingKey);
        if (!signer)
          throw new ForgeError(
            'not_published',
            `${t.name}: neither ring secret of this reply's ring is published (yet): it cannot be signed anew`,
          );
        forged = forgeReply(bytes, macKey, {
          known: request.known,
          answeredDh: request.answeredDh,
          ringSecret: signer.secret,
          payload: request.payload,
          random,
        });
        break;
      }
      default:
        throw new ForgeError(
          'unsupported',
          `${t.name}: a ${DESCRIPTIONS[t.mail.type]} authenticates nothing, so there is nothing to forge`,
        );
    }
  } catch (error) {
    if (error instanceof ProtocolError)
      throw new ForgeError(
        error.code === 'too_large' || error.code === 'malformed' ? 'needs_plaintext' : 'not_published',
        `${t.name}: ${error.message}`,
      );
    throw error;
  }
  return recompose(t, forged);
}

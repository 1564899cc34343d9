// Forging and checking protocol messages with published keys: the deniability claim made
// executable (docs/PROTOCOL.md §20.5 and §20.8), as the OTR toolkit's remac and readforge did for
// OTR. Pure functions over wire bytes and keys; finding the keys and the mail is the caller's.
//
// What each kind of message needs to be altered:
//   DATA  the published MAC key of its pair and direction, and its plaintext (known or guessed):
//         AES-CTR is malleable, so ciphertext XOR known XOR new is the new message (paper 3.4).
//   ACK   the published MAC key alone (an ACK carries no plaintext; its announced share can change).
//   REPLY as DATA for the whole plaintext (auth block and payload), plus a published ring secret
//         of either party to sign the new payload's digest, and the initiator's share it answers.
//   FIRST a published ring secret of either party: the inner form is signed anew and sealed to
//         the recipient's public encryption subkey by the caller, as any sender would.
import { equalBytes } from '../crypto/bytes.ts';
import { prepareRing, ringVerifyKeys, sortRing } from '../crypto/ring.ts';
import { RingError } from '../crypto/errors.ts';
import { firstContext, replyContext } from './contexts.ts';
import { fail } from './errors.ts';
import { hmacSha256 } from './keyschedule.ts';
import { signAuthBlock } from './authentication.ts';
import {
  AUTH_BLOCK_LENGTH,
  decodeReplyPlaintext,
  decodeSealed,
  encodeAuthenticated,
  encodeFirstInner,
  encodeReplyPlaintext,
  encodeSealed,
  MESSAGE_ID_LENGTH,
  MessageType,
  type AuthBlock,
  type FirstInner,
} from './wire.ts';

/** Whether `macKey` authenticates the sealed message `bytes` (REPLY, DATA or ACK). */
export function macVerifies(bytes: Uint8Array, macKey: Uint8Array): boolean {
  const { message, authenticated } = decodeSealed(bytes);
  return equalBytes(hmacSha256(macKey, authenticated), message.mac);
}

/** The one of `candidates` that authenticates `bytes`, or null. */
export function findMacKey(bytes: Uint8Array, candidates: readonly Uint8Array[]): Uint8Array | null {
  const { message, authenticated } = decodeSealed(bytes);
  for (const key of candidates) if (equalBytes(hmacSha256(key, authenticated), message.mac)) return key;
  return null;
}

export interface SealedEdit {
  /** The plaintext the forger knows or guesses: exactly as long as the ciphertext. */
  known?: Uint8Array;
  /** What the message should say instead: at most as long as `known` (CTR rewrites only known bytes). */
  replacement?: Uint8Array;
  /** A new announced DH share. */
  nextDh?: Uint8Array;
}

function xor3(a: Uint8Array, b: Uint8Array, c: Uint8Array): Uint8Array {
  const out = new Uint8Array(c.length);
  for (let i = 0; i < c.length; i++) out[i] = a[i]! ^ b[i]! ^ c[i]!;
  return out;
}

/**
 * A sealed message altered and MACed again under `macKey`, which must be the key that
 * authenticates the original (else 'auth': it is not the published key of its pair). Reveals
 * are kept as they were: they are outside the MAC.
 */
export function forgeSealed(bytes: Uint8Array, macKey: Uint8Array, edit: SealedEdit): Uint8Array {
  const { message } = decodeSealed(bytes);
  if (!macVerifies(bytes, macKey)) fail('auth', 'this MAC key does not authenticate the message: it is not the published key of its pair');
  let { ciphertext } = message;
  if (edit.replacement) {
    const { known, replacement } = edit;
    if (!known) fail('malformed', 'changing the content needs its known plaintext');
    if (known.length !== ciphertext.length) {
      fail(
        'malformed',
        `the known plaintext is ${known.length} bytes but the ciphertext ${ciphertext.length}: it must be the whole plaintext`,
      );
    }
    if (replacement.length > known.length) {
      fail(
        'too_large',
        `the new content is ${replacement.length} bytes, longer than the ${known.length} known: CTR can only rewrite bytes whose plaintext is known`,
      );
    }
    ciphertext = xor3(ciphertext, known, replacement);
  }
  if (message.type === MessageType.Data && ciphertext.length === 0) fail('malformed', 'a data message cannot be empty');
  const authenticated = encodeAuthenticated({ ...message, ciphertext, nextDh: edit.nextDh ?? message.nextDh });
  // decodeSealed again: the result must be a message the decoders accept, like the original.
  const forged = encodeSealed(authenticated, hmacSha256(macKey, authenticated), message.reveals);
  decodeSealed(forged);
  return forged;
}

export interface ReplyEdit {
  /** The reply's whole plaintext, auth block and payload, as its recipient decrypted it. */
  known: Uint8Array;
  /** The initiator's first share X1, which the reply's signature binds (it travels only inside the first mail). */
  answeredDh: Uint8Array;
  /** A published ring secret of either key in the auth block. */
  ringSecret: Uint8Array;
  payload: Uint8Array;
  random: (length: number) => Uint8Array;
}

/** A reply with a new payload: the auth block signed anew over it, then XOR and re-MAC as for DATA. */
export function forgeReply(bytes: Uint8Array, macKey: Uint8Array, edit: ReplyEdit): Uint8Array {
  const { message } = decodeSealed(bytes);
  if (message.type !== MessageType.Reply) fail('unexpected', 'not a reply');
  if (edit.known.length < AUTH_BLOCK_LENGTH) fail('malformed', 'the known plaintext of a reply starts with its 224-byte auth block');
  const { auth } = decodeReplyPlaintext(edit.known);
  const context = replyContext(auth, message.senderDh!, edit.answeredDh, message.nextDh, edit.payload);
  const signed = signAuthBlock(
    auth,
    prepareRing(...sortRing(auth.senderRingKey, auth.recipientRingKey)),
    edit.ringSecret,
    context,
    edit.random(32),
  );
  return forgeSealed(bytes, macKey, { known: edit.known, replacement: encodeReplyPlaintext(signed, edit.payload) });
}

export interface FirstForgery {
  senderFingerprint: Uint8Array;
  recipientFingerprint: Uint8Array;
  senderRingKey: Uint8Array;
  recipientRingKey: Uint8Array;
  /** A published ring secret of either ring key. */
  ringSecret: Uint8Array;
  created: number;
  /** The initiator's share: any valid X25519 public value. */
  dhShare: Uint8Array;
  payload: Uint8Array;
  random: (length: number) => Uint8Array;
}

/** The inner form of a first mail, ring-signed with a published secret: the caller seals it. */
export function forgeFirstInner(f: FirstForgery): Uint8Array {
  const unsigned: AuthBlock = {
    senderFingerprint: f.senderFingerprint,
    recipientFingerprint: f.recipientFingerprint,
    senderRingKey: f.senderRingKey,
    recipientRingKey: f.recipientRingKey,
    created: f.created,
    messageId: f.random(MESSAGE_ID_LENGTH),
    signature: new Uint8Array(0),
  };
  const ring = prepareRing(...sortRing(f.senderRingKey, f.recipientRingKey));
  const auth = signAuthBlock(unsigned, ring, f.ringSecret, firstContext(unsigned, f.dhShare, f.payload), f.random(32));
  return encodeFirstInner({ auth, dhShare: f.dhShare, payload: f.payload });
}

function ringSignatureValid(auth: AuthBlock, context: Uint8Array): boolean {
  try {
    ringVerifyKeys(...sortRing(auth.senderRingKey, auth.recipientRingKey), context, auth.signature);
    return true;
  } catch (error) {
    if (error instanceof RingError) return false;
    throw error;
  }
}

/** Whether a first mail's inner form carries a valid ring signature for the ring its auth block names. */
export function firstSignatureValid(inner: FirstInner): boolean {
  return ringSignatureValid(inner.auth, firstContext(inner.auth, inner.dhShare, inner.payload));
}

/** Whether a reply's claimed plaintext (auth block and payload) carries a valid ring signature for it. */
export function replySignatureValid(bytes: Uint8Array, plaintext: Uint8Array, answeredDh: Uint8Array): boolean {
  const { message } = decodeSealed(bytes);
  if (message.type !== MessageType.Reply) fail('unexpected', 'not a reply');
  const { auth, payload } = decodeReplyPlaintext(plaintext);
  return ringSignatureValid(auth, replyContext(auth, message.senderDh!, answeredDh, message.nextDh, payload));
}

// Authentication of first mails and replies: the parties' identities and ring keys, the auth
// block signed and verified over its signing context (docs/PROTOCOL.md §5.4, §6), its clock
// bounds and its message id against replays (§6.3).
import { equalBytes, toHex } from '../crypto/bytes.ts';
import { ringSign, ringVerify, ringVerifyKeys, sortRing, type PreparedRing } from '../crypto/ring.ts';
import { RingError } from '../crypto/errors.ts';
import type { Env } from './env.ts';
import { fail } from './errors.ts';
import type { Policy } from './policy.ts';
import { ringFor } from './rings.ts';
import type { Common } from './state.ts';
import { MESSAGE_ID_LENGTH, type AuthBlock } from './wire.ts';

export interface RingKeyPair {
  public: Uint8Array;
  secret: Uint8Array;
}

/** Our side: identity fingerprint and our valid ring keys, the current one first. */
export interface LocalParty {
  fingerprint: Uint8Array;
  ringKeys: RingKeyPair[];
}

/** The correspondent: identity fingerprint and its valid ring keys, the current one first. */
export interface PeerParty {
  fingerprint: Uint8Array;
  ringKeys: Uint8Array[];
}

export interface Parties {
  local: LocalParty;
  peer: PeerParty;
}

/** An auth block from us to the peer under our current ring keys, signed over `context` (§5.4, §6.1). */
export function signAuth(parties: Parties, env: Env, context: (unsigned: AuthBlock) => Uint8Array): AuthBlock {
  const local = parties.local.ringKeys[0];
  const peer = parties.peer.ringKeys[0];
  if (!local || !peer) fail('unknown_key', 'no valid ring key for one of the two parties');
  const unsigned: AuthBlock = {
    senderFingerprint: parties.local.fingerprint,
    recipientFingerprint: parties.peer.fingerprint,
    senderRingKey: local.public,
    recipientRingKey: peer,
    created: env.now(),
    messageId: env.random(MESSAGE_ID_LENGTH),
    signature: new Uint8Array(0),
  };
  let ring: PreparedRing;
  try {
    ring = ringFor(local.public, peer);
  } catch (error) {
    // The peer's key equals ours or is not a valid ring member: a typed refusal of this step.
    if (error instanceof RingError) fail('unknown_key', `cannot sign toward this ring key of the correspondent (${error.code})`);
    throw error;
  }
  return signAuthBlock(unsigned, ring, local.secret, context(unsigned), env.random(32));
}

/**
 * Ring-signs an auth block over `context` with `secret`, which must belong to one of its two
 * ring keys: ours when sending, a published one when forging (src/protocol/forge.ts).
 */
export function signAuthBlock(
  unsigned: AuthBlock,
  ring: PreparedRing,
  secret: Uint8Array,
  context: Uint8Array,
  random: Uint8Array,
): AuthBlock {
  try {
    return { ...unsigned, signature: ringSign(ring, secret, context, random) };
  } catch (error) {
    if (error instanceof RingError) fail('unknown_key', `cannot sign with these ring keys (${error.code})`);
    throw error;
  }
}

/**
 * Checks the signature first, so that any tampering gives the one 'auth' error, and only then
 * whether the (authentic) block names the parties and ring keys we expect (§6.3).
 */
export function verifyAuth(parties: Parties, auth: AuthBlock, context: Uint8Array): void {
  const senderKnown = parties.peer.ringKeys.some((k) => equalBytes(k, auth.senderRingKey));
  const recipientKnown = parties.local.ringKeys.some((k) => equalBytes(k.public, auth.recipientRingKey));
  try {
    // Only rings of known keys are counted towards tables (rings.ts): a stranger's must not evict them.
    if (senderKnown && recipientKnown) ringVerify(ringFor(auth.senderRingKey, auth.recipientRingKey), context, auth.signature);
    else ringVerifyKeys(...sortRing(auth.senderRingKey, auth.recipientRingKey), context, auth.signature);
  } catch (error) {
    if (error instanceof RingError) fail('auth', 'authentication failed');
    throw error;
  }
  if (!equalBytes(auth.senderFingerprint, parties.peer.fingerprint) || !equalBytes(auth.recipientFingerprint, parties.local.fingerprint)) {
    fail('unexpected', 'message names another pair of identities');
  }
  if (!senderKnown) fail('unknown_key', 'signed with a ring key that is not a valid key of the correspondent');
  if (!recipientKnown) fail('unknown_key', 'signed for a ring key of ours that is not valid');
}

/** Signed times come from the peer's clock: refuse the absurd ones, and the too old (§6.3). */
export function checkCreated(auth: AuthBlock, now: number, policy: Policy): void {
  if (auth.created > now + policy.maxClockSkewMs) fail('unexpected', 'signed with a time in the future; check the clocks');
  if (auth.created < now - policy.maxAuthAgeMs) fail('expired', 'signed too long ago to be accepted');
}

/** The remembered ids with this one added, newest last, at most maxSeenAuthIds (§6.3, §11.6); a repeat is `replay`. */
export function rememberAuthId(state: Common, messageId: Uint8Array, policy: Policy): string[] {
  const id = toHex(messageId);
  if (state.seenAuthIds.includes(id)) fail('replay', 'this message was already accepted');
  return [...state.seenAuthIds, id].slice(-policy.maxSeenAuthIds);
}

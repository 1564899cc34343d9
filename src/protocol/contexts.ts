// The byte strings the ring signature signs (docs/PROTOCOL.md, "Signing contexts"): the
// full context of a first mail or reply, so a signature cannot be lifted onto another.
import { concatBytes, u64be, utf8 } from '../crypto/bytes.ts';
import { LABELS, sha256 } from './keyschedule.ts';
import { MessageType, type AuthBlock } from './wire.ts';

export function firstContext(auth: AuthBlock, dhShare: Uint8Array, payload: Uint8Array): Uint8Array {
  return concatBytes(
    utf8(LABELS.firstContext),
    Uint8Array.of(0x4f, 0x52, 1, MessageType.First),
    auth.senderFingerprint,
    auth.recipientFingerprint,
    auth.senderRingKey,
    auth.recipientRingKey,
    dhShare,
    u64be(auth.created),
    auth.messageId,
    sha256(payload),
  );
}

export function replyContext(
  auth: AuthBlock,
  senderDh: Uint8Array,
  answeredDh: Uint8Array,
  nextDh: Uint8Array,
  payload: Uint8Array,
): Uint8Array {
  return concatBytes(
    utf8(LABELS.replyContext),
    Uint8Array.of(0x4f, 0x52, 1, MessageType.Reply),
    auth.senderFingerprint,
    auth.recipientFingerprint,
    auth.senderRingKey,
    auth.recipientRingKey,
    senderDh,
    answeredDh,
    nextDh,
    u64be(auth.created),
    auth.messageId,
    sha256(payload),
  );
}

// Who is who in a transcript, and which of their keys are public: from the mails' own headers
// and the published bundles (docs/PROTOCOL.md §20.8).
import type * as openpgp from 'openpgp';
import { shortHex, toHex } from '../crypto/bytes.ts';
import type { PublishedKeys } from '../keys/bundle-verification.ts';
import { ProtocolError } from '../protocol/errors.ts';
import { decodeSealed, MessageType, type RingKey } from '../protocol/wire.ts';
import type { TranscriptMail } from './read.ts';

export interface Party {
  address: string;
  certificate: openpgp.PublicKey | null;
  fingerprint: string | null;
  /** Ring keys known for the identity: from its mails' headers and its bundles. */
  ringKeys: RingKey[];
}

async function addressesOf(certificate: openpgp.PublicKey): Promise<string[]> {
  return certificate.users.map((u) => u.userID?.email.toLowerCase() ?? '').filter((a) => a.length > 0);
}

/** The identity behind `address` as the transcript and the bundles show it. */
export async function party(address: string, transcript: readonly TranscriptMail[], keys: PublishedKeys | null): Promise<Party> {
  const own = transcript.filter((t) => t.mail.from === address);
  let certificate = own.find((t) => t.certificate)?.certificate ?? null;
  if (!certificate && keys) {
    for (const c of keys.allCertificates()) if ((await addressesOf(c)).includes(address)) certificate = c;
  }
  const fingerprint = certificate?.getFingerprint() ?? null;
  const ringKeys = own.flatMap((t) => t.ringKeys);
  if (keys && fingerprint) ringKeys.push(...keys.ringKeysOf(fingerprint));
  return { address, certificate, fingerprint, ringKeys };
}

export function ringKeyName(key: Uint8Array, parties: Party[]): string {
  const hex = toHex(key);
  const owner = parties.find((p) => p.ringKeys.some((k) => toHex(k.public) === hex));
  return `ring key ${shortHex(hex)}${owner ? ` of ${owner.address}` : ' (not advertised by either party)'}`;
}

function validAt(k: RingKey, time: number): boolean {
  return k.notBefore <= time && time < k.notAfter;
}

/**
 * The ring keys a genuine first mail was signed for: the sender's newest advertised one (its
 * own mail's header), and the recipient's newest one valid at the mail's date.
 */
export function ringInUse(t: TranscriptMail, sender: Party, recipient: Party): { senderRing?: Uint8Array; recipientRing?: Uint8Array } {
  const time = t.time;
  const newestValid = (keys: RingKey[]) => [...keys].filter((k) => validAt(k, time)).sort((a, b) => b.notBefore - a.notBefore)[0];
  const senderRing = (t.ringKeys[0] ?? newestValid(sender.ringKeys))?.public;
  const recipientRing = newestValid(recipient.ringKeys)?.public;
  return { ...(senderRing ? { senderRing } : {}), ...(recipientRing ? { recipientRing } : {}) };
}

/**
 * Every MAC key made public: those revealed in band by the transcript's own messages (a third
 * party reads them off the wire) and those published in bundles.
 */
export function publicMacKeys(transcript: readonly TranscriptMail[], keys: PublishedKeys | null): Uint8Array[] {
  const revealed = transcript.flatMap((t) => {
    if (t.mail.type !== MessageType.Reply && t.mail.type !== MessageType.Data && t.mail.type !== MessageType.Ack) return [];
    try {
      return decodeSealed(t.mail.protocol).message.reveals;
    } catch (error) {
      if (error instanceof ProtocolError) return [];
      throw error;
    }
  });
  return [...revealed, ...(keys?.macKeys ?? [])];
}

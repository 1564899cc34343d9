// Transcripts: the raw .eml files of a conversation, as an eavesdropper or a correspondent holds
// them, read with the keys their headers advertise (docs/PROTOCOL.md §20.8).
import * as openpgp from 'openpgp';
import { parseOffrecordKeysHeader, selectAutocryptHeader } from '../keys/headers.ts';
import { MailError } from '../mail/errors.ts';
import { parseProtected, type IncomingMail } from '../mail/mime.ts';
import { MessageType, type RingKey } from '../protocol/wire.ts';
import { ForgeError } from './errors.ts';

/** Each message type as the reports name it to people. */
export const DESCRIPTIONS: Record<MessageType, string> = {
  [MessageType.First]: 'first mail',
  [MessageType.Reply]: 'reply',
  [MessageType.Data]: 'data message',
  [MessageType.Ack]: 'acknowledgement',
  [MessageType.Nak]: 'NAK',
  [MessageType.Bundle]: 'bundle',
};

export interface TranscriptMail {
  /** The file it came from, for reports. */
  name: string;
  raw: Uint8Array;
  mail: IncomingMail;
  /** The sender's certificate from its Autocrypt header, if one was valid. */
  certificate: openpgp.PublicKey | null;
  /** The sender's ring keys from its Offrecord-Keys header (current first). */
  ringKeys: RingKey[];
  /** When it was sent as far as anyone can tell: its Date header, else the time the transcript was read. */
  time: number;
}

/** Reads one .eml of a transcript at time `now` (the caller's clock): it must be an offrecord mail. */
export async function readTranscriptMail(name: string, raw: Uint8Array, now: number): Promise<TranscriptMail> {
  let mail: IncomingMail | null;
  try {
    mail = await parseProtected(raw);
  } catch (error) {
    if (error instanceof MailError) throw new ForgeError('unsupported', `${name}: ${error.message}`);
    throw error;
  }
  if (!mail) throw new ForgeError('unsupported', `${name}: not an offrecord mail (no Offrecord-Message header)`);
  const autocrypt = selectAutocryptHeader(mail.autocrypt, mail.from);
  let certificate: openpgp.PublicKey | null = null;
  if (autocrypt) certificate = (await openpgp.readKey({ binaryKey: autocrypt.keydata }).catch(() => null)) as openpgp.PublicKey | null;
  let ringKeys: RingKey[] = [];
  try {
    if (mail.offrecordKeys !== null) ringKeys = parseOffrecordKeysHeader(mail.offrecordKeys).ring;
  } catch {
    ringKeys = []; // a header that does not parse vouches for nothing
  }
  return { name, raw, mail, certificate, ringKeys, time: mail.date?.getTime() ?? now };
}

export async function readTranscript(files: readonly { name: string; raw: Uint8Array }[], now: number): Promise<TranscriptMail[]> {
  return Promise.all(files.map((f) => readTranscriptMail(f.name, f.raw, now)));
}

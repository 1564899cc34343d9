// The authenticated sender, as the user's mail client sees it (docs/PROTOCOL.md §18.6, step 7).
// The inner entity is whatever the correspondent wrote: its From, Sender and Reply-To are claims.
// Before a decrypted message is handed over, its header section is rebuilt: every header the
// sender wrote under our `Offrecord-` names is dropped, From/Sender/Reply-To that disagree with
// the authenticated address are renamed to `Offrecord-Original-*` (kept visible, never trusted),
// From is then the authenticated address, and one `Offrecord-Verified-Sender` header on top says
// who sent it, under which identity, trusted how. The body's bytes are not touched.
import { simpleParser, type AddressObject } from 'mailparser';
import { isValidEmail } from '../keys/names.ts';
import { normalizeAddress } from '../store/records.ts';
import { MailError } from './errors.ts';

export const VERIFIED_SENDER_HEADER = 'Offrecord-Verified-Sender';
/** The prefix of a disagreeing From, Sender or Reply-To, renamed (e.g. Offrecord-Original-From). */
export const ORIGINAL_HEADER_PREFIX = 'Offrecord-Original-';

/** verified: the user compared fingerprints (offrecord keys trust); unverified: pinned on first use. */
export type TrustState = 'verified' | 'unverified';

export interface VerifiedSender {
  /** The address the identity is pinned for, lowercase. */
  address: string;
  /** The pinned identity's fingerprint, 40 lowercase hex digits. */
  fingerprint: string;
  trust: TrustState;
}

const FINGERPRINT = /^[0-9a-f]{40}$/;
const VALUE = /^([^;\s]+); fingerprint=([0-9a-f]{40}); trust=(verified|unverified)$/;

/** The header's value (§18.6): `ADDRESS; fingerprint=HEX40; trust=verified|unverified`. */
export function formatVerifiedSender(sender: VerifiedSender): string {
  const address = normalizeAddress(sender.address);
  if (!isValidEmail(address)) throw new MailError('address', 'the verified sender is not a plain address');
  if (!FINGERPRINT.test(sender.fingerprint))
    throw new MailError('malformed', "the verified sender's fingerprint is not 40 lowercase hex digits");
  return `${address}; fingerprint=${sender.fingerprint}; trust=${sender.trust}`;
}

/** Reads a value written by formatVerifiedSender; anything else is refused. */
export function parseVerifiedSender(value: string): VerifiedSender {
  const match = VALUE.exec(value);
  if (!match || match[1] !== match[1]!.toLowerCase() || !isValidEmail(match[1]!)) {
    throw new MailError('malformed', `not an ${VERIFIED_SENDER_HEADER} value`);
  }
  return { address: match[1]!, fingerprint: match[2]!, trust: match[3] as TrustState };
}

interface Field {
  /** The field name as written (without blanks before the colon). */
  name: string;
  /** The whole field, its lines joined by CRLF, without the final line break. */
  text: string;
}

/**
 * Splits the header section from the body at the first empty line (CRLF or bare LF); a message
 * without one is all header. Returns the header lines and the body's offset.
 */
function splitHeader(message: Uint8Array): { lines: string[]; bodyStart: number } {
  // The length of an empty line at `at` (LF or CRLF), or 0.
  const blankAt = (at: number) => (message[at] === 0x0a ? 1 : message[at] === 0x0d && message[at + 1] === 0x0a ? 2 : 0);
  let end = message.length;
  let bodyStart = message.length;
  if (blankAt(0) > 0) {
    end = 0;
    bodyStart = blankAt(0);
  } else {
    for (let i = message.indexOf(0x0a); i >= 0; i = message.indexOf(0x0a, i + 1)) {
      if (blankAt(i + 1) === 0) continue;
      end = i + 1;
      bodyStart = i + 1 + blankAt(i + 1);
      break;
    }
  }
  const lines = Buffer.from(message.buffer, message.byteOffset, end).toString('latin1').split(/\r?\n/);
  if (lines.at(-1) === '') lines.pop();
  return { lines, bodyStart };
}

/** RFC 5322 fields; a continuation line joins the field before it; other lines are dropped. */
function fields(lines: string[]): Field[] {
  const out: Field[] = [];
  for (const line of lines) {
    if (/^[ \t]/.test(line)) {
      const last = out.at(-1);
      if (last) last.text += `\r\n${line}`;
      continue;
    }
    // A field name is printable ASCII without a colon; blanks before the colon are the obsolete syntax.
    const match = /^([\x21-\x39\x3b-\x7e]+)[ \t]*:/.exec(line);
    if (match) out.push({ name: match[1]!, text: line });
  }
  return out;
}

/** Names only offrecord writes: any `Offrecord-` field, and look-alikes of the verified sender. */
function isOurs(name: string): boolean {
  const lower = name.toLowerCase();
  return lower.startsWith('offrecord-') || lower.replace(/[^a-z0-9]/g, '').includes('offrecordverifiedsender');
}

const valueOf = (field: Field) => field.text.slice(field.text.indexOf(':') + 1);

/** The mailboxes of address fields, as mailparser reads them (groups flattened). */
async function mailboxes(field: Field): Promise<{ address: string; name: string }[] | null> {
  const header = `From:${valueOf(field)}\r\n\r\n`;
  const parsed = await simpleParser(Buffer.from(header, 'latin1'), { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
  const list = ([] as AddressObject[]).concat(parsed.from ?? []);
  const boxes: { address: string; name: string }[] = [];
  for (const entry of list.flatMap((a) => a.value)) {
    if (entry.group) return null; // a group is never the authenticated sender
    boxes.push({ address: normalizeAddress(entry.address ?? ''), name: entry.name ?? '' });
  }
  return boxes;
}

/** One mailbox, the authenticated address, and a display name that does not pose as another address. */
async function agrees(found: Field[], address: string, kind: 'From' | 'Sender' | 'Reply-To'): Promise<boolean> {
  if (found.length === 0) return kind !== 'From';
  if (found.length > 1) return false;
  const boxes = await mailboxes(found[0]!);
  if (!boxes || boxes.length === 0) return false;
  if (kind !== 'Reply-To' && boxes.length !== 1) return false;
  return boxes.every((b) => b.address === address && !b.name.includes('@') && !CONTROL_OR_BIDI.test(b.name));
}

/** Control characters and bidirectional overrides: in a display name they make it pass for another. */
// eslint-disable-next-line no-control-regex
const CONTROL_OR_BIDI = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

export interface Attested {
  message: Uint8Array;
  /** The names of the headers renamed to Offrecord-Original-*, in order (e.g. ['From', 'Reply-To']). */
  renamed: string[];
  /** How many header fields under our names the sender wrote (all dropped). */
  dropped: number;
}

/** What attestSender makes of a message's header section, without the body: `attested` puts them together. */
export interface Attestation {
  /** The rebuilt header section, with the empty line that ends it. */
  head: Uint8Array;
  /** Where the message's body starts (it is taken unchanged). */
  bodyStart: number;
  renamed: string[];
  dropped: number;
}

/**
 * The header section as the user's mail client gets it (§18.6, step 7), as described at the top
 * of this file, CRLF line ends. Reads the header section only: a big message is not copied here.
 */
export async function attestation(message: Uint8Array, sender: VerifiedSender): Promise<Attestation> {
  const value = formatVerifiedSender(sender);
  const { lines, bodyStart } = splitHeader(message);
  const all = fields(lines);
  const kept = all.filter((f) => !isOurs(f.name));
  const named = (name: string) => kept.filter((f) => f.name.toLowerCase() === name.toLowerCase());
  const renamed: string[] = [];
  const rename = new Set<Field>();
  for (const kind of ['From', 'Sender', 'Reply-To'] as const) {
    const found = named(kind);
    if (await agrees(found, sender.address, kind)) continue;
    for (const f of found) rename.add(f);
    if (found.length > 0) renamed.push(kind);
  }
  const out: string[] = [`${VERIFIED_SENDER_HEADER}: ${value}`];
  if (renamed.includes('From') || named('From').length === 0) out.push(`From: ${normalizeAddress(sender.address)}`);
  for (const f of kept) out.push(rename.has(f) ? `${ORIGINAL_HEADER_PREFIX}${f.name}:${valueOf(f)}` : f.text);
  return { head: Buffer.from(`${out.join('\r\n')}\r\n\r\n`, 'latin1'), bodyStart, renamed, dropped: all.length - kept.length };
}

/** The message with its attested header section: the one copy of a big message's body that handing it over makes. */
export function attested(message: Uint8Array, made: Attestation): Uint8Array {
  const body = message.subarray(made.bodyStart);
  const result = new Uint8Array(made.head.length + body.length);
  result.set(made.head, 0);
  result.set(body, made.head.length);
  return result;
}

/** The message as the user's mail client gets it (§18.6, step 7): attestation and attested in one. */
export async function attestSender(message: Uint8Array, sender: VerifiedSender): Promise<Attested> {
  const made = await attestation(message, sender);
  return { message: attested(message, made), renamed: made.renamed, dropped: made.dropped };
}

/** What attestSender renamed, read back from the message it made (its Offrecord-Original-* fields). */
export function renamedIn(attested: Uint8Array): string[] {
  const prefix = ORIGINAL_HEADER_PREFIX.toLowerCase();
  const names = fields(splitHeader(attested).lines)
    .filter((f) => f.name.toLowerCase().startsWith(prefix))
    .map((f) => f.name.slice(prefix.length));
  return [...new Set(names)];
}

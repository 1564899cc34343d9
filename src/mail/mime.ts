// MIME carriage of offrecord messages (docs/PROTOCOL.md, "Mail encoding").
// Outside: a standard multipart/mixed mail that any client shows as a short explanation
// with the protocol message attached; its Subject is "..." and it carries the Autocrypt and
// Offrecord-Keys headers plus the Offrecord-Message marker that IMAP SEARCH can find.
// Inside the protection: the whole user message as its own MIME entity (real Subject,
// text, HTML, attachments), so nothing of it shows on the outside.
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import { ProtocolError } from '../protocol/errors.ts';
import { LIMITS, MessageType, peekType } from '../protocol/wire.ts';
import { MailError } from './errors.ts';

export const MARKER_HEADER = 'Offrecord-Message';
export const PAYLOAD_CONTENT_TYPE = 'application/vnd.offrecord';
export const PAYLOAD_FILENAME = 'message.offrecord';
export const OUTER_SUBJECT = '...';

/** Base64 of the largest protocol message plus headroom for headers and the explanation. */
export const MAX_MAIL_BYTES = Math.ceil((LIMITS.maxMessage * 4) / 3 * (78 / 76)) + 256 * 1024;

/** Refuses a mail over the size limit, before it is parsed (or, where the size is known, read). */
export function checkMailSize(bytes: number): void {
  if (bytes > MAX_MAIL_BYTES) throw new MailError('too_large', `mail of ${bytes} bytes is over the ${MAX_MAIL_BYTES}-byte limit`);
}

const TYPE_NAMES: Record<MessageType, string> = {
  [MessageType.First]: 'first',
  [MessageType.Reply]: 'reply',
  [MessageType.Data]: 'data',
  [MessageType.Ack]: 'ack',
  [MessageType.Nak]: 'nak',
  [MessageType.Bundle]: 'bundle',
};

export const EXPLANATION = [
  'This is an off-the-record message sent with offrecord.',
  '',
  'Only the person it is addressed to can read it, with offrecord. Its content, its real',
  'subject and its attachments are in the attached file message.offrecord, encrypted.',
  'Neither its sender nor its recipient can prove to anyone else who wrote it.',
].join('\r\n');

export interface Threading {
  messageId?: string;
  inReplyTo?: string;
  references?: string[];
}

export interface OutgoingMail extends Threading {
  from: string;
  to: string;
  /** The offrecord protocol message (wire bytes). */
  protocol: Uint8Array;
  autocrypt?: string;
  offrecordKeys?: string;
  date?: Date;
}

async function build(options: ConstructorParameters<typeof MailComposer>[0]): Promise<Uint8Array> {
  return new Uint8Array(await new MailComposer(options).compile().build());
}

function extraHeaders(h: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(h).filter((entry): entry is [string, string] => entry[1] !== undefined));
}

/** The outer mail: explanation text plus the protocol message as an attachment. */
export async function composeProtected(mail: OutgoingMail): Promise<Uint8Array> {
  const type = TYPE_NAMES[peekType(mail.protocol)];
  return build({
    from: mail.from,
    to: mail.to,
    subject: OUTER_SUBJECT,
    date: mail.date,
    messageId: mail.messageId,
    inReplyTo: mail.inReplyTo,
    references: mail.references,
    text: EXPLANATION,
    headers: extraHeaders({
      [MARKER_HEADER]: `v=1; type=${type}`,
      Autocrypt: mail.autocrypt,
      'Offrecord-Keys': mail.offrecordKeys,
    }),
    attachments: [{ filename: PAYLOAD_FILENAME, content: Buffer.from(mail.protocol), contentType: PAYLOAD_CONTENT_TYPE }],
  });
}

export interface IncomingMail extends Threading {
  from: string;
  to: string[];
  date: Date | null;
  protocol: Uint8Array;
  type: MessageType;
  autocrypt: string[];
  offrecordKeys: string | null;
}

function headerValues(parsed: ParsedMail, name: string): string[] {
  const lower = name.toLowerCase();
  return parsed.headerLines.filter((line) => line.key === lower).map((line) => line.line.slice(line.line.indexOf(':') + 1).trim());
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  const list = Array.isArray(field) ? field : field ? [field] : [];
  return list.flatMap((a) => a.value).map((v) => (v.address ?? '').toLowerCase()).filter((a) => a.length > 0);
}

/**
 * Reads an offrecord mail. Returns null for ordinary mail (no marker header), so callers can
 * leave it alone; throws MailError for an offrecord mail that is not well-formed.
 */
export async function parseProtected(raw: Uint8Array): Promise<IncomingMail | null> {
  checkMailSize(raw.length);
  const parsed = await simpleParser(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
  const markers = headerValues(parsed, MARKER_HEADER);
  if (markers.length === 0) return null;
  if (markers.length > 1) throw new MailError('malformed', `more than one ${MARKER_HEADER} header`);
  const from = addresses(parsed.from);
  if (from.length !== 1) throw new MailError('malformed', 'an offrecord mail has exactly one From address');
  const payloads = parsed.attachments.filter((a) => a.contentType === PAYLOAD_CONTENT_TYPE);
  if (payloads.length !== 1) throw new MailError('malformed', `expected one ${PAYLOAD_CONTENT_TYPE} attachment, found ${payloads.length}`);
  const protocol = new Uint8Array(payloads[0]!.content);
  let type: MessageType;
  try {
    type = peekType(protocol);
  } catch (error) {
    if (error instanceof ProtocolError && error.code === 'unsupported_version') throw new MailError('unsupported_version', error.message);
    throw new MailError('malformed', `attachment is not an offrecord message: ${(error as Error).message}`);
  }
  if (markers[0] !== `v=1; type=${TYPE_NAMES[type]}`) throw new MailError('malformed', `${MARKER_HEADER} header does not match the attached message`);
  const keys = headerValues(parsed, 'Offrecord-Keys');
  if (keys.length > 1) throw new MailError('malformed', 'more than one Offrecord-Keys header');
  const references = typeof parsed.references === 'string' ? [parsed.references] : parsed.references;
  return {
    from: from[0]!,
    to: [...addresses(parsed.to), ...addresses(parsed.cc)],
    date: parsed.date ?? null,
    protocol,
    type,
    autocrypt: headerValues(parsed, 'Autocrypt'),
    offrecordKeys: keys[0] ?? null,
    ...(parsed.messageId ? { messageId: parsed.messageId } : {}),
    ...(parsed.inReplyTo ? { inReplyTo: parsed.inReplyTo } : {}),
    ...(references ? { references } : {}),
  };
}

/** Keys an ordinary (plaintext) mail from an offrecord user advertises (paper 5.1), or null. */
export async function parseAdvertisement(raw: Uint8Array): Promise<{ from: string; autocrypt: string[]; offrecordKeys: string } | null> {
  checkMailSize(raw.length);
  const parsed = await simpleParser(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength), { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
  const keys = headerValues(parsed, 'Offrecord-Keys');
  const from = addresses(parsed.from);
  if (keys.length !== 1 || from.length !== 1) return null;
  return { from: from[0]!, autocrypt: headerValues(parsed, 'Autocrypt'), offrecordKeys: keys[0]! };
}

export interface Attachment {
  filename: string;
  contentType: string;
  content: Uint8Array;
}

/** What the user wrote: travels whole inside the protection (protected headers). */
export interface UserMessage {
  from: string;
  to: string;
  subject: string;
  date: Date;
  text?: string;
  html?: string;
  attachments: Attachment[];
}

export async function composeInner(message: UserMessage): Promise<Uint8Array> {
  return build({
    from: message.from,
    to: message.to,
    subject: message.subject,
    date: message.date,
    text: message.text,
    html: message.html,
    attachments: message.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content) })),
  });
}

export async function parseInner(bytes: Uint8Array): Promise<UserMessage> {
  const parsed = await simpleParser(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true });
  return {
    from: addresses(parsed.from)[0] ?? '',
    to: addresses(parsed.to).join(', '),
    subject: parsed.subject ?? '',
    date: parsed.date ?? new Date(0),
    ...(parsed.text !== undefined ? { text: parsed.text } : {}),
    ...(typeof parsed.html === 'string' ? { html: parsed.html } : {}),
    attachments: parsed.attachments.map((a) => ({ filename: a.filename ?? 'attachment', contentType: a.contentType, content: new Uint8Array(a.content) })),
  };
}

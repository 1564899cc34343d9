// MIME carriage of offrecord messages (docs/PROTOCOL.md, "Mail encoding").
// Outside: a standard multipart/mixed mail that any client shows as a short explanation
// with the protocol message attached; its Subject is "..." and it carries the Autocrypt and
// Offrecord-Keys headers plus the Offrecord-Message marker that IMAP SEARCH can find.
// Inside the protection: the whole user message as its own MIME entity (real Subject,
// text, HTML, attachments), so nothing of it shows on the outside.
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import MailComposer from 'nodemailer/lib/mail-composer';
import { Readable } from 'node:stream';
import { ProtocolError } from '../protocol/errors.ts';
import { LIMITS, MessageType, peekType } from '../protocol/wire.ts';
import { MailError } from './errors.ts';

export const MARKER_HEADER = 'Offrecord-Message';
export const PAYLOAD_CONTENT_TYPE = 'application/vnd.offrecord';
export const PAYLOAD_FILENAME = 'message.offrecord';
export const OUTER_SUBJECT = '...';

/** Base64 of the largest protocol message plus headroom for headers and the explanation. */
export const MAX_MAIL_BYTES = Math.ceil(((LIMITS.maxMessage * 4) / 3) * (78 / 76)) + 256 * 1024;

/**
 * Bounds on the MIME structure (PROTOCOL.md §18.9), enforced while parsing, before any work past
 * them: a stranger's mail must cost no more than a genuine one of its size (§18.6).
 */
export const MIME_LIMITS = {
  /** The header block of any one MIME node (the mail, each of its parts, the inner entity). */
  headerBytes: 64 * 1024,
  /** MIME nodes (the root and every part, at any depth) of the outer mail; a genuine one has 3. */
  outerParts: 16,
  /** MIME nodes of the inner entity: the user's text, HTML and attachments. */
  innerParts: 128,
};

/** Refuses a mail over the size limit, before it is parsed (or, where the size is known, read). */
export function checkMailSize(bytes: number): void {
  if (bytes > MAX_MAIL_BYTES) throw new MailError('too_large', `mail of ${bytes} bytes is over the ${MAX_MAIL_BYTES}-byte limit`);
}

/** Each message type's name in the marker header (§18.2). */
export const TYPE_NAMES = {
  [MessageType.First]: 'first',
  [MessageType.Reply]: 'reply',
  [MessageType.Data]: 'data',
  [MessageType.Ack]: 'ack',
  [MessageType.Nak]: 'nak',
  [MessageType.Bundle]: 'bundle',
} as const satisfies Record<MessageType, string>;

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

/** Every mailbox of an address header, the members of a group included ("friends: a@x, b@y;"). */
function mailboxes(field: AddressObject | AddressObject[] | undefined): string[] {
  const list = Array.isArray(field) ? field : field ? [field] : [];
  return list
    .flatMap((a) => a.value)
    .flatMap((v) => (v.group ? v.group : [v]))
    .map((v) => (v.address ?? '').toLowerCase());
}

/** The addresses of an address header (group members included), lowercased. */
export function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  return mailboxes(field).filter((a) => a.length > 0);
}

/** The one From address (§18.1, §18.5): one From header naming one mailbox, or null. */
function soleFrom(parsed: ParsedMail): { address: string } | { problem: string } {
  const headers = headerValues(parsed, 'From').length;
  if (headers !== 1) return { problem: `${headers} From headers` };
  const from = mailboxes(parsed.from);
  if (from.length !== 1 || !from[0]) return { problem: `${from.length === 1 ? 'no' : from.length} From addresses` };
  return { address: from[0] };
}

function requireSoleFrom(parsed: ParsedMail, what: string): string {
  const from = soleFrom(parsed);
  if ('problem' in from)
    throw new MailError('malformed', `${what} has ${from.problem}: exactly one From header with exactly one address is allowed`);
  return from.address;
}

const PARSE_OPTIONS = { skipHtmlToText: true, skipTextToHtml: true, skipTextLinks: true, maxHeadSize: MIME_LIMITS.headerBytes } as const;

/** Bytes mailparser reads at a time: its decoders turn each piece into strings, so a piece is garbage soon, never a copy of the whole (§18.9). */
const PIECE_BYTES = 64 * 1024;

/** Views of `bytes` (one array or several in order), PIECE_BYTES at most each: nothing is copied. */
function* pieces(bytes: Uint8Array | readonly Uint8Array[]): Generator<Buffer> {
  for (const part of bytes instanceof Uint8Array ? [bytes] : bytes)
    for (let at = 0; at < part.length; at += PIECE_BYTES)
      yield Buffer.from(part.buffer, part.byteOffset + at, Math.min(PIECE_BYTES, part.length - at));
}

/**
 * mailparser within the §18.9 bounds. The bytes are a stranger's: whatever the parser refuses is
 * a MailError naming what was wrong (`too_large` for a bound), never a plain Error.
 */
async function parseMime(bytes: Uint8Array | readonly Uint8Array[], what: string, maxParts: number): Promise<ParsedMail> {
  try {
    return await simpleParser(Readable.from(pieces(bytes), { objectMode: false }), { ...PARSE_OPTIONS, maxChildNodes: maxParts });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if ((error as { code?: unknown }).code === 'EMAXLEN') {
      throw new MailError(
        'too_large',
        `${what} is over the MIME limits (${maxParts} parts, ${MIME_LIMITS.headerBytes} bytes of header per part): ${reason}`,
      );
    }
    throw new MailError('malformed', `${what} is not readable as MIME: ${reason}`);
  }
}

/**
 * The mail's own header block, up to and with the empty line that ends it: all an ordinary mail
 * is read for. Looked for only within the header limit.
 */
/** The headers that say how a mail's body is to be read. */
const MIME_HEADERS = new Set(['mime-version', 'content-type', 'content-transfer-encoding']);

function headerBlock(raw: Uint8Array): Uint8Array {
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  if (bytes[0] === 0x0a || (bytes[0] === 0x0d && bytes[1] === 0x0a)) return raw.subarray(0, 0);
  const window = bytes.subarray(0, MIME_LIMITS.headerBytes + 4);
  const ends = [window.indexOf('\r\n\r\n'), window.indexOf('\n\n')].map((at, i) => (at < 0 ? Infinity : at + (i === 0 ? 4 : 2)));
  const end = Math.min(...ends);
  if (end !== Infinity) return raw.subarray(0, end);
  if (raw.length <= MIME_LIMITS.headerBytes) return raw;
  throw new MailError('too_large', `the mail's header block is over the ${MIME_LIMITS.headerBytes}-byte limit`);
}

/**
 * Reads an offrecord mail. Returns null for ordinary mail (no marker header), so callers can
 * leave it alone; throws MailError for an offrecord mail that is not well-formed.
 */
export async function parseProtected(raw: Uint8Array): Promise<IncomingMail | null> {
  checkMailSize(raw.length);
  // The headers alone say whether it is offrecord mail: ordinary mail's body is never parsed.
  const head = headerBlock(raw);
  const parsed = await parseMime(head, 'the mail', MIME_LIMITS.outerParts);
  const markers = headerValues(parsed, MARKER_HEADER);
  if (markers.length === 0) return null;
  if (markers.length > 1) throw new MailError('malformed', `more than one ${MARKER_HEADER} header`);
  const from = requireSoleFrom(parsed, 'the mail');
  // The body under the mail's own MIME headers only: the rest were parsed once, above.
  const mime = parsed.headerLines
    .filter((h) => MIME_HEADERS.has(h.key))
    .map((h) => `${h.line}\r\n`)
    .join('');
  const body = await parseMime([Buffer.from(`${mime}\r\n`, 'latin1'), raw.subarray(head.length)], 'the mail', MIME_LIMITS.outerParts);
  const payloads = body.attachments.filter((a) => a.contentType === PAYLOAD_CONTENT_TYPE);
  if (payloads.length !== 1) throw new MailError('malformed', `expected one ${PAYLOAD_CONTENT_TYPE} attachment, found ${payloads.length}`);
  // A view of the parser's buffer, not a copy: a big mail's payload is held once.
  const content = payloads[0]!.content;
  const protocol = new Uint8Array(content.buffer, content.byteOffset, content.byteLength);
  let type: MessageType;
  try {
    type = peekType(protocol);
  } catch (error) {
    if (error instanceof ProtocolError && error.code === 'unsupported_version') throw new MailError('unsupported_version', error.message);
    throw new MailError('malformed', `attachment is not an offrecord message: ${(error as Error).message}`);
  }
  if (markers[0] !== `v=1; type=${TYPE_NAMES[type]}`)
    throw new MailError('malformed', `${MARKER_HEADER} header does not match the attached message`);
  const keys = headerValues(parsed, 'Offrecord-Keys');
  if (keys.length > 1) throw new MailError('malformed', 'more than one Offrecord-Keys header');
  const references = typeof parsed.references === 'string' ? [parsed.references] : parsed.references;
  return {
    from,
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
  const parsed = await parseMime(headerBlock(raw), 'the mail', MIME_LIMITS.outerParts);
  const keys = headerValues(parsed, 'Offrecord-Keys');
  const from = soleFrom(parsed);
  if (keys.length !== 1 || 'problem' in from) return null;
  return { from: from.address, autocrypt: headerValues(parsed, 'Autocrypt'), offrecordKeys: keys[0]! };
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

/** Attachments a sender puts into one inner entity: the root, the alternative, the text and the HTML take the other 4 of its parts (§18.9). */
export const MAX_ATTACHMENTS = MIME_LIMITS.innerParts - 4;

export async function composeInner(message: UserMessage): Promise<Uint8Array> {
  if (message.attachments.length > MAX_ATTACHMENTS)
    throw new MailError('too_large', `${message.attachments.length} attachments: at most ${MAX_ATTACHMENTS} fit in one message`);
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
  const parsed = await parseMime(bytes, 'the inner message', MIME_LIMITS.innerParts);
  return {
    from: requireSoleFrom(parsed, 'the inner message'),
    to: addresses(parsed.to).join(', '),
    subject: parsed.subject ?? '',
    date: parsed.date ?? new Date(0),
    ...(parsed.text !== undefined ? { text: parsed.text } : {}),
    ...(typeof parsed.html === 'string' ? { html: parsed.html } : {}),
    attachments: parsed.attachments.map((a) => ({
      filename: a.filename ?? 'attachment',
      contentType: a.contentType,
      // A view of the parser's buffer, not a copy (§18.9).
      content: new Uint8Array(a.content.buffer, a.content.byteOffset, a.content.byteLength),
    })),
  };
}

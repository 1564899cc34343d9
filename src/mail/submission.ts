// Mail a client composed (mutt, neomutt, aerc, git send-email, Thunderbird through `serve`),
// sent protected: `offrecord sendmail` and `offrecord serve` both end here (PROTOCOL.md §18.12).
// The client's message travels whole inside the protection (headers, threading, MIME
// structure, attachments) except Bcc, which leaves in no copy. Each recipient with keys gets
// a copy of its own, the next message of its own two-party conversation; recipients without
// keys are refused or, where the account allows it, get one plaintext mail that carries our
// keys. Everything is checked before anything is sent.
import { randomBytes } from 'node:crypto';
import { simpleParser } from 'mailparser';
import addressparser from 'nodemailer/lib/addressparser';
import { foldLines } from 'nodemailer/lib/mime-funcs';
import { isValidEmail } from '../keys/names.ts';
import { normalizeAddress } from '../store/records.ts';
import type { Conversation } from '../protocol/context.ts';
import { LIMITS } from '../protocol/wire.ts';
import { MailError, PipelineError, SubmissionError } from './errors.ts';
import { addresses } from './mime.ts';
import type { MailAccount } from './account.ts';
import { advertHeaders, conversationOrNone, sendProtected } from './send.ts';

/** What happens to a recipient we hold no keys for: refused (the default), or one plaintext mail carrying our keys. */
export type KeylessPolicy = 'refuse' | 'plaintext';

/** A client's message, read and checked: what travels inside the protection, and who it names. */
export interface SubmittedMessage {
  /** The message as the recipients read it: Bcc removed; Date, Message-ID and From added if missing. */
  inner: Uint8Array;
  from: string;
  /** Header recipients (To, Cc, Bcc), normalized: `sendmail -t` sends to these. */
  headerRecipients: string[];
}

export interface SubmissionReport {
  protected: { to: string; type: 'first' | 'reply' | 'data' }[];
  /** Recipients of the one plaintext mail (keyless policy `plaintext`). */
  plaintext: string[];
}

/** Header fields that never leave: blind copies stay blind (RFC 5322 §3.6.3). */
const BLIND = new Set(['bcc', 'resent-bcc']);
const FIELD_NAME = /^[\x21-\x39\x3b-\x7e]+$/;

interface HeaderField {
  name: string;
  /** The field's lines as received, line endings included. */
  text: string;
}

/** Splits the header block into fields (continuation lines kept with theirs); strict about the syntax. */
function splitHeader(raw: Uint8Array): { fields: HeaderField[]; body: Uint8Array; newline: string } {
  const bytes = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  const fields: HeaderField[] = [];
  let position = 0;
  let newline = '\r\n';
  while (position < bytes.length) {
    const lf = bytes.indexOf(10, position);
    const end = lf < 0 ? bytes.length : lf + 1;
    const line = bytes.subarray(position, end).toString('utf8');
    const content = line.replace(/\r?\n$/, '');
    if (content === '') {
      position = end;
      break;
    }
    if (fields.length === 0) newline = line.endsWith('\r\n') ? '\r\n' : '\n';
    if (content.startsWith(' ') || content.startsWith('\t')) {
      const last = fields.at(-1);
      if (!last) throw new SubmissionError('malformed', 'the message starts with a continuation line, not a header field');
      last.text += line;
    } else {
      const colon = content.indexOf(':');
      const name = colon > 0 ? content.slice(0, colon) : '';
      if (!FIELD_NAME.test(name)) throw new SubmissionError('malformed', `not a header field: ${JSON.stringify(content.slice(0, 40))}`);
      fields.push({ name: name.toLowerCase(), text: line.endsWith('\n') ? line : line + newline });
    }
    position = end;
  }
  if (fields.length === 0) throw new SubmissionError('malformed', 'the message has no header');
  return { fields, body: bytes.subarray(position), newline };
}

function normalizedRecipients(list: string[], what: string): string[] {
  return list.map((address) => {
    if (!isValidEmail(address))
      throw new SubmissionError('bad_recipient', `${what} ${JSON.stringify(address)} is not a plain email address`);
    return normalizeAddress(address);
  });
}

/** The address in the From header of a client's message, or null. */
export async function senderOf(raw: Uint8Array): Promise<string | null> {
  const { fields, newline } = splitHeader(raw);
  const from = fields.filter((f) => f.name === 'from');
  if (from.length !== 1) return null;
  const parsed = await simpleParser(Buffer.from(`${from[0]!.text}${newline}`));
  return addresses(parsed.from)[0] ?? null;
}

/**
 * Reads a complete RFC 5322 message as a client hands it over. `account` is the address it is
 * sent from (its From must name it; added, with `fullName`, where the message has none).
 */
export async function readSubmission(
  raw: Uint8Array,
  options: { account: string; now: Date; fullName?: string | undefined },
): Promise<SubmittedMessage> {
  // What travels inside must fit one protocol message (§5); headers we add are small.
  if (raw.length > LIMITS.maxPayload - 4096)
    throw new SubmissionError('too_large', `the message of ${raw.length} bytes is over the ${LIMITS.maxPayload - 4096}-byte limit`);
  const { fields, body, newline } = splitHeader(raw);
  const headerText = fields.map((f) => f.text).join('');
  const parsed = await simpleParser(Buffer.from(`${headerText}${newline}`), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipTextLinks: true,
  });
  const count = (name: string) => fields.filter((f) => f.name === name).length;
  for (const single of ['from', 'to', 'cc', 'bcc', 'subject', 'date', 'message-id', 'in-reply-to', 'references']) {
    if (count(single) > 1) throw new SubmissionError('malformed', `more than one ${single} header field`);
  }
  const account = normalizeAddress(options.account);
  let from = account;
  const added: string[] = [];
  if (count('from') === 1) {
    const named = addresses(parsed.from);
    if (named.length !== 1) throw new SubmissionError('sender', 'the From header must name exactly one address');
    if (named[0] !== account) throw new SubmissionError('sender', `the message is from ${named[0]}, not from the account ${account}`);
    from = named[0]!;
  } else {
    added.push(`From: ${options.fullName ? `"${options.fullName.replace(/["\\\r\n]/g, '')}" <${account}>` : account}`);
  }
  if (count('date') === 0) added.push(`Date: ${options.now.toUTCString().replace(/GMT$/, '+0000')}`);
  if (count('message-id') === 0)
    added.push(`Message-ID: <${randomBytes(16).toString('hex')}@${account.slice(account.lastIndexOf('@') + 1)}>`);
  const headerRecipients = [
    ...new Set(normalizedRecipients([...addresses(parsed.to), ...addresses(parsed.cc), ...addresses(parsed.bcc)], 'the header recipient')),
  ];
  const kept = fields.filter((f) => !BLIND.has(f.name)).map((f) => f.text);
  const head = Buffer.from([...added.map((line) => foldLines(line, 76) + newline), ...kept, newline].join(''), 'utf8');
  return { inner: new Uint8Array(Buffer.concat([head, body])), from, headerRecipients };
}

/** Recipient addresses as a sendmail caller gives them (plain, `Name <addr>`, comma-separated), normalized and deduplicated. */
export function envelopeRecipients(list: string[]): string[] {
  const flatten = (entries: ReturnType<typeof addressparser>): string[] =>
    entries.flatMap((e) => ('group' in e && e.group ? flatten(e.group) : [e.address ?? '']));
  const found = list.flatMap((item) => flatten(addressparser(item)));
  return [...new Set(normalizedRecipients(found, 'the recipient'))];
}

/** Whether a failed send is worth trying again later: a 5xx reply or refused credentials are not. */
function permanent(error: unknown): boolean {
  for (let e: unknown = error; e; e = (e as { cause?: unknown }).cause) {
    if (e instanceof MailError) return e.code === 'auth' || (e.responseCode !== undefined && e.responseCode >= 500);
  }
  return false;
}

/**
 * Sends `message` to `recipients`: one protected copy per recipient with keys, and for the
 * others one plaintext mail carrying our keys (policy `plaintext`) or nothing at all (`refuse`:
 * then nothing is sent to anyone). A failure part way names who already got their copy.
 */
export async function submit(
  account: MailAccount,
  message: SubmittedMessage,
  recipients: string[],
  options: { keyless: KeylessPolicy },
): Promise<SubmissionReport> {
  if (recipients.length === 0) throw new SubmissionError('no_recipients', 'the message names no recipient');
  const withKeys: [string, Conversation][] = [];
  const keyless: string[] = [];
  for (const to of recipients) {
    if (to === normalizeAddress(account.address))
      throw new SubmissionError('bad_recipient', `${to} is this account itself: offrecord conversations have two parties`);
    let conversation: Conversation | null;
    try {
      conversation = await conversationOrNone(account, to);
    } catch (error) {
      if (error instanceof PipelineError && error.code === 'identity_changed')
        throw new SubmissionError('identity_changed', error.hint ?? error.message, { recipients: [to] });
      throw error;
    }
    if (conversation) withKeys.push([to, conversation]);
    else keyless.push(to);
  }
  if (keyless.length > 0 && options.keyless === 'refuse') {
    throw new SubmissionError('no_keys', `no offrecord keys are known for ${keyless.join(', ')}: nothing was sent to anyone`, {
      recipients: keyless,
    });
  }
  const report: SubmissionReport = { protected: [], plaintext: [] };
  const sent = () => [...report.protected.map((p) => p.to), ...report.plaintext];
  const failed = (error: unknown, recipients: string[]): never => {
    const done = sent();
    const reason = error instanceof Error ? error.message : String(error);
    throw new SubmissionError(
      permanent(error) ? 'permanent' : 'temporary',
      `not sent to ${recipients.join(', ')}: ${reason}${done.length > 0 ? `; already sent to ${done.join(', ')}` : ''}`,
      { recipients, sent: done },
      { cause: error },
    );
  };
  for (const [to, conversation] of withKeys) {
    try {
      const outcome = await sendProtected(account, conversation, to, message.inner);
      report.protected.push({ to, type: outcome.kind === 'encrypted' ? outcome.type : 'data' });
    } catch (error) {
      // A concurrent step of the same conversation (the watcher's) changed nothing here: try later.
      const raced = error instanceof PipelineError && error.code === 'protocol' && error.message.startsWith('state_conflict');
      if (!(error instanceof PipelineError && (error.code === 'transport' || raced))) throw error;
      failed(
        error,
        withKeys
          .map(([address]) => address)
          .filter((address) => !sent().includes(address))
          .concat(keyless),
      );
    }
  }
  if (keyless.length > 0) {
    try {
      await account.outgoing.send(await withKeyHeaders(account, message.inner), { from: account.address, to: keyless });
    } catch (error) {
      failed(error, keyless);
    }
    report.plaintext.push(...keyless);
  }
  return report;
}

/** The client's message with our key headers (Autocrypt, Offrecord-Keys) in front: the plaintext mail of paper 5.1. */
async function withKeyHeaders(account: MailAccount, inner: Uint8Array): Promise<Uint8Array> {
  const { newline } = splitHeader(inner);
  const headers = await advertHeaders(account);
  const lines = [`Autocrypt: ${headers.autocrypt}`, `Offrecord-Keys: ${headers.offrecordKeys}`].map(
    (line) => foldLines(line, 76).replace(/\r\n/g, newline) + newline,
  );
  return new Uint8Array(Buffer.concat([Buffer.from(lines.join(''), 'utf8'), inner]));
}

// A user message out as an offrecord mail: the next message of the conversation with its
// recipient, or, only where allowed, one plaintext mail that carries our keys.
import { autocryptHeaderFor, formatOffrecordKeysHeader, SUPPORTED_PROTOCOL_VERSIONS } from '../keys/headers.ts';
import { isKeyringError } from '../keys/errors.ts';
import type { Conversation } from '../protocol/context.ts';
import { peekType } from '../protocol/wire.ts';
import { PipelineError } from './errors.ts';
import { composeInner, composeProtected, TYPE_NAMES, type Attachment, type UserMessage } from './mime.ts';
import { conversationWith, now, type MailAccount } from './account.ts';
import MailComposer from 'nodemailer/lib/mail-composer';

export interface Draft {
  to: string;
  subject: string;
  text?: string;
  html?: string;
  attachments?: Attachment[];
  inReplyTo?: string;
  references?: string[];
}

export type SendOutcome = { kind: 'encrypted'; type: 'first' | 'reply' | 'data' } | { kind: 'plaintext' };

/** The key headers every mail of ours carries (§18.3, §18.4). */
export async function advertHeaders(account: MailAccount) {
  return {
    autocrypt: await autocryptHeaderFor(account.privateKey, account.address, now(account)),
    offrecordKeys: formatOffrecordKeysHeader({ versions: [...SUPPORTED_PROTOCOL_VERSIONS], ring: account.keyring.own.ringAdverts() }),
  };
}

/** Sends a protocol message (user message, NAK, re-send) as an offrecord mail. */
export async function dispatch(
  account: MailAccount,
  to: string,
  protocol: Uint8Array,
  threading: Pick<Draft, 'inReplyTo' | 'references'> = {},
) {
  const raw = await composeProtected({ from: account.address, to, protocol, ...(await advertHeaders(account)), ...threading });
  try {
    await account.outgoing.send(raw, { from: account.address, to: [to] });
  } catch (error) {
    throw new PipelineError(
      'transport',
      error instanceof Error ? error.message : String(error),
      'the message was not sent; its session counter stays used, so sending again is safe',
      { cause: error },
    );
  }
}

/**
 * The conversation with `address`, or null when we hold no offrecord keys for it (the caller
 * decides whether plaintext may go instead). A changed identity is an alarm, never null.
 */
export async function conversationOrNone(account: MailAccount, address: string): Promise<Conversation | null> {
  try {
    return await conversationWith(account, address);
  } catch (error) {
    if (isKeyringError(error, 'identity_changed')) throw new PipelineError('identity_changed', error.message, error.details.warning);
    if (isKeyringError(error, 'unknown_peer') || isKeyringError(error, 'no_ring_key')) return null;
    throw error;
  }
}

/** Sends `inner` (a complete MIME message) protected, as the next message of `conversation` with `to`. */
export async function sendProtected(
  account: MailAccount,
  conversation: Conversation,
  to: string,
  inner: Uint8Array,
  threading: Pick<Draft, 'inReplyTo' | 'references'> = {},
): Promise<SendOutcome> {
  const result = await conversation.send(inner);
  if (result.kind === 'error') throw new PipelineError('protocol', `${result.code}: ${result.message}`);
  await dispatch(account, to, result.message, threading);
  const type = TYPE_NAMES[peekType(result.message)];
  return { kind: 'encrypted', type: type === 'first' || type === 'reply' ? type : 'data' };
}

/**
 * Sends a user message. Without keys for the recipient it goes out in plaintext only with
 * `allowPlaintext` (paper 5.1: it carries our keys, so their reply can start the exchange).
 */
export async function sendMessage(account: MailAccount, draft: Draft, options: { allowPlaintext?: boolean } = {}): Promise<SendOutcome> {
  const user: UserMessage = {
    from: account.address,
    to: draft.to,
    subject: draft.subject,
    date: new Date(now(account)),
    ...(draft.text !== undefined ? { text: draft.text } : {}),
    ...(draft.html !== undefined ? { html: draft.html } : {}),
    attachments: draft.attachments ?? [],
  };
  const conversation = await conversationOrNone(account, draft.to);
  if (!conversation) {
    if (!options.allowPlaintext) {
      throw new PipelineError(
        'no_keys',
        `no offrecord keys are known for ${draft.to}: refusing to send in plaintext`,
        'import the file their `offrecord keys export` wrote (offrecord keys import FILE), or allow one plaintext mail that carries your keys (--plaintext)',
      );
    }
    await sendPlaintext(account, user, draft);
    return { kind: 'plaintext' };
  }
  return sendProtected(account, conversation, draft.to, await composeInner(user), draft);
}

async function sendPlaintext(account: MailAccount, user: UserMessage, draft: Draft): Promise<void> {
  const headers = await advertHeaders(account);
  const raw = await new MailComposer({
    from: user.from,
    to: user.to,
    subject: user.subject,
    date: user.date,
    text: user.text,
    html: user.html,
    inReplyTo: draft.inReplyTo,
    references: draft.references,
    headers: { Autocrypt: headers.autocrypt, 'Offrecord-Keys': headers.offrecordKeys },
    attachments: user.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content) })),
  })
    .compile()
    .build();
  await account.outgoing.send(new Uint8Array(raw), { from: account.address, to: [user.to] });
}

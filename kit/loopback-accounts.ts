// Offrecord accounts over the real loopback Dovecot + Postfix (kit/mail-servers.ts):
// a Keyring and an AccountStore in a temporary directory, SmtpTransport and ImapMailbox with
// STARTTLS trusting the run's certificate, plus the raw IMAP chores tests need (delivery
// waits, deleting, appending) and the place where Dovecot keeps each user's mail.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Keyring } from '../src/keys/keyring.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { fetchMessages, type FetchReport } from '../src/mail/receive.ts';
import { sendMessage } from '../src/mail/send.ts';
import type { IncomingMailbox } from '../src/mail/transport.ts';
import { ImapMailbox, SmtpTransport, type ServerConfig } from '../src/mail/servers.ts';
import { openAccountStore, type AccountStore } from '../src/store/index.ts';
import { connectImap, type MailServers, type MailUserName } from './mail-servers.ts';

/** ServerConfig for `who` on the run's IMAP or SMTP server (STARTTLS when the run has a certificate). */
export function serverConfig(s: MailServers, who: MailUserName, kind: 'imap' | 'smtp'): ServerConfig {
  return {
    host: s[kind].host,
    port: s[kind].port,
    security: s.tls ? 'starttls' : 'plain',
    user: s.users[who].user,
    password: () => s.users[who].pass,
    ...(s.tls ? { caFile: s.tls.certFile } : {}),
  };
}

export interface LoopbackAccount extends MailAccount {
  store: AccountStore;
  /** Lowercase hex identity fingerprint, as Conversation keys the session store. */
  fingerprint: string;
}

export interface AccountOptions {
  /** Where the store file goes. */
  root: string;
  /** The address claimed by the identity (default: the server user's own address). */
  address?: string;
  /** Keyring and MailAccount clock (ms since the epoch); Date.now, looked up at each call, by default. */
  clock?: () => number;
  /** Store file name (default: `<user>.sqlite`). */
  file?: string;
}

/** A fresh identity for `who`, sending as `who` over SMTP and reading `who`'s INBOX over IMAP. */
export async function loopbackAccount(s: MailServers, who: MailUserName, options: AccountOptions): Promise<LoopbackAccount> {
  const address = options.address ?? s.users[who].address;
  const clock = options.clock ?? (() => Date.now());
  const store = openAccountStore(join(options.root, options.file ?? `${who}.sqlite`), { passphrase: null });
  const keyring = new Keyring(store, { clock });
  const init = await keyring.own.init({ email: address });
  return {
    address,
    keyring,
    store,
    fingerprint: init.fingerprint.toLowerCase(),
    privateKey: await keyring.own.unlock(),
    outgoing: new SmtpTransport(serverConfig(s, who, 'smtp')),
    incoming: new ImapMailbox(serverConfig(s, who, 'imap')),
    clock,
  };
}

/**
 * Runs `work` on `mailbox` as a pass of its own: a mailbox that keeps its connection between
 * calls (close(), where the transport has it) is closed afterwards, so the next call sees the
 * mailbox as it is now, other sessions' changes included.
 */
export async function pass<T>(mailbox: IncomingMailbox, work: (mailbox: IncomingMailbox) => Promise<T>): Promise<T> {
  try {
    return await work(mailbox);
  } finally {
    await (mailbox as { close?: () => Promise<void> }).close?.();
  }
}

/** The mail `account` would process now (a pass of its own). */
export function pending(account: MailAccount): Promise<string[]> {
  return pass(account.incoming, (m) => m.list());
}

/** The raw bytes of one mail of `account` (a pass of its own). */
export function readRaw(account: MailAccount, id: string): Promise<Uint8Array> {
  return pass(account.incoming, (m) => m.read(id));
}

/** Polls `probe` every 100 ms until it yields at least `count` items or `timeoutMs` passes. */
export async function waitForCount<T>(probe: () => Promise<T[]>, count: number, timeoutMs = 10_000): Promise<T[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const items = await probe();
    if (items.length >= count || Date.now() > deadline) return items;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The UID of an ImapMailbox id ("<uidvalidity>:<uid>"). */
export function uidOf(id: string): string {
  const uid = id.split(':')[1];
  if (!uid) throw new Error(`not an IMAP id: ${id}`);
  return uid;
}

/** Expunges the given messages (ImapMailbox ids) from `who`'s `mailbox`. */
export async function deleteMail(s: MailServers, who: MailUserName, ids: string[], mailbox = 'INBOX'): Promise<void> {
  if (ids.length === 0) return;
  const client = await connectImap(s, who);
  try {
    const lock = await client.getMailboxLock(mailbox);
    try {
      await client.messageDelete(ids.map(uidOf).join(','), { uid: true });
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/** IMAP APPEND of `raw`, byte for byte, into `who`'s `mailbox`. */
export async function appendMail(s: MailServers, who: MailUserName, raw: Uint8Array, mailbox = 'INBOX'): Promise<void> {
  const client = await connectImap(s, who, { socketTimeout: 120_000 });
  try {
    const appended = await client.append(mailbox, Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
    if (!appended) throw new Error(`APPEND to ${mailbox} of ${who} failed`);
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/** Where Dovecot keeps `who`'s mail in this run (mail_location = maildir:~/Maildir, home = DIR/mail/<user>). */
export function dovecotMaildir(s: MailServers, who: MailUserName): string {
  return join(s.dir, 'mail', s.users[who].user, 'Maildir');
}

/** Every regular file below `dir` (mail files, Dovecot's indexes and caches alike). */
export async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
}

/** Fetch passes for `account` until one reports a mail of `kind`; fails after `timeoutMs`. */
export async function fetchUntil(account: MailAccount, kind: FetchReport['kind'], timeoutMs = 15_000): Promise<FetchReport[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reports = await fetchMessages(account);
    if (reports.some((r) => r.kind === kind)) return reports;
    if (Date.now() > deadline) throw new Error(`${account.address} saw no ${kind} mail: ${JSON.stringify(reports)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Brings up a session the way users do: `initiator`'s correspondent sends a plaintext mail that
 * carries its keys, then the first mail and the reply. Both sides can then send data messages.
 */
export async function establish(initiator: MailAccount, responder: MailAccount): Promise<void> {
  await sendMessage(
    responder,
    { to: initiator.address, subject: 'keys', text: 'my keys, in plaintext by consent' },
    { allowPlaintext: true },
  );
  await fetchUntil(initiator, 'ordinary');
  await sendMessage(initiator, { to: responder.address, subject: 'first', text: 'first mail' });
  await fetchUntil(responder, 'message');
  await sendMessage(responder, { to: initiator.address, subject: 'reply', text: 'reply' });
  await fetchUntil(initiator, 'message');
}

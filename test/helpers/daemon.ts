// Shared by the watcher tests over the real loopback servers: a conversation bootstrapped once
// (library-level, or with Bob as a CLI home), what landed in a Maildir, what sits in an IMAP
// folder, the (key ids, counter) of every sealed message there, and a spawned CLI's stderr.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseProtected } from '../../src/mail/mime.ts';
import { fetchMessages } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { decodeSealed, MessageType } from '../../src/protocol/wire.ts';
import { addLoopbackAccount, ok } from '../../kit/cli.ts';
import { connectImap, type MailServers, type MailUserName } from '../../kit/mail-servers.ts';
import { fetchUntil, loopbackAccount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';

/** Polls `probe` every 100 ms until it yields something other than null or false; fails after `timeoutMs` naming `what`. */
export async function until<T>(what: string, probe: () => Promise<T | null | false> | T | null | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `establish` (loopback-accounts.ts) with Bob as a CLI home (already `init` and `account add`ed
 * as `bobAddress`) and Alice library-level. Bob's `fetch` delivers into his default Maildir.
 */
export async function bootstrapCliBob(
  alice: LoopbackAccount,
  bobHome: string,
  bobEnv: NodeJS.ProcessEnv,
  bobAddress: string,
): Promise<void> {
  await ok(bobHome, ['send', '--to', alice.address, '--subject', 'hello', '--plaintext'], 'my keys', bobEnv);
  await until("Bob's keys at Alice", async () => {
    await fetchMessages(alice);
    return (await alice.keyring.fingerprint(bobAddress).catch(() => null)) ? true : null;
  });
  await sendMessage(alice, { to: bobAddress, subject: 'first', text: 'first words' });
  await until('the first mail at Bob', async () => (/first words/.test(await ok(bobHome, ['fetch'], '', bobEnv)) ? true : null));
  await ok(bobHome, ['send', '--to', alice.address, '--subject', 'reply'], 'reply words\n', bobEnv);
  await fetchUntil(alice, 'message');
}

/**
 * Bob as a CLI home on the loopback servers (`init`, `account add`, password in $MAIL_PW) and
 * Alice as a library account, their conversation bootstrapped (bootstrapCliBob).
 */
export async function cliBobAndAlice(
  s: MailServers,
  bobHome: string,
): Promise<{ alice: LoopbackAccount; bobAddress: string; bobEnv: NodeJS.ProcessEnv }> {
  const bobAddress = s.users.bob.address;
  const bobEnv = { MAIL_PW: s.users.bob.pass };
  const alice = await loopbackAccount(s, 'alice', { root: bobHome });
  await ok(bobHome, ['init', '--email', bobAddress, '--name', 'Bob']);
  await addLoopbackAccount(bobHome, s, 'bob');
  await bootstrapCliBob(alice, bobHome, bobEnv, bobAddress);
  return { alice, bobAddress, bobEnv };
}

/** The contents of every message in a Maildir's new/ and cur/ (tmp/ is not delivered). */
export async function maildirMessages(dir: string): Promise<string[]> {
  const texts: string[] = [];
  for (const sub of ['new', 'cur']) {
    const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
    for (const name of names.sort()) texts.push(await readFile(join(dir, sub, name), 'utf8'));
  }
  return texts;
}

/** How many times each `pattern` capture (group 1) occurs over `texts`. */
export function tally(texts: string[], pattern: RegExp): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    const key = pattern.exec(text)?.[1];
    if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts;
}

/** The raw source of every mail in `who`'s `mailbox` (empty when the folder does not exist). */
export async function folderSources(s: MailServers, who: MailUserName, mailbox: string): Promise<Buffer[]> {
  return (await folderMessages(s, who, mailbox)).map((m) => m.source);
}

/** Every message in `mailbox` (none if it does not exist), with its flags. */
export async function folderMessages(s: MailServers, who: MailUserName, mailbox: string): Promise<{ source: Buffer; flags: string[] }[]> {
  const client = await connectImap(s, who, { socketTimeout: 120_000 });
  try {
    if (!(await client.list()).some((box) => box.path === mailbox)) return [];
    const lock = await client.getMailboxLock(mailbox);
    try {
      const messages: { source: Buffer; flags: string[] }[] = [];
      if (!client.mailbox || client.mailbox.exists === 0) return messages;
      for await (const message of client.fetch('1:*', { source: true, flags: true }))
        if (message.source) messages.push({ source: message.source, flags: [...(message.flags ?? [])] });
      return messages;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

export interface SealedSeen {
  from: string;
  type: 'reply' | 'data' | 'ack';
  /** sender key id / recipient key id / counter: what must never carry two different messages. */
  slot: string;
  /** The MAC'd bytes' MAC: equal for a mail sent twice, different for a reused counter. */
  mac: string;
}

const SEALED_TYPES: Partial<Record<number, SealedSeen['type']>> = {
  [MessageType.Reply]: 'reply',
  [MessageType.Data]: 'data',
  [MessageType.Ack]: 'ack',
};

/** The sealed (REPLY, DATA, ACK) offrecord mails among `sources`, decoded down to their counters. */
export async function sealedMessages(sources: Buffer[]): Promise<SealedSeen[]> {
  const seen: SealedSeen[] = [];
  for (const source of sources) {
    const mail = await parseProtected(new Uint8Array(source));
    const type = mail ? SEALED_TYPES[mail.type] : undefined;
    if (!mail || !type) continue;
    const { message } = decodeSealed(mail.protocol);
    seen.push({
      from: mail.from,
      type,
      slot: `${mail.from} ${message.senderKeyId}/${message.recipientKeyId}#${message.counter}`,
      mac: Buffer.from(message.mac).toString('hex'),
    });
  }
  return seen;
}

/** Slots that carry two different messages: a counter used twice under one key pair. */
export function reusedCounters(seen: SealedSeen[]): string[] {
  const bySlot = new Map<string, Set<string>>();
  for (const m of seen) {
    const macs = bySlot.get(m.slot) ?? new Set<string>();
    macs.add(m.mac);
    bySlot.set(m.slot, macs);
  }
  return [...bySlot].filter(([, macs]) => macs.size > 1).map(([slot]) => slot);
}

/** Collects a spawned CLI's stderr (and stdout) as it comes; `exited` settles once both are read to their end. */
export function captureOutput(child: ChildProcess): {
  stderr: () => string;
  stdout: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
} {
  let err = '';
  let out = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal })),
  );
  return { stderr: () => err, stdout: () => out, exited };
}

/** The JSON-lines log events in a watcher's stderr (other lines, e.g. a final error, are skipped). */
export function logEvents(stderr: string): { event: string; [field: string]: unknown }[] {
  return stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as { event: string });
}

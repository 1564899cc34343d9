// `npm run demo`: Alice and Bob on the embedded Maildir spool (no mail server): Bob's
// plaintext hello carries his keys, Alice's first mail is ring-signed and sealed, Bob's reply
// upgrades to OTR, then a few messages each way. For every mail it prints what an
// eavesdropper on the spool sees next to what the recipient reads.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keyring } from '../src/keys/keyring.ts';
import { formatFingerprint } from '../src/keys/names.ts';
import { MaildirSpool } from '../src/mail/maildir.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { fetchMessages } from '../src/mail/receive.ts';
import { sendMessage, type Draft } from '../src/mail/send.ts';
import { decodeSealed, MessageType, peekType } from '../src/protocol/wire.ts';
import { openAccountStore } from '../src/store/index.ts';
import { parseProtected } from '../src/mail/mime.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-demo-'));
const spool = new MaildirSpool(join(root, 'spool'));

async function person(address: string): Promise<MailAccount> {
  const store = openAccountStore(join(root, `${address}.sqlite`), { passphrase: null });
  const keyring = new Keyring(store);
  await keyring.own.init({ email: address });
  return { address, keyring, store, privateKey: await keyring.own.unlock(), outgoing: spool.transport(), incoming: spool.mailbox(address) };
}

const KINDS: Record<number, string> = {
  [MessageType.First]: "first mail: ring-signed, sealed to the recipient's short-lived key",
  [MessageType.Reply]: 'reply: ring-signed DH share, body already under OTR keys',
  [MessageType.Data]: 'OTR data message: AES-CTR + HMAC, a fresh DH share',
  [MessageType.Ack]: 'empty acknowledgement',
  [MessageType.Nak]: 'NAK',
};

/** What a spool reader without keys learns: headers, sizes, the kind of message. */
async function eavesdrop(to: MailAccount): Promise<string[]> {
  const [id] = await to.incoming.list();
  const raw = await readFile(join(spool.maildir(to.address), 'new', id!), 'utf8');
  const headers = raw
    .slice(0, raw.indexOf('\r\n\r\n'))
    .split('\r\n')
    .filter((l) => /^(From|To|Subject|Date):/.test(l));
  const mail = await parseProtected(new TextEncoder().encode(raw));
  if (!mail) return [...headers, `(plaintext mail, ${raw.length} bytes, readable by anyone)`];
  const type = peekType(mail.protocol);
  let detail = '';
  if (type === MessageType.Data || type === MessageType.Reply || type === MessageType.Ack) {
    const { message } = decodeSealed(mail.protocol);
    detail = `, key ids ${message.senderKeyId}->${message.recipientKeyId}, counter ${message.counter}${message.reveals.length ? `, ${message.reveals.length} revealed MAC key(s)` : ''}`;
  }
  return [...headers, `${KINDS[type]}${detail}; ${raw.length} bytes of mail`];
}

let step = 0;
async function mail(from: MailAccount, to: MailAccount, draft: Omit<Draft, 'to'>, options = {}) {
  const outcome = await sendMessage(from, { ...draft, to: to.address }, options);
  console.log(`\n${++step}. ${from.address} -> ${to.address} (${outcome.kind === 'encrypted' ? outcome.type : 'plaintext'})`);
  for (const line of await eavesdrop(to)) console.log(`   eavesdropper sees: ${line}`);
  for (const report of await fetchMessages(to)) {
    if (report.kind === 'message') {
      console.log(`   ${to.address} reads: "${report.message.subject}": ${JSON.stringify(report.message.text?.trim())}`);
      console.log(
        `   from ${report.from}, ${formatFingerprint(report.fingerprint)} (${report.verified ? 'verified' : 'trusted on first use'})`,
      );
    } else if (report.kind === 'ordinary') {
      console.log(
        `   ${to.address} reads it in any mail client${report.advertises ? `; offrecord learns ${report.advertises}'s keys from its headers` : ''}`,
      );
    } else if (report.kind === 'skipped') {
      console.log(`   ${to.address}: skipped (${report.code}): ${report.reason}`);
    }
  }
}

try {
  console.log('offrecord demo: Alice and Bob on a local Maildir spool, no mail server needed');
  const [alice, bob] = [await person('alice@example.test'), await person('bob@example.test')];
  await mail(bob, alice, { subject: 'Hello', text: 'Hi Alice, I use offrecord now.' }, { allowPlaintext: true });
  await mail(alice, bob, { subject: 'Lunch on Friday?', text: 'Shall we meet at noon? (Bob may be offline: this is the first mail)' });
  await mail(bob, alice, { subject: 'Re: Lunch on Friday?', text: 'Noon works.' });
  await mail(alice, bob, { subject: 'Re: Lunch on Friday?', text: 'Great, the usual place.' });
  await mail(bob, alice, { subject: 'Re: Lunch on Friday?', text: 'See you there.' });
  await mail(alice, bob, { subject: 'Notes', text: 'Bring the notes, please.' });
  console.log('\nThe spool holds only "..." subjects and attached ciphertext; processed mail sits in .OffRecord.');
  console.log('Nobody but Alice and Bob could read it, and neither can prove to anyone else who wrote what.');
} finally {
  await rm(root, { recursive: true, force: true });
}

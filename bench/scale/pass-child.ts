// A process of its own for one pass over Bob's INBOX, so that its peak resident memory (VmHWM)
// is that pass's alone: `node --import tsx bench/scale/pass-child.ts JSON`. Modes: `offrecord`
// (processNewMail, as `offrecord fetch` runs it: plaintext through the outbox into a Maildir)
// and `plain` (imapflow fetching each mail's source by UID, one at a time, keeping none: the
// baseline). The mail comes over IMAP, or from a Maildir (`maildir`, for the test that holds
// the bound, test/mail/memory-bound.test.ts). Prints one JSON line: memory before and at the
// peak, the pass's time, what it reported.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { ImapFlow } from 'imapflow';
import { Keyring } from '../../src/keys/keyring.ts';
import { processNewMail } from '../../src/mail/receive.ts';
import { MaildirDelivery, MaildirMailbox } from '../../src/mail/maildir.ts';
import { ImapMailbox, SmtpTransport, type ServerConfig } from '../../src/mail/servers.ts';
import { openAccountStore } from '../../src/store/index.ts';

export interface PassChildInput {
  mode: 'offrecord' | 'plain';
  store: string;
  /** Where the mail is: Bob's INBOX over IMAP, or (offrecord mode only) a Maildir. */
  source: { imap: { host: string; port: number; user: string; pass: string; caFile: string | null } } | { maildir: string };
  address: string;
  /** The Maildir the plaintext is delivered into, as `offrecord fetch` does. */
  deliverTo: string;
}

export interface PassChildOutput {
  startKb: number;
  hwmKb: number;
  ms: number;
  reports: Record<string, number>;
}

/** VmRSS and VmHWM of this process, in kB. */
export function memoryKb(pid: number | 'self' = 'self'): { rssKb: number; hwmKb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { rssKb: field('VmRSS'), hwmKb: field('VmHWM') };
}

async function plainPass(input: PassChildInput): Promise<Record<string, number>> {
  if (!('imap' in input.source)) throw new Error('the plain baseline reads over IMAP');
  const { imap } = input.source;
  const client = new ImapFlow({
    host: imap.host,
    port: imap.port,
    secure: false,
    auth: { user: imap.user, pass: imap.pass },
    ...(imap.caFile ? { doSTARTTLS: true, tls: { ca: readFileSync(imap.caFile) } } : { doSTARTTLS: false }),
    logger: false,
  });
  client.on('error', () => undefined);
  await client.connect();
  let mails = 0;
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const uids = (await client.search({ all: true }, { uid: true })) || [];
      for (const uid of uids) {
        const message = await client.fetchOne(String(uid), { source: true }, { uid: true });
        if (message && message.source) mails++;
      }
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
  return { read: mails };
}

async function offrecordPass(input: PassChildInput): Promise<Record<string, number>> {
  const store = openAccountStore(input.store, { passphrase: null, checkpointAfterSave: false });
  try {
    const keyring = new Keyring(store);
    const imap = 'imap' in input.source ? input.source.imap : null;
    const config: ServerConfig | null = imap && {
      host: imap.host,
      port: imap.port,
      security: imap.caFile ? 'starttls' : 'plain',
      user: imap.user,
      password: () => imap.pass,
      ...(imap.caFile ? { caFile: imap.caFile } : {}),
    };
    const account = {
      address: input.address,
      keyring,
      store,
      privateKey: await keyring.own.unlock(),
      // Nothing is sent in a pass over big data messages (no acknowledgement is due yet).
      outgoing: config ? new SmtpTransport(config) : { send: () => Promise.reject(new Error('nothing is sent in this pass')) },
      incoming: config ? new ImapMailbox(config) : new MaildirMailbox((input.source as { maildir: string }).maildir),
      delivery: new MaildirDelivery(input.deliverTo),
    };
    const counts: Record<string, number> = {};
    // As `offrecord fetch` runs it: each report heard and let go.
    await processNewMail(account, (report) => {
      counts[report.kind] = (counts[report.kind] ?? 0) + 1;
    });
    return counts;
  } finally {
    store.close();
  }
}

/** Runs one pass in a process of its own (through the tsx loader, with `nodeFlags`), and returns what it printed. */
export async function runPassChild(input: PassChildInput, nodeFlags: readonly string[] = []): Promise<PassChildOutput> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [...nodeFlags, '--import', 'tsx', import.meta.filename, JSON.stringify(input)],
    { maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').pop()!) as PassChildOutput;
}

if (import.meta.filename === process.argv[1]) {
  const input = JSON.parse(process.argv[2]!) as PassChildInput;
  const startKb = memoryKb().rssKb;
  const started = performance.now();
  const reports = input.mode === 'plain' ? await plainPass(input) : await offrecordPass(input);
  const output: PassChildOutput = { startKb, hwmKb: memoryKb().hwmKb, ms: performance.now() - started, reports };
  process.stdout.write(`${JSON.stringify(output)}\n`);
}

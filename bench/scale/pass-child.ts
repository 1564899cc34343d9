// A process of its own for one pass over Bob's INBOX, so that its peak resident memory (VmHWM)
// is that pass's alone: `node --import tsx bench/scale/pass-child.ts JSON`. Modes: `offrecord`
// (processNewMail, as `offrecord fetch` runs it) and `plain` (imapflow fetching each mail's source by
// UID, one at a time, keeping none: the baseline). Prints one JSON line: memory before and at
// the peak, the pass's time, what it reported.
import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';
import { Keyring } from '../../src/keys/keyring.ts';
import { processNewMail } from '../../src/mail/receive.ts';
import { ImapMailbox, SmtpTransport, type ServerConfig } from '../../src/mail/servers.ts';
import { openAccountStore } from '../../src/store/index.ts';

export interface PassChildInput {
  mode: 'offrecord' | 'plain';
  store: string;
  imap: { host: string; port: number; user: string; pass: string; caFile: string | null };
  address: string;
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
  const client = new ImapFlow({
    host: input.imap.host,
    port: input.imap.port,
    secure: false,
    auth: { user: input.imap.user, pass: input.imap.pass },
    ...(input.imap.caFile ? { doSTARTTLS: true, tls: { ca: readFileSync(input.imap.caFile) } } : { doSTARTTLS: false }),
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
    const config: ServerConfig = {
      host: input.imap.host,
      port: input.imap.port,
      security: input.imap.caFile ? 'starttls' : 'plain',
      user: input.imap.user,
      password: () => input.imap.pass,
      ...(input.imap.caFile ? { caFile: input.imap.caFile } : {}),
    };
    const account = {
      address: input.address,
      keyring,
      store,
      privateKey: await keyring.own.unlock(),
      outgoing: new SmtpTransport(config),
      incoming: new ImapMailbox(config),
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

if (import.meta.filename === process.argv[1]) {
  const input = JSON.parse(process.argv[2]!) as PassChildInput;
  const startKb = memoryKb().rssKb;
  const started = performance.now();
  const reports = input.mode === 'plain' ? await plainPass(input) : await offrecordPass(input);
  const output: PassChildOutput = { startKb, hwmKb: memoryKb().hwmKb, ms: performance.now() - started, reports };
  process.stdout.write(`${JSON.stringify(output)}\n`);
}

// The memory baseline of bench/watch.ts, as a process of its own: a plain imapflow client that
// logs in, opens the INBOX and idles in IMAP IDLE until SIGTERM, doing nothing else. Run as
// `node --import tsx bench/watch-child.ts` (the runtime the offrecord CLI runs in), with the
// connection in $OFFRECORD_BENCH_IMAP (JSON: host, port, user, pass, ca?). Prints "idling" once
// the IDLE has begun.
import { ImapFlow } from 'imapflow';

interface Connection {
  host: string;
  port: number;
  user: string;
  pass: string;
  /** PEM of the CA to trust for STARTTLS; plain IMAP without it. */
  ca?: string;
}

const config = JSON.parse(process.env.OFFRECORD_BENCH_IMAP ?? 'null') as Connection | null;
if (!config) throw new Error('OFFRECORD_BENCH_IMAP is not set');

const client = new ImapFlow({
  host: config.host,
  port: config.port,
  secure: false,
  doSTARTTLS: config.ca !== undefined,
  ...(config.ca !== undefined ? { tls: { ca: config.ca } } : {}),
  auth: { user: config.user, pass: config.pass },
  logger: false,
});
client.on('error', () => undefined); // a dropped connection ends idle() below instead
let stopping = false;
process.on('SIGTERM', () => {
  stopping = true;
  void client.logout().finally(() => process.exit(0));
});

await client.connect();
await client.mailboxOpen('INBOX');
process.stdout.write('idling\n');
while (!stopping && client.usable) {
  const began = Date.now();
  await client.idle().catch(() => undefined);
  // idle() ends only when something else needs the connection (nothing does here) or it drops.
  if (Date.now() - began < 100) await new Promise((resolve) => setTimeout(resolve, 100));
}
if (!stopping) process.exit(1);

// Latency floor for a new mail reaching a client in IMAP IDLE over the loopback Dovecot + Postfix
// (kit/mail-launcher.ts): plain nodemailer sends alice → bob, a plain imapflow client idling on
// bob's INBOX notices the mail and fetches it. Dovecot alone adds ~500 ms (it delays mailbox
// change notifications by a fixed NOTIFY_DELAY_MSECS), so this is what the daemon's latency
// benchmark compares against, on the same servers in the same run.
import { randomBytes } from 'node:crypto';
import type { ExistsEvent, ImapFlow } from 'imapflow';
import { createTransport } from 'nodemailer';
import type { MailServers } from '../kit/mail-launcher.ts';
import { connectImap, smtpOptions } from '../kit/mail-servers.ts';

const ARRIVAL_TIMEOUT_MS = 10_000;

/** The next `exists` event of `client`; rejects when the connection closes or nothing comes in time. */
function nextExists(client: ImapFlow, timeoutMs: number): Promise<ExistsEvent> {
  return new Promise((ok, fail) => {
    const done = (): void => {
      clearTimeout(timer);
      client.off('exists', onExists);
      client.off('close', onClose);
    };
    const onExists = (event: ExistsEvent): void => {
      done();
      ok(event);
    };
    const onClose = (): void => {
      done();
      fail(new Error('the IDLE connection closed while waiting for a new mail'));
    };
    const timer = setTimeout(() => {
      done();
      fail(new Error(`no new mail noticed in IDLE within ${timeoutMs} ms`));
    }, timeoutMs);
    client.on('exists', onExists);
    client.on('close', onClose);
  });
}

/**
 * Sends `count` mails one at a time (each waits for the previous one to be fetched) and returns,
 * per mail, the milliseconds from nodemailer's sendMail resolving (Postfix accepted the mail) to
 * bob's idling imapflow client having fetched its source after the `exists` event. Both clients
 * use STARTTLS as the helpers configure it; one unpooled transport (a connection per mail, as
 * SmtpTransport does) and one IMAP connection for the whole run. The mails are deleted afterwards,
 * off the clock, so bob's INBOX is left as it was.
 */
export async function plainIdleLatency(servers: MailServers, count: number): Promise<number[]> {
  const { alice, bob } = servers.users;
  const transport = createTransport(smtpOptions(servers, 'alice'));
  const client = await connectImap(servers, 'bob');
  const latencies: number[] = [];
  const uids: number[] = [];
  try {
    await client.mailboxOpen('INBOX');
    for (let i = 0; i < count; i++) {
      const marker = `idle-baseline-${i}-${randomBytes(6).toString('hex')}`;
      const arrived = nextExists(client, ARRIVAL_TIMEOUT_MS);
      // idle() resolves only when IDLE ends (the fetch below breaks it); a dropped connection
      // rejects it, and is reported through `arrived` or the fetch instead.
      const idling = client.idle();
      idling.catch(() => undefined);
      arrived.catch(() => undefined);
      await transport.sendMail({ from: alice.address, to: bob.address, subject: marker, text: marker });
      const sent = performance.now();
      const { count: seq } = await arrived;
      const message = await client.fetchOne(String(seq), { source: true, uid: true });
      const fetched = performance.now();
      if (!message || !message.source?.includes(marker)) throw new Error(`message ${seq} in bob's INBOX is not mail ${i} (${marker})`);
      latencies.push(fetched - sent);
      uids.push(message.uid);
      await idling;
    }
    if (uids.length > 0) await client.messageDelete(uids.join(','), { uid: true });
  } finally {
    transport.close();
    await client.logout().catch(() => undefined);
  }
  return latencies;
}

/** The `p`-th percentile (0–100) of `values`, interpolating linearly between the closest ranks. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of no values');
  if (!(p >= 0 && p <= 100)) throw new Error(`percentile ${p} outside 0..100`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = ((sorted.length - 1) * p) / 100;
  const below = Math.floor(rank);
  const low = sorted[below]!;
  const high = sorted[Math.min(below + 1, sorted.length - 1)]!;
  return low + (high - low) * (rank - below);
}

// Issue 15 item 1, mailbox size: a pass (`fetchMessages`, as `offrecord fetch` runs it: connect,
// log in, list, read, decrypt, commit, move, log out) that finds 10 new offrecord mails in a
// loopback Dovecot INBOX holding N ordinary mails, and a pass that finds nothing new. Baseline,
// same run, same mails: plain imapflow fetching the 10 by UID range (connect, SELECT, UID FETCH
// n:* BODY[], log out). The INBOX grows from one N to the next; after each growth one pass is
// run off the clock (the ordinary mail is new to offrecord once), and its time is reported too.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { fetchMessages, type FetchReport } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { startMailServers, type MailServers } from '../../kit/mail-launcher.ts';
import { dovecotMaildir, establish, loopbackAccount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';
import { imapOptions } from '../../kit/mail-servers.ts';
import { guardMailServers } from '../harness.ts';
import type { Curve, Point } from './curve.ts';
import { DovecotMaildir } from './dovecot-maildir.ts';
import { median, sizes } from './sizes.ts';

const NEW_MAILS = 10;
const ROUNDS = 3;
const TARGET_GROWTH = 1.2;

/** Plain imapflow: the mails from `fromUid` on, by UID range, bodies and all. */
async function plainFetch(servers: MailServers, fromUid: number): Promise<number> {
  const client = new ImapFlow(imapOptions(servers, 'bob'));
  client.on('error', () => undefined);
  await client.connect();
  let count = 0;
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      for await (const message of client.fetch(`${fromUid}:*`, { uid: true, source: true }, { uid: true }))
        if (message.uid >= fromUid && message.source) count++;
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
  return count;
}

async function uidNext(servers: MailServers): Promise<number> {
  const client = new ImapFlow(imapOptions(servers, 'bob'));
  client.on('error', () => undefined);
  await client.connect();
  try {
    const status = await client.status('INBOX', { uidNext: true });
    if (!status || status.uidNext === undefined) throw new Error('STATUS INBOX gave no UIDNEXT');
    return status.uidNext;
  } finally {
    await client.logout().catch(() => undefined);
  }
}

const timed = async <T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> => {
  const start = performance.now();
  const value = await work();
  return { ms: performance.now() - start, value };
};

function expectMessages(reports: FetchReport[], count: number): void {
  const messages = reports.filter((r) => r.kind === 'message').length;
  if (messages !== count || reports.length !== count)
    throw new Error(
      `the pass reported ${JSON.stringify(reports.map((r) => (r.kind === 'skipped' ? `${r.kind} ${r.code}` : r.kind)))}, not ${count} messages`,
    );
}

export async function measure(): Promise<Curve> {
  const servers = await startMailServers({ tls: true });
  const unhook = guardMailServers(servers);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-scale-mailbox-'));
  const accounts: LoopbackAccount[] = [];
  try {
    const alice = await loopbackAccount(servers, 'alice', { root: dir });
    const bob = await loopbackAccount(servers, 'bob', { root: dir });
    accounts.push(alice, bob);
    await establish(alice, bob);
    const inbox = new DovecotMaildir(dovecotMaildir(servers, 'bob'));
    const aliceDirect = { ...alice, outgoing: inbox.transport() };

    const found: Point[] = [];
    const nothing: Point[] = [];
    const first: Point[] = [];
    const plain: Point[] = [];
    let held = 0;
    for (const n of sizes()) {
      inbox.fillOrdinary(n - held, bob.address);
      held = n;
      const once = await timed(() => fetchMessages(bob));
      expectMessages(once.value, 0);
      first.push({ n, value: once.ms });
      const rounds = { found: [] as number[], nothing: [] as number[], plain: [] as number[] };
      for (let round = 0; round < ROUNDS; round++) {
        const from = await uidNext(servers);
        for (let i = 0; i < NEW_MAILS; i++)
          await sendMessage(aliceDirect, { to: bob.address, subject: `new ${n}/${round}/${i}`, text: `new mail ${i}` });
        const base = await timed(() => plainFetch(servers, from));
        if (base.value !== NEW_MAILS) throw new Error(`plain imapflow found ${base.value} mails from UID ${from}, not ${NEW_MAILS}`);
        const ours = await timed(() => fetchMessages(bob));
        expectMessages(ours.value, NEW_MAILS);
        const idle = await timed(() => fetchMessages(bob));
        expectMessages(idle.value, 0);
        rounds.plain.push(base.ms);
        rounds.found.push(ours.ms);
        rounds.nothing.push(idle.ms);
      }
      found.push({ n, value: median(rounds.found) });
      nothing.push({ n, value: median(rounds.nothing) });
      plain.push({ n, value: median(rounds.plain) });
      console.log(
        `N = ${n}: pass finding ${NEW_MAILS} ${median(rounds.found).toFixed(0)} ms, finding nothing ${median(rounds.nothing).toFixed(0)} ms, plain imapflow by UID range ${median(rounds.plain).toFixed(0)} ms; first pass over the new ordinary mail ${once.ms.toFixed(0)} ms`,
      );
    }
    const growth = found[found.length - 1]!.value / found[0]!.value;
    return {
      id: 'mailbox-size',
      title: `A pass finding ${NEW_MAILS} new mails in an INBOX of N mails`,
      axes: { x: 'ordinary mails in the INBOX (N)', y: 'ms per pass' },
      series: [
        { label: `pass finding ${NEW_MAILS} new offrecord mails`, points: found },
        { label: 'pass finding nothing new', points: nothing },
        { label: 'first pass after the N mails arrived (once)', points: first },
      ],
      baseline: { label: `plain imapflow fetching the same ${NEW_MAILS} by UID range`, points: plain },
      notes: [
        `Loopback Dovecot (STARTTLS), ${NEW_MAILS} offrecord data mails from one established correspondent per round, median of ${ROUNDS} rounds; the ordinary mail (2 KB each) is written straight into Dovecot's Maildir (bench/scale/dovecot-maildir.ts).`,
        `Target: the pass finding ${NEW_MAILS} at the largest N at most ${TARGET_GROWTH}x its cost at the smallest: ${growth.toFixed(2)}x, ${growth <= TARGET_GROWTH ? 'met' : 'NOT met'}.`,
      ],
    };
  } finally {
    for (const account of accounts) account.store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unhook();
  }
}

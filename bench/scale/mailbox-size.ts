// Issue 15 item 1, mailbox size: a pass (`fetchMessages`, as `offrecord fetch` runs it: connect,
// log in, list, read, decrypt, commit, move, log out) that finds 10 new offrecord mails in a
// loopback Dovecot INBOX holding N ordinary mails, and a pass that finds nothing new. Baseline,
// same run, same mails: plain imapflow fetching the 10 by UID range (connect, SELECT, UID FETCH
// n:* BODY[], log out). The INBOX grows from one N to the next; after each growth one pass is
// run off the clock (the ordinary mail is new to offrecord once), and its time is reported too.
// Twice: on Dovecot's default Maildir (`mailbox-size`), where the server itself reads the whole
// directory again after an expunge, and on mdbox (`mailbox-size-mdbox`), as big servers keep mail.
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
import { DovecotMaildir, DovecotMdbox } from './dovecot-maildir.ts';
import { median, sizes } from './sizes.ts';

const NEW_MAILS = 10;
const ROUNDS = 5;
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

type Format = 'maildir' | 'mdbox';

export const measure = (): Promise<Curve> => measureOn('maildir');
export const mdboxCurve = (): Promise<Curve> => measureOn('mdbox');

async function measureOn(format: Format): Promise<Curve> {
  const servers = await startMailServers({ tls: true, dovecotSettings: format === 'mdbox' ? [DovecotMdbox.SETTING] : [] });
  const unhook = guardMailServers(servers);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-scale-mailbox-'));
  const accounts: LoopbackAccount[] = [];
  try {
    const alice = await loopbackAccount(servers, 'alice', { root: dir });
    const bob = await loopbackAccount(servers, 'bob', { root: dir });
    accounts.push(alice, bob);
    await establish(alice, bob);
    const inbox =
      format === 'maildir'
        ? new DovecotMaildir(dovecotMaildir(servers, 'bob'))
        : new DovecotMdbox(servers.dir, join(servers.dir, 'mail', servers.users.bob.user), servers.users.bob.user);
    const aliceDirect = { ...alice, outgoing: inbox.transport() };

    const found: Point[] = [];
    const nothing: Point[] = [];
    const first: Point[] = [];
    const plain: Point[] = [];
    // Warm-up, off the clock: the first pass through the code pays for V8 compiling it, which
    // would fall on the smallest N alone.
    const warmFrom = await uidNext(servers);
    for (let i = 0; i < NEW_MAILS; i++) await sendMessage(aliceDirect, { to: bob.address, subject: `warm-up ${i}`, text: 'warm-up' });
    await plainFetch(servers, warmFrom);
    expectMessages(await fetchMessages(bob), NEW_MAILS);
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
    const baseGrowth = plain[plain.length - 1]!.value / plain[0]!.value;
    const where =
      format === 'maildir'
        ? "Dovecot's default Maildir; the ordinary mail (2 KB each) is written straight into it (bench/scale/dovecot-maildir.ts)"
        : 'Dovecot keeping mail in mdbox (mail_location = mdbox:~/mdbox), as big servers do; the ordinary mail (2 KB each) is `doveadm import`ed, the new mail `doveadm save`d (bench/scale/dovecot-maildir.ts)';
    return {
      id: format === 'maildir' ? 'mailbox-size' : 'mailbox-size-mdbox',
      title: `A pass finding ${NEW_MAILS} new mails in an INBOX of N mails (Dovecot ${format === 'maildir' ? 'Maildir' : 'mdbox'})`,
      axes: { x: 'ordinary mails in the INBOX (N)', y: 'ms per pass' },
      series: [
        { label: `pass finding ${NEW_MAILS} new offrecord mails`, points: found },
        { label: 'pass finding nothing new', points: nothing },
        { label: 'first pass after the N mails arrived (once)', points: first },
      ],
      baseline: { label: `plain imapflow fetching the same ${NEW_MAILS} by UID range`, points: plain },
      notes: [
        `Loopback Dovecot (STARTTLS), ${where}; ${NEW_MAILS} offrecord data mails from one established correspondent per round, median of ${ROUNDS} rounds. A pass: connect, log in, SELECT, one UID SEARCH above the stored mark, the sizes in one FETCH, each mail's body, decrypt, commit, then one UID STORE and one UID MOVE for the ${NEW_MAILS}, log out.`,
        `Target: the pass finding ${NEW_MAILS} at the largest N at most ${TARGET_GROWTH}x its cost at the smallest: ${growth.toFixed(2)}x, ${growth <= TARGET_GROWTH ? 'met' : 'NOT met'} (the plain imapflow baseline: ${baseGrowth.toFixed(2)}x).`,
        'The pass uses neither CONDSTORE nor QRESYNC (RFC 7162): it needs no flag changes or expunges, only the UIDs above its mark, so a server without them costs the same as this one.',
        format === 'maildir'
          ? 'On Maildir the server itself pays for N: after an expunge (a MOVE) Dovecot reads the whole cur/ directory again at the next SELECT or sync (about 0.3 s each at N = 100,000, measured apart with plain imapflow), and so does the plain baseline; before the moves were batched each of the 10 MOVEs paid it (7.0 s at N = 100,000, 12.2x). The mdbox curve below is the same pass on a server whose cost grows far less.'
          : "What still grows on mdbox is the server's expunge, which the plain baseline, leaving its mail in the INBOX, does not do: the UID MOVE and the SELECT after it took Dovecot about 15-20 ms and 30-50 ms at N = 100,000 against 5-20 ms and 2-7 ms at N = 100 (measured apart with plain imapflow); the pass finding nothing pays that SELECT.",
      ],
    };
  } finally {
    for (const account of accounts) account.store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unhook();
  }
}

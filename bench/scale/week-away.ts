// Issue 15 item 2, back from a week away: `offrecord watch` (the Watcher, one pass then stop,
// as `--once` runs it) starting with N offrecord data mails waiting in a loopback Dovecot INBOX
// from 50 correspondents, each with its established session; mails per second from start to
// every plaintext in the Maildir. Baseline, same run: the same watcher over N mails from one
// correspondent, the shape of today's burst (bench/watch.ts). The correspondents mail Bob by
// writing into Dovecot's Maildir; Bob's answers while setting up go to their memory mailboxes.
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLogger } from '../../src/daemon/log.ts';
import { Watcher } from '../../src/daemon/watcher.ts';
import type { MailAccount } from '../../src/mail/account.ts';
import { MaildirDelivery } from '../../src/mail/maildir.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { startMailServers } from '../../kit/mail-launcher.ts';
import { dovecotMaildir, establish, loopbackAccount } from '../../kit/loopback-accounts.ts';
import { memoryAccounts, MemoryTransport } from '../../kit/memory-mail.ts';
import { guardMailServers } from '../harness.ts';
import type { Curve, Point } from './curve.ts';
import { DovecotMaildir } from './dovecot-maildir.ts';
import { sizes } from './sizes.ts';

const CORRESPONDENTS = 50;
const WAITING = [100, 1_000, 5_000];

/** One watcher pass (`once`) for `account`: seconds until it stopped, with every problem it logged. */
async function watchOnce(account: MailAccount): Promise<number> {
  const problems: string[] = [];
  const log = jsonLogger((line) => {
    if (!line.includes('"level":"info"')) problems.push(line.trim());
  });
  const start = performance.now();
  await new Watcher({ account, log, once: true }).run(new AbortController().signal);
  if (problems.length > 0) throw new Error(`the watcher logged trouble: ${problems.slice(0, 3).join('; ')}`);
  return (performance.now() - start) / 1000;
}

export async function measure(): Promise<Curve> {
  const servers = await startMailServers({ tls: true });
  const unhook = guardMailServers(servers);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-scale-week-'));
  const closing: { store: { close(): void } }[] = [];
  try {
    const correspondents = await memoryAccounts(
      dir,
      Array.from({ length: CORRESPONDENTS }, (_, i) => `c${i}@example.test`),
    );
    closing.push(...correspondents);
    const bobServer = await loopbackAccount(servers, 'bob', { root: dir });
    closing.push(bobServer);
    await bobServer.incoming.verify?.(); // Dovecot makes Bob's Maildir at his first login
    const inbox = new DovecotMaildir(dovecotMaildir(servers, 'bob'));
    const plaintext = join(dir, 'plaintext');
    for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(plaintext, sub), { recursive: true });
    const bob: MailAccount = {
      ...bobServer,
      outgoing: new MemoryTransport(new Map(correspondents.map((c) => [c.address, c.incoming]))),
      delivery: new MaildirDelivery(plaintext),
    };
    const toBob: MailAccount[] = correspondents.map((c) => ({ ...c, outgoing: inbox.transport() }));
    const setup = performance.now();
    for (const c of toBob) await establish(c, bob);
    console.log(`${CORRESPONDENTS} sessions established in ${((performance.now() - setup) / 1000).toFixed(0)} s`);

    const delivered = () => readdirSync(join(plaintext, 'new')).length;
    let sent = 0;
    const waiting = async (n: number, from: MailAccount[]) => {
      for (let i = 0; i < n; i++) {
        const c = from[i % from.length]!;
        await sendMessage(c, { to: bob.address, subject: `while away ${sent}`, text: `mail ${sent++} written while Bob was away` });
      }
      for (const c of from) c.store.forget();
    };
    const ours: Point[] = [];
    const burst: Point[] = [];
    for (const n of sizes(WAITING)) {
      await waiting(n, toBob.slice(0, 1));
      let before = delivered();
      const one = await watchOnce(bob);
      if (delivered() - before !== n) throw new Error(`the watcher delivered ${delivered() - before} of ${n} mails from one correspondent`);
      await waiting(n, toBob);
      before = delivered();
      const many = await watchOnce(bob);
      if (delivered() - before !== n)
        throw new Error(`the watcher delivered ${delivered() - before} of ${n} mails from ${CORRESPONDENTS} correspondents`);
      ours.push({ n, value: n / many });
      burst.push({ n, value: n / one });
      console.log(
        `${n} waiting: ${CORRESPONDENTS} correspondents ${(n / many).toFixed(1)} mails/s (${many.toFixed(1)} s), one correspondent ${(n / one).toFixed(1)} mails/s (${one.toFixed(1)} s)`,
      );
    }
    const last = ours[ours.length - 1]!;
    const lastBurst = burst[burst.length - 1]!;
    return {
      id: 'week-away',
      title: `Back from a week away: N mails waiting from ${CORRESPONDENTS} correspondents`,
      axes: { x: 'offrecord mails waiting when the watcher starts (N)', y: 'mails per second' },
      series: [{ label: `watcher (--once) over N mails from ${CORRESPONDENTS} correspondents`, points: ours }],
      baseline: { label: 'the same watcher over N mails from one correspondent (the burst of bench/watch.ts)', points: burst },
      notes: [
        `Loopback Dovecot (STARTTLS); each mail a 4 KB-ish data message of an established session, decrypted, committed, handed to a Maildir (fsync) and moved to OffRecord (one UID MOVE per 100 mails); the duties run once at the end, included. The waiting mail is written straight into Dovecot's Maildir; preparing it (sending 2 x N data mails, encrypted by the correspondents) is most of the run's time.`,
        `At N = ${last.n}: ${last.value.toFixed(1)} mails/s from ${CORRESPONDENTS} correspondents against ${lastBurst.value.toFixed(1)} from one: ${(last.value / lastBurst.value).toFixed(2)}x the rate.`,
      ],
    };
  } finally {
    for (const account of closing) account.store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unhook();
  }
}

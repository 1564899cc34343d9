// Issue 15 item 7, memory per mail: the peak resident memory (VmHWM) of a process running one
// pass, as `offrecord fetch` does, over N big offrecord mails (each a data message whose
// attachment fills 70% of LIMITS.maxPayload), above the same process's memory before the pass.
// Baseline, same run, same mails: a process fetching each mail's source with plain imapflow,
// one at a time (bench/scale/pass-child.ts). Bound (docs/PROTOCOL.md §18.9): the peak above
// start at most MEMORY_BOUND_PAYLOADS x LIMITS.maxPayload, whatever N.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MEMORY_BOUND_PAYLOADS } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { LIMITS } from '../../src/protocol/wire.ts';
import { startMailServers } from '../../kit/mail-launcher.ts';
import { dovecotMaildir, establish, loopbackAccount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';
import { guardMailServers } from '../harness.ts';
import type { Curve, Point } from './curve.ts';
import { DovecotMaildir } from './dovecot-maildir.ts';
import { sizes } from './sizes.ts';
import { runPassChild, type PassChildInput } from './pass-child.ts';

const MAILS = [1, 2, 5, 10];
const ATTACHMENT_BYTES = Math.floor(LIMITS.maxPayload * 0.7);
const MiB = 1024 * 1024;

export async function measure(): Promise<Curve> {
  const servers = await startMailServers({ tls: true });
  const unhook = guardMailServers(servers);
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-scale-memory-'));
  const accounts: LoopbackAccount[] = [];
  try {
    const alice = await loopbackAccount(servers, 'alice', { root: dir });
    const bob = await loopbackAccount(servers, 'bob', { root: dir });
    accounts.push(alice);
    await establish(alice, bob);
    bob.store.close(); // the pass runs in a child process of its own
    const inbox = new DovecotMaildir(dovecotMaildir(servers, 'bob'));
    const aliceDirect = { ...alice, outgoing: inbox.transport() };
    const imap = {
      host: servers.imap.host,
      port: servers.imap.port,
      user: servers.users.bob.user,
      pass: servers.users.bob.pass,
      caFile: servers.tls ? servers.tls.certFile : null,
    };
    const child = (mode: PassChildInput['mode']) =>
      runPassChild({ mode, store: join(dir, 'bob.sqlite'), source: { imap }, address: bob.address, deliverTo: join(dir, 'plaintext') });

    const ours: Point[] = [];
    const oursAbsolute: Point[] = [];
    const plain: Point[] = [];
    for (const n of sizes(MAILS)) {
      for (let i = 0; i < n; i++) {
        const content = new Uint8Array(randomBytes(ATTACHMENT_BYTES));
        await sendMessage(aliceDirect, {
          to: bob.address,
          subject: `big ${n}/${i}`,
          text: 'a big one',
          attachments: [{ filename: 'big.bin', contentType: 'application/octet-stream', content }],
        });
      }
      alice.store.forget();
      const base = await child('plain');
      const pass = await child('offrecord');
      if (pass.reports.message !== n) throw new Error(`the pass over ${n} big mails reported ${JSON.stringify(pass.reports)}`);
      ours.push({ n, value: (pass.hwmKb - pass.startKb) / 1024 });
      oursAbsolute.push({ n, value: pass.hwmKb / 1024 });
      plain.push({ n, value: (base.hwmKb - base.startKb) / 1024 });
      console.log(
        `${n} mails of ${(ATTACHMENT_BYTES / MiB).toFixed(1)} MiB attachments: offrecord peak ${(pass.hwmKb / 1024).toFixed(0)} MB (+${((pass.hwmKb - pass.startKb) / 1024).toFixed(0)} over its start, ${(pass.ms / 1000).toFixed(1)} s); plain imapflow peak ${(base.hwmKb / 1024).toFixed(0)} MB (+${((base.hwmKb - base.startKb) / 1024).toFixed(0)})`,
      );
    }
    const bound = (MEMORY_BOUND_PAYLOADS * LIMITS.maxPayload) / MiB;
    const worst = Math.max(...ours.map((p) => p.value));
    return {
      id: 'memory-per-mail',
      title: 'Peak memory of a pass over N big mails',
      axes: {
        x: `offrecord mails in the pass, each a ${(ATTACHMENT_BYTES / MiB).toFixed(1)} MiB attachment`,
        y: 'MB of VmHWM above the start',
      },
      series: [
        { label: 'offrecord pass (as `offrecord fetch`): peak above start', points: ours },
        { label: 'offrecord pass: peak VmHWM', points: oursAbsolute },
      ],
      baseline: { label: 'plain imapflow fetching each source, one at a time: peak above start', points: plain },
      notes: [
        `Each pass in a process of its own (bench/scale/pass-child.ts, through the tsx loader), over loopback Dovecot (STARTTLS); mails written straight into Dovecot's Maildir; the plaintext through the outbox into a Maildir, as \`offrecord fetch\` does. LIMITS.maxPayload = ${(LIMITS.maxPayload / MiB).toFixed(0)} MiB.`,
        `Bound: peak above start at most ${MEMORY_BOUND_PAYLOADS} x LIMITS.maxPayload = ${bound.toFixed(0)} MB whatever N: worst ${worst.toFixed(0)} MB, ${worst <= bound ? 'met' : 'NOT met'}.`,
      ],
    };
  } finally {
    for (const account of accounts) account.store.close();
    rmSync(dir, { recursive: true, force: true });
    await servers.stop();
    unhook();
  }
}

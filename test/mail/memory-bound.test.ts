// The memory bound of a pass (PROTOCOL.md §18.9): its peak resident memory above its start at
// most MEMORY_BOUND_PAYLOADS x LIMITS.maxPayload, whatever the number of mails in it. Two big
// data messages (an attachment of 70% of the payload limit each) from a Maildir, the plaintext
// through the outbox into a Maildir, as `offrecord fetch` does, in a process of its own
// (bench/scale/pass-child.ts) whose VmHWM is the pass's alone. The child's garbage collector runs
// on its main thread only (--single-threaded-gc), so when garbage is collected follows what the
// pass allocates, not how busy the machine's other cores are.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { establish } from '../../kit/loopback-accounts.ts';
import { spoolAccount } from '../../kit/spool.ts';
import { MaildirSpool } from '../../src/mail/maildir.ts';
import { MEMORY_BOUND_PAYLOADS } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { LIMITS } from '../../src/protocol/wire.ts';
import { runPassChild } from '../../bench/scale/pass-child.ts';

const MAILS = 2;

test(`a pass over ${MAILS} big mails peaks at most MEMORY_BOUND_PAYLOADS x LIMITS.maxPayload above its start (§18.9)`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-memory-bound-'));
  try {
    const spool = new MaildirSpool(join(dir, 'spool'));
    const alice = await spoolAccount(dir, spool, 'alice@example.test');
    const bob = await spoolAccount(dir, spool, 'bob@example.test');
    await establish(alice, bob);
    for (let i = 0; i < MAILS; i++) {
      await sendMessage(alice, {
        to: bob.address,
        subject: `big ${i}`,
        text: 'a big one',
        attachments: [
          { filename: 'big.bin', contentType: 'application/octet-stream', content: randomBytes(Math.floor(LIMITS.maxPayload * 0.7)) },
        ],
      });
    }
    alice.store.close();
    bob.store.close();
    const pass = await runPassChild(
      {
        mode: 'offrecord',
        store: join(dir, 'bob@example.test.sqlite'),
        source: { maildir: spool.maildir(bob.address) },
        address: bob.address,
        deliverTo: join(dir, 'plaintext'),
      },
      ['--single-threaded-gc'],
    );
    assert.deepEqual(pass.reports, { message: MAILS });
    const peak = (pass.hwmKb - pass.startKb) * 1024;
    const bound = MEMORY_BOUND_PAYLOADS * LIMITS.maxPayload;
    t.diagnostic(`peak ${(peak / 2 ** 20).toFixed(0)} MiB above the start; bound ${bound / 2 ** 20} MiB`);
    assert.ok(peak <= bound, `peak ${(peak / 2 ** 20).toFixed(0)} MiB above the start, over the bound of ${bound / 2 ** 20} MiB`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Issue 5, burst: 500 offrecord mails arrive over the real loopback Postfix and Dovecot while
// Bob's watcher runs. Every one lands in his Maildir exactly once, the INBOX is left without
// offrecord mail, OffRecord holds them all, and the outbox is empty.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { memoryLogger } from '../../src/daemon/log.ts';
import { Watcher } from '../../src/daemon/watcher.ts';
import { MaildirDelivery } from '../../src/mail/maildir.ts';
import { sendMessage } from '../../src/mail/send.ts';
import type { OutgoingTransport } from '../../src/mail/transport.ts';
import { folderSources, maildirMessages, tally, until } from '../helpers/daemon.ts';
import { useMailServers } from '../../kit/mail-servers.ts';
import { establish, loopbackAccount, pending } from '../../kit/loopback-accounts.ts';

const servers = useMailServers();
const root = await mkdtemp(join(tmpdir(), 'offrecord-burst-'));
after(() => rm(root, { recursive: true, force: true }));

const MAILS = 500;
/** SMTP submissions in flight at once: each is a connection of its own (STARTTLS, AUTH). */
const LANES = 16;

/**
 * Alice's outgoing transport with submissions overlapped: her session steps must run one after
 * another (each persists her counter), but waiting for Postfix need not.
 */
function overlapped(transport: OutgoingTransport): { transport: OutgoingTransport; drain: () => Promise<void> } {
  const inFlight = new Set<Promise<void>>();
  const failures: unknown[] = [];
  return {
    transport: {
      send: async (raw, envelope) => {
        while (inFlight.size >= LANES) await Promise.race(inFlight);
        const submission: Promise<void> = transport
          .send(raw, envelope)
          .catch((error: unknown) => void failures.push(error))
          .finally(() => inFlight.delete(submission));
        inFlight.add(submission);
      },
    },
    drain: async () => {
      await Promise.all(inFlight);
      assert.deepEqual(failures, [], 'every submission was accepted');
    },
  };
}

describe('burst: 500 mails while the watcher runs', () => {
  it('delivers each exactly once into the Maildir, files all of them away, leaves the outbox empty', async (t) => {
    const s = servers();
    const alice = await loopbackAccount(s, 'alice', { root });
    const bob = await loopbackAccount(s, 'bob', { root });
    await establish(alice, bob);

    const inbox = join(root, 'bob-plaintext');
    const log = memoryLogger();
    const controller = new AbortController();
    const running = new Watcher({ account: { ...bob, delivery: new MaildirDelivery(inbox) }, log }).run(controller.signal);
    try {
      const started = Date.now();
      const out = overlapped(alice.outgoing);
      const sender = { ...alice, outgoing: out.transport };
      for (let i = 0; i < MAILS; i++) {
        assert.deepEqual(await sendMessage(sender, { to: bob.address, subject: `burst ${i}`, text: `burst body ${i}` }), {
          kind: 'encrypted',
          type: 'data',
        });
      }
      await out.drain();
      const sentMs = Date.now() - started;
      await until(`${MAILS} mails in Bob's Maildir`, async () => ((await maildirMessages(inbox)).length >= MAILS ? true : null), 120_000);
      t.diagnostic(`500 mails: submitted in ${sentMs} ms, all delivered after ${Date.now() - started} ms`);
    } finally {
      controller.abort();
      await running;
    }

    const counts = tally(await maildirMessages(inbox), /burst body (\d+)/);
    const missing = Array.from({ length: MAILS }, (_, i) => String(i)).filter((i) => !counts.has(i));
    const twice = [...counts].filter(([, n]) => n > 1).map(([i]) => i);
    assert.deepEqual([missing, twice], [[], []], 'none missing, none twice');
    assert.equal(counts.size, MAILS);
    assert.equal((await maildirMessages(inbox)).length, MAILS, 'nothing else in the Maildir');
    assert.deepEqual(
      log.lines.filter((l) => l.event === 'mail.skipped'),
      [],
    );
    assert.equal(log.lines.filter((l) => l.event === 'mail.delivered').length, MAILS);

    assert.deepEqual(await pending(bob), [], 'no offrecord mail left in the INBOX');
    // The first mail of the bootstrap was filed there too.
    assert.equal((await folderSources(s, 'bob', 'OffRecord')).length, MAILS + 1);
    assert.deepEqual(bob.store.deliveries(), [], 'the outbox is empty');
  });
});

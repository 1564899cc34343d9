// A server without IDLE: the watcher polls instead, and still delivers every mail once.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { memoryLogger } from '../../src/daemon/log.ts';
import { Watcher } from '../../src/daemon/watcher.ts';
import { MaildirDelivery } from '../../src/mail/maildir.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { maildirMessages, until } from '../helpers/daemon.ts';
import { establish, loopbackAccount } from '../../kit/loopback-accounts.ts';
import { connectImap, useMailServers } from '../../kit/mail-servers.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-poll-'));
after(() => rm(root, { recursive: true, force: true }));

// Dovecot's own list, less IDLE (and NOTIFY).
const WITHOUT_IDLE =
  'imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED CONDSTORE ESEARCH SEARCHRES LIST-STATUS BINARY MOVE LITERAL+';

describe('the watcher on a server without IDLE', () => {
  const servers = useMailServers({ dovecotSettings: [WITHOUT_IDLE] });

  it('polls, and delivers what arrives', async () => {
    const s = servers();
    const probe = await connectImap(s, 'bob');
    assert.equal(probe.capabilities.has('IDLE'), false, 'the server offers no IDLE');
    await probe.logout();
    const alice = await loopbackAccount(s, 'alice', { root });
    const bob = await loopbackAccount(s, 'bob', { root });
    await establish(alice, bob);
    const inbox = join(root, 'plaintext');
    const controller = new AbortController();
    // The wait for news is capped by idleRestartMs: here it is the polling interval.
    const running = new Watcher({
      account: { ...bob, delivery: new MaildirDelivery(inbox) },
      log: memoryLogger(),
      timings: { idleRestartMs: 300 },
    }).run(controller.signal);
    try {
      for (let i = 0; i < 3; i++) await sendMessage(alice, { to: bob.address, subject: 's', text: `polled ${i}` });
      await until('three deliveries', async () => (await maildirMessages(inbox)).length === 3);
    } finally {
      controller.abort();
      await running;
    }
    const texts = await maildirMessages(inbox);
    for (let i = 0; i < 3; i++) assert.equal(texts.filter((t) => t.includes(`polled ${i}`)).length, 1);
  });
});

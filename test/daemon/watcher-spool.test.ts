// The watcher over the embedded Maildir spool: new mail is delivered while it runs, a signal
// stops it between mails, and --once does one pass.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { memoryLogger } from '../../src/daemon/log.ts';
import { Watcher } from '../../src/daemon/watcher.ts';
import { MaildirDelivery, MaildirSpool } from '../../src/mail/maildir.ts';
import { fetchMessages } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { until } from '../helpers/daemon.ts';
import { spoolAccount } from '../../kit/spool.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-watch-'));
after(() => rm(root, { recursive: true, force: true }));

describe('watcher over the Maildir spool', async () => {
  const spool = new MaildirSpool(join(root, 'spool'));
  const alice = await spoolAccount(root, spool, 'alice@example.test');
  const bob = await spoolAccount(root, spool, 'bob@example.test');
  await sendMessage(alice, { to: bob.address, subject: 'hi', text: 'keys' }, { allowPlaintext: true });
  await fetchMessages(bob);
  const inbox = join(root, 'bob-plaintext');
  const count = async () => (await readdir(join(inbox, 'new')).catch(() => [])).length;

  it('delivers mail that arrives while it runs, and stops on the signal', async () => {
    const log = memoryLogger();
    const controller = new AbortController();
    const states: string[] = [];
    const watcher = new Watcher({
      account: { ...bob, delivery: new MaildirDelivery(inbox) },
      log,
      onStatus: (s) => states.push(s.state.kind),
    });
    const running = watcher.run(controller.signal);
    await sendMessage(bob, { to: alice.address, subject: 'first', text: 'hello alice' });
    await fetchMessages(alice); // the first mail: Alice answers it
    await sendMessage(alice, { to: bob.address, subject: 'reply', text: 'hello bob' });
    for (let i = 0; i < 5; i++) await sendMessage(alice, { to: bob.address, subject: `n${i}`, text: `note ${i}` });
    await until('six deliveries', async () => (await count()) === 6);
    controller.abort();
    await running;
    assert.equal(await count(), 6);
    assert.ok(states.includes('idle') && states.at(-1) === 'stopped', states.join(','));
    assert.equal(log.lines.filter((l) => l.event === 'mail.delivered').length, 6);
    assert.ok(!JSON.stringify(log.lines).includes('note '), 'no plaintext in the logs');
  });

  it('--once does one pass and stops by itself', async () => {
    await sendMessage(alice, { to: bob.address, subject: 'x', text: 'note 9' });
    await new Watcher({ account: { ...bob, delivery: new MaildirDelivery(inbox) }, log: memoryLogger(), once: true }).run(
      new AbortController().signal,
    );
    assert.equal(await count(), 7);
  });
});

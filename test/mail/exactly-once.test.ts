// Exactly-once delivery through the pipeline: the session step, the processed-mail record and
// the plaintext in the outbox commit together; a failure after that commit (the Maildir write,
// the move on the server) is made good by the next pass without losing or repeating a message.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { DeliverySink } from '../../src/mail/delivery.ts';
import { MailError } from '../../src/mail/errors.ts';
import { MaildirDelivery, MaildirSpool } from '../../src/mail/maildir.ts';
import { performDuties } from '../../src/mail/duties.ts';
import { fetchMessages, processNewMail, PROCESSED_KEPT_MS } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { spoolAccount } from '../../kit/spool.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-once-'));
after(() => rm(root, { recursive: true, force: true }));

async function delivered(dir: string): Promise<string[]> {
  const texts: string[] = [];
  for (const sub of ['new', 'cur']) {
    for (const name of (await readdir(join(dir, sub)).catch(() => [])).sort()) texts.push(await readFile(join(dir, sub, name), 'utf8'));
  }
  return texts;
}

const bodies = (texts: string[]) => texts.map((t) => /note (\d+)/.exec(t)?.[1]).sort();

describe('exactly once, over the Maildir spool', async () => {
  const spool = new MaildirSpool(join(root, 'spool'));
  const inbox = join(root, 'plaintext');
  let failDelivery = false;
  const maildir = new MaildirDelivery(inbox);
  const flaky: DeliverySink = {
    deliver: async (d, retry) => {
      if (failDelivery) throw new Error('disk full');
      await maildir.deliver(d, retry);
    },
  };
  const alice = await spoolAccount(root, spool, 'alice@example.test');
  const bob = { ...(await spoolAccount(root, spool, 'bob@example.test')), delivery: flaky };
  // Keys both ways, then the first mail and the reply: the session is up.
  await sendMessage(alice, { to: bob.address, subject: 'hi', text: 'keys' }, { allowPlaintext: true });
  await fetchMessages(bob);
  await sendMessage(bob, { to: alice.address, subject: 'hi', text: 'keys' }, { allowPlaintext: true });
  await fetchMessages(alice);

  it('a delivered message is in the Maildir once, and the outbox is empty', async () => {
    await sendMessage(alice, { to: bob.address, subject: 's', text: 'note 1' });
    const reports = await fetchMessages(bob);
    assert.deepEqual(
      reports.map((r) => r.kind),
      ['message'],
    );
    assert.deepEqual(bodies(await delivered(inbox)), ['1']);
    assert.deepEqual(bob.store.deliveries(), []);
  });

  it('a failed Maildir write after the commit: the plaintext waits in the outbox and lands on the next pass', async () => {
    await sendMessage(alice, { to: bob.address, subject: 's', text: 'note 2' });
    failDelivery = true;
    await assert.rejects(fetchMessages(bob), /disk full/);
    assert.equal(bob.store.deliveries().length, 1, 'committed with the session step');
    assert.equal((await spool.mailbox(bob.address).list()).length, 1, 'the ciphertext stays until the plaintext is safe');
    failDelivery = false;
    const reports = await fetchMessages(bob);
    assert.deepEqual(
      reports.map((r) => r.kind),
      ['refiled'],
      'not decrypted twice: that would be a replay',
    );
    assert.deepEqual(bodies(await delivered(inbox)), ['1', '2']);
    assert.deepEqual(bob.store.deliveries(), []);
    assert.deepEqual(await spool.mailbox(bob.address).list(), []);
  });

  it('a delivery repeated after a crash before the outbox heard of it lands once', async () => {
    const [d] = [
      {
        id: 'ab'.repeat(16),
        sender: alice.address,
        fingerprint: 'cd'.repeat(20),
        verified: false,
        message: new TextEncoder().encode('Subject: x\r\n\r\nnote 3\r\n'),
        receivedAt: 5_000,
      },
    ];
    await maildir.deliver(d!, false);
    await maildir.deliver(d!, true);
    assert.deepEqual(bodies(await delivered(inbox)), ['1', '2', '3']);
    // A mail client read it meanwhile: moved to cur/ with a flag in its name.
    const [name] = (await readdir(join(inbox, 'new'))).filter((n) => n.includes(d!.id));
    await rename(join(inbox, 'new', name!), join(inbox, 'cur', `${name}:2,S`));
    await maildir.deliver(d!, true);
    assert.deepEqual(bodies(await delivered(inbox)), ['1', '2', '3']);
  });

  /** Bob's mailbox with `done` replaced; put back with the returned function. */
  function withDone(done: (inner: typeof bob.incoming, ids: readonly string[], folder?: string) => Promise<void>): () => void {
    const incoming = bob.incoming;
    bob.incoming = Object.assign(Object.create(incoming) as typeof incoming, {
      done: (ids: readonly string[], folder?: string) => done(incoming, ids, folder),
    });
    return () => {
      bob.incoming = incoming;
    };
  }

  it('a pass files its mails together: one call moves them all', async () => {
    for (const n of [5, 6, 7]) await sendMessage(alice, { to: bob.address, subject: 's', text: `note ${n}` });
    const calls: string[][] = [];
    const restore = withDone((inner, ids, folder) => {
      calls.push([...ids]);
      return inner.done(ids, folder);
    });
    try {
      const reports = await fetchMessages(bob);
      assert.deepEqual(
        reports.map((r) => r.kind),
        ['message', 'message', 'message'],
      );
      assert.deepEqual(
        calls.map((ids) => ids.length),
        [3],
        'one move for the pass, not one per mail',
      );
    } finally {
      restore();
    }
    assert.deepEqual(await spool.mailbox(bob.address).list(), []);
  });

  it('mails whose move failed after delivery are filed by the next pass, each once, not delivered again', async () => {
    const before = bodies(await delivered(inbox));
    for (const n of [8, 9]) await sendMessage(alice, { to: bob.address, subject: 's', text: `note ${n}` });
    // Every move of this pass fails, the batch's and each mail's own: as a crash between commit and move.
    const restore = withDone(async () => Promise.reject(new MailError('io', 'connection dropped')));
    try {
      assert.deepEqual(
        (await fetchMessages(bob)).map((r) => (r.kind === 'skipped' ? r.code : r.kind)),
        ['io', 'io'],
      );
    } finally {
      restore();
    }
    assert.deepEqual(bodies(await delivered(inbox)), [...before, '8', '9'].sort());
    const calls: number[] = [];
    const count = withDone((inner, ids, folder) => {
      calls.push(ids.length);
      return inner.done(ids, folder);
    });
    try {
      assert.deepEqual(
        (await fetchMessages(bob)).map((r) => r.kind),
        ['refiled', 'refiled'],
      );
    } finally {
      count();
    }
    assert.deepEqual(calls, [2], 'refiled together too');
    assert.deepEqual(bodies(await delivered(inbox)), [...before, '8', '9'].sort());
    assert.deepEqual(await spool.mailbox(bob.address).list(), []);
    assert.deepEqual(await fetchMessages(bob), []);
  });

  it('a move that fails for the batch is tried mail by mail: only the mail that cannot be filed is skipped', async () => {
    for (const n of [10, 11, 12]) await sendMessage(alice, { to: bob.address, subject: 's', text: `note ${n}` });
    const ids = await spool.mailbox(bob.address).list();
    const restore = withDone(async (inner, batch, folder) => {
      if (batch.length > 1 || batch[0] === ids[1]) throw new MailError('io', 'connection dropped');
      return inner.done(batch, folder);
    });
    try {
      assert.deepEqual(
        (await fetchMessages(bob)).map((r) => (r.kind === 'skipped' ? r.code : r.kind)),
        ['message', 'io', 'message'],
      );
    } finally {
      restore();
    }
    assert.deepEqual(
      (await fetchMessages(bob)).map((r) => r.kind),
      ['refiled'],
    );
  });

  it("processed-mail records a month old are dropped by offrecord fetch and by the watcher's duties run, not by every pass", async () => {
    const mailbox = bob.incoming.name;
    const records = (tag: string) => {
      const old = { mailbox, id: `old-${tag}`, epoch: '' };
      const recent = { mailbox, id: `recent-${tag}`, epoch: '' };
      bob.store.markProcessed({ ...old, processedAt: Date.now() - PROCESSED_KEPT_MS - 60_000 });
      bob.store.markProcessed({ ...recent, processedAt: Date.now() - PROCESSED_KEPT_MS + 60_000 });
      return { old, recent };
    };
    const byFetch = records('fetch');
    await fetchMessages(bob);
    assert.equal(bob.store.processed(byFetch.old), null);
    assert.notEqual(bob.store.processed(byFetch.recent), null);
    const byDuties = records('duties');
    await processNewMail(bob, () => undefined);
    assert.notEqual(bob.store.processed(byDuties.old), null, 'a pass of the watcher leaves them to its duties');
    await performDuties(bob);
    assert.equal(bob.store.processed(byDuties.old), null);
    assert.notEqual(bob.store.processed(byDuties.recent), null);
  });
});

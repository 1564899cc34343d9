// The watcher against a misbehaving server: Dovecot stopped and started again during IDLE,
// connections cut in the middle of a FETCH (a TCP proxy in front of the real Dovecot), and bad
// mail in the inbox. Whatever happens, every mail is delivered once and nothing is lost.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startDovecot, stopDovecot } from '../../kit/mail-launcher.ts';
import { memoryLogger } from '../../src/daemon/log.ts';
import { Watcher, type WatchState } from '../../src/daemon/watcher.ts';
import { MaildirDelivery } from '../../src/mail/maildir.ts';
import { MAX_MAIL_BYTES } from '../../src/mail/mime.ts';
import { MailError } from '../../src/mail/errors.ts';
import { fetchMessages } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { ImapMailbox } from '../../src/mail/servers.ts';
import {
  appendMail,
  dovecotMaildir,
  establish,
  loopbackAccount,
  pending,
  serverConfig,
  type LoopbackAccount,
} from '../../kit/loopback-accounts.ts';
import { maildirMessages, until } from '../helpers/daemon.ts';
import { useMailServers } from '../../kit/mail-servers.ts';
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-faults-'));
after(() => rm(root, { recursive: true, force: true }));

const FAST = { backoffBaseMs: 50, backoffMaxMs: 400, dutiesEveryMs: 3_600_000 };

async function bodies(dir: string): Promise<string[]> {
  return (await maildirMessages(dir)).flatMap((text) => /note ([\w-]+)/.exec(text)?.[1] ?? []).sort();
}

/** Bob's watcher, running until stop(); its states and log are kept for the assertions. */
function watch(bob: LoopbackAccount, inbox: string) {
  const log = memoryLogger();
  const states: WatchState[] = [];
  const controller = new AbortController();
  const running = new Watcher({
    account: { ...bob, delivery: new MaildirDelivery(inbox) },
    log,
    timings: FAST,
    onStatus: (s) => states.push(s.state),
  }).run(controller.signal);
  return {
    log,
    state: () => states.at(-1)?.kind,
    stop: async () => {
      controller.abort();
      await running;
    },
  };
}

const expected = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`).sort();

describe('the watcher against server faults', () => {
  const servers = useMailServers();
  let alice: LoopbackAccount;
  let bob: LoopbackAccount;

  before(async () => {
    const s = servers();
    alice = await loopbackAccount(s, 'alice', { root });
    bob = await loopbackAccount(s, 'bob', { root });
    await establish(alice, bob);
  });

  it('Dovecot stopped and started 10 times during IDLE: the watcher reconnects and misses nothing', async () => {
    const s = servers();
    const inbox = join(root, 'restarts');
    const watcher = watch(bob, inbox);
    try {
      for (let round = 0; round < 10; round++) {
        await until('the watcher to idle', () => {
          assert.notEqual(watcher.state(), 'stopped', JSON.stringify(watcher.log.lines.at(-1)));
          return watcher.state() === 'idle';
        });
        await stopDovecot(s);
        await until('the watcher to notice', () => watcher.state() === 'backoff');
        await startDovecot(s);
        // Sent while the watcher may still be backing off: the catch-up pass must find them.
        for (let i = 0; i < 2; i++)
          await sendMessage(alice, { to: bob.address, subject: 's', text: `note r-${String(round * 2 + i).padStart(2, '0')}` });
      }
      await until(
        '20 deliveries',
        async () => {
          assert.notEqual(watcher.state(), 'stopped', JSON.stringify(watcher.log.lines.at(-1)));
          return (await bodies(inbox)).length >= 20;
        },
        60_000,
      );
    } finally {
      await watcher.stop();
    }
    assert.deepEqual(await bodies(inbox), expected('r', 20), 'each once');
    assert.ok(watcher.log.lines.filter((l) => l.event === 'watch.backoff').length >= 10, 'every restart was noticed');
    assert.deepEqual(bob.store.deliveries(), []);
  });

  it('connections cut in the middle of a FETCH: the mail is read again on a new connection, once', async () => {
    const s = servers();
    let proxy: TcpProxy | null = null;
    const inbox = join(root, 'cuts');
    proxy = await startTcpProxy({ host: s.imap.host, port: s.imap.port });
    const viaProxy = { ...bob, incoming: new ImapMailbox({ ...serverConfig(s, 'bob', 'imap'), port: proxy.port }) };
    const watcher = watch(viaProxy, inbox);
    try {
      const attachment = { filename: 'big.bin', contentType: 'application/octet-stream', content: new Uint8Array(256 * 1024).fill(7) };
      for (let i = 0; i < 6; i++) {
        await until('the watcher to idle', () => watcher.state() === 'idle');
        proxy.cutAfter(64 * 1024); // the next answer that long is cut: this mail's FETCH
        await sendMessage(alice, {
          to: bob.address,
          subject: 's',
          text: `note c-${String(i).padStart(2, '0')}`,
          attachments: [attachment],
        });
        await until(`delivery ${i}`, async () => (await bodies(inbox)).length > i);
      }
      await until('the last mail filed away', async () => (await pending(bob)).length === 0);
    } finally {
      await watcher.stop();
      await proxy.close();
    }
    assert.deepEqual(await bodies(inbox), expected('c', 6), 'each once');
    assert.deepEqual(await pending(bob), [], 'nothing left behind in the INBOX');
  });

  it('a UIDVALIDITY change is no failure: mail processed before it is known by its Message-ID and filed, not decrypted again', async () => {
    const s = servers();
    const inbox = join(root, 'uidvalidity');
    await sendMessage(alice, { to: bob.address, subject: 's', text: 'note u-00' });
    await until('the mail at Bob', async () => (await pending(bob)).length === 1);
    const [before] = await pending(bob);
    // Decrypted and committed, then the MOVE fails: the mail stays in the INBOX.
    const incoming = bob.incoming;
    const stuck = Object.assign(Object.create(incoming) as typeof incoming, {
      done: async () => Promise.reject(new MailError('io', 'connection dropped')),
    });
    const first = await fetchMessages({ ...bob, incoming: stuck, delivery: new MaildirDelivery(inbox) });
    assert.deepEqual(
      first.map((r) => (r.kind === 'skipped' ? r.code : r.kind)),
      ['io'],
    );
    assert.deepEqual(await bodies(inbox), ['u-00']);
    // The server renumbers its mailbox (as after an index rebuild): a new UIDVALIDITY.
    await stopDovecot(s);
    for (const name of await readdir(dovecotMaildir(s, 'bob')))
      if (name.startsWith('dovecot')) await rm(join(dovecotMaildir(s, 'bob'), name), { force: true });
    await new Promise((r) => setTimeout(r, 1_100)); // Dovecot derives the new UIDVALIDITY from the time
    await startDovecot(s);
    const [after] = await pending(bob);
    assert.notEqual(after!.split(':')[0], before!.split(':')[0], 'UIDVALIDITY changed');
    const second = await fetchMessages({ ...bob, delivery: new MaildirDelivery(inbox) });
    assert.deepEqual(
      second.map((r) => r.kind),
      ['refiled'],
      'recognised, not a replay',
    );
    assert.deepEqual(await bodies(inbox), ['u-00'], 'delivered once');
    assert.deepEqual(await pending(bob), []);
  });

  it('bad mail is skipped with a logged reason and left on the server; the watcher keeps running', async () => {
    const s = servers();
    const inbox = join(root, 'bad');
    const watcher = watch(bob, inbox);
    const marker = 'Offrecord-Message: v=1; type=data\r\n';
    const bad = {
      malformed: `From: ${alice.address}\r\nTo: ${bob.address}\r\nSubject: ...\r\n${marker}Content-Type: text/plain\r\n\r\nnot an offrecord mail at all\r\n`,
      hostile: `From: ${alice.address}\r\nTo: ${bob.address}\r\nSubject: ...\r\n${marker}${'X-Junk: '.concat('a'.repeat(900), '\r\n').repeat(300)}Content-Type: text/plain\r\n\r\nx\r\n`,
      oversized: `From: ${alice.address}\r\nTo: ${bob.address}\r\nSubject: ...\r\n${marker}Content-Type: text/plain\r\n\r\n${'y'
        .repeat(76)
        .concat('\r\n')
        .repeat(Math.ceil(MAX_MAIL_BYTES / 78) + 1)}`,
    };
    try {
      for (const raw of Object.values(bad)) await appendMail(s, 'bob', new TextEncoder().encode(raw));
      await sendMessage(alice, { to: bob.address, subject: 's', text: 'note after-the-bad-ones' });
      await until('the good mail', async () => (await bodies(inbox)).includes('after-the-bad-ones'), 60_000);
      await until('three skips logged', () => watcher.log.lines.filter((l) => l.event === 'mail.skipped').length >= 3);
      assert.notEqual(watcher.state(), 'stopped');
    } finally {
      await watcher.stop();
    }
    const skipped = watcher.log.lines.filter((l) => l.event === 'mail.skipped');
    assert.deepEqual(skipped.map((l) => l.fields.code).sort(), ['malformed', 'too_large', 'too_large'], JSON.stringify(skipped)); // the hostile one's header block is over §18.9's limit
    for (const line of skipped) assert.ok(typeof line.fields.reason === 'string' && line.fields.reason.length > 0);
    assert.equal((await pending(bob)).length, 3, 'the bad mail stays where it was');
  });
});

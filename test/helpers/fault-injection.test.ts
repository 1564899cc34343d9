// Fault injection against the real Dovecot + Postfix: Dovecot stopped and started again under a
// running Postfix (kit/mail-launcher.ts), and connections cut by a TCP proxy in front of IMAP
// (tcp-proxy.ts), all at once or in the middle of a FETCH.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import nodemailer from 'nodemailer';
import type { ImapFlow } from 'imapflow';
import { restartDovecot, startDovecot, stopDovecot } from '../../kit/mail-launcher.ts';
import { connectImap, smtpOptions, useMailServers, type MailServers } from '../../kit/mail-servers.ts';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.ts';

const mail = useMailServers();

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: nothing in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A mail to bob whose body is a marker line followed by `bodyBytes` of base64 lines. */
function rawMail(servers: MailServers, marker: string, bodyBytes = 0): Buffer {
  const body = (
    randomBytes(Math.ceil((bodyBytes * 3) / 4))
      .toString('base64')
      .match(/.{1,76}/g) ?? []
  ).join('\r\n');
  return Buffer.from(
    `From: ${servers.users.alice.address}\r\nTo: ${servers.users.bob.address}\r\nSubject: ${marker}\r\n\r\n${marker}\r\n${body}\r\n`,
  );
}

/** Bob's IMAP through `proxy`, with STARTTLS as usual (the proxy only pipes bytes). */
function connectThrough(proxy: TcpProxy): Promise<ImapFlow> {
  return connectImap(mail(), 'bob', { port: proxy.port });
}

async function uidOf(client: ImapFlow, marker: string): Promise<number | undefined> {
  const lock = await client.getMailboxLock('INBOX');
  try {
    const uids = await client.search({ header: { subject: marker } }, { uid: true });
    return uids ? uids[0] : undefined;
  } finally {
    lock.release();
  }
}

/** The state letter of a live process, or null when it is gone or a zombie. */
function liveState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' ? null : state;
  } catch {
    return null;
  }
}

describe('Dovecot stopped and started again under a running Postfix', () => {
  it('keeps the mail, refuses IMAP while down, and takes connections and deliveries after', async () => {
    const s = mail();
    const marker = `kept-${randomBytes(4).toString('hex')}`;
    const before = await connectImap(s, 'bob');
    await before.append('INBOX', rawMail(s, marker));
    const closed = once(before, 'close');
    const { dovecot, postfix } = s.pids;

    await stopDovecot(s);
    await withTimeout(closed, 2_000, 'the open IMAP connection closing');
    assert.equal(liveState(dovecot), null, 'the old Dovecot master is gone');
    assert.notEqual(liveState(postfix), null, 'Postfix still runs');
    await assert.rejects(connectImap(s, 'bob'), 'no IMAP while Dovecot is down');

    await startDovecot(s);
    assert.notEqual(s.pids.dovecot, dovecot, 'the new master is recorded');
    assert.equal(s.pids.postfix, postfix);
    const after = await connectImap(s, 'bob');
    try {
      assert.ok(await uidOf(after, marker), 'the mail appended before the stop is still there');
      // Postfix reaches the new Dovecot for SMTP AUTH and LMTP delivery.
      const sent = `sent-${randomBytes(4).toString('hex')}`;
      const transport = nodemailer.createTransport(smtpOptions(s, 'alice'));
      try {
        await transport.sendMail({ from: s.users.alice.address, to: s.users.bob.address, subject: sent, text: sent });
      } finally {
        transport.close();
      }
      const deadline = Date.now() + 5_000;
      while (!(await uidOf(after, sent))) {
        assert.ok(Date.now() < deadline, 'the mail sent after the restart arrived');
        await new Promise((ok) => setTimeout(ok, 50));
      }
    } finally {
      await after.logout();
    }
  });

  it('restartDovecot with a pause: a connection made after it works', async () => {
    const s = mail();
    const started = performance.now();
    await restartDovecot(s, { downMs: 200 });
    assert.ok(performance.now() - started >= 200);
    const client = await connectImap(s, 'bob');
    const status = await client.status('INBOX', { messages: true });
    assert.ok(status && typeof status.messages === 'number');
    await client.logout();
  });
});

describe('TCP proxy in front of IMAP', () => {
  it('cutAll: the client through it sees the connection go; a new one works', async (t) => {
    const proxy = await startTcpProxy(mail().imap);
    t.after(() => proxy.close());
    const client = await connectThrough(proxy);
    await client.mailboxOpen('INBOX');
    assert.equal(proxy.connections(), 1);
    const closed = once(client, 'close');

    proxy.cutAll();
    assert.equal(proxy.connections(), 0);
    await withTimeout(closed, 2_000, 'close after cutAll');
    assert.equal(client.usable, false);
    await assert.rejects(client.noop());

    const again = await connectThrough(proxy);
    assert.ok((await again.mailboxOpen('INBOX')).exists >= 0);
    await again.logout();
  });

  it('cutAfter: a FETCH of a large mail is cut mid-way and rejects; the next connection fetches it whole', async (t) => {
    const s = mail();
    const proxy = await startTcpProxy(s.imap);
    t.after(() => proxy.close());
    const marker = `large-${randomBytes(4).toString('hex')}`;
    const raw = rawMail(s, marker, 1 << 20);
    const setup = await connectImap(s, 'bob');
    await setup.append('INBOX', raw);
    await setup.logout();

    const client = await connectThrough(proxy);
    const uid = await uidOf(client, marker);
    assert.ok(uid);
    await client.mailboxOpen('INBOX');
    proxy.cutAfter(64 * 1024);
    await withTimeout(
      assert.rejects(client.fetchOne(String(uid), { source: true }, { uid: true })),
      5_000,
      'fetchOne rejecting after the cut',
    );
    assert.equal(client.usable, false);

    const again = await connectThrough(proxy);
    try {
      await again.mailboxOpen('INBOX');
      const message = await again.fetchOne(String(uid), { source: true }, { uid: true });
      assert.ok(message && message.source);
      assert.equal(message.source.length, raw.length, 'the cut was one-shot: the whole mail comes through now');
    } finally {
      await again.logout();
    }
  });

  it('a client whose server is gone is closed at once; close() leaves nothing open', async (t) => {
    const s = mail();
    const proxy = await startTcpProxy(s.imap);
    t.after(() => proxy.close());
    const open = await connectThrough(proxy);
    const openClosed = once(open, 'close');
    await stopDovecot(s);
    try {
      await assert.rejects(connectThrough(proxy), 'refused upstream: the client is cut');
      await withTimeout(openClosed, 2_000, 'the open client closing with its server');
      assert.equal(proxy.connections(), 0);
    } finally {
      await startDovecot(s);
    }
    const client = await connectThrough(proxy);
    const closed = once(client, 'close');
    await proxy.close();
    await withTimeout(closed, 2_000, 'close() cutting the open client');
  });
});

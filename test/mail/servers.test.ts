// The real Dovecot + Postfix that mail tests run against (kit/mail-launcher.ts): mail goes
// alice → Postfix (SMTP AUTH) → Dovecot (LMTP) → bob over IMAP IDLE; wrong passwords and
// outside recipients are refused; instances run side by side and leave nothing behind.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';
import nodemailer from 'nodemailer';
import { ImapFlow, type ExistsEvent } from 'imapflow';
import { simpleParser } from 'mailparser';
import { connectImap, imapOptions, smtpOptions, startTestMailServers, useMailServers, type MailServers } from '../../kit/mail-servers.ts';

const mail = useMailServers();

/** Live (non-zombie) processes whose process group is one of `groups`. */
function liveInGroups(groups: number[]): number[] {
  const live: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state !== 'Z' && groups.includes(Number(pgrp))) live.push(Number(entry));
  }
  return live;
}

/** Live processes that mention `dir` in their command line (Dovecot's master does). */
function liveMentioning(dir: string): number[] {
  const live: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(dir) && !readFileSync(`/proc/${entry}/stat`, 'utf8').includes(') Z '))
        live.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return live.filter((pid) => pid !== process.pid);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describe('real mail servers (Dovecot + Postfix on loopback)', () => {
  it('start: both answer on their own loopback ports, for alice and bob of the test domain', (t) => {
    const s = mail();
    assert.equal(s.imap.host, '127.0.0.1');
    assert.equal(s.smtp.host, '127.0.0.1');
    assert.notEqual(s.imap.port, s.smtp.port);
    assert.equal(s.users.alice.address, 'alice@example.test');
    assert.equal(s.users.bob.address, 'bob@example.test');
    assert.notEqual(s.users.alice.pass, s.users.bob.pass);
    assert.ok(s.dir.length < 40, `socket paths need a short directory: ${s.dir}`);
    const installed = s.installMs > 0 ? `, after installing the Debian packages in ${(s.installMs / 1000).toFixed(1)} s` : '';
    t.diagnostic(
      `mail servers started in ${s.startMs.toFixed(0)} ms${installed} (${s.dir}, IMAP ${s.imap.port}, SMTP ${s.smtp.port}, STARTTLS ${s.tls ? 'yes' : 'no'})`,
    );
  });

  it('alice sends to bob over SMTP with AUTH; bob sees it over IMAP IDLE and reads it', async (t) => {
    const s = mail();
    const bob = await connectImap(s, 'bob');
    try {
      await bob.mailboxOpen('INBOX');
      const before = bob.mailbox === false ? 0 : bob.mailbox.exists;
      const arrived = once(bob, 'exists') as Promise<[ExistsEvent]>;
      void bob.idle();

      const transport = nodemailer.createTransport(smtpOptions(s, 'alice'));
      const subject = `hello ${Date.now()}`;
      const sentAt = performance.now();
      const info = await transport.sendMail({ from: s.users.alice.address, to: s.users.bob.address, subject, text: 'off the record\n' });
      const sentMs = performance.now() - sentAt;
      transport.close();
      assert.deepEqual(info.accepted, [s.users.bob.address]);

      const [event] = await withTimeout(arrived, 5_000, 'IDLE exists notification');
      const endToEnd = performance.now() - sentAt;
      assert.equal(event.count, before + 1);
      t.diagnostic(`one mail: SMTP send ${sentMs.toFixed(0)} ms, seen by IDLE ${endToEnd.toFixed(0)} ms after the send began`);

      const message = await bob.fetchOne(String(event.count), { source: true });
      assert.ok(message && message.source);
      const parsed = await simpleParser(message.source);
      assert.equal(parsed.subject, subject);
      assert.equal(parsed.text, 'off the record\n');
      assert.equal(parsed.from?.value[0]?.address, s.users.alice.address);
    } finally {
      await bob.logout();
    }
  });

  it('mail also flows without STARTTLS (plain AUTH on loopback)', async () => {
    const s = mail();
    const transport = nodemailer.createTransport({ ...smtpOptions(s, 'bob'), requireTLS: false, ignoreTLS: true });
    const info = await transport.sendMail({ from: s.users.bob.address, to: s.users.alice.address, subject: 'plain', text: 'x' });
    transport.close();
    assert.deepEqual(info.accepted, [s.users.alice.address]);
    const alice = await connectImap(s, 'alice', { doSTARTTLS: false });
    try {
      // Delivery is asynchronous (Postfix queue → LMTP): poll briefly.
      for (let i = 0; ; i++) {
        const status = await alice.status('INBOX', { messages: true });
        if (status && (status.messages ?? 0) >= 1) break;
        assert.ok(i < 100, 'mail to alice not delivered within 5 s');
        await new Promise((ok) => setTimeout(ok, 50));
      }
    } finally {
      await alice.logout();
    }
  });

  it('STARTTLS: both servers present the per-run certificate, which clients trust through its PEM', async () => {
    const s = mail();
    assert.ok(s.tls, 'the servers offer STARTTLS (openssl is installed with them)');
    const transport = nodemailer.createTransport(smtpOptions(s, 'alice'));
    assert.equal(await transport.verify(), true);
    transport.close();
    // Without the certificate the upgrade fails verification.
    const untrusting = nodemailer.createTransport({ ...smtpOptions(s, 'alice'), tls: {} });
    await assert.rejects(untrusting.verify(), /self[- ]signed|certificate/i);
    untrusting.close();

    const client = await connectImap(s, 'alice');
    try {
      assert.equal(client.secureConnection, true);
    } finally {
      await client.logout();
    }
  });

  it('a wrong password is refused by SMTP and IMAP', async () => {
    const s = mail();
    const transport = nodemailer.createTransport(smtpOptions(s, 'alice', 'wrong-password'));
    await assert.rejects(
      transport.sendMail({ from: s.users.alice.address, to: s.users.bob.address, subject: 'x', text: 'x' }),
      (error: { code?: string; responseCode?: number }) => {
        assert.equal(error.code, 'EAUTH');
        assert.equal(error.responseCode, 535);
        return true;
      },
    );
    transport.close();

    const client = new ImapFlow(imapOptions(s, 'bob', 'wrong-password'));
    client.on('error', () => undefined);
    await assert.rejects(client.connect(), (error: { authenticationFailed?: boolean; message?: string }) => {
      assert.equal(error.authenticationFailed, true, String(error.message));
      return true;
    });
    client.close();
  });

  it('without AUTH nothing is accepted, and an outside or unknown recipient is refused', async () => {
    const s = mail();
    const anonymous = nodemailer.createTransport({ ...smtpOptions(s, 'alice'), auth: undefined });
    await assert.rejects(
      anonymous.sendMail({ from: 'x@elsewhere.test', to: s.users.bob.address, subject: 'x', text: 'x' }),
      (error: { code?: string; responseCode?: number }) => {
        assert.equal(error.code, 'EENVELOPE');
        assert.ok(error.responseCode !== undefined && error.responseCode >= 500, String(error.responseCode));
        return true;
      },
    );
    anonymous.close();

    const transport = nodemailer.createTransport(smtpOptions(s, 'alice'));
    for (const to of ['someone@example.com', `carol@${s.domain}`]) {
      await assert.rejects(
        transport.sendMail({ from: s.users.alice.address, to, subject: 'x', text: 'x' }),
        (error: { code?: string; responseCode?: number; response?: string }) => {
          assert.equal(error.code, 'EENVELOPE', `${to}: ${error.response}`);
          assert.ok(error.responseCode !== undefined && error.responseCode >= 500, `${to}: ${error.response}`);
          return true;
        },
      );
    }
    transport.close();
  });

  it('two instances run at once on different ports, and stop() leaves no process and no directory', async (t) => {
    const started = performance.now();
    const pair = await Promise.all([startTestMailServers(), startTestMailServers()]);
    const both = performance.now() - started;
    const [a, b] = pair as [MailServers, MailServers];
    try {
      assert.notEqual(a.dir, b.dir);
      const ports = new Set([a.imap.port, a.smtp.port, b.imap.port, b.smtp.port, mail().imap.port, mail().smtp.port]);
      assert.equal(ports.size, 6);
      for (const s of pair) {
        const transport = nodemailer.createTransport(smtpOptions(s, 'alice'));
        await transport.verify();
        transport.close();
      }
      // A password of one instance does not open the other.
      const cross = nodemailer.createTransport({ ...smtpOptions(a, 'alice'), auth: { user: 'alice', pass: b.users.alice.pass } });
      await assert.rejects(cross.verify(), { code: 'EAUTH' });
      cross.close();
    } finally {
      const stopAt = performance.now();
      await Promise.all(pair.map((s) => s.stop()));
      t.diagnostic(
        `two more instances started together in ${both.toFixed(0)} ms, stopped together in ${(performance.now() - stopAt).toFixed(0)} ms`,
      );
    }
    for (const s of pair) {
      assert.equal(existsSync(s.dir), false, `${s.dir} removed`);
      assert.deepEqual(liveInGroups([s.pids.dovecot, s.pids.postfix]), [], "no live process in the masters' groups");
      assert.deepEqual(liveMentioning(s.dir), [], 'no live process names the directory');
    }
    // The instance of this file is untouched.
    assert.ok(liveInGroups([mail().pids.dovecot, mail().pids.postfix]).length > 0);
    await a.stop(); // stopping twice is fine
  });
});

// offrecord account imap-config (cli/imap.ts): a Dovecot started with exactly the printed lines
// serves the plaintext Maildir over IMAP on loopback, so a client that reads only IMAP sees a
// protected message as mutt does (text, attachment, Offrecord-Verified-Sender); a wrong credential
// and another login name are refused. The test runs as root, and Dovecot never gives mail access
// as root: the Maildir is handed to `nobody`, as it would belong to its user.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ImapFlow } from 'imapflow';
import { simpleParser } from 'mailparser';
import { cliHome, homeEnv, ok, runCli, unusedPort } from '../../kit/cli.ts';
import { requireTool } from '../../kit/require-tool.ts';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const NOBODY = 65534;

function imap(port: number, user: string, pass: string): ImapFlow {
  const client = new ImapFlow({
    host: '127.0.0.1',
    port,
    secure: false,
    doSTARTTLS: false,
    auth: { user, pass },
    logger: false,
    connectionTimeout: 5_000,
  });
  client.on('error', () => undefined); // failures still reject connect() and the commands
  return client;
}

function chownTree(path: string, uid: number, gid: number): void {
  chownSync(path, uid, gid);
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.isDirectory()) chownTree(join(path, entry.name), uid, gid);
    else chownSync(join(path, entry.name), uid, gid);
  }
}

/** Starts Dovecot (it daemonizes and keeps its output descriptors: a file, never a pipe we would wait on) and returns its master's pid. */
function startDovecot(dovecot: string, config: string, runDir: string): number {
  const log = `${config}.out`;
  const out = openSync(log, 'w');
  const started = spawnSync(dovecot, ['-c', config], { stdio: ['ignore', out, out], timeout: 10_000 });
  closeSync(out);
  assert.equal(started.status, 0, `dovecot -c ${config} exited with ${started.status}: ${readFileSync(log, 'utf8')}`);
  // The starter exits before the daemonized master has written its pid file.
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return Number.parseInt(readFileSync(join(runDir, 'master.pid'), 'utf8'), 10);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/** Logs in (retrying while Dovecot comes up) and returns the connected client. */
async function login(port: number, user: string, pass: string): Promise<ImapFlow> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = imap(port, user, pass);
    try {
      await client.connect();
      return client;
    } catch (error) {
      if ((error as { code?: string }).code !== 'ECONNREFUSED' || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

describe('offrecord account imap-config', () => {
  const dovecot = requireTool('dovecot', 'dovecot-imapd');
  const home = cliHome('offrecord-imap-');
  let master: number | undefined;
  after(() => {
    // Each Dovecot master leads its own process group.
    if (master !== undefined) process.kill(-master, 'SIGKILL');
  });

  it('a Dovecot started with exactly the printed lines serves a protected message over IMAP; a wrong credential or login is refused', async () => {
    for (const who of [ALICE, BOB]) await ok(home, ['init', '--email', who]);
    // On the shared local spool: Bob's keys reach Alice, her protected mail reaches Bob's Maildir.
    await ok(home, ['--account', BOB, 'send', '--to', ALICE, '--subject', 'keys', '--plaintext'], 'my keys');
    await ok(home, ['--account', ALICE, 'fetch']);
    const attachment = randomBytes(70_000);
    const file = join(home, 'report.bin');
    writeFileSync(file, attachment);
    await ok(home, ['--account', ALICE, 'send', '--to', BOB, '--subject', 'Over IMAP', '--attach', file], 'Read me in Thunderbird.\n');
    assert.match(await ok(home, ['--account', BOB, 'fetch']), /Read me in Thunderbird/);

    // No credential yet: a clear refusal, nothing printed.
    const none = await runCli(['--account', BOB, 'account', 'imap-config'], homeEnv(home));
    assert.equal(none.status, 1, none.stderr);
    assert.match(none.stderr, /no local submission credential yet/);
    const password = /^ {2}password (\S+)$/m.exec(await ok(home, ['--account', BOB, 'account', 'credential']))![1]!;

    // A Maildir owned by root: refused with the reason, as Dovecot would refuse it.
    const refused = await runCli(['--account', BOB, 'account', 'imap-config'], homeEnv(home));
    assert.equal(refused.status, 1, refused.stderr);
    assert.match(refused.stderr, /belongs to root, and Dovecot never gives mail access as root/);

    const maildir = join(home, 'data/offrecord/mail', BOB);
    chownTree(maildir, NOBODY, NOBODY);
    for (let dir = dirname(maildir); dir !== dirname(home); dir = dirname(dir)) chmodSync(dir, 0o755);
    const dir = join(home, 'dovecot');
    const port = await unusedPort();
    const printed = await ok(home, ['--account', BOB, 'account', 'imap-config', '--port', String(port), '--dir', dir]);
    assert.ok(!printed.includes(password), 'the configuration never holds the credential');
    const config = join(home, 'dovecot.conf');
    writeFileSync(config, printed);
    master = startDovecot(dovecot, config, join(dir, 'run'));

    await assert.rejects(login(port, BOB, 'not the credential'), /authentication|AUTHENTICATIONFAILED|Command failed/i);
    await assert.rejects(login(port, ALICE, password), /authentication|AUTHENTICATIONFAILED|Command failed/i, 'another login name');
    const client = await login(port, BOB, password);
    try {
      const lock = await client.getMailboxLock('INBOX');
      try {
        const sources: Buffer[] = [];
        for await (const message of client.fetch('1:*', { source: true })) sources.push(message.source!);
        assert.equal(sources.length, 1);
        const mail = await simpleParser(sources[0]!);
        assert.equal(mail.subject, 'Over IMAP');
        assert.match(mail.text ?? '', /Read me in Thunderbird/);
        assert.equal(mail.attachments.length, 1);
        assert.equal(mail.attachments[0]!.filename, 'report.bin');
        assert.ok(mail.attachments[0]!.content.equals(attachment), 'the attachment, byte for byte');
        assert.match(
          mail.headers.get('offrecord-verified-sender') as string,
          new RegExp(`^${ALICE}; fingerprint=[0-9a-f]{40}; trust=unverified$`),
        );
      } finally {
        lock.release();
      }
    } finally {
      await client.logout();
    }
  });
});

// offrecord serve: SMTP submission on loopback, as a GUI mail client uses it (nodemailer plays
// the client), in front of the real loopback Postfix and Dovecot. AUTH with the local credential
// only; the same semantics as sendmail; a 20 MiB attachment (§19); and
// `watch --serve`, both in one process.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { createTransport } from 'nodemailer';
import { MAX_SUBMISSION_BYTES } from '../../src/daemon/submission-server.ts';
import { addLoopbackAccount, cliHome, homeEnv, ok, spawnCli } from '../../kit/cli.ts';
import { useMailServers } from '../../kit/mail-servers.ts';

const MiB = 1024 * 1024;
// Room for the largest message offrecord carries, sealed and base64-encoded on the outside.
const servers = useMailServers({ postfixSettings: ['message_size_limit = 64000000'] });

/** Starts a long-running CLI command and waits for its JSON log line `event`; returns the child and the line. */
async function startLogging(
  args: string[],
  env: NodeJS.ProcessEnv,
  event: string,
): Promise<{ child: ChildProcess; line: Record<string, unknown>; stderr: () => string }> {
  const child = spawnCli(args, env);
  let stderr = '';
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      for (const text of stderr.split('\n')) {
        if (!text.startsWith('{')) continue;
        const parsed = JSON.parse(text) as Record<string, unknown>;
        if (parsed.event === event) resolve(parsed);
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${stderr}`)));
  });
  return { child, line, stderr: () => stderr };
}

async function stop(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  return exited;
}

describe('offrecord serve: SMTP submission on loopback', () => {
  const aliceHome = cliHome('offrecord-serve-a-');
  const bobHome = cliHome('offrecord-serve-b-');
  let aliceEnv: NodeJS.ProcessEnv;
  let bobEnv: NodeJS.ProcessEnv;
  let password = '';
  let serving: Awaited<ReturnType<typeof startLogging>>;
  let port = 0;
  const client = (pass: string, user?: string) =>
    createTransport({
      host: '127.0.0.1',
      port,
      secure: false,
      ignoreTLS: true,
      auth: { user: user ?? servers().users.alice.address, pass },
      connectionTimeout: 10_000,
      socketTimeout: 300_000,
    });

  /** Bob fetches until a message with `subject` is in his Maildir; returns the file, parsed. */
  async function bobReads(subject: string) {
    const maildir = join(bobHome, 'data/offrecord/mail', servers().users.bob.address, 'new');
    for (let i = 0; i < 40; i++) {
      await ok(bobHome, ['fetch'], '', bobEnv);
      for (const name of (() => {
        try {
          return readdirSync(maildir);
        } catch {
          return [];
        }
      })()) {
        const parsed = await simpleParser(readFileSync(join(maildir, name)));
        if (parsed.subject === subject) return parsed;
      }
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    assert.fail(`Bob never read ${subject}`);
  }

  before(async () => {
    const s = servers();
    aliceEnv = homeEnv(aliceHome, { MAIL_PW: s.users.alice.pass });
    bobEnv = { MAIL_PW: s.users.bob.pass };
    await ok(aliceHome, ['init', '--email', s.users.alice.address]);
    await ok(bobHome, ['init', '--email', s.users.bob.address]);
    await addLoopbackAccount(aliceHome, s, 'alice');
    await addLoopbackAccount(bobHome, s, 'bob');
    // Bob's one consented plaintext mail brings Alice his keys.
    await ok(bobHome, ['send', '--to', s.users.alice.address, '--subject', 'keys', '--plaintext'], 'my keys', bobEnv);
    for (let i = 0; i < 40 && !/learned the offrecord keys/.test(await ok(aliceHome, ['fetch'], '', { MAIL_PW: s.users.alice.pass })); i++)
      await new Promise((r) => setTimeout(r, 300));
    const made = await ok(aliceHome, ['account', 'credential']);
    password = /^ {2}password (\S+)$/m.exec(made)![1]!;
    assert.ok(
      !readFileSync(join(aliceHome, 'config/offrecord', `${s.users.alice.address}.credential.json`), 'utf8').includes(password),
      'only a hash of the credential is kept',
    );
    serving = await startLogging(['serve', '--port', '0'], aliceEnv, 'serve.start');
    port = serving.line.port as number;
  });
  after(async () => {
    if (serving) await stop(serving.child);
  });

  it('a wrong credential, another user, another sender: refused', async () => {
    const s = servers();
    await assert.rejects(
      client('not the credential').verify(),
      (e: { code?: string; responseCode?: number }) => e.code === 'EAUTH' && e.responseCode === 535,
    );
    await assert.rejects(client(password, s.users.bob.address).verify(), (e: { responseCode?: number }) => e.responseCode === 535);
    await assert.rejects(
      client(password).sendMail({ from: s.users.bob.address, to: s.users.alice.address, subject: 'x', text: 'x' }),
      (e: { responseCode?: number; response?: string }) => e.responseCode === 553 && /sends only as alice@/.test(e.response ?? ''),
    );
    assert.ok(!serving.stderr().includes(password), 'the credential never reaches the log');
  });

  it('a recipient without keys is refused with a reason the client shows (550), nothing sent', async () => {
    const s = servers();
    await assert.rejects(
      client(password).sendMail({
        from: s.users.alice.address,
        to: [s.users.bob.address, 'nobody@example.test'],
        subject: 'mixed',
        text: 'x',
      }),
      (e: { responseCode?: number; response?: string }) =>
        e.responseCode === 550 && /no offrecord keys are known for nobody@example.test/.test(e.response ?? ''),
    );
  });

  it('a 20 MiB attachment arrives whole, Bcc in no copy; one over the payload limit (§19) is refused up front (552)', async () => {
    const s = servers();
    const content = randomBytes(20 * MiB);
    const info = await client(password).sendMail({
      from: `Alice <${s.users.alice.address}>`,
      to: s.users.bob.address,
      bcc: s.users.bob.address,
      subject: 'the big file',
      text: 'Here it is.',
      attachments: [{ filename: 'big.bin', content, contentType: 'application/octet-stream' }],
    });
    assert.match(info.response, /^250 .*sent to bob@/);
    const got = await bobReads('the big file');
    assert.equal(got.attachments.length, 1);
    assert.equal(
      createHash('sha256').update(got.attachments[0]!.content).digest('hex'),
      createHash('sha256').update(content).digest('hex'),
    );
    assert.equal(got.bcc, undefined);

    // Base64 with CRLF every 76 characters, as clients encode: 1 MiB more than fits in MAX_SUBMISSION_BYTES.
    const over = Math.ceil((MAX_SUBMISSION_BYTES * 3) / 4 / (78 / 76)) + MiB;
    await assert.rejects(
      client(password).sendMail({
        from: s.users.alice.address,
        to: s.users.bob.address,
        subject: 'too big',
        attachments: [{ filename: 'huge.bin', content: randomBytes(over) }],
      }),
      (e: { responseCode?: number }) => e.responseCode === 552,
    );
  });
});

describe('offrecord watch --serve: reading and submission in one process', () => {
  it('starts the submission server beside the watcher and stops both on SIGTERM', async () => {
    const s = servers();
    const home = cliHome('offrecord-watchserve-');
    await ok(home, ['init', '--email', s.users.alice.address]);
    await addLoopbackAccount(home, s, 'alice');
    const env = homeEnv(home, { MAIL_PW: s.users.alice.pass });
    const missing = spawnCli(['watch', '--serve', '--serve-port', '0'], env);
    const code = await new Promise<number | null>((resolve) => missing.once('exit', resolve));
    assert.equal(code, 1, 'without a credential it says how to make one');
    await ok(home, ['account', 'credential']);
    const both = await startLogging(['watch', '--serve', '--serve-port', '0'], env, 'serve.start');
    try {
      const transport = createTransport({
        host: '127.0.0.1',
        port: both.line.port as number,
        secure: false,
        ignoreTLS: true,
        auth: { user: s.users.alice.address, pass: 'wrong' },
      });
      await assert.rejects(transport.verify(), (e: { responseCode?: number }) => e.responseCode === 535);
      for (let i = 0; i < 200 && !both.stderr().includes('"event":"watch.start"'); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(both.stderr(), /"event":"watch.start"/);
    } finally {
      assert.equal(await stop(both.child), 0);
    }
  });
});

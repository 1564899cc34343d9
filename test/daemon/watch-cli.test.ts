// `offrecord watch` and `offrecord status` as a user runs them, over the real loopback Dovecot
// and Postfix: Bob is a CLI home, Alice a library account writing to him. One conversation is
// bootstrapped for the whole file; each test sends mail with subjects and bodies of its own.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import * as openpgp from 'openpgp';
import { sendMessage } from '../../src/mail/send.ts';
import { openAccountStore, takeLock } from '../../src/store/index.ts';
import { passLockPath } from '../../cli/account-name.ts';
import { scanFiles } from '../store/helpers.ts';
import { byteStrings } from '../store/legacy.ts';
import { cliHome, homeEnv, ok, runCli, spawnCli } from '../../kit/cli.ts';
import { captureOutput, cliBobAndAlice, logEvents, maildirMessages, until } from '../helpers/daemon.ts';
import { useMailServers } from '../../kit/mail-servers.ts';
import type { LoopbackAccount } from '../../kit/loopback-accounts.ts';

const servers = useMailServers();

describe('offrecord watch and status over real IMAP and SMTP', () => {
  const bobHome = cliHome('offrecord-watchcli-');
  const maildir = join(bobHome, 'plaintext');
  const dataDir = join(bobHome, 'data', 'offrecord');
  let alice: LoopbackAccount;
  let bobAddress: string;
  let bobEnv: NodeJS.ProcessEnv;
  /** Every subject and body sent in this file: none may ever show up in a watcher's log. */
  const secrets: string[] = [];

  before(async () => {
    ({ alice, bobAddress, bobEnv } = await cliBobAndAlice(servers(), bobHome));
  });

  /** A mail from Alice with a random subject and body; returns both. */
  const send = async (tag: string) => {
    const mail = { subject: `${tag} subject ${randomBytes(6).toString('hex')}`, text: `${tag} body ${randomBytes(6).toString('hex')}` };
    secrets.push(mail.subject, mail.text);
    await sendMessage(alice, { to: bobAddress, ...mail });
    return mail;
  };
  const delivered = async (text: string) => ((await maildirMessages(maildir)).some((m) => m.includes(text)) ? true : null);
  const watch = (args: string[] = [], env: NodeJS.ProcessEnv = {}) => {
    const child = spawnCli(['watch', '--maildir', maildir, ...args], homeEnv(bobHome, { ...bobEnv, ...env }));
    return { child, io: captureOutput(child) };
  };
  type Watch = ReturnType<typeof watch>;
  const started = (w: Watch) => until('watch.start', () => (logEvents(w.io.stderr()).some((e) => e.event === 'watch.start') ? true : null));
  const status = () => ok(bobHome, ['status'], '', bobEnv);
  const noSecrets = (stderr: string) => {
    for (const secret of secrets) assert.ok(!stderr.includes(secret), `the log shows ${JSON.stringify(secret)}`);
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`${signal} stops a running watcher with exit 0 after logging out`, async () => {
      const w = watch();
      await started(w);
      const mail = await send(signal);
      await until('the delivery', () => delivered(mail.text));
      w.child.kill(signal);
      const end = await w.io.exited;
      assert.deepEqual(end, { code: 0, signal: null }, w.io.stderr());
      const events = logEvents(w.io.stderr());
      assert.ok(
        events.some((e) => e.event === 'watch.signal' && e.signal === signal),
        w.io.stderr(),
      );
      // watch.stop comes after the connection's LOGOUT (the watcher's finally), and is the last word.
      assert.equal(events.at(-1)?.event, 'watch.stop', w.io.stderr());
      assert.ok(events.some((e) => e.event === 'mail.delivered'));
      noSecrets(w.io.stderr());
    });
  }

  it('a second watcher is refused (exit 5); a lock left by a SIGKILLed one is taken over; status follows', async () => {
    const first = watch();
    await started(first);
    const second = await runCli(['watch', '--maildir', maildir], homeEnv(bobHome, bobEnv));
    assert.equal(second.status, 5, second.stderr);
    assert.match(second.stderr, new RegExp(`already being watched by process ${first.child.pid}`));

    first.child.kill('SIGKILL');
    assert.equal((await first.io.exited).signal, 'SIGKILL');
    const locks = (await readdir(dataDir)).filter((name) => name.endsWith('.watch.lock'));
    assert.equal(locks.length, 1, 'SIGKILL leaves the lock behind');
    assert.match(await status(), /not watching/);

    const third = watch();
    await started(third);
    assert.equal((await readFile(join(dataDir, locks[0]!), 'utf8')).trim(), String(third.child.pid), 'the new watcher holds the lock');
    const line = await until('status: idle', async () => {
      const text = await status();
      return text.includes(`watching (pid ${third.child.pid}): idle`) ? text : null;
    });
    assert.match(
      line,
      new RegExp(
        `^${bobAddress.replace(/\./g, '\\.')}  watching \\(pid ${third.child.pid}\\): idle since \\S+; last pass \\S+; delivered \\d+, skipped 0; outbox 0; 1 session\\(s\\)\\n$`,
      ),
    );
    third.child.kill('SIGTERM');
    assert.equal((await third.io.exited).code, 0, third.io.stderr());
    assert.match(await status(), /^\S+ {2}not watching \(last seen \S+\);/);
    assert.deepEqual(
      (await readdir(dataDir)).filter((name) => name.endsWith('.watch.lock')),
      [],
      'a clean stop removes the lock',
    );
    const json = JSON.parse(await ok(bobHome, ['status', '--json'], '', bobEnv)) as {
      watching: boolean;
      pid: number | null;
      outbox: number;
    }[];
    assert.deepEqual(
      json.map((r) => [r.watching, r.pid, r.outbox]),
      [[false, null, 0]],
    );
  });

  it('a copy of the files taken while the watcher runs (passphrase from a credential) holds no secret and no plaintext', async () => {
    // As the shipped unit runs it: the passphrase as a systemd credential, none in the environment.
    const credentials = join(bobHome, 'credentials');
    await mkdir(credentials, { recursive: true, mode: 0o700 });
    await writeFile(join(credentials, 'offrecord-passphrase'), 'correct horse\n', { mode: 0o600 });
    const env = { ...homeEnv(bobHome, { ...bobEnv, CREDENTIALS_DIRECTORY: credentials }) };
    delete env.OFFRECORD_PASSPHRASE;
    const child = spawnCli(['watch', '--maildir', maildir], env);
    const w = { child, io: captureOutput(child) };
    const mails = [];
    let copies: string[] = [];
    try {
      await started(w);
      for (let i = 0; i < 3; i++) {
        const mail = await send('at rest');
        mails.push(mail);
        await until('delivered', () => delivered(mail.text));
      }
      // Two copies of the running watcher's files: one to scan untouched, one to open with the passphrase.
      copies = [cliHome('offrecord-copy-'), cliHome('offrecord-copy-')].map((dir) => join(dir, 'bob.sqlite'));
      const live = join(dataDir, `${bobAddress}.sqlite`);
      for (const suffix of ['', '-wal', '-shm']) {
        const bytes = await readFile(live + suffix).catch(() => null);
        if (bytes) for (const copy of copies) await writeFile(copy + suffix, bytes);
      }
    } finally {
      w.child.kill('SIGTERM');
      await once(w.child, 'exit');
    }
    const [scanned, opened] = copies as [string, string];
    const store = openAccountStore(opened, { passphrase: 'correct horse' });
    const identity = store.identity()!;
    const key = await openpgp.readPrivateKey({ armoredKey: identity.secretKey });
    const subkeySecrets = key.subkeys.map((k) => (k.keyPacket as unknown as { privateParams: { d: Uint8Array } }).privateParams.d);
    const secrets = [
      ...mails.flatMap((m) => [Buffer.from(m.subject), Buffer.from(m.text)]),
      ...store.ownKeys('ring').flatMap((k) => (k.secret ? [k.secret] : [])),
      ...subkeySecrets,
      ...store.sessions(identity.fingerprint).flatMap((s) => byteStrings(store.loadSession(identity.fingerprint, s.peer)!.state)),
    ];
    store.close();
    assert.ok(subkeySecrets.length > 0 && secrets.length > 10, `the scan looks for ${secrets.length} secrets`);
    assert.deepEqual(scanFiles(scanned, secrets), []);
  });

  it('one pass at a time: a watcher waits while a fetch holds the account, then delivers; a fetch waits for a pass', async () => {
    // The test holds the pass lock as an `offrecord fetch` in the middle of its run does.
    const fetching = takeLock(passLockPath(bobAddress, dataDir), 0);
    assert.ok(fetching, 'the pass lock is free');
    const mail = await send('waits');
    const w = watch();
    try {
      await until('watch.waiting', () => (logEvents(w.io.stderr()).some((e) => e.event === 'watch.waiting') ? true : null));
      assert.equal(await delivered(mail.text), null, 'nothing read while the fetch holds the account');
      fetching.release();
      await until('the delivery', () => delivered(mail.text));
      // A fetch now waits for the watcher's passes and finds nothing left to show or to refuse.
      const r = await runCli(['fetch'], homeEnv(bobHome, bobEnv));
      assert.equal(r.status, 0, r.stderr);
      assert.doesNotMatch(r.stdout + r.stderr, /skipped|replay|state_conflict/);
      assert.ok(!logEvents(w.io.stderr()).some((e) => e.event === 'mail.skipped'), w.io.stderr());
    } finally {
      fetching.release();
      w.child.kill('SIGTERM');
      await w.io.exited;
    }
  });

  it('--once delivers what is there and exits by itself', async () => {
    const mail = await send('once');
    // Wait until Dovecot has it: --once looks once.
    await until("the mail in Bob's INBOX", async () => {
      const r = await runCli(['watch', '--once', '--maildir', maildir], homeEnv(bobHome, bobEnv));
      assert.equal(r.status, 0, r.stderr);
      noSecrets(r.stderr);
      return delivered(mail.text);
    });
  });

  it('--exec gets each message on stdin with OFFRECORD_* set and none of our secrets; --json writes one line per message', async () => {
    const outDir = cliHome('offrecord-watchexec-');
    // The command inherits only PATH, HOME, locale and the like (sinks.ts): OUT_DIR is set in the command itself.
    const exec = `OUT_DIR='${outDir}'; env > "$OUT_DIR/$OFFRECORD_DELIVERY_ID.allenv" && cat > "$OUT_DIR/$OFFRECORD_DELIVERY_ID.eml" && printf "%s\\n" "$OFFRECORD_FROM" "$OFFRECORD_FINGERPRINT" "$OFFRECORD_VERIFIED" "$OFFRECORD_TRUST" "$OFFRECORD_VERIFIED_SENDER" > "$OUT_DIR/$OFFRECORD_DELIVERY_ID.env"`;
    const w = watch(['--exec', exec, '--json'], { WATCHER_ONLY: 'not for the command' });
    await started(w);
    const mail = await send('exec');
    const envFile = await until("the command's output", async () => (await readdir(outDir)).find((name) => name.endsWith('.env')) ?? null);
    const id = envFile.slice(0, -'.env'.length);
    const lines = await until('a JSON line', () => {
      const got = w.io
        .stdout()
        .split('\n')
        .filter((l) => l.length > 0);
      return got.length > 0 && w.io.stdout().endsWith('\n') ? got : null;
    });
    w.child.kill('SIGTERM');
    assert.equal((await w.io.exited).code, 0, w.io.stderr());

    const verifiedSender = `${alice.address}; fingerprint=${alice.fingerprint}; trust=unverified`;
    const stdin = await readFile(join(outDir, `${id}.eml`), 'utf8');
    assert.match(stdin, new RegExp(`Subject: ${mail.subject}`));
    assert.ok(stdin.startsWith(`Offrecord-Verified-Sender: ${verifiedSender}\r\n`), 'the message attests its sender');
    assert.ok(stdin.includes(mail.text), 'the message came on stdin');
    const [from, fingerprint, verified, trust, attested] = (await readFile(join(outDir, `${id}.env`), 'utf8')).split('\n');
    assert.deepEqual([from, fingerprint, verified, trust, attested], [alice.address, alice.fingerprint, '0', 'unverified', verifiedSender]);
    const inherited = (await readFile(join(outDir, `${id}.allenv`), 'utf8')).split('\n').map((l) => l.slice(0, l.indexOf('=')));
    for (const secret of ['OFFRECORD_PASSPHRASE', 'MAIL_PW', 'WATCHER_ONLY'])
      assert.ok(!inherited.includes(secret), `${secret} reached the command`);
    assert.ok(inherited.includes('PATH') && inherited.includes('HOME'));

    assert.equal(lines.length, 1, w.io.stdout());
    const line = JSON.parse(lines[0]!) as {
      delivery: string;
      from: string;
      fingerprint: string;
      trust: string;
      verifiedSender: string;
      subject: string;
      text: string;
    };
    assert.deepEqual(
      [line.delivery, line.from, line.fingerprint, line.trust, line.verifiedSender, line.subject, line.text.trim()],
      [id, alice.address, alice.fingerprint, 'unverified', verifiedSender, mail.subject, mail.text],
    );
    noSecrets(w.io.stderr());
  });

  it('a wrong password ends the watcher with exit 6, naming authentication and not the password', async () => {
    const password = `wrong-${randomBytes(6).toString('hex')}`;
    const w = watch([], { MAIL_PW: password });
    // No timing assertion, but a watcher that retried a refused password forever would hang here.
    const timer = setTimeout(() => w.child.kill('SIGKILL'), 60_000);
    const end = await w.io.exited;
    clearTimeout(timer);
    assert.deepEqual(end, { code: 6, signal: null }, w.io.stderr());
    assert.match(w.io.stderr(), /authentication/i);
    assert.ok(!w.io.stderr().includes(password) && !w.io.stdout().includes(password));
    assert.match(await status(), /not watching/);
  });
});

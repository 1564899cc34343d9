// Issue 13, the first hour of a new user, through the CLI as a process: installing `offrecord`
// on PATH as the systemd unit runs it, `--help` on a terminal, and what the mail client sees on
// the real loopback servers.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import { once } from 'node:events';
import { sendMessage } from '../../src/mail/send.ts';
import { addLoopbackAccount, cliHome, homeEnv, loopbackAccountArgs, ok, ROOT, runCli, spawnCli, type Run } from '../../kit/cli.ts';
import { bootstrapCliBob, folderMessages, maildirMessages, until } from '../helpers/daemon.ts';
import { connectImap, useMailServers } from '../../kit/mail-servers.ts';
import { loopbackAccount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';
import { requireTool } from '../../kit/require-tool.ts';

const run = promisify(execFile);

describe('install: offrecord on PATH, as the systemd unit runs it', () => {
  it("npm install -g --ignore-scripts . into a fresh prefix: the unit's command resolves and runs", async () => {
    const prefix = cliHome('offrecord-prefix-');
    const home = cliHome('offrecord-unit-home-');
    // README "Installing": the clone's `npm install` built dist/; this links it onto npm's PATH.
    const installed = await run('npm', ['install', '-g', '--ignore-scripts', '--offline', '--prefix', prefix, '.'], { cwd: ROOT });
    assert.doesNotMatch(installed.stderr, /warn/i, installed.stderr);

    const unit = readFileSync(join(ROOT, 'docs/offrecord-watch@.service'), 'utf8');
    const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1];
    assert.ok(execStart, 'the unit has an ExecStart line');
    const account = 'alice@example.test';
    // systemd's %I is the instance name; the unit's command runs with PATH and nothing else of ours.
    const [program, ...args] = execStart.replaceAll('%I', account).split(/\s+/);
    assert.deepEqual([program, args[0]], ['/usr/bin/env', 'offrecord']);
    const env = {
      PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin`,
      HOME: home,
      XDG_DATA_HOME: join(home, 'data'),
      XDG_CONFIG_HOME: join(home, 'config'),
    };
    const unitCommand = (extra: string[]) => run(program!, [args[0]!, ...extra], { env, cwd: home });

    const version = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
    assert.equal((await unitCommand(['--version'])).stdout.trim(), version);
    assert.match((await unitCommand(['watch', '--help'])).stdout, /--once/);
    // The unit's own command line, once: an account on the local spool, no passphrase.
    await unitCommand(['init', '--email', account]);
    const watched = await unitCommand([...args.slice(1), '--once']);
    assert.match(watched.stderr, /"event":"watch.start"/);
  });
});

describe("--help wraps at word boundaries at the terminal's width", () => {
  /** Every word of these descriptions, however the lines break. */
  const phrases = [
    'alter a mail of a transcript with published keys: why your mail is deniable',
    'keep watching the mailbox (IMAP IDLE): decrypt new mail into your Maildir as it arrives',
    'manage keys: list, export, import, fingerprint, trust, rotate, publish, fetch-published',
  ];
  const cli = ['--import', 'tsx', join(ROOT, 'cli/offrecord.ts'), '--help'];
  const assertWrapped = (text: string, width: number) => {
    for (const line of text.split(/\r?\n/)) assert.ok(line.length <= width, `wider than ${width}: ${JSON.stringify(line)}`);
    const flowing = text.replace(/\s+/g, ' ');
    for (const phrase of phrases) assert.ok(flowing.includes(phrase), `${phrase}\n${text}`);
  };

  it('on a terminal 60 columns wide', () => {
    const script = requireTool('script', 'bsdutils'); // gives the CLI a terminal
    const command = ['stty cols 60 rows 50;', process.execPath, ...cli].map((word) => (word.endsWith(';') ? word : `'${word}'`)).join(' ');
    const shown = spawnSync(script, ['-qec', command, '/dev/null'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(shown.status, 0, shown.stderr);
    assertWrapped(shown.stdout, 60);
  });

  it('into a pipe: 100 columns', async () => {
    assertWrapped((await run(process.execPath, cli, { cwd: ROOT })).stdout, 100);
  });
});

describe('over real IMAP and SMTP: what the user sees', () => {
  const servers = useMailServers();
  let alice: LoopbackAccount;
  const bobHome = cliHome('offrecord-firsthour-'); // here, not in before(): its cleanup belongs to this suite
  let bobEnv: NodeJS.ProcessEnv;
  let bob: string;

  before(async () => {
    const s = servers();
    bob = s.users.bob.address;
    bobEnv = { MAIL_PW: s.users.bob.pass };
    alice = await loopbackAccount(s, 'alice', { root: bobHome });
    await ok(bobHome, ['init', '--email', bob]);
    await addLoopbackAccount(bobHome, s, 'bob');
    await bootstrapCliBob(alice, bobHome, bobEnv, bob);
  });

  /** Mail in Bob's INBOX on the server. */
  async function inbox(): Promise<number> {
    const client = await connectImap(servers(), 'bob');
    try {
      const status = await client.status('INBOX', { messages: true });
      return status ? (status.messages ?? 0) : 0;
    } finally {
      await client.logout().catch(() => undefined);
    }
  }

  /** Alice sends `texts` to Bob, each as a data message; resolves once all are in his INBOX. */
  async function aliceSends(...texts: string[]): Promise<void> {
    const before = await inbox();
    for (const [i, text] of texts.entries()) await sendMessage(alice, { to: bob, subject: `message ${i}`, text });
    await until(`${texts.length} mail(s) in Bob's INBOX`, async () => (await inbox()) >= before + texts.length);
  }

  /** A message longer than any pipe's buffer: showing it waits for its reader. */
  const long = (tag: string) => `${tag}\n${'x'.repeat(99)}\n`.repeat(3000) + `end of ${tag}\n`;
  const plaintextMaildir = () => join(bobHome, 'data/offrecord/mail', bob);

  it('ciphertext moved to OffRecord is \\Seen', async () => {
    const filed = await folderMessages(servers(), 'bob', 'OffRecord');
    assert.ok(filed.length >= 1, 'the first mail was moved to OffRecord');
    for (const { flags } of filed) assert.ok(flags.includes('\\Seen'), `flags ${JSON.stringify(flags)}`);
  });

  it('fetch | head -1: quiet, the usual exit code; the message not shown whole is shown next time', async () => {
    await aliceSends(long('into a pipe'));
    const cli = [process.execPath, '--import', 'tsx', join(ROOT, 'cli/offrecord.ts'), 'fetch'].map((w) => `'${w}'`).join(' ');
    const piped = spawnSync('bash', ['-c', `${cli} | head -1; echo "fetch exit \${PIPESTATUS[0]}" >&2`], {
      cwd: ROOT,
      env: homeEnv(bobHome, bobEnv),
      encoding: 'utf8',
    });
    assert.match(piped.stdout, /^From alice@/);
    assert.equal(piped.stderr, 'fetch exit 0\n', 'no stack trace, no error');
    const again = await ok(bobHome, ['fetch'], '', bobEnv);
    assert.match(again, /end of into a pipe\n[\s\S]*1 message\(s\) read/);
  });

  it('a fetch killed after saving a message: the next one shows it', async () => {
    await aliceSends(long('killed'));
    const fetching = spawnCli(['fetch'], homeEnv(bobHome, bobEnv)); // its output is never read
    const saved = await until("the message in Bob's Maildir", async () =>
      (await maildirMessages(plaintextMaildir())).some((m) => m.includes('end of killed')),
    );
    assert.ok(saved);
    fetching.kill('SIGKILL');
    await once(fetching, 'exit');
    const again = await ok(bobHome, ['fetch'], '', bobEnv);
    assert.match(again, /end of killed\n[\s\S]*1 message\(s\) read/);
    assert.match(await ok(bobHome, ['fetch'], '', bobEnv), /^0 message\(s\) read/m, 'shown once');
  });

  it('two fetches at once: every message shown once, no false problems', async () => {
    const texts = Array.from({ length: 6 }, (_, i) => `at once ${i}`);
    await aliceSends(...texts);
    const runs = await Promise.all([0, 1].map(() => runCli(['fetch'], homeEnv(bobHome, bobEnv))));
    for (const r of runs) {
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr, '');
    }
    const shown = runs.map((r) => r.stdout).join('');
    for (const text of texts) assert.equal(shown.split(`${text}\n`).length - 1, 1, `${text} shown once:\n${shown}`);
    const saved = await maildirMessages(plaintextMaildir());
    for (const text of texts)
      assert.equal(
        saved.filter((m) => m.includes(`${text}\r\n`) || m.endsWith(text) || m.includes(`${text}\n`)).length,
        1,
        `${text} saved once`,
      );
  });

  it('account add logs in to IMAP and SMTP and says what is wrong in words a person can act on; fetch and send say the same', async () => {
    const s = servers();
    const home = cliHome('offrecord-check-');
    await ok(home, ['init', '--email', s.users.alice.address]);
    const ca = join(home, 'ca.pem');
    writeFileSync(ca, s.tls!.cert);
    const closedPort = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    // STARTTLS without --ca-file: the servers' self-signed certificate is not trusted.
    const server = (imapPort = s.imap.port) =>
      loopbackAccountArgs(s, 'alice', ['--password-env', 'MAIL_PW'], { imapPort, security: 'starttls', trusted: false });
    const as = (pass = s.users.alice.pass) => homeEnv(home, { MAIL_PW: pass });
    const add = (args: string[], pass?: string) => runCli(args, as(pass));
    /** Refused with a message naming the trouble, a hint naming the way out, no stack trace. */
    const assertRefused = (r: Run, status: number, message: RegExp, hint: RegExp) => {
      assert.equal(r.status, status, r.stderr);
      assert.match(r.stderr, message);
      assert.match(r.stderr.split('\nhint: ')[1] ?? '', hint, r.stderr);
      assert.doesNotMatch(r.stderr, /^\s+at |internal error/m);
    };

    const [untrusted, wrongPassword, closed, missingCa] = await Promise.all([
      add(server()),
      add([...server(), '--ca-file', ca], 'wrong password'),
      add([...server(closedPort), '--ca-file', ca]),
      add([...server(), '--ca-file', join(home, 'missing.pem')]),
    ]);
    assertRefused(
      untrusted,
      6,
      /^offrecord: (IMAP|SMTP) 127\.0\.0\.1:\d+: the server's TLS certificate is not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\): the settings were not saved$/m,
      /--ca-file CERT\.pem/,
    );
    assertRefused(wrongPassword, 6, /authentication failed for alice/, /password/);
    assertRefused(closed, 6, new RegExp(`IMAP 127\\.0\\.0\\.1:${closedPort} refused the connection`), /check the host and port/);
    assertRefused(missingCa, 2, /cannot read the CA file .*missing\.pem \(ENOENT\)/, /--ca-file must name a readable PEM/);
    assert.match(await ok(home, ['account', 'show']), /local Maildir spool/, 'nothing was saved');

    // Saved unchecked: fetch and send meet the same trouble and say the same.
    await ok(home, [...server(), '--no-check'], '', { MAIL_PW: s.users.alice.pass });
    const [fetched, sent] = await Promise.all([
      runCli(['fetch'], as()),
      runCli(['send', '--to', s.users.bob.address, '--plaintext'], as(), 'hello'),
    ]);
    assertRefused(fetched, 6, /IMAP 127\.0\.0\.1:\d+: the server's TLS certificate is not trusted/, /--ca-file CERT\.pem/);
    assertRefused(sent, 6, /SMTP 127\.0\.0\.1:\d+: the server's TLS certificate is not trusted/, /--ca-file CERT\.pem/);

    // Right: checked and saved. A recipient the server refuses is that, not a settings problem.
    assert.match(
      await ok(home, [...server(), '--ca-file', ca], '', { MAIL_PW: s.users.alice.pass }),
      /checked \(IMAP and SMTP login\) and saved/,
    );
    const refused = await runCli(['send', '--to', 'nobody@example.test', '--plaintext'], as(), 'hello');
    assertRefused(
      refused,
      6,
      /refused the recipient nobody@example\.test: 5\d\d /,
      /check the recipient's address: the server refused it, your account settings are fine/,
    );
  });
});

// Issue 13, the first hour of a new user, through the CLI as a process: installing `offrecord`
// on PATH as the systemd unit runs it, `--help` on a terminal, and what the mail client sees on
// the real loopback servers.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { addLoopbackAccount, cliHome, ok, ROOT } from '../helpers/cli.ts';
import { bootstrapCliBob } from '../helpers/daemon.ts';
import { connectImap, useMailServers } from '../helpers/mail-servers.ts';
import { loopbackAccount } from '../helpers/loopback-accounts.ts';
import { requireTool } from '../helpers/require-tool.ts';

const run = promisify(execFile);

describe('install: offrecord on PATH, as the systemd unit runs it', () => {
  it('npm install -g --ignore-scripts . into a fresh prefix: the unit\'s command resolves and runs', async () => {
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
    const env = { PATH: `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin`, HOME: home, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config') };
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

describe('--help wraps at word boundaries at the terminal\'s width', () => {
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

describe('the mail client\'s view over real IMAP', () => {
  const servers = useMailServers();

  it('ciphertext moved to OffRecord is \\Seen', async () => {
    const s = servers();
    const bobHome = cliHome('offrecord-seen-');
    const alice = await loopbackAccount(s, 'alice', { root: bobHome });
    await ok(bobHome, ['init', '--email', s.users.bob.address]);
    await addLoopbackAccount(bobHome, s, 'bob');
    await bootstrapCliBob(alice, bobHome, { MAIL_PW: s.users.bob.pass }, s.users.bob.address);

    const client = await connectImap(s, 'bob');
    try {
      const lock = await client.getMailboxLock('OffRecord');
      try {
        const flags: string[][] = [];
        for await (const message of client.fetch('1:*', { flags: true })) flags.push([...(message.flags ?? [])]);
        assert.ok(flags.length >= 1, 'the first mail was moved to OffRecord');
        for (const f of flags) assert.ok(f.includes('\\Seen'), `flags ${JSON.stringify(f)}`);
      } finally {
        lock.release();
      }
    } finally {
      await client.logout().catch(() => undefined);
    }
  });
});

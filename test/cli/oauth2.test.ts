// `account add --oauth2-token-command` as a user runs it, over the loopback Dovecot and Postfix
// with an oauth2 passdb and a token provider the test controls: Bob is a CLI home logging in with
// tokens only, Alice a library account with a password.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { sendMessage } from '../../src/mail/send.ts';
import { cliHome, homeEnv, loopbackAccountArgs, ok, runCli, spawnCli } from '../../kit/cli.ts';
import { bootstrapCliBob, captureOutput, logEvents, maildirMessages, until } from '../helpers/daemon.ts';
import { filesBelow, loopbackAccount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';
import type { MailServers } from '../../kit/mail-servers.ts';
import { tokenCommand, useOAuth2MailServers, type TokenCommand } from '../helpers/oauth2.ts';

const oauth = useOAuth2MailServers();

/** Ends `user`'s IMAP sessions, as a provider does when their token expires (Outlook: "BYE Session invalidated - AccessTokenExpired"). */
function kick(s: MailServers, user: string): void {
  const done = spawnSync('/usr/bin/doveadm', ['-c', join(s.dir, 'dovecot.conf'), 'kick', user], { encoding: 'utf8' });
  assert.equal(done.status, 0, `doveadm kick: ${done.stderr}`);
}

describe('offrecord with an OAuth2 token command', () => {
  const bobHome = cliHome('offrecord-oauth2-');
  const maildir = join(bobHome, 'plaintext');
  let alice: LoopbackAccount;
  let bobAddress: string;
  let command: TokenCommand;
  /** Every token handed to offrecord: none may ever be written anywhere by it. */
  const tokens: string[] = [];
  const issue = () => {
    const token = oauth().provider.issue('bob');
    tokens.push(token);
    return token;
  };
  const addAccount = (tokenCommandLine: string) => {
    const s = oauth().servers;
    return ok(bobHome, loopbackAccountArgs(s, 'bob', ['--no-check', '--oauth2-token-command', tokenCommandLine], { security: 'starttls' }));
  };

  before(async () => {
    const s = oauth().servers;
    bobAddress = s.users.bob.address;
    alice = await loopbackAccount(s, 'alice', { root: bobHome });
    command = tokenCommand(cliHome('offrecord-oauth2-command-'));
    command.hand([issue()]);
    await ok(bobHome, ['init', '--email', bobAddress, '--name', 'Bob']);
    await addAccount(command.command);
  });

  it('account add keeps the command, never a token; send and fetch log in with the tokens it prints', async () => {
    const settings = JSON.parse(await readFile(join(bobHome, 'config', 'offrecord', `${bobAddress}.json`), 'utf8')) as Record<
      string,
      unknown
    >;
    assert.deepEqual(settings.oauth2, { command: command.command });
    assert.equal(settings.password, undefined);
    assert.match(await ok(bobHome, ['account', 'show']), new RegExp(`OAuth2 token from command: ${command.command}`));
    const before = command.runs();
    // Bob sends (SMTP, XOAUTH2) and fetches (IMAP, OAUTHBEARER) only with tokens.
    await bootstrapCliBob(alice, bobHome, {}, bobAddress);
    assert.ok(command.runs() > before, 'the command ran for the logins');
    assert.doesNotMatch(command.lastEnvironment(), /OFFRECORD_PASSPHRASE/, 'the token command does not get the passphrase');
  });

  for (const [what, script, why] of [
    ['exits with an error', 'echo "refresh token revoked" >&2; exit 3', /failed: it exited with status 3/],
    ['prints nothing', 'true', /printed nothing/],
    ['prints more than a token', `printf 'ya29.first\\nya29.second\\n'`, /something other than one access token/],
    [
      'prints a control character (a SASL field of its own)',
      `printf 'ya29.x\\001auth=Bearer ya29.y\\n'`,
      /something other than one access token/,
    ],
  ] as const) {
    it(`a token command that ${what}: send and fetch exit 6 saying so, echoing nothing it printed`, async () => {
      try {
        await addAccount(script);
        for (const args of [['fetch'], ['send', '--to', alice.address, '--subject', 'no token']]) {
          const r = await runCli(args, homeEnv(bobHome), 'text\n');
          assert.equal(r.status, 6, `${args[0]}: ${r.stderr}`);
          assert.match(r.stderr, why, r.stderr);
          assert.match(r.stderr, /token command/);
          assert.doesNotMatch(r.stderr, /ya29|revoked/, 'nothing the command printed is shown');
        }
      } finally {
        await addAccount(command.command);
      }
    });
  }

  it('a token expiring during a long watch: the session ends, the token command fails once, the old token is refused once, a fresh one is used; nothing lost, nothing written', async () => {
    const { servers: s, provider } = oauth();
    const execOut = cliHome('offrecord-oauth2-exec-');
    const first = issue();
    command.hand([first]);
    const exec = `env > '${execOut}'/"$OFFRECORD_DELIVERY_ID.env"; cat > '${execOut}'/"$OFFRECORD_DELIVERY_ID.eml"`;
    const child = spawnCli(['watch', '--maildir', maildir, '--exec', exec], homeEnv(bobHome));
    const io = captureOutput(child);
    try {
      await until('watch.start', () => logEvents(io.stderr()).some((e) => e.event === 'watch.start'));
      const send = async (tag: string) => {
        const text = `${tag} ${randomBytes(6).toString('hex')}`;
        await sendMessage(alice, { to: bobAddress, subject: tag, text });
        return text;
      };
      const delivered = async (text: string) => (await maildirMessages(maildir)).filter((m) => m.includes(text)).length === 1;
      const before = await send('before expiry');
      await until('the mail before expiry', () => delivered(before));

      // The token expires at the provider, which ends the session. The command fails once (its
      // refresh needs the network, which is away), then its cache still holds the old token
      // for one more run (its clock a little behind the provider's).
      provider.expire(first);
      const fresh = issue();
      command.hand([75, first, fresh]);
      const refusedBefore = provider.introspected.filter((t) => t === first).length;
      kick(s, s.users.bob.user);
      const after = await send('after expiry');
      await until('the mail after expiry', () => delivered(after));
      assert.ok(provider.introspected.filter((t) => t === first).length > refusedBefore, 'the watcher tried the expired token');
      assert.ok(provider.introspected.includes(fresh), 'and then logged in with the fresh one');
      const more = await send('still watching');
      await until('the next mail', () => delivered(more));
      const events = logEvents(io.stderr());
      assert.ok(!events.some((e) => e.event === 'watch.failed'), io.stderr());
      assert.ok(
        events.some((e) => e.event === 'watch.backoff' && e.error === 'the OAuth2 token command failed: it exited with status 75'),
        'the failed command was waited out like a dropped connection',
      );
    } finally {
      child.kill('SIGTERM');
      assert.equal((await io.exited).code, 0, io.stderr());
    }
    // No token anywhere offrecord writes: its output and logs, the settings, the store (and its
    // WAL), the delivered mail, the --exec command's environment and input.
    const written = [io.stdout(), io.stderr()];
    for (const dir of [join(bobHome, 'config'), join(bobHome, 'data'), maildir, execOut]) {
      for (const file of await filesBelow(dir)) written.push((await readFile(file)).toString('latin1'));
    }
    assert.ok(
      (await readdir(execOut)).some((name) => name.endsWith('.env')),
      'the --exec command ran',
    );
    for (const token of tokens) assert.ok(!written.some((text) => text.includes(token)), `a token was written: ${token}`);
  });
});

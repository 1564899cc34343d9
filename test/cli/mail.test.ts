// offrecord account / send / fetch / sessions as a user runs them: real processes, over the
// embedded Maildir spool and over the real loopback Dovecot and Postfix.
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { addLoopbackAccount, cliHome, homeEnv, ok, runCli } from '../../kit/cli.ts';
import { folderMessages, folderSources, until } from '../helpers/daemon.ts';
import { useMailServers, type MailServers } from '../../kit/mail-servers.ts';

const home = () => cliHome('offrecord-mailcli-');
const cli = (dir: string, args: string[], input = '', extraEnv: NodeJS.ProcessEnv = {}) => runCli(args, homeEnv(dir, extraEnv), input);

const ALICE = ['--account', 'alice@example.test'];
const BOB = ['--account', 'bob@example.test'];

/** Two identities in one home (they share the default spool), or in two homes. */
async function initBoth(aliceHome: string, bobHome: string): Promise<void> {
  await Promise.all([
    ok(aliceHome, ['init', '--email', 'alice@example.test', '--name', 'Alice']),
    ok(bobHome, ['init', '--email', 'bob@example.test', '--name', 'Bob']),
  ]);
}

describe('offrecord send and fetch on the local Maildir spool', () => {
  it('refuses plaintext without consent, then plaintext hello, first mail, reply and data', async () => {
    const dir = home();
    await initBoth(dir, dir);
    const refused = await cli(dir, [...BOB, 'send', '--to', 'alice@example.test', '--subject', 'hi'], 'hello');
    assert.equal(refused.status, 2);
    assert.match(refused.stderr, /refusing to send in plaintext[\s\S]*hint: .*--plaintext/);
    assert.match(await ok(dir, [...BOB, 'send', '--to', 'alice@example.test', '--subject', 'hi', '--plaintext'], 'hello'), /PLAINTEXT/);
    assert.match(await ok(dir, [...ALICE, 'fetch']), /learned the offrecord keys of bob@example.test/);

    const attachment = join(dir, 'notes.txt');
    writeFileSync(attachment, 'the notes');
    assert.match(
      await ok(
        dir,
        [...ALICE, 'send', '--to', 'bob@example.test', '--subject', 'Grüße: Lunch?', '--attach', attachment],
        'Freitag um zwölf?\n',
      ),
      /first message/,
    );
    const read = JSON.parse(await ok(dir, [...BOB, 'fetch', '--json'])) as {
      kind: string;
      subject: string;
      text: string;
      attachments: string[];
      verified: boolean;
    }[];
    assert.equal(read.length, 1);
    assert.deepEqual(
      [read[0]!.subject, read[0]!.text.trim(), read[0]!.attachments, read[0]!.verified],
      ['Grüße: Lunch?', 'Freitag um zwölf?', ['notes.txt'], false],
    );
    assert.equal(readdirSync(join(dir, 'data/offrecord/mail/bob@example.test/new')).length, 1, 'the plaintext lands in a local Maildir');

    assert.match(await ok(dir, [...BOB, 'send', '--to', 'alice@example.test', '--subject', 'Re: Lunch'], 'Ja.\n'), /reply message/);
    assert.match(await ok(dir, [...ALICE, 'fetch']), /Subject: Re: Lunch[\s\S]*Ja\./);
    assert.match(await ok(dir, [...ALICE, 'send', '--to', 'bob@example.test', '--subject', 'ok'], 'Bis dann.\n'), /data message/);
    assert.match(await ok(dir, [...BOB, 'fetch']), /Bis dann\./);
    assert.match(await ok(dir, [...BOB, 'sessions']), /alice@example.test\s+established/);
    assert.match(await ok(dir, [...BOB, 'fetch']), /0 message\(s\) read/);
  });

  it('fetch and keys list neutralise control characters and bidi overrides from the correspondent', async () => {
    const dir = home();
    await Promise.all([
      ok(dir, ['init', '--email', 'alice@example.test', '--name', 'Alice \u202egnp.exe']),
      ok(dir, ['init', '--email', 'bob@example.test', '--name', 'Bob']),
    ]);
    await ok(dir, [...BOB, 'send', '--to', 'alice@example.test', '--subject', 'hi', '--plaintext'], 'hello');
    await ok(dir, [...ALICE, 'fetch']);
    const subject = 'pay now\x1b]0;owned\x07\x1b[2J\u009b31m';
    await ok(dir, [...ALICE, 'send', '--to', 'bob@example.test', '--subject', subject], 'text \x1b[1;31mred\r\x1b[8m hidden \u202e\n');
    const shown = await ok(dir, [...BOB, 'fetch']);
    const listed = await ok(dir, [...BOB, 'keys', 'list']);
    for (const output of [shown, listed]) {
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(output, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/, output);
    }
    assert.ok(shown.includes('Subject: pay now\\x1b]0;owned\\x07\\x1b[2J\\x9b31m\n'), shown);
    assert.ok(shown.includes('text \\x1b[1;31mred\\x0d\\x1b[8m hidden \\u202e'), shown);
    assert.match(shown, /^Offrecord-Verified-Sender: alice@example\.test; fingerprint=[0-9a-f]{40}; trust=unverified$/m);
    assert.ok(listed.includes('(Alice \\u202egnp.exe <alice@example.test>)'), listed);
  });

  it('account add validates its options and never stores a password', async () => {
    const dir = home();
    await ok(dir, ['init', '--email', 'alice@example.test']);
    const addExample = ['account', 'add', '--imap-host', 'imap.example.org', '--smtp-host', 'smtp.example.org', '--user', 'alice'];
    const missing = await cli(dir, addExample);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /password-env/);
    await ok(dir, [...addExample, '--password-env', 'MAIL_PW', '--no-check']);
    const shown = JSON.parse(await ok(dir, ['account', 'show', '--json'])) as {
      settings: { imap: { port: number }; password: { env: string } };
    };
    assert.equal(shown.settings.imap.port, 993);
    assert.deepEqual(shown.settings.password, { env: 'MAIL_PW' });
    // Microsoft 365: IMAP over TLS on 993, SMTP with STARTTLS on 587; a token command, no password.
    await ok(dir, [
      'account',
      'add',
      '--no-check',
      '--imap-host',
      'outlook.office365.com',
      '--smtp-host',
      'smtp.office365.com',
      '--smtp-security',
      'starttls',
      '--user',
      'alice',
      '--oauth2-token-command',
      'oama access alice',
    ]);
    const mixed = JSON.parse(await ok(dir, ['account', 'show', '--json'])) as {
      settings: { imap: object; smtp: object; oauth2: object; password?: object };
    };
    assert.deepEqual(
      [mixed.settings.imap, mixed.settings.smtp],
      [
        { host: 'outlook.office365.com', port: 993, security: 'tls' },
        { host: 'smtp.office365.com', port: 587, security: 'starttls' },
      ],
    );
    assert.deepEqual([mixed.settings.oauth2, mixed.settings.password], [{ command: 'oama access alice' }, undefined]);
    const both = await cli(dir, [...addExample, '--password-env', 'MAIL_PW', '--oauth2-token-command', 'oama access alice']);
    assert.equal(both.status, 1);
    assert.match(both.stderr, /exactly one of --password-env, --password-command and --oauth2-token-command/);
  });

  it('a require-encryption account refuses --plaintext', async () => {
    const dir = home();
    await ok(dir, ['init', '--email', 'alice@example.test']);
    await ok(dir, ['account', 'add', '--policy', 'require-encryption']);
    const refused = await cli(dir, ['send', '--to', 'bob@example.test', '--plaintext'], 'hello');
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /require-encryption/);
  });
});

/** `offrecord fetch` until its output matches `pattern`. */
async function fetchUntilSeen(dir: string, env: NodeJS.ProcessEnv, pattern: RegExp): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const outText = await ok(dir, ['fetch'], '', env);
    if (pattern.test(outText)) return outText;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.fail(`${env.MAIL_PW ?? ''} fetch never showed ${pattern}`);
}

/** Alice and Bob, each in a home of their own with an account on the loopback servers. */
async function loopbackPair(s: MailServers) {
  const [aliceHome, bobHome] = [home(), home()];
  await initBoth(aliceHome, bobHome);
  await Promise.all([addLoopbackAccount(aliceHome, s, 'alice'), addLoopbackAccount(bobHome, s, 'bob')]);
  /** The environment that gives the CLI `who`'s mail password. */
  const as = (who: 'alice' | 'bob') => ({ MAIL_PW: s.users[who].pass });
  return { aliceHome, bobHome, as, aliceAddress: s.users.alice.address, bobAddress: s.users.bob.address };
}

describe('offrecord over real IMAP and SMTP accounts', () => {
  const servers = useMailServers();

  it('account add, plaintext hello, first mail, reply, data; a dropped SMTP server is exit code 6', async () => {
    const s = servers();
    const { aliceHome, bobHome, as, aliceAddress, bobAddress } = await loopbackPair(s);
    const poll = (dir: string, who: 'alice' | 'bob', pattern: RegExp) => fetchUntilSeen(dir, as(who), pattern);
    await ok(bobHome, ['send', '--to', aliceAddress, '--subject', 'hi', '--plaintext'], 'hello', as('bob'));
    await poll(aliceHome, 'alice', /learned the offrecord keys/);
    await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'Geheim'], 'first words\n', as('alice'));
    await poll(bobHome, 'bob', /first words/);
    await ok(bobHome, ['send', '--to', aliceAddress, '--subject', 'Re'], 'reply words\n', as('bob'));
    await poll(aliceHome, 'alice', /reply words/);
    await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'data'], 'data words\n', as('alice'));
    await poll(bobHome, 'bob', /data words/);

    const wrong = await cli(aliceHome, ['send', '--to', bobAddress, '--subject', 'x'], 'x', { MAIL_PW: 'wrong password' });
    assert.equal(wrong.status, 6, wrong.stderr);
    assert.ok(!wrong.stderr.includes('wrong password'));
  });

  it('an impostor of Alice raises the alarm once and never blocks Alice; once rejected, her mail is filed away unread', async () => {
    const s = servers();
    const [aliceHome, bobHome, malloryHome] = [home(), home(), home()];
    await initBoth(aliceHome, bobHome);
    // Mallory makes her own identity for Alice's address and mails through Alice's account (a spoofed From).
    await ok(malloryHome, ['init', '--email', s.users.alice.address, '--name', 'Alice']);
    await Promise.all([
      addLoopbackAccount(aliceHome, s, 'alice'),
      addLoopbackAccount(bobHome, s, 'bob'),
      addLoopbackAccount(malloryHome, s, 'alice'),
    ]);
    const as = (who: 'alice' | 'bob') => ({ MAIL_PW: s.users[who].pass });
    const aliceAddress = s.users.alice.address;
    const bobAddress = s.users.bob.address;
    const inbox = (who: 'alice' | 'bob') => folderSources(s, who, 'INBOX');
    const arrived = (who: 'alice' | 'bob', count: number) =>
      until(`${count} mail(s) in ${who}'s INBOX`, async () => (await inbox(who)).length >= count);
    const fetchAs = (dir: string, who: 'alice' | 'bob') => cli(dir, ['fetch'], '', as(who));
    const fingerprint = async (dir: string) =>
      (JSON.parse(await ok(dir, ['keys', 'fingerprint', '--json'])) as { fingerprint: string }).fingerprint;
    const [aliceFpr, malloryFpr] = [await fingerprint(aliceHome), await fingerprint(malloryHome)];

    // Bob's keys reach Mallory and Alice (a plaintext hello each), and Alice's first mail pins her at Bob.
    for (const [dir, name] of [
      [malloryHome, 'Mallory'],
      [aliceHome, 'Alice'],
    ] as const) {
      await ok(bobHome, ['send', '--to', aliceAddress, '--subject', 'hi', '--plaintext'], 'hello', as('bob'));
      await until(`${name} learned Bob's keys`, async () => /learned the offrecord keys/.test((await fetchAs(dir, 'alice')).stdout));
    }
    await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'first'], 'first words\n', as('alice'));
    await arrived('bob', 1);
    assert.match(await ok(bobHome, ['fetch'], '', as('bob')), /first words/);

    // The impostor's mail first, then Alice's: the alarm (exit 3, both ways out), and Alice's mail is read.
    await ok(malloryHome, ['send', '--to', bobAddress, '--subject', 'new key'], 'it is me, Alice, with a new key\n', as('alice'));
    await arrived('bob', 1);
    await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'second'], 'second words\n', as('alice'));
    await arrived('bob', 2);
    const alarm = await fetchAs(bobHome, 'bob');
    assert.equal(alarm.status, 3, alarm.stderr);
    assert.match(alarm.stdout, /second words/, "Alice's mail is read while the alarm is pending");
    assert.ok(!alarm.stdout.includes('it is me, Alice'));
    assert.ok(alarm.stderr.includes(`offrecord keys trust ${aliceAddress} --fingerprint ${malloryFpr.toUpperCase()}`), 'the way to accept');
    assert.ok(alarm.stderr.includes(`offrecord keys trust ${aliceAddress} --fingerprint ${aliceFpr.toUpperCase()}`), 'the way to reject');

    // Once per key: the next fetch holds the impostor's mail without a second alarm, and Alice's mail flows.
    await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'third'], 'third words\n', as('alice'));
    await arrived('bob', 2);
    const again = await fetchAs(bobHome, 'bob');
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /third words/);
    assert.doesNotMatch(again.stderr, /CHANGED/);
    assert.match(again.stderr, /held mail .* awaits your decision/);
    assert.equal((await inbox('bob')).length, 1, "the impostor's mail waits in the INBOX");

    // Bob rejects the impostor: her mail is filed away unread, now and later, without an alarm.
    assert.match(
      await ok(bobHome, ['keys', 'trust', aliceAddress, '--fingerprint', aliceFpr]),
      /rejected the changed identity .* OffRecord-Rejected/,
    );
    const filed = await fetchAs(bobHome, 'bob');
    assert.equal(filed.status, 0, filed.stderr);
    assert.match(filed.stdout, /filed mail .* into OffRecord-Rejected unread/);
    await ok(malloryHome, ['send', '--to', bobAddress, '--subject', 'again'], 'again me\n', as('alice'));
    await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'fourth'], 'fourth words\n', as('alice'));
    await arrived('bob', 2);
    const later = await fetchAs(bobHome, 'bob');
    assert.equal(later.status, 0, later.stderr);
    assert.match(later.stdout, /fourth words/);
    assert.match(later.stdout, /filed mail .* into OffRecord-Rejected unread/);
    assert.deepEqual(await inbox('bob'), [], 'nothing left in the INBOX');
    const rejected = await folderMessages(s, 'bob', 'OffRecord-Rejected');
    assert.equal(rejected.length, 2, "the impostor's mail is where Bob can still find it");
    for (const { flags } of rejected) assert.ok(!flags.includes('\\Seen'), `filed unread, flags ${JSON.stringify(flags)}`);
    const pinned = JSON.parse(await ok(bobHome, ['keys', 'fingerprint', aliceAddress, '--json'])) as {
      fingerprint: string;
      pending: unknown;
    };
    assert.deepEqual([pinned.fingerprint, pinned.pending], [aliceFpr, null]);
  });
});

describe('keys exchanged out of band are enough to write (KEYS-CLI quick start)', () => {
  const servers = useMailServers();

  it('keys export / keys import both ways, then first mail, reply and data over real IMAP and SMTP', async () => {
    const { aliceHome, bobHome, as, aliceAddress, bobAddress } = await loopbackPair(servers());

    // Alice's file by --output, Bob's from standard output, as KEYS-CLI shows both.
    await ok(aliceHome, ['keys', 'export', '--output', join(aliceHome, 'alice.asc')]);
    const bobExport = await ok(bobHome, ['keys', 'export']);
    assert.match(bobExport, /-----END PGP PUBLIC KEY BLOCK-----\nOffrecord-Keys: v=1;\n ring=/);

    // The certificate alone (what gpg --export gives) pins Bob but is not enough for a first
    // mail, and both the import and the refused send say what to do.
    const certificateOnly = join(aliceHome, 'bob-gpg.asc');
    writeFileSync(certificateOnly, bobExport.slice(0, bobExport.indexOf('Offrecord-Keys:')));
    assert.match(
      await ok(aliceHome, ['keys', 'import', certificateOnly]),
      /1 encryption subkey\(s\), 0 ring key\(s\)[\s\S]*offrecord keys export/,
    );
    const refused = await cli(aliceHome, ['send', '--to', bobAddress, '--subject', 'x'], 'x', as('alice'));
    assert.equal(refused.status, 2, refused.stderr);
    assert.match(refused.stderr, /hint: import the file their `offrecord keys export` wrote/);

    writeFileSync(join(aliceHome, 'bob.asc'), bobExport);
    assert.match(
      await ok(aliceHome, ['keys', 'import', join(aliceHome, 'bob.asc')]),
      /known identity[\s\S]*1 encryption subkey\(s\), 1 ring key\(s\)/,
    );
    assert.match(
      await ok(bobHome, ['keys', 'import', join(aliceHome, 'alice.asc')]),
      /pinned alice@[\s\S]*1 encryption subkey\(s\), 1 ring key\(s\)/,
    );

    assert.match(await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'Geheim'], 'first words\n', as('alice')), /first message/);
    await fetchUntilSeen(bobHome, as('bob'), /first words/);
    assert.match(await ok(bobHome, ['send', '--to', aliceAddress, '--subject', 'Re'], 'reply words\n', as('bob')), /reply message/);
    await fetchUntilSeen(aliceHome, as('alice'), /reply words/);
    assert.match(await ok(aliceHome, ['send', '--to', bobAddress, '--subject', 'data'], 'data words\n', as('alice')), /data message/);
    await fetchUntilSeen(bobHome, as('bob'), /data words/);
  });
});

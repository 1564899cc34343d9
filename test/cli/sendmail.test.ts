// offrecord sendmail as mail clients call it: the command lines of mutt, neomutt, aerc, msmtp-style
// callers and git send-email; Bcc; several recipients; the keyless policy; sysexits codes. Over
// the embedded Maildir spool (all accounts in one home share it), and over the real loopback
// servers for a server that is away or refuses.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { cliHome, homeEnv, loopbackAccountArgs, ok, runCli, unusedPort } from '../../kit/cli.ts';
import { parseSendmailArgs, type SendmailArgs } from '../../cli/sendmail.ts';
import { startFakeSmtp } from '../helpers/fake-smtp.ts';
import { useMailServers } from '../../kit/mail-servers.ts';

const ALICE = 'alice@example.test';
const BOB = 'bob@example.test';
const CAROL = 'carol@example.test';
const DAVE = 'dave@example.test';

const sendmail = (dir: string, args: string[], message: string, env: NodeJS.ProcessEnv = {}) =>
  runCli(['sendmail', ...args], homeEnv(dir, env), message);

function message(headers: Record<string, string>, body = 'Hello from mutt.\n'): string {
  return `${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\n`)
    .join('')}\n${body}`;
}

/** Every mail file in `who`'s spool Maildir (new/ and cur/), raw. */
function spoolFiles(dir: string, who: string): string[] {
  const root = join(dir, 'data/offrecord/spool', who);
  const files: string[] = [];
  for (const sub of ['new', 'cur']) {
    try {
      for (const name of readdirSync(join(root, sub))) files.push(readFileSync(join(root, sub, name), 'latin1'));
    } catch {
      // no such Maildir yet
    }
  }
  return files;
}

/** The plaintext Maildir files `who` has read, parsed, by Subject. */
async function delivered(
  dir: string,
  who: string,
): Promise<Map<string, { raw: string; parsed: Awaited<ReturnType<typeof simpleParser>> }>> {
  const root = join(dir, 'data/offrecord/mail', who, 'new');
  const out = new Map<string, { raw: string; parsed: Awaited<ReturnType<typeof simpleParser>> }>();
  for (const name of readdirSync(root)) {
    const raw = readFileSync(join(root, name), 'utf8');
    const parsed = await simpleParser(raw);
    out.set(parsed.subject ?? '', { raw, parsed });
  }
  return out;
}

describe('offrecord sendmail on the local spool', () => {
  const dir = cliHome('offrecord-sendmail-');
  const as = (who: string) => ['--account', who];

  before(async () => {
    for (const who of [ALICE, BOB, CAROL]) await ok(dir, ['init', '--email', who]);
    // Bob and Carol each bootstrap with one consented plaintext mail; Alice answers with a first mail.
    for (const who of [BOB, CAROL]) await ok(dir, [...as(who), 'send', '--to', ALICE, '--subject', 'keys', '--plaintext'], 'my keys');
    await ok(dir, [...as(ALICE), 'fetch']);
  });

  it('every command line mutt, neomutt, aerc, msmtp-style callers and git send-email use is understood', () => {
    const lines: [string, string[], Partial<SendmailArgs>][] = [
      ['mutt default ($sendmail "/usr/sbin/sendmail -oem -oi")', ['-oem', '-oi', '--', BOB, CAROL], { recipients: [BOB, CAROL] }],
      [
        'mutt with use_envelope_from, use_8bit_mime, dsn_notify, dsn_return',
        ['-oem', '-oi', '-B8BITMIME', '-f', ALICE, '-N', 'failure,delay', '-R', 'hdrs', '--', BOB],
        { envelopeFrom: ALICE, recipients: [BOB] },
      ],
      [
        'neomutt, values attached',
        ['-oem', '-oi', '-B8BITMIME', `-f${ALICE}`, '-Nnever', '--', BOB],
        { envelopeFrom: ALICE, recipients: [BOB] },
      ],
      [
        'mutt with "--" inside $sendmail and more recipients after it',
        ['--account', ALICE, '-oi', '--', BOB, CAROL],
        { account: ALICE, recipients: [BOB, CAROL] },
      ],
      ['aerc (recipients only)', [BOB, CAROL], { recipients: [BOB, CAROL] }],
      ['msmtp -t', ['-oi', '-t'], { readRecipients: true }],
      ['msmtp -ti', ['-ti'], { readRecipients: true }],
      ['msmtp --read-envelope-from --read-recipients', ['--read-envelope-from', '--read-recipients'], { readRecipients: true }],
      ['sendmail -F -f -t', ['-F', 'Alice A.', '-f', ALICE, '-t'], { fullName: 'Alice A.', envelopeFrom: ALICE, readRecipients: true }],
      ['sendmail -r', ['-r', ALICE, BOB], { envelopeFrom: ALICE, recipients: [BOB] }],
      ['git send-email', ['-i', BOB, `Carol <${CAROL}>`], { recipients: [BOB, `Carol <${CAROL}>`] }],
      ['git send-email with sendemail.envelopeSender', ['-f', ALICE, '-i', BOB], { envelopeFrom: ALICE, recipients: [BOB] }],
      [
        'sendmail -odi -om -v -bm -oee -Xlog',
        ['-odi', '-om', '-v', '-bm', '-oee', '-X', '/dev/null', BOB],
        { verbose: true, recipients: [BOB] },
      ],
      ['--account=', [`--account=${ALICE}`, BOB], { account: ALICE, recipients: [BOB] }],
    ];
    for (const [name, argv, expected] of lines) {
      assert.deepEqual(parseSendmailArgs(argv), { readRecipients: false, verbose: false, recipients: [], ...expected }, name);
    }
  });

  it('the message arrives whole as mutt, aerc, msmtp -t and git send-email hand it over', async () => {
    const lines: [string, string[]][] = [
      ['mutt', ['-oem', '-oi', '-B8BITMIME', '-f', ALICE, '-N', 'failure,delay', '--', BOB]],
      ['aerc', [BOB]],
      ['msmtp -t', ['-oi', '-t']],
      ['git send-email', ['-i', `Bob <${BOB}>`]],
    ];
    for (const [name, args] of lines) {
      const mail = message(
        {
          From: `Alice <${ALICE}>`,
          To: `Bob <${BOB}>`,
          Subject: `via ${name}`,
          'Message-ID': `<${name.replace(/\W+/g, '.')}@example.test>`,
        },
        `Body of ${name}.\n.\nafter a lone dot\n`,
      );
      const r = await sendmail(dir, args, mail);
      assert.equal(r.status, 0, `${name}: ${r.stderr}`);
    }
    await ok(dir, [...as(BOB), 'fetch']);
    const got = await delivered(dir, BOB);
    for (const [name] of lines) {
      const one = got.get(`via ${name}`);
      assert.ok(one, `${name} arrived`);
      assert.equal(one.parsed.text, `Body of ${name}.\n.\nafter a lone dot\n`, `${name}: the body, a lone dot included`);
      assert.equal(one.parsed.messageId, `<${name.replace(/\W+/g, '.')}@example.test>`);
    }
  });

  it('-t takes recipients from To, Cc and Bcc; Bcc leaves in no copy; each recipient gets its own protected copy with To and Cc intact', async () => {
    const mail = message(
      {
        From: ALICE,
        To: `Bob <${BOB}>`,
        Cc: CAROL,
        Bcc: BOB,
        Subject: 'to both, Bob blind too',
        'In-Reply-To': '<parent@example.test>',
        References: '<root@example.test> <parent@example.test>',
      },
      'For both of you.\n',
    );
    const before = { bob: spoolFiles(dir, BOB).length, carol: spoolFiles(dir, CAROL).length };
    const r = await sendmail(dir, ['-oi', '-t'], mail);
    assert.equal(r.status, 0, r.stderr);
    const outer = { bob: spoolFiles(dir, BOB).slice(before.bob), carol: spoolFiles(dir, CAROL).slice(before.carol) };
    assert.equal(outer.bob.length, 1, 'one copy for Bob, named twice');
    assert.equal(outer.carol.length, 1);
    for (const [who, [raw]] of Object.entries(outer)) {
      assert.ok(!/^bcc:/im.test(raw!), `${who}'s outer mail has no Bcc`);
      assert.ok(!raw!.includes('to both'), `${who}'s outer mail shows no subject`);
      assert.match(raw!, new RegExp(`^To: ${who}@example.test`, 'm'), 'the outer mail names only its own recipient');
      assert.ok(!raw!.includes('parent@example.test'), 'threading travels inside only');
    }
    for (const who of [BOB, CAROL]) {
      await ok(dir, [...as(who), 'fetch']);
      const one = (await delivered(dir, who)).get('to both, Bob blind too');
      assert.ok(one, `${who} read it`);
      assert.ok(!/^bcc:/im.test(one.raw), `${who}'s copy has no Bcc`);
      assert.match(one.raw, new RegExp(`^To: Bob <${BOB}>$`, 'm'), 'To as the client wrote it');
      assert.match(one.raw, new RegExp(`^Cc: ${CAROL}$`, 'm'), 'Cc as the client wrote it');
      assert.equal(one.parsed.inReplyTo, '<parent@example.test>');
    }
    // Two conversations: Alice now has a session with each.
    assert.match(await ok(dir, [...as(ALICE), 'sessions']), new RegExp(`${BOB}[\\s\\S]*${CAROL}|${CAROL}[\\s\\S]*${BOB}`));
  });

  it('a recipient without keys: refused by default (exit 67, nothing sent to anyone); with --keyless plaintext one plaintext mail carrying keys', async () => {
    const mail = message({ From: ALICE, To: `${BOB}, ${DAVE}`, Bcc: CAROL, Subject: 'mixed' });
    const counts = () => [BOB, CAROL, DAVE].map((who) => spoolFiles(dir, who).length);
    const before = counts();
    const refused = await sendmail(dir, ['-oi', '-t'], mail);
    assert.equal(refused.status, 67, refused.stderr);
    assert.match(refused.stderr, /no offrecord keys are known for dave@example.test: nothing was sent to anyone/);
    assert.match(refused.stderr, /hint: .*--keyless plaintext/);
    assert.deepEqual(counts(), before, 'nothing sent to anyone');

    await ok(dir, [...as(ALICE), 'account', 'add', '--keyless', 'plaintext']);
    const sent = await sendmail(dir, ['-oi', '-t'], mail);
    assert.equal(sent.status, 0, sent.stderr);
    const [bob, carol, dave] = counts().map((n, i) => n - before[i]!);
    assert.deepEqual([bob, carol, dave], [1, 1, 1]);
    const plain = spoolFiles(dir, DAVE).at(-1)!;
    assert.match(plain, /^Autocrypt: addr=alice@example.test/m, 'the plaintext mail carries our keys');
    assert.match(plain, /^Offrecord-Keys: /m);
    assert.match(plain, /^Subject: mixed/m);
    assert.ok(!/^bcc:/im.test(plain), 'no Bcc in the plaintext mail either');
    await ok(dir, [...as(ALICE), 'account', 'add']);
  });

  it('sysexits codes: usage 64, bad message 65, foreign sender 65, no recipient 64, wrong passphrase 78', async () => {
    const good = message({ From: ALICE, To: BOB, Subject: 'x' });
    const cases: [string, string[], string, number, RegExp, NodeJS.ProcessEnv?][] = [
      ['queue run', ['-q'], good, 64, /-q \(queue runs\) is not supported/],
      ['SMTP on stdio', ['-bs'], good, 64, /-bs is not supported/],
      ['unknown option', ['--frobnicate'], good, 64, /unknown option --frobnicate/],
      ['no header', [BOB], 'just some text without a header\n', 65, /not a header field/],
      ['two From fields', [BOB], `From: ${ALICE}\n${good}`, 65, /more than one from header field/],
      [
        'someone else',
        [BOB],
        message({ From: 'mallory@example.test', To: BOB, Subject: 'x' }),
        65,
        /from mallory@example.test, not from the account/,
      ],
      ['envelope sender of someone else', ['-f', 'mallory@example.test', BOB], good, 65, /envelope sender/],
      ['no recipient', [], good, 64, /no recipient given/],
      ['-t without any', ['-t'], message({ From: ALICE, Subject: 'x' }), 64, /headers name no recipient/],
      ['a recipient that is no address', ['not an address'], good, 65, /is not a plain email address/],
      ['wrong passphrase', [BOB], good, 78, /passphrase/i, { OFFRECORD_PASSPHRASE: 'wrong' }],
    ];
    const before = spoolFiles(dir, BOB).length;
    for (const [name, args, input, status, stderr, env] of cases) {
      const r = await sendmail(dir, ['--account', ALICE, ...args], input, env);
      assert.equal(r.status, status, `${name}: ${r.stderr}`);
      assert.match(r.stderr, stderr, name);
      assert.match(r.stderr, /^offrecord: /, `${name}: one clear line`);
    }
    assert.equal(spoolFiles(dir, BOB).length, before, 'nothing was sent');
  });
});

describe('offrecord sendmail when the server is away or refuses', () => {
  const servers = useMailServers();

  it('server away: 75; 5xx on the data: 69; wrong password: 69; nothing marked sent, and it goes out later', async () => {
    const s = servers();
    const dir = cliHome('offrecord-sendmail-srv-');
    await ok(dir, ['init', '--email', s.users.alice.address]);
    const env = { MAIL_PW: s.users.alice.pass };
    // The keyless policy lets the mail go out (in plaintext) without a session: the server's answer is what is tested.
    const withSmtp = (port: number, security: 'plain' | 'starttls') =>
      ok(
        dir,
        loopbackAccountArgs(s, 'alice', ['--no-check', '--password-env', 'MAIL_PW', '--keyless', 'plaintext'], {
          smtpPort: port,
          security,
        }),
      );
    const mail = message({ From: s.users.alice.address, To: s.users.bob.address, Subject: 'hello over SMTP' });

    await withSmtp(await unusedPort(), 'plain');
    const away = await sendmail(dir, ['-oi', s.users.bob.address], mail, env);
    assert.equal(away.status, 75, away.stderr);
    assert.match(away.stderr, /not sent to bob@/);

    const fake = await startFakeSmtp('reject-data');
    try {
      await withSmtp(fake.port, 'plain');
      const refused = await sendmail(dir, ['-oi', s.users.bob.address], mail, env);
      assert.equal(refused.status, 69, refused.stderr);
      assert.match(refused.stderr, /554/);
    } finally {
      await fake.close();
    }

    await withSmtp(s.smtp.port, s.tls ? 'starttls' : 'plain');
    const badPassword = await sendmail(dir, ['-oi', s.users.bob.address], mail, { MAIL_PW: 'not the password' });
    assert.equal(badPassword.status, 69, badPassword.stderr);
    assert.ok(!badPassword.stderr.includes('not the password'));

    const sent = await sendmail(dir, ['-oi', s.users.bob.address], mail, env);
    assert.equal(sent.status, 0, sent.stderr);
  });
});

// End to end over the real loopback Dovecot and Postfix (issue 4): Alice and Bob, each with a
// Keyring and an AccountStore of their own, talking through SmtpTransport and ImapMailbox
// (STARTTLS, trusting the run's certificate). Bootstrap by one plaintext mail with consent,
// first mail, reply, then 20 mails each way interleaved with several in flight; then what
// Dovecot stored, and what a mail client without offrecord makes of an offrecord mail.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { EXPLANATION, MARKER_HEADER, PAYLOAD_CONTENT_TYPE, PAYLOAD_FILENAME } from '../../src/mail/mime.ts';
import { fetchMessages, type FetchReport } from '../../src/mail/receive.ts';
import { sendMessage, type Draft } from '../../src/mail/send.ts';
import { requireTool } from '../../kit/require-tool.ts';
import { Terminal } from '../helpers/terminal.ts';
import { useMailServers } from '../../kit/mail-servers.ts';
import { dovecotMaildir, filesBelow, loopbackAccount, pending, waitForCount, type LoopbackAccount } from '../../kit/loopback-accounts.ts';

const servers = useMailServers();
const root = await mkdtemp(join(tmpdir(), 'offrecord-e2e-'));
after(() => rm(root, { recursive: true, force: true }));

const MiB = 1024 * 1024;
const BOOTSTRAP_SUBJECT = 'bootstrap, in plaintext by consent';
const BOOTSTRAP_TEXT = 'This one mail is plaintext: it carries my offrecord keys.';

interface Expected {
  from: LoopbackAccount;
  to: LoopbackAccount;
  draft: Draft;
}

/** Every mail sent through the encrypted path, by its (unique) subject. */
const sent = new Map<string, Expected>();
const received = new Map<string, number>();

function checkDelivered(reports: FetchReport[], recipient: LoopbackAccount): number {
  let count = 0;
  for (const report of reports) {
    assert.notEqual(report.kind, 'skipped', `${recipient.address} skipped a mail: ${JSON.stringify(report)}`);
    if (report.kind !== 'message') continue;
    const { message } = report;
    const expected = sent.get(message.subject);
    assert.ok(expected, `unexpected subject at ${recipient.address}: ${JSON.stringify(message.subject)}`);
    assert.equal(expected.to, recipient, `${message.subject} reached the wrong account`);
    assert.equal(received.get(message.subject), undefined, `${message.subject} delivered twice`);
    received.set(message.subject, 1);
    count++;
    assert.equal(report.from, expected.from.address);
    assert.equal(report.fingerprint, expected.from.fingerprint);
    assert.equal(message.from, expected.from.address);
    assert.equal(message.to, recipient.address);
    const { draft } = expected;
    assert.equal(message.text?.replace(/\n$/, ''), draft.text, `text of ${draft.subject}`);
    if (draft.html !== undefined) assert.equal(message.html?.replace(/\n$/, ''), draft.html, `html of ${draft.subject}`);
    else assert.equal(message.html, undefined);
    const want = draft.attachments ?? [];
    assert.equal(message.attachments.length, want.length, `attachments of ${draft.subject}`);
    want.forEach((a, i) => {
      const got = message.attachments[i]!;
      assert.equal(got.filename, a.filename);
      assert.equal(got.contentType, a.contentType);
      assert.ok(Buffer.from(got.content).equals(Buffer.from(a.content)), `attachment ${a.filename} of ${draft.subject} differs`);
    });
  }
  return count;
}

async function send(
  from: LoopbackAccount,
  to: LoopbackAccount,
  draft: Omit<Draft, 'to'>,
  type: 'first' | 'reply' | 'data' = 'data',
): Promise<void> {
  const full: Draft = { ...draft, to: to.address };
  assert.ok(!sent.has(full.subject), 'subjects are unique');
  sent.set(full.subject, { from, to, draft: full });
  assert.deepEqual(await sendMessage(from, full), { kind: 'encrypted', type });
}

/** Fetches until `count` more messages have arrived for `account` (10 s at most). */
async function drain(account: LoopbackAccount, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  let got = 0;
  while (got < count) {
    assert.ok(Date.now() < deadline, `${account.address}: only ${got} of ${count} mails arrived within 10 s`);
    await waitForCount(() => pending(account), 1, Math.max(0, deadline - Date.now()));
    got += checkDelivered(await fetchMessages(account), account);
  }
  assert.equal(got, count, `${account.address} got more mail than was sent`);
}

describe('end to end over the real loopback Dovecot and Postfix', () => {
  let alice: LoopbackAccount;
  let bob: LoopbackAccount;
  const attachment = { filename: 'random.bin', contentType: 'application/octet-stream', content: new Uint8Array(randomBytes(MiB)) };
  const nonAscii = {
    subject: 'Grüße aus Köln — 東京で会いましょう ✓ №7',
    text: 'Schöne Grüße, Zoë! Ελληνικά, русский, 日本語, עברית, 🙂🚲 — ça marche.',
  };
  const html = '<p>Hello <b>Alice</b> &amp; <i>friends</i> — <a href="https://example.test/">ünïcödé</a></p>';

  before(async () => {
    const s = servers();
    alice = await loopbackAccount(s, 'alice', { root });
    bob = await loopbackAccount(s, 'bob', { root });
  });

  it('bootstrap: Bob sends one plaintext mail with consent; Alice learns his keys from it', async () => {
    assert.deepEqual(
      await sendMessage(bob, { to: alice.address, subject: BOOTSTRAP_SUBJECT, text: BOOTSTRAP_TEXT }, { allowPlaintext: true }),
      { kind: 'plaintext' },
    );
    await waitForCount(() => pending(alice), 1);
    const reports = await fetchMessages(alice);
    assert.deepEqual(
      reports.map((r) => (r.kind === 'ordinary' ? r.advertises : r.kind)),
      [bob.address],
    );
    assert.equal((await alice.keyring.fingerprint(bob.address)).fingerprint, bob.fingerprint, 'Alice pinned Bob');
    assert.deepEqual(await pending(alice), [], 'the ordinary mail is not listed again');
  });

  it("Alice's first mail, Bob's reply: the session is up", async () => {
    await send(alice, bob, { subject: 'first: lunch on Friday?', text: 'Shall we have lunch on Friday? — A.' }, 'first');
    await drain(bob, 1);
    assert.equal((await bob.keyring.fingerprint(alice.address)).fingerprint, alice.fingerprint, 'Bob pinned Alice');
    await send(bob, alice, { subject: 'reply: Friday works', text: 'Friday works for me. — B.' }, 'reply');
    await drain(alice, 1);
    assert.equal((await alice.store.load(alice.fingerprint, bob.fingerprint))?.state.kind, 'established');
    assert.equal((await bob.store.load(bob.fingerprint, alice.fingerprint))?.state.kind, 'responding');
  });

  it("upgrade: Alice's first data message establishes Bob's side too", async () => {
    await send(alice, bob, { subject: 'upgrade: see you then', text: 'Great, see you then.' });
    await drain(bob, 1);
    assert.equal((await bob.store.load(bob.fingerprint, alice.fingerprint))?.state.kind, 'established');
  });

  it('20 mails each way, interleaved with several in flight; each arrives intact exactly once', async () => {
    // [Alice sends, Bob sends] before either side fetches: crossing mails, several at a time.
    const rounds: [number, number][] = [
      [3, 2],
      [1, 1],
      [2, 0],
      [0, 3],
      [1, 1],
      [4, 2],
      [1, 3],
      [2, 2],
      [3, 1],
      [1, 2],
      [2, 3],
    ];
    assert.deepEqual(
      rounds.reduce(([a, b], [x, y]) => [a + x, b + y], [0, 0]),
      [20, 20],
    );
    let a = 0;
    let b = 0;
    for (const [fromAlice, fromBob] of rounds) {
      for (let i = 0; i < fromAlice; i++, a++) {
        const draft: Omit<Draft, 'to'> = {
          subject: `alice→bob #${a}`,
          text: `Alice to Bob, message ${a}, secret word ${randomBytes(6).toString('hex')}`,
        };
        if (a === 4) draft.attachments = [attachment];
        if (a === 11) Object.assign(draft, { subject: nonAscii.subject, text: nonAscii.text });
        await send(alice, bob, draft);
      }
      for (let i = 0; i < fromBob; i++, b++) {
        const draft: Omit<Draft, 'to'> = {
          subject: `bob→alice #${b}`,
          text: `Bob to Alice, message ${b}, secret word ${randomBytes(6).toString('hex')}`,
        };
        if (b === 7) draft.html = html;
        await send(bob, alice, draft);
      }
      await drain(bob, fromAlice);
      await drain(alice, fromBob);
    }
    assert.equal(received.size, sent.size, 'everything sent arrived');
    // A second pass finds nothing new on either side.
    assert.deepEqual(await fetchMessages(alice), []);
    assert.deepEqual(await fetchMessages(bob), []);
  });

  it("Dovecot's stored copies hold none of the plaintext bodies or real subjects", async () => {
    const s = servers();
    const secrets: string[] = [];
    for (const { draft } of sent.values()) {
      secrets.push(draft.subject, ...(draft.text ? [draft.text] : []), ...(draft.html ? [draft.html] : []));
    }
    // The attachment's first base64 line, as the inner MIME would carry it in clear.
    secrets.push(Buffer.from(attachment.content.subarray(0, 57)).toString('base64'));
    for (const who of ['alice', 'bob'] as const) {
      const maildir = dovecotMaildir(s, who);
      const files = await filesBelow(maildir);
      let offrecordMails = 0;
      let processed = 0;
      let ordinary = 0;
      let bootstrapSeen = false;
      for (const file of files) {
        const bytes = await readFile(file);
        bootstrapSeen ||= bytes.toString('utf8').includes(BOOTSTRAP_TEXT);
        for (const view of [bytes.toString('utf8'), bytes.toString('latin1')]) {
          for (const secret of secrets) assert.ok(!view.includes(secret), `${JSON.stringify(secret.slice(0, 40))} is stored in ${file}`);
        }
        if (!/(^|[/\\])(cur|new|tmp)[/\\][^/\\]+$/.test(file.slice(maildir.length))) continue; // indexes, caches, uidlists
        const parsed = await simpleParser(bytes);
        const subjects = parsed.headerLines.filter((h) => h.key === 'subject').map((h) => h.line);
        if (parsed.headers.has(MARKER_HEADER.toLowerCase())) {
          offrecordMails++;
          if (file.includes(`${sep}.OffRecord${sep}`)) processed++;
          assert.deepEqual(subjects, ['Subject: ...'], `${file} shows a real subject`);
        } else {
          ordinary++;
          assert.equal(who, 'alice', `an ordinary mail in ${who}'s storage: ${file}`);
          assert.equal(parsed.subject, BOOTSTRAP_SUBJECT, 'the only ordinary mail is the consented plaintext bootstrap');
        }
      }
      // 20 data mails, plus the reply (Alice) or the first mail and the upgrade (Bob), all filed in OffRecord.
      const expected = who === 'alice' ? 21 : 22;
      assert.equal(offrecordMails, expected, `${who}: offrecord mails stored`);
      assert.equal(processed, expected, `${who}: mails in the OffRecord folder`);
      assert.equal(ordinary, who === 'alice' ? 1 : 0);
      // The scan does see plaintext where there is some: the consented bootstrap mail.
      assert.equal(bootstrapSeen, who === 'alice', `${who}: the plaintext bootstrap found by the scan`);
    }
  });

  it('a mail client without offrecord (mailparser) shows the explanation and one attachment, not an empty mail', async () => {
    const s = servers();
    const folder = join(dovecotMaildir(s, 'bob'), '.OffRecord');
    // IMAP MOVE files the mail under new/ (unseen) or cur/: either will do.
    const [file] = (await filesBelow(folder)).filter((f) => /[/\\](cur|new)[/\\][^/\\]+$/.test(f)).sort();
    assert.ok(file, 'a stored offrecord mail');
    const parsed = await simpleParser(await readFile(file));
    assert.equal(parsed.subject, '...');
    assert.equal(parsed.from?.value[0]?.address, alice.address);
    assert.equal(parsed.text?.replace(/\n$/, ''), EXPLANATION.replace(/\r\n/g, '\n'));
    assert.ok(parsed.text?.includes('This is an off-the-record message'));
    assert.equal(parsed.attachments.length, 1);
    assert.equal(parsed.attachments[0]!.filename, PAYLOAD_FILENAME);
    assert.equal(parsed.attachments[0]!.contentType, PAYLOAD_CONTENT_TYPE);
    assert.ok(parsed.attachments[0]!.size > 0);
  });

  it('mutt shows the explanation and the attachment', async () => {
    const mutt = requireTool('mutt', 'mutt');
    const folder = join(dovecotMaildir(servers(), 'bob'), '.OffRecord');
    const muttrc = join(root, 'muttrc');
    // $folder must exist, or mutt first asks whether to create ~/Mail.
    await writeFile(muttrc, `set folder=${root}\nset sort=date\nset pager_stop=yes\nset wait_key=no\n`);
    const terminal = Terminal.start([mutt, '-n', '-R', '-F', muttrc, '-f', folder], { env: { ...process.env, HOME: root } });
    try {
      await terminal.waitFor('Msgs:');
      await terminal.keys('Enter');
      await terminal.waitFor('This is an off-the-record message');
      await terminal.keys('v');
      await terminal.waitFor(PAYLOAD_FILENAME);
      await terminal.keys('q', 'q', 'q');
      await terminal.waitForExit();
    } finally {
      terminal.close();
    }
  });
});

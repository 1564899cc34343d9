// Bad input over the real loopback Dovecot and Postfix: every mail the pipeline cannot or must
// not process stays on the server exactly as it was (still listed, the same bytes), the session
// state is exactly as before, and the FetchReport says 'skipped' with a code and a reason. Then
// the sending side: an SMTP server that drops or refuses the mail, or is not there at all.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import MailComposer from 'nodemailer/lib/mail-composer';
import {
  MARKER_HEADER,
  PAYLOAD_CONTENT_TYPE,
  PAYLOAD_FILENAME,
  OUTER_SUBJECT,
  EXPLANATION,
  MAX_MAIL_BYTES,
  parseProtected,
} from '../../src/mail/mime.ts';
import type { MailAccount } from '../../src/mail/account.ts';
import { PipelineError } from '../../src/mail/errors.ts';
import { fetchMessages, type FetchReport } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { SmtpTransport } from '../../src/mail/servers.ts';
import type { Envelope, OutgoingTransport } from '../../src/mail/transport.ts';
import { decodeSealed } from '../../src/protocol/wire.ts';
import { DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import { useMailServers, type MailServers } from '../../kit/mail-servers.ts';
import {
  appendMail,
  deleteMail,
  loopbackAccount,
  pending,
  readRaw,
  waitForCount,
  type LoopbackAccount,
} from '../../kit/loopback-accounts.ts';
import { closedPort, startFakeSmtp, type FakeSmtpMode } from '../helpers/fake-smtp.ts';

const servers = useMailServers();
const root = await mkdtemp(join(tmpdir(), 'offrecord-bad-input-'));
after(() => rm(root, { recursive: true, force: true }));

const HOUR = 3_600_000;

/** Records every raw mail handed to the wrapped transport (the exact bytes the pipeline composed). */
function recording(inner: OutgoingTransport): OutgoingTransport & { sent: { raw: Uint8Array; envelope: Envelope }[] } {
  const sent: { raw: Uint8Array; envelope: Envelope }[] = [];
  return {
    sent,
    async send(raw, envelope) {
      sent.push({ raw: Uint8Array.from(raw), envelope });
      await inner.send(raw, envelope);
    },
  };
}

const latin1 = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
const fromLatin1 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'latin1'));
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** The same mail with its attached protocol message replaced (base64, 76-character lines), all else byte for byte. */
function withProtocol(raw: Uint8Array, protocol: Uint8Array): Uint8Array {
  const text = latin1(raw);
  const pattern = /(Content-Type: application\/vnd\.offrecord[^]*?\r\n\r\n)([A-Za-z0-9+/=\r\n]+?)(\r\n--)/;
  assert.match(text, pattern, 'the composed mail has the protocol attachment in base64');
  const base64 = Buffer.from(protocol).toString('base64').replace(/.{76}/g, '$&\r\n').replace(/\r\n$/, '');
  return fromLatin1(text.replace(pattern, (_m, head: string, _old: string, tail: string) => `${head}${base64}${tail}`));
}

describe('bad input over the real loopback Dovecot and Postfix', () => {
  let s: MailServers;
  let alice: LoopbackAccount;
  let bob: LoopbackAccount;
  /** Alice's transport, recording: gives the exact raw mails she sent. */
  let aliceSent: ReturnType<typeof recording>;
  let subjects = 0;
  /** Bob's injected clock runs this far ahead (MailAccount.clock and his Keyring's clock). */
  let bobSkew = 0;

  before(async () => {
    s = servers();
    alice = await loopbackAccount(s, 'alice', { root });
    bob = await loopbackAccount(s, 'bob', { root, clock: () => Date.now() + bobSkew });
    aliceSent = recording(alice.outgoing);
    alice.outgoing = aliceSent;
    // Bootstrap: plaintext with keys (consented), first mail, reply, upgrade.
    await sendMessage(bob, { to: alice.address, subject: 'keys', text: 'my keys' }, { allowPlaintext: true });
    await waitForCount(() => pending(alice), 1);
    await fetchMessages(alice);
    await exchange(alice, bob);
    await exchange(bob, alice);
    await exchange(alice, bob);
    assert.equal((await snapshot(alice, bob))?.state.kind, 'established');
    assert.equal((await snapshot(bob, alice))?.state.kind, 'established');
  });

  const snapshot = (me: LoopbackAccount, peer: LoopbackAccount) => me.store.load(me.fingerprint, peer.fingerprint);

  /** A mail from `from` that `to` fetches and reads; returns the report. */
  async function exchange(from: LoopbackAccount, to: LoopbackAccount): Promise<FetchReport & { kind: 'message' }> {
    const subject = `exchange ${++subjects}`;
    await sendMessage(from, { to: to.address, subject, text: `text of ${subject}` });
    await waitForCount(() => pending(to), 1);
    const reports = await fetchMessages(to);
    assert.equal(reports.length, 1, JSON.stringify(reports));
    const [report] = reports;
    assert.ok(report?.kind === 'message' && report.message.subject === subject, JSON.stringify(report));
    return report;
  }

  /** A real data message from Alice to Bob, taken off Bob's INBOX before he sees it: the raw mail Alice composed. */
  async function intercepted(): Promise<{ raw: Uint8Array; protocol: Uint8Array; subject: string }> {
    assert.deepEqual(await pending(bob), [], "Bob's INBOX is empty");
    const subject = `intercepted ${++subjects}`;
    const before = aliceSent.sent.length;
    assert.deepEqual(await sendMessage(alice, { to: bob.address, subject, text: `text of ${subject}` }), {
      kind: 'encrypted',
      type: 'data',
    });
    const raw = aliceSent.sent[before]!.raw;
    const ids = await waitForCount(() => pending(bob), 1);
    assert.equal(ids.length, 1);
    await deleteMail(s, 'bob', ids);
    const mail = await parseProtected(raw);
    assert.ok(mail);
    return { raw, protocol: mail.protocol, subject };
  }

  /** Delivers `raw` to Bob through Postfix, as Alice. */
  async function deliverToBob(raw: Uint8Array): Promise<void> {
    await alice.outgoing.send(raw, { from: alice.address, to: [bob.address] });
  }

  /**
   * The core check: `deliver` puts one bad mail into `who`'s INBOX; a fetch skips it with
   * `code` and a reason matching `reason`; the mail is still listed with the same bytes and the
   * session with `peer` is unchanged. The mail is deleted afterwards.
   */
  async function expectUntouched(
    who: LoopbackAccount,
    peer: LoopbackAccount,
    deliver: () => Promise<void>,
    expected: {
      code: string | string[];
      reason: RegExp;
      around?: (fetch: () => Promise<FetchReport[]>) => Promise<FetchReport[]>;
      /** A mail over the size limit is never downloaded (§18.9), not even here: only its listing is compared. */
      oversized?: boolean;
    },
  ): Promise<Extract<FetchReport, { kind: 'skipped' }>> {
    const name = who === alice ? 'alice' : 'bob';
    assert.deepEqual(await pending(who), [], `${name}'s INBOX starts empty`);
    const state = await snapshot(who, peer);
    assert.ok(state, 'a session exists');
    await deliver();
    try {
      const ids = await waitForCount(() => pending(who), 1);
      assert.equal(ids.length, 1, 'the bad mail arrived');
      const id = ids[0]!;
      const digest = expected.oversized ? null : sha256(await readRaw(who, id));

      const fetch = () => fetchMessages(who);
      const reports = await (expected.around ? expected.around(fetch) : fetch());
      assert.equal(reports.length, 1, JSON.stringify(reports));
      const report = reports[0]!;
      assert.ok(report.kind === 'skipped', JSON.stringify(report));
      assert.equal(report.id, id);
      assert.ok(
        (Array.isArray(expected.code) ? expected.code : [expected.code]).includes(report.code),
        `code ${report.code}: ${report.reason}`,
      );
      assert.match(report.reason, expected.reason);

      assert.deepEqual(await pending(who), [id], 'still listed');
      if (digest !== null) assert.equal(sha256(await readRaw(who, id)), digest, 'the same bytes');
      assert.deepEqual(await snapshot(who, peer), state, 'session state unchanged');
      return report;
    } finally {
      // Whatever happened, the next case starts with an empty INBOX.
      await deleteMail(s, name, await pending(who));
    }
  }

  it('malformed MIME: the marker header but no attachment', async () => {
    const raw = new Uint8Array(
      await new MailComposer({
        from: alice.address,
        to: bob.address,
        subject: OUTER_SUBJECT,
        text: EXPLANATION,
        headers: { [MARKER_HEADER]: 'v=1; type=data' },
      })
        .compile()
        .build(),
    );
    await expectUntouched(bob, alice, () => deliverToBob(raw), {
      code: 'malformed',
      reason: /expected one application\/vnd\.offrecord attachment, found 0/,
    });
  });

  it('a truncated payload, a corrupted payload (one bit flipped), an unknown protocol version; then the genuine mail is read', async () => {
    const { raw, protocol, subject } = await intercepted();
    const truncated = protocol.subarray(0, Math.floor(protocol.length / 2));
    await expectUntouched(bob, alice, () => deliverToBob(withProtocol(raw, truncated)), { code: 'malformed', reason: /./ });

    // Inside the ciphertext: 4 prefix + 2×4 key ids + 32 next share + 8 counter + 4 length = 56.
    const flipped = Uint8Array.from(protocol);
    assert.ok(flipped.length > 60);
    flipped[60]! ^= 0x10;
    const corrupted = withProtocol(raw, flipped);
    assert.ok((await parseProtected(corrupted)) !== null, 're-encoded as a valid offrecord mail');
    await expectUntouched(bob, alice, () => deliverToBob(corrupted), { code: 'auth', reason: /authentication failed/ });

    const v2 = Uint8Array.from(protocol);
    v2[2] = 2;
    // docs/PROTOCOL.md §14: left untouched, no NAK, and the user is told.
    await expectUntouched(bob, alice, () => deliverToBob(withProtocol(raw, v2)), {
      code: 'unsupported_version',
      reason: /version 2 is not supported/,
    });

    // The untouched original still reads: nothing above disturbed the session.
    await deliverToBob(raw);
    await waitForCount(() => pending(bob), 1);
    const reports = await fetchMessages(bob);
    assert.equal(reports.length, 1);
    assert.ok(reports[0]?.kind === 'message' && reports[0].message.subject === subject, JSON.stringify(reports));
  });

  it('a mail addressed to someone else', async () => {
    const { raw } = await intercepted();
    const text = latin1(raw);
    assert.ok(text.includes(`\r\nTo: ${bob.address}\r\n`));
    const elsewhere = fromLatin1(text.replace(`\r\nTo: ${bob.address}\r\n`, `\r\nTo: carol@${s.domain}\r\n`));
    // Envelope to Bob, header To: Carol (as a Bcc would arrive): the payload is genuine and for Bob.
    await expectUntouched(bob, alice, () => deliverToBob(elsewhere), { code: 'address', reason: /addressed to carol@/ });
  });

  it("a sender whose identity changed: a third key claims Alice's address with its own Autocrypt header", async () => {
    const mallory = await loopbackAccount(s, 'alice', { root, file: 'mallory.sqlite' });
    assert.equal(mallory.address, alice.address);
    assert.notEqual(mallory.fingerprint, alice.fingerprint);
    await mallory.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic(), { expectedAddress: bob.address });
    await mallory.keyring.correspondents.learnRingKeys(bob.address, bob.keyring.own.ringAdverts());
    const report = await expectUntouched(
      bob,
      alice,
      async () => {
        assert.deepEqual(await sendMessage(mallory, { to: bob.address, subject: 'it is me, Alice', text: 'new key, same Alice' }), {
          kind: 'encrypted',
          type: 'first',
        });
      },
      { code: 'identity_changed', reason: /identity key of alice@.* has changed/ },
    );
    assert.ok(report.alarm && report.alarm.length > 0, 'an alarm text for the user');
    assert.equal(await bob.store.load(bob.fingerprint, mallory.fingerprint), null, 'nothing decrypted, no session with the third key');
    const pinned = await bob.keyring.fingerprint(alice.address);
    assert.equal(pinned.fingerprint, alice.fingerprint, 'Alice stays pinned');
    assert.equal(pinned.pending, mallory.fingerprint, 'the new key awaits the user');
    // The user keeps the pinned key; Alice's mail flows again.
    await bob.keyring.correspondents.trust(alice.address, alice.fingerprint);
    await exchange(alice, bob);
  });

  it('a replayed mail: the same raw message delivered twice is read once, the copy filed away unread', async () => {
    const { raw, subject } = await intercepted();
    await deliverToBob(raw);
    await waitForCount(() => pending(bob), 1);
    const first = await fetchMessages(bob);
    assert.ok(first.length === 1 && first[0]?.kind === 'message' && first[0].message.subject === subject, JSON.stringify(first));
    const state = await snapshot(bob, alice);
    await deliverToBob(raw);
    await waitForCount(() => pending(bob), 1);
    const again = await fetchMessages(bob);
    assert.deepEqual(
      again.map((r) => r.kind),
      ['refiled'],
      JSON.stringify(again),
    );
    assert.deepEqual(await pending(bob), [], 'the copy is filed away, not reported on every pass');
    assert.deepEqual(await snapshot(bob, alice), state, 'session state unchanged');
    assert.deepEqual(await fetchMessages(bob), [], 'and not read again');
  });

  it('a mail under keys already forgotten (the injected clock past the grace period)', async () => {
    const { raw, protocol } = await intercepted();
    const { message } = decodeSealed(protocol);
    // Two round trips move both sides to new keys: the intercepted mail's pair is retired at Bob.
    for (let i = 0; i < 2; i++) {
      await exchange(bob, alice);
      await exchange(alice, bob);
    }
    const keys = (await snapshot(bob, alice))!.state;
    assert.ok(keys.kind === 'established');
    assert.ok(
      keys.keys.ours.retired.some((r) => r.key.id === message.recipientKeyId),
      'Bob retired the key the mail was sent to',
    );

    // Bob's injected clock (MailAccount.clock, which the pipeline hands to the engine, and his
    // Keyring's) moves past the grace period: the retired keys are forgotten on loading.
    await expectUntouched(bob, alice, () => deliverToBob(raw), {
      code: 'expired',
      reason: /^the keys of this message were forgotten/,
      around: async (fetch) => {
        bobSkew = DEFAULT_POLICY.graceMs + HOUR;
        try {
          return await fetch();
        } finally {
          bobSkew = 0;
        }
      },
    });
    // With the clock back, the very same mail is still readable: the failed fetch saved nothing.
    await deliverToBob(raw);
    await waitForCount(() => pending(bob), 1);
    const [report] = await fetchMessages(bob);
    assert.equal(report?.kind, 'message', JSON.stringify(report));
  });

  it('a 50 MiB mail (IMAP APPEND: Postfix refuses anything over its 10 MB message_size_limit)', async () => {
    const size = 50 * 1024 * 1024;
    assert.ok(size > MAX_MAIL_BYTES);
    const head = [
      `From: ${alice.address}`,
      `To: ${bob.address}`,
      `Subject: ${OUTER_SUBJECT}`,
      `Date: ${new Date().toUTCString()}`,
      `Message-ID: <huge-${Date.now()}@example.test>`,
      `${MARKER_HEADER}: v=1; type=data`,
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="b"',
      '',
      '--b',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'This is an off-the-record message sent with offrecord.',
      '--b',
      `Content-Type: ${PAYLOAD_CONTENT_TYPE}; name=${PAYLOAD_FILENAME}`,
      'Content-Transfer-Encoding: base64',
      `Content-Disposition: attachment; filename=${PAYLOAD_FILENAME}`,
      '',
      '',
    ].join('\r\n');
    const tail = '--b--\r\n';
    const line = `${'T1IBA'.padEnd(76, 'A')}\r\n`;
    const lines = Math.ceil((size - head.length - tail.length) / line.length);
    const raw = fromLatin1(head + line.repeat(lines) + tail);
    assert.ok(raw.length >= size);
    await expectUntouched(bob, alice, () => appendMail(s, 'bob', raw), {
      code: 'too_large',
      reason: /over the .*-byte limit/,
      oversized: true,
    });
  });
});

describe('SMTP refusing or dropping the connection mid-send', () => {
  let s: MailServers;
  let alice: LoopbackAccount;
  let bob: LoopbackAccount;

  before(async () => {
    s = servers();
    const dir = await mkdtemp(join(root, 'smtp-'));
    alice = await loopbackAccount(s, 'alice', { root: dir });
    bob = await loopbackAccount(s, 'bob', { root: dir });
    await deleteMail(s, 'alice', await pending(alice));
    await deleteMail(s, 'bob', await pending(bob));
    await sendMessage(bob, { to: alice.address, subject: 'keys', text: 'my keys' }, { allowPlaintext: true });
    await waitForCount(() => pending(alice), 1);
    await fetchMessages(alice);
    for (const [from, to] of [
      [alice, bob],
      [bob, alice],
      [alice, bob],
    ] as const) {
      await sendMessage(from, { to: to.address, subject: 'setup', text: 'setup' });
      await waitForCount(() => pending(to), 1);
      const [report] = await fetchMessages(to);
      assert.equal(report?.kind, 'message', JSON.stringify(report));
    }
  });

  function counterOf(state: Awaited<ReturnType<LoopbackAccount['store']['load']>>): number {
    assert.ok(state?.state.kind === 'established');
    return Object.values(state.state.keys.sendCounters).reduce((a, b) => a + b, 0);
  }

  it('sendMessage rejects with PipelineError transport; the counter stays used, and the retry over the real server is read', async () => {
    const captured: Uint8Array[] = [];
    const attempts: { mode: FakeSmtpMode | 'nothing listening'; port: number; close: () => Promise<void>; messages: string[] }[] = [];
    for (const mode of ['drop-after-greeting', 'drop-after-data', 'reject-data'] as const) {
      const fake = await startFakeSmtp(mode);
      attempts.push({ mode, port: fake.port, close: fake.close, messages: fake.messages });
    }
    attempts.push({ mode: 'nothing listening', port: await closedPort(), close: async () => undefined, messages: [] });
    try {
      const draft = { to: bob.address, subject: 'retry me', text: 'sent after the failures' };
      for (const attempt of attempts) {
        const before = counterOf(await alice.store.load(alice.fingerprint, bob.fingerprint));
        const failing: MailAccount = {
          ...alice,
          outgoing: new SmtpTransport({
            host: '127.0.0.1',
            port: attempt.port,
            security: 'plain',
            user: 'alice',
            password: () => 'irrelevant',
          }),
        };
        await assert.rejects(sendMessage(failing, draft), (e: unknown) => {
          assert.ok(e instanceof PipelineError, `${attempt.mode}: ${String(e)}`);
          assert.equal(e.code, 'transport', attempt.mode);
          assert.match(
            e.message,
            attempt.mode === 'nothing listening'
              ? /SMTP 127\.0\.0\.1:\d+ refused the connection: nothing listens on that port/
              : /SMTP 127\.0\.0\.1:\d+ refused or dropped the mail/,
          );
          return true;
        });
        assert.equal(
          counterOf(await alice.store.load(alice.fingerprint, bob.fingerprint)),
          before + 1,
          `${attempt.mode}: the counter was used`,
        );
        if (attempt.mode === 'drop-after-data' || attempt.mode === 'reject-data') {
          assert.equal(attempt.messages.length, 1, `${attempt.mode}: the server got the data`);
          const mail = await parseProtected(fromLatin1(attempt.messages[0]!));
          assert.ok(mail);
          captured.push(mail.protocol);
        } else {
          assert.equal(attempt.messages.length, 0);
        }
      }
      // The retry over the real server: a new counter, and Bob reads it.
      assert.deepEqual(await sendMessage(alice, draft), { kind: 'encrypted', type: 'data' });
      const ids = await waitForCount(() => pending(bob), 1);
      assert.equal(ids.length, 1, 'only the retry reached Bob');
      const retried = await parseProtected(await readRaw(bob, ids[0]!));
      assert.ok(retried);
      const counters = [...captured, retried.protocol].map((p) => decodeSealed(p).message);
      const pairs = new Set(counters.map((m) => `${m.senderKeyId}:${m.recipientKeyId}`));
      assert.equal(pairs.size, 1, 'all under one key pair');
      const values = counters.map((m) => m.counter);
      assert.equal(new Set(values).size, values.length, `no counter reused: ${values.join(', ')}`);
      assert.ok(values[values.length - 1]! > Math.max(...values.slice(0, -1)), 'the retry has the newest counter');
      const [report] = await fetchMessages(bob);
      assert.ok(
        report?.kind === 'message' && report.message.subject === 'retry me' && report.message.text?.trim() === draft.text,
        JSON.stringify(report),
      );
    } finally {
      for (const attempt of attempts) await attempt.close();
    }
  });
});

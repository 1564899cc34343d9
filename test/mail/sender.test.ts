// The client sees the authenticated sender (docs/PROTOCOL.md §18.6, step 7): a pinned
// correspondent who writes someone else's From inside, and a forged Offrecord-Verified-Sender,
// is delivered under her own address with exactly one, true verified-sender header.
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { autocryptHeaderFor, formatOffrecordKeysHeader, SUPPORTED_PROTOCOL_VERSIONS } from '../../src/keys/headers.ts';
import { MaildirDelivery, MaildirSpool } from '../../src/mail/maildir.ts';
import { composeProtected } from '../../src/mail/mime.ts';
import type { MailAccount } from '../../src/mail/account.ts';
import { fetchMessages } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { attestSender, formatVerifiedSender, parseVerifiedSender, VERIFIED_SENDER_HEADER } from '../../src/mail/sender.ts';
import { Conversation } from '../../src/protocol/context.ts';
import { spoolAccount } from '../../kit/spool.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-sender-'));
after(() => rm(root, { recursive: true, force: true }));

const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
const text = (b: Uint8Array) => Buffer.from(b).toString('utf8');
/** The header section of a message, unfolded, one field a line. */
const headerLines = (raw: string) =>
  raw
    .slice(0, raw.search(/\r?\n\r?\n/))
    .replace(/\r?\n[ \t]+/g, ' ')
    .split(/\r?\n/);

/** A first mail from `from` to `to` whose inner entity is `inner`, exactly as written. */
async function sendRawInner(from: MailAccount, to: MailAccount, spool: MaildirSpool, inner: Uint8Array): Promise<void> {
  const peer = await from.keyring.correspondents.correspondent(to.address);
  const conversation = new Conversation({
    store: from.store,
    parties: { local: from.keyring.own.localParty(), peer: peer.party },
    peerEncryptionKey: peer.encryptionKey,
    sealer: await from.keyring.own.sealer(from.privateKey),
  });
  const result = await conversation.send(inner);
  assert.equal(result.kind, 'encrypted');
  if (result.kind !== 'encrypted') return;
  const raw = await composeProtected({
    from: from.address,
    to: to.address,
    protocol: result.message,
    autocrypt: await autocryptHeaderFor(from.privateKey, from.address, Date.now()),
    offrecordKeys: formatOffrecordKeysHeader({ versions: [...SUPPORTED_PROTOCOL_VERSIONS], ring: from.keyring.own.ringAdverts() }),
  });
  await spool.deliver(to.address, raw);
}

describe('the authenticated sender in the delivered message', async () => {
  const spool = new MaildirSpool(join(root, 'spool'));
  const alice = await spoolAccount(root, spool, 'alice@example.test');
  const mallory = await spoolAccount(root, spool, 'mallory@example.test');
  const bobBox = join(root, 'bob-plaintext');
  const bob = { ...(await spoolAccount(root, spool, 'bob@example.test')), delivery: new MaildirDelivery(bobBox) };
  const aliceFpr = (await alice.keyring.own.identity()).fingerprint;
  const malloryFpr = (await mallory.keyring.own.identity()).fingerprint;

  it('Mallory, a pinned correspondent, writes From: Alice and a forged header: Bob sees Mallory, once and truly', async () => {
    // Bob and Mallory know each other's keys (plaintext hellos): Mallory is pinned at Bob on first use.
    await sendMessage(mallory, { to: bob.address, subject: 'hi', text: 'hello' }, { allowPlaintext: true });
    await fetchMessages(bob);
    await sendMessage(bob, { to: mallory.address, subject: 'hi', text: 'hello' }, { allowPlaintext: true });
    await fetchMessages(mallory);

    const forged = formatVerifiedSender({ address: alice.address, fingerprint: aliceFpr, trust: 'verified' });
    const inner = [
      'From: Alice <alice@example.test>',
      'Sender: alice@example.test',
      'Reply-To: "Alice" <payments@evil.test>',
      `${VERIFIED_SENDER_HEADER}: ${forged}`,
      `OFFRECORD-VERIFIED-SENDER : ${forged}`,
      'offrecord-verified-sender:',
      ` ${forged}`,
      `X-Offrecord-Verified-Sender: ${forged}`,
      `Offrecord-Original-From: mallory-is-innocent@example.test`,
      'To: bob@example.test',
      'Subject: URGENT: new bank details',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Please pay the invoice to IBAN XX00 0000 from now on. Alice',
      '',
    ].join('\r\n');
    await sendRawInner(mallory, bob, spool, bytes(inner));
    const reports = await fetchMessages(bob);
    const [report] = reports;
    assert.ok(report?.kind === 'message', JSON.stringify(reports));

    const files = await readdir(join(bobBox, 'new'));
    assert.equal(files.length, 1);
    const delivered = await readFile(join(bobBox, 'new', files[0]!), 'utf8');
    const lines = headerLines(delivered);
    const claims = lines.filter((l) => /verified.?sender/i.test(l));
    const truth = formatVerifiedSender({ address: mallory.address, fingerprint: malloryFpr, trust: 'unverified' });
    assert.deepEqual(claims, [`${VERIFIED_SENDER_HEADER}: ${truth}`], 'exactly one, true verified-sender header');
    const parsed = await simpleParser(Buffer.from(delivered));
    assert.deepEqual(
      parsed.from?.value.map((v) => v.address),
      [mallory.address],
      "delivered under Mallory's address",
    );
    assert.equal(parsed.headers.get('sender'), undefined);
    assert.equal(parsed.replyTo, undefined);
    assert.deepEqual(
      lines.filter((l) => /^offrecord-original-/i.test(l)),
      [
        'Offrecord-Original-From: Alice <alice@example.test>',
        'Offrecord-Original-Sender: alice@example.test',
        'Offrecord-Original-Reply-To: "Alice" <payments@evil.test>',
      ],
      "the claims kept visible under our names, the sender's own Offrecord-Original-From dropped",
    );
    assert.equal(parsed.subject, 'URGENT: new bank details');
    assert.ok(delivered.endsWith('\r\n\r\nPlease pay the invoice to IBAN XX00 0000 from now on. Alice\r\n'), 'the body as written');

    // fetch's report says the same.
    assert.deepEqual(report.sender, { address: mallory.address, fingerprint: malloryFpr, trust: 'unverified' });
    assert.deepEqual(report.renamed, ['From', 'Sender', 'Reply-To']);
    assert.equal(report.message.from, mallory.address);
  });

  it('a genuine message keeps its From and display name, and gains the header', async () => {
    await sendMessage(alice, { to: bob.address, subject: 'hi', text: 'hello' }, { allowPlaintext: true });
    await fetchMessages(bob);
    await bob.keyring.correspondents.trust(alice.address, aliceFpr);
    await sendMessage(bob, { to: alice.address, subject: 'hi', text: 'hello' }, { allowPlaintext: true });
    await fetchMessages(alice);
    await sendRawInner(
      alice,
      bob,
      spool,
      bytes('From: "Alice Liddell" <Alice@Example.test>\r\nTo: bob@example.test\r\nSubject: lunch\r\n\r\nFriday?\r\n'),
    );
    const [report] = await fetchMessages(bob);
    assert.ok(report?.kind === 'message');
    assert.deepEqual(report.renamed, []);
    assert.equal(
      text(report.raw),
      `${VERIFIED_SENDER_HEADER}: alice@example.test; fingerprint=${aliceFpr}; trust=verified\r\nFrom: "Alice Liddell" <Alice@Example.test>\r\nTo: bob@example.test\r\nSubject: lunch\r\n\r\nFriday?\r\n`,
    );
  });
});

describe('attestSender', () => {
  const sender = { address: 'mallory@example.test', fingerprint: 'ab'.repeat(20), trust: 'unverified' as const };
  const value = formatVerifiedSender(sender);

  it('rebuilds the header: bare LF, a header-only message, a message starting with an empty line', async () => {
    assert.equal(
      text((await attestSender(bytes('From: mallory@example.test\nSubject: x\n\nbody\n'), sender)).message),
      `${VERIFIED_SENDER_HEADER}: ${value}\r\nFrom: mallory@example.test\r\nSubject: x\r\n\r\nbody\n`,
    );
    assert.equal(
      text((await attestSender(bytes('Subject: x'), sender)).message),
      `${VERIFIED_SENDER_HEADER}: ${value}\r\nFrom: mallory@example.test\r\nSubject: x\r\n\r\n`,
    );
    assert.equal(
      text((await attestSender(bytes('\r\nFrom: alice@example.test\r\n'), sender)).message),
      `${VERIFIED_SENDER_HEADER}: ${value}\r\nFrom: mallory@example.test\r\n\r\nFrom: alice@example.test\r\n`,
    );
  });

  it('renames a From that poses: two From fields, an address as display name, a group, another address', async () => {
    for (const from of [
      'From: mallory@example.test\r\nFrom: alice@example.test',
      'From: "alice@example.test" <mallory@example.test>',
      'From: friends: mallory@example.test;',
      'From: mallory@example.test, alice@example.test',
      'From: =?utf-8?q?alice=40example.test?= <mallory@example.test>',
      'From: "Alice \u202e" <mallory@example.test>',
    ]) {
      const out = text((await attestSender(bytes(`${from}\r\nSubject: x\r\n\r\nbody`), sender)).message);
      const lines = headerLines(out);
      assert.deepEqual(
        lines.filter((l) => /^from:/i.test(l)),
        ['From: mallory@example.test'],
        from,
      );
      assert.ok(
        lines.some((l) => l.startsWith('Offrecord-Original-From:')),
        from,
      );
    }
  });

  it('drops every header under our names, whatever its case, spacing or folding', async () => {
    const out = text(
      (
        await attestSender(
          bytes(
            `oFfReCoRd-VeRiFiEd-SeNdEr:\t${value}\r\nOffrecord-Verified-Sender\t: x\r\nOffrecord_Verified_Sender: x\r\nOffrecord-Anything: x\r\n\tfolded on\r\nFrom: mallory@example.test\r\n\r\n`,
          ),
          sender,
        )
      ).message,
    );
    assert.equal(out, `${VERIFIED_SENDER_HEADER}: ${value}\r\nFrom: mallory@example.test\r\n\r\n`);
  });

  it('the value has one syntax', () => {
    assert.deepEqual(parseVerifiedSender(value), sender);
    for (const bad of [
      `${value} `,
      value.replace('; ', ';'),
      value.toUpperCase(),
      value.replace('unverified', 'tofu'),
      `Mallory <mallory@example.test>; fingerprint=${'ab'.repeat(20)}; trust=verified`,
    ]) {
      assert.throws(() => parseVerifiedSender(bad), /not an Offrecord-Verified-Sender value/, bad);
    }
  });
});

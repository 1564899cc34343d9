// The whole exchange through the mail pipeline, over the embedded Maildir spool: plaintext
// mail that carries keys (paper 5.1), first mail, reply, OTR upgrade, then data both ways.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ed25519_hasher } from '@noble/curves/ed25519.js';
import { toHex } from '../../src/crypto/bytes.ts';
import { MaildirSpool } from '../../src/mail/maildir.ts';
import { PipelineError } from '../../src/mail/errors.ts';
import { fetchMessages, type FetchReport } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { advertising, certifiedWithoutSecret } from '../helpers/hostile.ts';
import { spoolAccount } from '../../kit/spool.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-pipeline-'));
after(() => rm(root, { recursive: true, force: true }));

function messages(reports: FetchReport[]) {
  return reports.flatMap((r) => (r.kind === 'message' ? [r] : []));
}

describe('mail pipeline over the Maildir spool', async () => {
  const spool = new MaildirSpool(join(root, 'spool'));
  const alice = await spoolAccount(root, spool, 'alice@example.test');
  const bob = await spoolAccount(root, spool, 'bob@example.test');

  it('refuses plaintext without consent, and with consent sends one that carries the keys', async () => {
    await assert.rejects(
      sendMessage(bob, { to: alice.address, subject: 'hi', text: 'hello' }),
      (e: unknown) => e instanceof PipelineError && e.code === 'no_keys' && e.hint !== undefined,
    );
    assert.deepEqual(await sendMessage(bob, { to: alice.address, subject: 'hi', text: 'plain hello' }, { allowPlaintext: true }), {
      kind: 'plaintext',
    });
    const reports = await fetchMessages(alice);
    assert.deepEqual(
      reports.map((r) => r.kind === 'ordinary' && r.advertises),
      [bob.address],
    );
    assert.equal((await alice.keyring.fingerprint(bob.address)).fingerprint.length, 40, 'Alice pinned Bob');
  });

  it('first mail, reply, upgrade, then messages both ways; the spool holds no plaintext', async () => {
    const secretSubject = 'Geheimes Treffen — Freitag';
    assert.deepEqual(await sendMessage(alice, { to: bob.address, subject: secretSubject, text: 'Lunch, Friday? Grüße' }), {
      kind: 'encrypted',
      type: 'first',
    });
    const atBob = await fetchMessages(bob);
    const [first] = messages(atBob);
    assert.ok(first, JSON.stringify(atBob));
    assert.equal(first.message.subject, secretSubject);
    assert.equal(first.message.text?.trim(), 'Lunch, Friday? Grüße');
    assert.equal(first.fingerprint, (await alice.keyring.own.identity()).fingerprint);

    assert.deepEqual(await sendMessage(bob, { to: alice.address, subject: 'Re: lunch', text: 'Friday works.' }), {
      kind: 'encrypted',
      type: 'reply',
    });
    assert.equal(messages(await fetchMessages(alice))[0]?.message.text?.trim(), 'Friday works.');

    for (let i = 0; i < 3; i++) {
      assert.deepEqual(
        await sendMessage(alice, { to: bob.address, subject: `a${i}`, text: `from alice ${i}`, html: `<p>from <b>alice</b> ${i}</p>` }),
        { kind: 'encrypted', type: 'data' },
      );
      const got = messages(await fetchMessages(bob))[0];
      assert.equal(got?.message.subject, `a${i}`);
      assert.equal(got?.message.html?.trim(), `<p>from <b>alice</b> ${i}</p>`);
      await sendMessage(bob, { to: alice.address, subject: `b${i}`, text: `from bob ${i}` });
      assert.equal(messages(await fetchMessages(alice))[0]?.message.text?.trim(), `from bob ${i}`);
    }

    // What an eavesdropper on the spool sees: processed ciphertext filed in .OffRecord, no plaintext.
    for (const who of [alice, bob]) {
      const dir = join(spool.maildir(who.address), '.OffRecord', 'cur');
      for (const name of await readdir(dir)) {
        const raw = await readFile(join(dir, name), 'utf8');
        assert.ok(raw.includes('Subject: ...'));
        for (const secret of [secretSubject, 'Lunch, Friday', 'Friday works', 'from alice', 'from bob'])
          assert.ok(!raw.includes(secret), `${secret} leaked`);
      }
    }
  });

  it('one received mail enters the keys wing once (fromMail: its headers learned, both parties read)', async () => {
    const calls: string[] = [];
    // Every method call on the keyring or either of its parts, named `part.method`.
    const counted = <T extends object>(target: T, name: string): T =>
      new Proxy(target, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (property === 'own' || property === 'correspondents') return counted(value as object, String(property));
          if (typeof value !== 'function') return value;
          return (...args: unknown[]) => {
            calls.push(`${name}.${String(property)}`);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
    const keyring = counted(bob.keyring, 'keyring');
    for (let i = 0; i < 3; i++) await sendMessage(alice, { to: bob.address, subject: `c${i}`, text: `once ${i}` });
    const got = messages(await fetchMessages({ ...bob, keyring }));
    assert.deepEqual(got.map((m) => m.message.subject).sort(), ['c0', 'c1', 'c2']);
    assert.deepEqual(calls, ['correspondents.fromMail', 'correspondents.fromMail', 'correspondents.fromMail']);
  });

  it('leaves a mail addressed to someone else untouched', async () => {
    const carol = await spoolAccount(root, spool, 'carol@example.test');
    await sendMessage(alice, { to: bob.address, subject: 'for bob', text: 'x' });
    const [id] = await bob.incoming.list();
    const raw = await bob.incoming.read(id!);
    await spool.deliver(carol.address, raw);
    const reports = await fetchMessages(carol);
    assert.equal(reports[0]?.kind, 'skipped');
    assert.equal(reports[0]?.kind === 'skipped' && reports[0].code, 'address');
    assert.equal((await carol.incoming.list()).length, 1, 'still there');
  });
});

describe('a hostile correspondent advertising a ring key nobody can use (PROTOCOL.md §15.3)', async () => {
  const spool = new MaildirSpool(join(root, 'hostile-spool'));
  const mallory = await spoolAccount(root, spool, 'mallory@example.test');
  const bob = await spoolAccount(root, spool, 'bob-h@example.test');
  const malloryFingerprint = (await mallory.keyring.own.identity()).fingerprint;
  // A point whose discrete log nobody knows, certified correctly by Mallory's identity as her
  // newest ring key: a ring signature over {Bob, this key} could only be Bob's.
  const nobodys = ed25519_hasher.hashToCurve(new TextEncoder().encode('offrecord test: a key nobody holds')).toBytes();
  const now = Date.now();
  const unusable = await certifiedWithoutSecret(mallory.privateKey, nobodys, now, now + 14 * 24 * 3600_000);
  const bobsRingKeysOfMallory = () => bob.store.peerKeys(malloryFingerprint, 'ring').map((k) => toHex(k.public));

  it('refuses the key, so that Bob, knowing no other, refuses to send', async () => {
    await sendMessage(
      advertising(mallory, [unusable], { only: true }),
      { to: bob.address, subject: 'keys', text: 'my keys' },
      { allowPlaintext: true },
    );
    assert.deepEqual(
      (await fetchMessages(bob)).map((r) => r.kind === 'ordinary' && r.advertises),
      [mallory.address],
      'Mallory pinned',
    );
    assert.deepEqual(bobsRingKeysOfMallory(), [], 'the key nobody holds is not stored');
    const learned = await bob.keyring.correspondents.learnRingKeys(mallory.address, [unusable]);
    assert.deepEqual(
      learned.rejected.map((r) => [r.id, r.code]),
      [[toHex(nobodys), 'bad_proof']],
    );
    await assert.rejects(
      sendMessage(bob, { to: mallory.address, subject: 'x', text: 'never signed toward that key' }),
      (e: unknown) => e instanceof PipelineError && e.code === 'no_keys',
    );
  });

  it('beside her real keys, Bob signs toward a real one only: Mallory can read what he sent', async () => {
    await sendMessage(
      advertising(mallory, [unusable]),
      { to: bob.address, subject: 'keys', text: 'my keys again' },
      { allowPlaintext: true },
    );
    await fetchMessages(bob);
    assert.deepEqual(
      bobsRingKeysOfMallory(),
      mallory.keyring.own.ringAdverts().map((a) => toHex(a.public)),
    );
    assert.deepEqual(await sendMessage(bob, { to: mallory.address, subject: 'hello', text: 'deniable, as promised' }), {
      kind: 'encrypted',
      type: 'first',
    });
    // Mallory's own software accepts a first mail only when it names one of her valid ring keys.
    const read = messages(await fetchMessages(mallory));
    assert.equal(read[0]?.message.text?.trim(), 'deniable, as promised');
  });
});

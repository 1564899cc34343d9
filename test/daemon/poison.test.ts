// Poison mail (kit/poison.ts) ahead of a genuine offrecord mail, over the real loopback
// Postfix and Dovecot, as users run offrecord: a stranger's mail never stops `offrecord watch`
// or `offrecord fetch`. Each poison mail is skipped with a logged reason and stays in the INBOX
// exactly as it was; the genuine mail behind it is delivered.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { sendMessage } from '../../src/mail/send.ts';
import { cliHome, homeEnv, runCli, spawnCli } from '../../kit/cli.ts';
import { captureOutput, cliBobAndAlice, folderSources, logEvents, maildirMessages, until } from '../helpers/daemon.ts';
import { useMailServers, type MailServers } from '../../kit/mail-servers.ts';
import { appendMail, type LoopbackAccount } from '../../kit/loopback-accounts.ts';
import { poisonCorpus, type PoisonMail } from '../../kit/poison.ts';

const servers = useMailServers();
const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
/** Codes a poison mail may be skipped with: each names what was wrong; `unprocessable` would be a failure nobody foresaw. */
const POISON_CODES = new Set(['too_large', 'malformed', 'auth']);

describe('poison mail never stops offrecord watch or fetch (real Postfix and Dovecot)', () => {
  const bobHome = cliHome('offrecord-poison-');
  const maildir = join(bobHome, 'plaintext');
  let s: MailServers;
  let alice: LoopbackAccount;
  let bobAddress: string;
  let bobEnv: NodeJS.ProcessEnv;
  let corpus: PoisonMail[];

  before(async () => {
    s = servers();
    ({ alice, bobAddress, bobEnv } = await cliBobAndAlice(s, bobHome));
    // A genuine data mail from Alice, composed but never sent: the truncated one is cut from it.
    const composed: Uint8Array[] = [];
    await sendMessage(
      { ...alice, outgoing: { send: async (raw) => void composed.push(Uint8Array.from(raw)) } },
      { to: bobAddress, subject: 'cut', text: 'cut' },
    );
    corpus = await poisonCorpus({
      from: alice.address,
      to: bobAddress,
      genuine: composed[0]!,
      recipientKey: (await alice.keyring.correspondents.correspondent(bobAddress)).encryptionKey,
    });
  });

  const inbox = async () => (await folderSources(s, 'bob', 'INBOX')).map((b) => sha256(b)).sort();
  const poisonIn = async () => {
    for (const mail of corpus) {
      if (mail.via === 'smtp') await alice.outgoing.send(mail.raw, { from: alice.address, to: [bobAddress] });
      else await appendMail(s, 'bob', mail.raw);
    }
  };
  const genuine = async () => {
    const text = `genuine after the poison ${randomBytes(6).toString('hex')}`;
    await sendMessage(alice, { to: bobAddress, subject: 'genuine', text });
    return text;
  };
  const delivered = async (text: string) => ((await maildirMessages(maildir)).some((m) => m.includes(text)) ? true : null);

  it('offrecord watch: every poison mail is skipped with its reason, the genuine one delivered, the watcher stays up', async () => {
    const child = spawnCli(['watch', '--maildir', maildir], homeEnv(bobHome, bobEnv));
    const io = captureOutput(child);
    const events = () => logEvents(io.stderr());
    try {
      await until('watch.start', () => events().some((e) => e.event === 'watch.start'));
      await poisonIn();
      const text = await genuine();
      await until(
        'the genuine mail',
        async () => {
          assert.equal(child.exitCode, null, `the watcher exited: ${io.stderr()}`);
          return delivered(text);
        },
        120_000,
      );
      await until(`${corpus.length} skips`, () => events().filter((e) => e.event === 'mail.skipped').length >= corpus.length, 60_000);
      assert.equal(child.exitCode, null, io.stderr());
      const skips = events().filter((e) => e.event === 'mail.skipped');
      assert.equal(skips.length, corpus.length, JSON.stringify(skips));
      for (const skip of skips) {
        assert.ok(POISON_CODES.has(skip.code as string), JSON.stringify(skip));
        assert.ok(typeof skip.reason === 'string' && skip.reason.length > 0, JSON.stringify(skip));
      }
      assert.equal((await inbox()).length, corpus.length, 'the poison stays in the INBOX, the genuine mail is filed away');
    } finally {
      child.kill('SIGTERM');
    }
    assert.deepEqual(await io.exited, { code: 0, signal: null }, io.stderr());
  });

  it('offrecord fetch after the watcher: the genuine mail is read; the poison, already looked at, is not read again (§18.6) and is untouched', async () => {
    const text = await genuine();
    await until('the genuine mail in the INBOX', async () => ((await inbox()).length === corpus.length + 1 ? true : null));
    const poison = await inbox();
    const run = await runCli(['fetch'], homeEnv(bobHome, bobEnv));
    assert.equal(run.status, 0, run.stderr);
    assert.ok(run.stdout.includes(text), run.stdout);
    assert.equal(run.stderr.split('\n').filter((line) => line.startsWith('offrecord: left mail')).length, 0, run.stderr);
    const after = await inbox();
    assert.equal(after.length, corpus.length);
    assert.ok(
      after.every((hash) => poison.includes(hash)),
      'each poison mail byte for byte as it was',
    );
  });
});

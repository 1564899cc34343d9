// Junk is not paid for twice (issue 15 item 6, docs/PROTOCOL.md §18.6): a stranger fills Bob's
// INBOX (real Dovecot) with mail that cannot be processed; the first pass reads and skips each
// one, the next reads none of it and the mail stays on the server untouched. A mail skipped for
// want of keys is read again once keys are learned, and then processed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchMessages, type FetchReport } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import { ImapMailbox } from '../../src/mail/servers.ts';
import {
  appendMail,
  fetchUntil,
  loopbackAccount,
  pass,
  serverConfig,
  waitForCount,
  type LoopbackAccount,
} from '../../kit/loopback-accounts.ts';
import { connectImap, useMailServers, type MailServers } from '../../kit/mail-servers.ts';
import { poisonCorpus } from '../../kit/poison.ts';

const servers = useMailServers();

/** Bob's INBOX over IMAP, counting every mail it is asked to read and its listings. */
class CountingMailbox extends ImapMailbox {
  reads: string[] = [];
  listings = 0;
  override async read(id: string): Promise<Uint8Array> {
    this.reads.push(id);
    return super.read(id);
  }
  override async listSince(after: Parameters<ImapMailbox['listSince']>[0]): ReturnType<ImapMailbox['listSince']> {
    this.listings++;
    return super.listSince(after);
  }
}

/** SHA-256 of every mail in `who`'s INBOX, with its flags: what "untouched" means. */
async function inboxState(s: MailServers): Promise<string[]> {
  const client = await connectImap(s, 'bob');
  try {
    const lock = await client.getMailboxLock('INBOX');
    try {
      const state: string[] = [];
      for await (const m of client.fetch('1:*', { uid: true, source: true, flags: true })) {
        state.push(`${m.uid} ${createHash('sha256').update(m.source!).digest('hex')} ${[...(m.flags ?? [])].sort().join(',')}`);
      }
      return state.sort();
    } finally {
      lock.release();
    }
  } finally {
    await client.logout().catch(() => undefined);
  }
}

/** `raw` without its key headers (Autocrypt, Offrecord-Keys), folded lines and all. */
function withoutKeyHeaders(raw: Uint8Array): Uint8Array {
  const text = Buffer.from(raw).toString('latin1');
  const split = text.indexOf('\r\n\r\n');
  const head = text.slice(0, split).replace(/^(Autocrypt|Offrecord-Keys):.*(\r\n[ \t].*)*\r\n/gim, '');
  assert.doesNotMatch(head, /^(Autocrypt|Offrecord-Keys):/im);
  return new Uint8Array(Buffer.from(head + text.slice(split), 'latin1'));
}

describe('junk is not paid for twice (real Dovecot)', () => {
  const root = mkdtempSync(join(tmpdir(), 'offrecord-junk-'));
  let alice: LoopbackAccount;
  let bob: LoopbackAccount & { incoming: CountingMailbox };
  let junkCount = 0;

  before(async () => {
    const s = servers();
    alice = await loopbackAccount(s, 'alice', { root });
    const plainBob = await loopbackAccount(s, 'bob', { root });
    bob = { ...plainBob, incoming: new CountingMailbox(serverConfig(s, 'bob', 'imap')) };
    // Alice has Bob's keys (his plaintext mail); Bob has none of hers yet.
    await sendMessage(bob, { to: alice.address, subject: 'keys', text: 'my keys' }, { allowPlaintext: true });
    await fetchUntil(alice, 'ordinary');
  });
  after(() => {
    alice.store.close();
    bob.store.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('a stranger fills the INBOX with junk: the first pass reads each once, the next reads none; held mail is read again once its keys are learned', async () => {
    const s = servers();
    const composed: Uint8Array[] = [];
    await sendMessage(
      { ...alice, outgoing: { send: async (raw) => void composed.push(Uint8Array.from(raw)) } },
      { to: bob.address, subject: 'first', text: 'the first mail, its key headers lost on the way' },
    );
    // The junk cut from Alice's mail carries none of her keys either: Bob learns them only later.
    const lost = withoutKeyHeaders(composed[0]!);
    const corpus = await poisonCorpus({
      from: 'stranger@example.test',
      to: bob.address,
      genuine: lost,
      recipientKey: (await alice.keyring.correspondents.correspondent(bob.address)).encryptionKey,
    });
    for (const junk of corpus) await appendMail(s, 'bob', junk.raw);
    junkCount = corpus.length;
    await appendMail(s, 'bob', lost);

    const first = await fetchMessages(bob);
    const skipped = first.filter((r): r is Extract<FetchReport, { kind: 'skipped' }> => r.kind === 'skipped');
    assert.equal(skipped.length, junkCount + 1, `every mail skipped: ${JSON.stringify(first.map((r) => r.kind))}`);
    assert.ok(new Set(bob.incoming.reads).size === junkCount + 1, 'the first pass read each mail');
    const aliceFirst = skipped[skipped.length - 1]!; // appended last: the highest UID, reported last
    assert.equal(aliceFirst.code, 'unknown_peer', `Alice's first mail is skipped for want of her keys: ${JSON.stringify(aliceFirst)}`);
    const untouched = await inboxState(s);

    bob.incoming.reads = [];
    assert.deepEqual(await fetchMessages(bob), [], 'the second pass reports nothing');
    assert.deepEqual(bob.incoming.reads, [], 'and reads nothing');
    assert.deepEqual(await inboxState(s), untouched, 'the skipped mail stays on the server untouched');

    // Alice's next mail brings her keys: in the same pass her held first mail is read again and processed.
    const listing = () => pass(new ImapMailbox(serverConfig(s, 'bob', 'imap')), (m) => m.list());
    const listed = (await listing()).length;
    await sendMessage(alice, { to: bob.address, subject: 'again', text: 'my keys come with this one' });
    await waitForCount(listing, listed + 1);
    bob.incoming.reads = [];
    bob.incoming.listings = 0;
    const again = await fetchMessages(bob);
    assert.equal(bob.incoming.listings, 1, 'the pass whose world moved listed the mailbox once, as every pass');
    const next = again.find((r) => r.kind === 'message' && r.id !== aliceFirst.id)!;
    const message = again.find((r) => r.id === aliceFirst.id);
    assert.ok(
      message && message.kind === 'message' && message.message.text?.includes('key headers lost'),
      `the held mail is processed: ${JSON.stringify(again.map((r) => (r.kind === 'skipped' ? r.code : r.kind)))}`,
    );
    // Only mail whose reason could depend on keys is read again: a malformed mail stays malformed.
    const keyed = skipped
      .filter((r) => !['malformed', 'too_large', 'unsupported_version', 'address', 'unprocessable'].includes(r.code))
      .map((r) => r.id);
    assert.deepEqual([...new Set(bob.incoming.reads)].sort(), [next.id, ...keyed].sort());
    bob.incoming.reads = [];
    assert.deepEqual(await fetchMessages(bob), []);
    assert.deepEqual(bob.incoming.reads, [], 'and nothing after that');
  });
});

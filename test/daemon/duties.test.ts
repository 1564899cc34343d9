// The protocol's duties as the watcher carries them out over the real servers: the empty
// acknowledgement after the delay (paper 4.2), and the NAK with a fresh start for mail of a lost
// session, with the re-send only under a session authenticated anew (paper 5.1).
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { toHex } from '../../src/crypto/bytes.ts';
import { memoryLogger } from '../../src/daemon/log.ts';
import { Watcher, type WatchState } from '../../src/daemon/watcher.ts';
import { MaildirDelivery } from '../../src/mail/maildir.ts';
import { composeProtected } from '../../src/mail/mime.ts';
import { fetchMessages } from '../../src/mail/receive.ts';
import { sendMessage } from '../../src/mail/send.ts';
import type { OutgoingTransport } from '../../src/mail/transport.ts';
import { DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import type { EstablishedState, SessionState } from '../../src/protocol/state.ts';
import { encodeNak } from '../../src/protocol/wire.ts';
import { appendMail, establish, fetchUntil, loopbackAccount, pending, type LoopbackAccount } from '../../kit/loopback-accounts.ts';
import { maildirMessages, until } from '../helpers/daemon.ts';
import { advertising, certifiedWithoutSecret } from '../helpers/hostile.ts';
import { useMailServers } from '../../kit/mail-servers.ts';

const root = await mkdtemp(join(tmpdir(), 'offrecord-duties-'));
after(() => rm(root, { recursive: true, force: true }));

function state(of: LoopbackAccount, peer: LoopbackAccount): SessionState {
  const stored = of.store.loadSession(of.fingerprint, peer.fingerprint);
  assert.ok(stored, `${of.address} has a session with ${peer.address}`);
  return stored.state;
}

function established(s: SessionState): EstablishedState {
  assert.equal(s.kind, 'established');
  return s as EstablishedState;
}

/** Counts what an account sends. */
function counting(transport: OutgoingTransport): OutgoingTransport & { sent: number } {
  const counter = {
    sent: 0,
    send: async (raw: Uint8Array, envelope: Parameters<OutgoingTransport['send']>[1]) => {
      counter.sent++;
      await transport.send(raw, envelope);
    },
  };
  return counter;
}

/** `who`'s watcher with duties every 100 ms, for the length of `work`; it must not have failed. */
async function withWatcher(
  who: LoopbackAccount,
  inbox: string,
  work: (log: ReturnType<typeof memoryLogger>) => Promise<void>,
): Promise<ReturnType<typeof memoryLogger>> {
  const log = memoryLogger();
  const controller = new AbortController();
  const states: WatchState[] = [];
  const running = new Watcher({
    account: { ...who, delivery: new MaildirDelivery(inbox) },
    log,
    timings: { dutiesEveryMs: 100, idleRestartMs: 200, backoffBaseMs: 50, backoffMaxMs: 400 },
    onStatus: (s) => states.push(s.state),
  }).run(controller.signal);
  try {
    await work(log);
  } finally {
    controller.abort();
    await running;
  }
  assert.notEqual(states.at(-1)?.kind === 'stopped' && (states.at(-1) as { reason: string }).reason, 'failed');
  return log;
}

describe('protocol duties carried out by the watcher', () => {
  const servers = useMailServers();
  let alice: LoopbackAccount;
  let bob: LoopbackAccount;

  before(async () => {
    const s = servers();
    // Alice forgets retired keys at once, so the acknowledgement's effect shows.
    alice = { ...(await loopbackAccount(s, 'alice', { root })), policy: { ...DEFAULT_POLICY, graceMs: 0 } };
    bob = { ...(await loopbackAccount(s, 'bob', { root })), policy: { ...DEFAULT_POLICY, ackDelayMs: 300 } };
    await establish(alice, bob);
  });

  it('the empty acknowledgement goes out after the delay and lets Alice forget her old key', async () => {
    const inbox = join(root, 'ack');
    await sendMessage(alice, { to: bob.address, subject: 's', text: 'a new share rides along' });
    const before = established(state(alice, bob));
    const oldKey = before.keys.ours.sending.id;
    const log = await withWatcher(bob, inbox, async (log) => {
      await until('the message', async () => (await maildirMessages(inbox)).some((t) => t.includes('a new share rides along')));
      await until('the acknowledgement', () => log.lines.some((l) => l.event === 'ack.sent'));
    });
    assert.deepEqual(
      log.lines.filter((l) => l.event === 'ack.sent').map((l) => l.fields.to),
      [alice.address],
      'one acknowledgement',
    );
    const reports = await fetchUntil(alice, 'protocol');
    assert.deepEqual(
      reports.map((r) => r.kind),
      ['protocol'],
      'an acknowledgement carries nothing for the user',
    );
    await fetchMessages(alice); // forgetting runs with the next step; graceMs 0 makes it immediate
    const after = established(state(alice, bob));
    assert.notEqual(after.keys.ours.sending.id, oldKey, 'Alice moved on to the key Bob acknowledged');
    const live = [after.keys.ours.sending, after.keys.ours.next, ...after.keys.ours.retired.map((r) => r.key)].map((k) => k.id);
    assert.ok(!live.includes(oldKey), `the old key ${oldKey} is forgotten (live: ${live.join(', ')})`);
  });

  it('mail of a lost session gets a NAK and a fresh start; the re-send comes under the new session', async () => {
    const inbox = join(root, 'nak');
    assert.ok(bob.store.deleteSession(bob.fingerprint, alice.fingerprint), 'Bob loses his state');
    await sendMessage(alice, { to: bob.address, subject: 'lost', text: 'note sent into the void' });
    const log = await withWatcher(bob, inbox, async (log) => {
      await until('the NAK', () => log.lines.some((l) => l.event === 'mail.skipped' && l.fields.code === 'no_session'));
      // Alice reads the NAK and Bob's ring-signed fresh start, and answers with her cached copy.
      await until('Alice re-sends', async () => {
        await fetchMessages(alice);
        return (await maildirMessages(inbox)).some((t) => t.includes('note sent into the void'));
      });
    });
    assert.equal((await maildirMessages(inbox)).filter((t) => t.includes('note sent into the void')).length, 1, 'delivered once');
    assert.equal(
      log.lines.filter((l) => l.event === 'mail.skipped' && l.fields.code === 'no_session').length,
      1,
      'skipped once, not re-read every pass',
    );
    assert.equal(established(state(bob, alice)).kind, 'established');
    assert.equal((await pending(bob)).length, 1, 'the unreadable mail stays on the server');
  });

  it('an unauthenticated NAK makes Alice send nothing', async () => {
    const s = servers();
    await sendMessage(alice, { to: bob.address, subject: 's', text: 'something to ask a re-send of' });
    const sealed = state(alice, bob);
    assert.ok(sealed.kind !== 'initiating');
    // Anyone can mail Alice a NAK that claims to be Bob's, naming her last message.
    const nak = encodeNak({ senderKeyId: sealed.keys.ours.sending.id, recipientKeyId: sealed.keys.theirs.current.id, counter: 1 });
    await appendMail(s, 'alice', await composeProtected({ from: bob.address, to: alice.address, protocol: nak }));
    const outgoing = counting(alice.outgoing);
    const reports = await fetchMessages({ ...alice, outgoing });
    // Bob's acknowledgement of the previous test's re-send may arrive beside the NAK on a slow
    // machine: both are protocol mail, and neither makes Alice send anything.
    assert.ok(reports.length >= 1 && reports.every((r) => r.kind === 'protocol'), JSON.stringify(reports.map((r) => r.kind)));
    assert.equal(outgoing.sent, 0, 'no re-send, no answer');
  });
});

describe('a correspondent who advertises our own ring key (PROTOCOL.md §15.1)', () => {
  const servers = useMailServers();

  it('is refused, and the watcher answers her through its duties with her real key', async () => {
    const s = servers();
    const dir = join(root, 'own-ring-key');
    await mkdir(dir);
    const mallory = await loopbackAccount(s, 'alice', { root: dir });
    const bob: LoopbackAccount = { ...(await loopbackAccount(s, 'bob', { root: dir })), policy: { ...DEFAULT_POLICY, ackDelayMs: 300 } };
    await sendMessage(bob, { to: mallory.address, subject: 'keys', text: 'my keys, in plaintext by consent' }, { allowPlaintext: true });
    await fetchUntil(mallory, 'ordinary');
    // Mallory's software advertises Bob's own ring key as her newest, certified by her identity.
    const [bobsKey] = bob.keyring.own.ringAdverts();
    const now = Date.now();
    const stolen = await certifiedWithoutSecret(mallory.privateKey, bobsKey!.public, now, now + 14 * 24 * 3600_000);
    // Her first mail is signed with her real key; answering it (the empty reply, a duty) signs
    // toward her newest key.
    await sendMessage(advertising(mallory, [stolen]), { to: bob.address, subject: 'first', text: 'hello from mallory' });
    const inbox = join(dir, 'inbox');
    const log = await withWatcher(bob, inbox, async (log) => {
      await until('the message', async () => (await maildirMessages(inbox)).some((t) => t.includes('hello from mallory')));
      await until('the empty reply', () => log.lines.some((l) => l.event === 'ack.sent'));
    });
    assert.deepEqual(
      log.lines.filter((l) => l.event === 'ack.sent').map((l) => l.fields.to),
      [mallory.address],
    );
    const malloryKeys = bob.store.peerKeys(mallory.fingerprint, 'ring').map((k) => toHex(k.public));
    assert.deepEqual(
      malloryKeys,
      mallory.keyring.own.ringAdverts().map((a) => toHex(a.public)),
      'only her real key is stored',
    );
    const refused = await bob.keyring.correspondents.learnRingKeys(mallory.address, [stolen]);
    assert.deepEqual(
      refused.rejected.map((r) => r.code),
      ['own_ring_key'],
    );
    // The reply reaches Mallory under her real key: her software reads it.
    assert.deepEqual(
      (await fetchUntil(mallory, 'protocol')).map((r) => r.kind),
      ['protocol'],
    );
  });
});

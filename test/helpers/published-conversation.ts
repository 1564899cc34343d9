// A conversation between two real accounts (Keyring + AccountStore on a moving clock), each
// message wrapped as the mail pipeline wraps it, with everything a test of publication,
// forging and verifying needs: the .eml of every message, its exact payload, each receiver's
// parties and state just before it received the message (to replay a forgery into a receiver
// as it was then), every DH secret any state ever held, and the original secret keys.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { autocryptHeaderFor, formatOffrecordKeysHeader } from '../../src/keys/headers.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { DAY_MS } from '../../src/keys/schedule.ts';
import { composeInner, composeProtected } from '../../src/mail/mime.ts';
import { Conversation } from '../../src/protocol/context.ts';
import type { Parties } from '../../src/protocol/authentication.ts';
import { systemEnv } from '../../src/protocol/env.ts';
import { liveOwnSecrets, type SessionState } from '../../src/protocol/state.ts';
import { MemorySessionStore } from '../../src/protocol/store.ts';
import { openAccountStore, type AccountStore } from '../../src/store/index.ts';
import { OpenPgpSealer } from '../../src/crypto/seal.ts';
import { TestEnv } from '../../kit/parties.ts';

export { DAY_MS };
/** Now, to the second: OpenPGP seals with the real clock, so the keys must be valid today. */
export const T0 = Math.floor(Date.now() / 1000) * 1000;

/** The moving clock of a scenario (its randomness is node:crypto's). */
export type Clock = TestEnv;

export interface Side {
  address: string;
  fingerprint: string;
  store: AccountStore;
  keyring: Keyring;
  privateKey: openpgp.PrivateKey;
  /** The armored secret key at the start, before rotation destroyed any subkey secret. */
  originalSecret: string;
}

export interface Sent {
  name: string;
  kind: 'first' | 'reply' | 'data' | 'ack';
  from: Side;
  to: Side;
  protocol: Uint8Array;
  eml: Uint8Array;
  /** The inner MIME entity sent (empty for an ACK). */
  payload: Uint8Array;
  /** The receiver as it was just before it received this message. */
  receiver: { parties: Parties; state: SessionState | null; time: number };
}

export interface Scenario {
  clock: Clock;
  alice: Side;
  bob: Side;
  mails: Sent[];
  /** Every own DH secret any stored state of either side ever held. */
  dhSecrets: Uint8Array[];
  /** Every DH public value either side ever held (own and peer), for deriving session keys in scans. */
  dhPublics: Uint8Array[];
  /** The key id of each of dhPublics (the HKDF info binds them, PROTOCOL.md §7). */
  dhIds: number[];
  byName(name: string): Sent;
  cleanup(): void;
}

const peerKey = (side: Side, other: Side) => [side.fingerprint, other.fingerprint] as const;

async function newSide(dir: string, name: string, clock: Clock): Promise<Side> {
  const address = `${name}@example.test`;
  const store = openAccountStore(join(dir, `${name}.sqlite`), { passphrase: null, clock: () => clock.now() });
  const keyring = new Keyring(store, { clock: () => clock.now() });
  const init = await keyring.own.init({ email: address, name: name[0]!.toUpperCase() + name.slice(1) });
  const privateKey = await keyring.own.unlock();
  return { address, fingerprint: init.fingerprint.toLowerCase(), store, keyring, privateKey, originalSecret: store.identity()!.secretKey };
}

async function conversation(side: Side, other: Side, clock: Clock): Promise<{ conv: Conversation; parties: Parties }> {
  const peer = await side.keyring.correspondents.correspondent(other.address);
  const parties = { local: side.keyring.own.localParty(), peer: peer.party };
  const conv = new Conversation({
    store: side.store,
    parties,
    peerEncryptionKey: peer.encryptionKey,
    sealer: await side.keyring.own.sealer(side.privateKey),
    env: { ...systemEnv, now: () => clock.now() },
  });
  return { conv, parties };
}

/**
 * Alice and Bob: first mail, reply, data each way, an acknowledgement, then `rounds` more data
 * messages each way a day apart (so the early pairs retire and their MAC keys are queued).
 */
export async function runConversation(rounds = 3): Promise<Scenario> {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-published-'));
  const clock = new TestEnv(T0);
  const alice = await newSide(dir, 'alice', clock);
  const bob = await newSide(dir, 'bob', clock);
  for (const [a, b] of [
    [alice, bob],
    [bob, alice],
  ] as const) {
    await a.keyring.correspondents.importPeer(await b.keyring.own.exportPublic());
    await a.keyring.correspondents.learnRingKeys(b.address, b.keyring.own.ringAdverts());
  }
  const mails: Sent[] = [];
  const dhSecrets: Uint8Array[] = [];
  const dhPublics: Uint8Array[] = [];
  const dhIds: number[] = [];
  const record = (side: Side, other: Side) => {
    const stored = side.store.loadSession(...peerKey(side, other));
    if (!stored) return;
    for (const k of liveOwnSecrets(stored.state)) {
      dhSecrets.push(Uint8Array.from(k.secret));
      dhPublics.push(Uint8Array.from(k.public));
      dhIds.push(k.id);
    }
    if (stored.state.kind !== 'initiating') {
      const { theirs } = stored.state.keys;
      for (const k of [theirs.current, theirs.previous, ...theirs.retired.map((r) => r.key)]) {
        if (!k) continue;
        dhPublics.push(Uint8Array.from(k.public));
        dhIds.push(k.id);
      }
    }
  };

  const exchange = async (name: string, from: Side, to: Side, text: string | null): Promise<Sent> => {
    clock.advance(60_000);
    const sender = await conversation(from, to, clock);
    const payload =
      text === null
        ? new Uint8Array(0)
        : await composeInner({ from: from.address, to: to.address, subject: name, date: new Date(clock.time), text, attachments: [] });
    const result = text === null ? await sender.conv.acknowledgeIfDue() : await sender.conv.send(payload);
    assert.ok(result && result.kind === 'encrypted', `${name}: ${JSON.stringify(result)}`);
    record(from, to);
    const eml = await composeProtected({
      from: from.address,
      to: to.address,
      protocol: result.message,
      date: new Date(clock.time),
      autocrypt: await autocryptHeaderFor(from.privateKey, from.address, clock.time),
      offrecordKeys: formatOffrecordKeysHeader({ versions: [1], ring: from.keyring.own.ringAdverts() }),
    });
    const receiver = await conversation(to, from, clock);
    const before = to.store.loadSession(...peerKey(to, from));
    const got = await receiver.conv.receive(result.message);
    assert.notEqual(got.kind, 'error', `${name} received: ${got.kind === 'error' ? got.code + ' ' + got.message : ''}`);
    record(to, from);
    const kind = (['first', 'reply', 'data', 'ack'] as const)[result.message[3]! - 1]!;
    const sent: Sent = {
      name,
      kind,
      from,
      to,
      protocol: result.message,
      eml,
      payload,
      receiver: { parties: receiver.parties, state: before?.state ?? null, time: clock.time },
    };
    mails.push(sent);
    return sent;
  };

  await exchange('first', alice, bob, 'Lunch on Friday? I will bring the documents.');
  await exchange('reply', bob, alice, 'Friday works. Noon at the usual place.');
  await exchange('alice-data-0', alice, bob, 'See you there. Do not tell anyone.');
  await exchange('bob-data-0', bob, alice, 'Of course not.');
  clock.advance(2 * 3_600_000);
  await exchange('alice-ack', alice, bob, null);
  for (let i = 1; i <= rounds; i++) {
    clock.advance(DAY_MS);
    await exchange(`alice-data-${i}`, alice, bob, `Alice, day ${i}.`);
    await exchange(`bob-data-${i}`, bob, alice, `Bob, day ${i}.`);
  }
  const dir0 = dir;
  return {
    clock,
    alice,
    bob,
    mails,
    dhSecrets,
    dhPublics,
    dhIds,
    byName: (name) => mails.find((m) => m.name === name) ?? assert.fail(`no mail ${name}`),
    cleanup: () => {
      alice.store.close();
      bob.store.close();
      rmSync(dir0, { recursive: true, force: true });
    },
  };
}

/** Lets the conversation go silent for `days`, then each side forgets what is due (the daemon's job). */
export async function silence(s: Scenario, days: number): Promise<void> {
  s.clock.advance(days * DAY_MS);
  for (const [side, other] of [
    [s.alice, s.bob],
    [s.bob, s.alice],
  ] as const) {
    await side.keyring.own.rotate();
    const { conv } = await conversation(side, other, s.clock).catch(() => ({ conv: null }));
    if (conv) await conv.forgetExpired();
  }
}

/**
 * A receiver as it was just before `sent` arrived, at that time: the forged mail goes in where
 * the genuine one went. Returns what it made of it.
 */
export async function replayInto(s: Scenario, sent: Sent, protocol: Uint8Array) {
  const store = new MemorySessionStore();
  const [local, peer] = peerKey(sent.to, sent.from);
  if (sent.receiver.state) await store.save(local, peer, sent.receiver.state, 0);
  const original = await openpgp.readPrivateKey({ armoredKey: sent.to.originalSecret });
  const conv = new Conversation({
    store,
    parties: sent.receiver.parties,
    peerEncryptionKey: sent.from.privateKey.toPublic(),
    sealer: new OpenPgpSealer([original]),
    env: { ...systemEnv, now: () => sent.receiver.time },
  });
  return conv.receive(protocol);
}

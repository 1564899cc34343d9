// The keyring: identity and short-lived keys in a real account store, rotation over simulated
// weeks, trust on first use, and the full path from keys to the session engine.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import * as openpgp from 'openpgp';
import { toHex } from '../../src/crypto/bytes.ts';
import { Conversation } from '../../src/protocol/context.ts';
import { MessageType, peekType } from '../../src/protocol/wire.ts';
import { KeyringError, type KeyringErrorCode } from '../../src/keys/errors.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { formatFingerprint } from '../../src/keys/names.ts';
import { openAccountStore, type AccountStore } from '../../src/store/index.ts';
import { normalizeAddress } from '../../src/store/records.ts';
import { TestEnv, str, text } from '../../kit/parties.ts';
import { DAY_MS, T0, rejectsWith } from './support.ts';

const dirs: string[] = [];
const stores: AccountStore[] = [];
after(() => {
  for (const store of stores) store.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempPath(name = 'account.sqlite'): string {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-keyring-'));
  dirs.push(dir);
  return join(dir, name);
}

class Clock {
  constructor(public time: number) {}
  now = (): number => this.time;
  advance(ms: number): void {
    this.time += ms;
  }
}

function openKeyring(clock: Clock, path = tempPath()): { keyring: Keyring; store: AccountStore; path: string } {
  const store = openAccountStore(path, { passphrase: null, clock: clock.now });
  stores.push(store);
  return { keyring: new Keyring(store, { clock: clock.now }), store, path };
}

async function rejectsKeyring(promise: Promise<unknown> | (() => unknown), code: KeyringErrorCode): Promise<KeyringError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    assert.ok(error instanceof KeyringError, `expected KeyringError(${code}), got ${String(error)}`);
    assert.equal(error.code, code, `expected ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected KeyringError(${code}), but it succeeded`);
}

/** The decryption secret (ECDH d) of a subkey of an unlocked key. */
function subkeySecret(key: openpgp.PrivateKey, fingerprint: string): Uint8Array {
  const subkey = key.subkeys.find((s) => s.getFingerprint() === fingerprint);
  assert.ok(subkey, 'subkey present');
  const d = (subkey.keyPacket as unknown as { privateParams: { d?: Uint8Array } | null }).privateParams?.d;
  assert.ok(d instanceof Uint8Array && d.length === 32, 'the subkey secret is readable');
  return Uint8Array.from(d);
}

/** The identity's secret key as stored (sealed), read over a connection of its own. */
function sealedIdentity(path: string): Uint8Array {
  const db = new Database(path, { readonly: true });
  try {
    return Uint8Array.from(db.prepare('SELECT secret_key FROM identity').pluck().get() as Buffer);
  } finally {
    db.close();
  }
}

/**
 * Where `secret` shows up in the database files: raw (BLOB, binary key) or inside base64 text
 * (an armored key, whose lines are broken: newlines are removed before searching). Every
 * 9-byte slice at every base64 alignment is a needle, so a page boundary cannot hide it.
 */
function traces(path: string, secret: Uint8Array): string[] {
  const hits: string[] = [];
  const rawNeedles: Buffer[] = [];
  const b64Needles: string[] = [];
  for (let i = 0; i + 9 <= secret.length; i++) rawNeedles.push(Buffer.from(secret.subarray(i, i + 9)));
  for (let i = 0; i + 9 <= secret.length; i++) b64Needles.push(Buffer.from(secret.subarray(i, i + 9)).toString('base64'));
  for (const suffix of ['', '-wal', '-shm', '-journal']) {
    const file = path + suffix;
    if (!existsSync(file)) continue;
    const bytes = readFileSync(file);
    const name = suffix || 'main';
    if (rawNeedles.some((n) => bytes.includes(n))) hits.push(`raw in ${name}`);
    const flat = bytes.toString('latin1').replace(/[\r\n]/g, '');
    if (b64Needles.some((n) => flat.includes(n))) hits.push(`base64 in ${name}`);
  }
  return hits;
}

describe('Keyring: identity', () => {
  it('init without a passphrase: identity, first encryption subkey and ring key in one go; unlock needs nothing', async () => {
    const clock = new Clock(T0);
    const { keyring, store } = openKeyring(clock);
    await rejectsKeyring(keyring.own.unlock(), 'no_identity');
    const created = await keyring.own.init({ email: 'Alice@Example.org', name: 'Alice' });
    assert.equal(created.address, 'alice@example.org');
    assert.equal(created.userId, 'Alice <Alice@Example.org>');
    assert.equal(created.protected, false);
    assert.match(created.revocationCertificate, /BEGIN PGP PUBLIC KEY BLOCK/);
    const identity = store.identity()!;
    assert.equal(identity.fingerprint, created.fingerprint);
    const own = store.ownKeys();
    assert.deepEqual(own.map((k) => k.kind).sort(), ['encryption', 'ring']);
    const enc = own.find((k) => k.kind === 'encryption')!;
    const ring = own.find((k) => k.kind === 'ring')!;
    assert.equal(enc.secret?.length, 0, 'the decryption secret lives only in the armored identity');
    assert.equal(ring.secret?.length, 32);
    assert.equal(ring.notAfter - ring.notBefore, 14 * DAY_MS);
    assert.equal(enc.notAfter - enc.notBefore, 14 * DAY_MS);
    const key = await keyring.own.unlock();
    assert.equal(key.getFingerprint(), created.fingerprint);
    assert.deepEqual(
      key.subkeys.map((s) => s.getFingerprint()),
      [enc.id],
    );
    assert.equal(await keyring.own.isProtected(), false);
    await rejectsKeyring(keyring.own.init({ email: 'alice@example.org' }), 'identity_exists');
    assert.equal(store.ownKeys().length, 2, 'a refused init stores nothing');
  });

  it('init with a passphrase: a missing or wrong passphrase is a clear KeyError', async () => {
    const clock = new Clock(T0);
    const { keyring, store } = openKeyring(clock);
    const created = await keyring.own.init({ email: 'bob@example.org', passphrase: 'correct horse' });
    assert.equal(created.protected, true);
    assert.equal(await keyring.own.isProtected(), true);
    assert.doesNotMatch(store.identity()!.secretKey, /BEGIN PGP PUBLIC/);
    const missing = await rejectsWith(keyring.own.unlock(), 'passphrase_required');
    assert.match(missing.message, /passphrase is required/);
    const wrong = await rejectsWith(keyring.own.unlock('battery staple'), 'bad_passphrase');
    assert.match(wrong.message, /wrong passphrase/);
    const key = await keyring.own.unlock('correct horse');
    assert.equal(key.getFingerprint(), created.fingerprint);
    assert.equal(key.isDecrypted(), true);
  });

  it('rotate needs an unlocked identity', async () => {
    const clock = new Clock(T0);
    const { keyring } = openKeyring(clock);
    await keyring.own.init({ email: 'carol@example.org', passphrase: 'pw' });
    keyring.own.lock();
    await rejectsWith(keyring.own.rotate(), 'locked');
  });
});

describe('Keyring: rotation over simulated weeks', () => {
  it('creates keys on schedule, destroys expired decryption secrets, keeps ring secrets until published', async () => {
    const clock = new Clock(T0);
    const { keyring, store } = openKeyring(clock);
    await keyring.own.init({ email: 'alice@example.org', passphrase: 'pw' });
    await keyring.own.unlock('pw');
    const [firstEnc] = store.ownKeys('encryption');
    const [firstRing] = store.ownKeys('ring');

    clock.advance(DAY_MS);
    const quiet = await keyring.own.rotate();
    assert.deepEqual(quiet, { created: [], destroyed: [], publicationDue: [], changed: false });

    clock.time = T0 + 7 * DAY_MS;
    const week1 = await keyring.own.rotate();
    assert.deepEqual(week1.created.map((c) => c.kind).sort(), ['encryption', 'ring']);
    assert.deepEqual(week1.destroyed, []);
    const secondEnc = week1.created.find((c) => c.kind === 'encryption')!;
    let listing = await keyring.list();
    const stateOf = (id: string) => listing.ownKeys.find((k) => k.id === id)!.state;
    assert.equal(stateOf(secondEnc.id), 'current');
    assert.equal(stateOf(firstEnc!.id), 'valid');
    assert.equal(stateOf(firstRing!.id), 'valid');

    // The re-locked identity holds both subkeys under the same passphrase.
    const relocked = new Keyring(store, { clock: clock.now });
    await rejectsWith(relocked.own.unlock(), 'passphrase_required');
    const both = await relocked.own.unlock('pw');
    assert.deepEqual(both.subkeys.map((s) => s.getFingerprint()).sort(), [firstEnc!.id, secondEnc.id].sort());
    const firstSecret = subkeySecret(both, firstEnc!.id);

    // The public export carries only valid subkeys.
    const exported = await openpgp.readKey({ armoredKey: await keyring.own.exportPublic() });
    assert.deepEqual(exported.subkeys.map((s) => s.getFingerprint()).sort(), [firstEnc!.id, secondEnc.id].sort());

    clock.time = T0 + 14 * DAY_MS;
    const week2 = await keyring.own.rotate();
    assert.equal(week2.created.length, 2);
    assert.deepEqual(week2.destroyed, [], 'the first encryption subkey is in its grace period');
    listing = await keyring.list();
    assert.equal(stateOf(firstEnc!.id), 'grace');
    assert.equal(stateOf(firstRing!.id), 'grace');
    // In grace: still among the decryption keys and the acceptable ring keys.
    assert.ok(keyring.own.localParty().ringKeys.some((k) => toHex(k.public) === firstRing!.id));
    assert.equal(toHex(keyring.own.localParty().ringKeys[0]!.public), week2.created.find((c) => c.kind === 'ring')!.id, 'current first');

    clock.time = T0 + 17 * DAY_MS;
    const destroyDay = await keyring.own.rotate();
    assert.deepEqual(destroyDay.created, []);
    assert.deepEqual(destroyDay.destroyed, [{ kind: 'encryption', id: firstEnc!.id }]);
    const row = store.ownKey(firstEnc!.id)!;
    assert.equal(row.secret, null);
    assert.equal(row.destroyedAt, T0 + 17 * DAY_MS);
    const after17 = await new Keyring(store, { clock: clock.now }).own.unlock('pw');
    assert.ok(!after17.subkeys.some((s) => s.getFingerprint() === firstEnc!.id), 'the dropped subkey is gone from the identity');
    assert.equal(Buffer.from(after17.write()).indexOf(Buffer.from(firstSecret)), -1, 'its secret is not in the unlocked key');
    // The ring key past its acceptance is no longer offered to the engine, but its secret is kept.
    assert.ok(!keyring.own.localParty().ringKeys.some((k) => toHex(k.public) === firstRing!.id));
    assert.equal(store.ownKey(firstRing!.id)!.secret?.length, 32);

    clock.time = T0 + 21 * DAY_MS;
    const week3 = await keyring.own.rotate();
    assert.deepEqual(week3.publicationDue, [{ kind: 'ring', id: firstRing!.id }]);
    assert.ok(!week3.destroyed.some((d) => d.id === firstRing!.id), 'an unpublished ring secret is never destroyed');
    clock.time = T0 + 60 * DAY_MS;
    const late = await keyring.own.rotate();
    assert.ok(late.publicationDue.some((p) => p.id === firstRing!.id));
    assert.equal(store.ownKey(firstRing!.id)!.secret?.length, 32, 'still kept weeks later: publication comes first');
    listing = await keyring.list();
    assert.equal(stateOf(firstRing!.id), 'expired');
    assert.equal(listing.ownKeys.find((k) => k.id === firstRing!.id)!.publicationDue, true);

    // Once published (a later step of the protocol), the local copy goes.
    store.markPublished(firstRing!.id, clock.time);
    const afterPublication = await keyring.own.rotate();
    assert.ok(afterPublication.destroyed.some((d) => d.kind === 'ring' && d.id === firstRing!.id));
    assert.equal(store.ownKey(firstRing!.id)!.secret, null);
    listing = await keyring.list();
    assert.equal(stateOf(firstRing!.id), 'published');
    // After a long absence, fresh keys exist again and only they are current.
    const encStates = listing.ownKeys.filter((k) => k.kind === 'encryption').map((k) => k.state);
    assert.equal(encStates.filter((s) => s === 'current').length, 1);
    assert.ok(
      encStates.every((s) => s === 'current' || s === 'destroyed'),
      encStates.join(','),
    );
  });

  it('forgetting is real on disk: a destroyed subkey secret is in none of the database files', async () => {
    const clock = new Clock(T0);
    const { keyring, store, path } = openKeyring(clock);
    // Unprotected, so that the control can find the secret in the stored armor.
    await keyring.own.init({ email: 'dora@example.org' });
    const key = await keyring.own.unlock();
    const [enc] = store.ownKeys('encryption');
    const secret = subkeySecret(key, enc!.id);
    // The armored key is sealed under the account key (docs/PROTOCOL.md §17.1): never in clear.
    assert.deepEqual(traces(path, secret), [], 'the live secret is sealed');
    const sealed = sealedIdentity(path);
    assert.notDeepEqual(traces(path, sealed), [], 'control: the sealed key holding it is found in the files');
    clock.time = T0 + 17 * DAY_MS;
    const rotated = await keyring.own.rotate();
    assert.deepEqual(rotated.destroyed, [{ kind: 'encryption', id: enc!.id }]);
    assert.deepEqual(traces(path, sealed), [], 'while open');
    const [newEnc] = store.ownKeys('encryption').filter((k) => k.destroyedAt === null);
    const newSecret = subkeySecret(await keyring.own.unlock(), newEnc!.id);
    assert.deepEqual(traces(path, newSecret), [], 'the new secret is sealed too');
    assert.notDeepEqual(traces(path, sealedIdentity(path)), [], 'control: the new sealed key is found');
    store.close();
    assert.deepEqual(traces(path, sealed), [], 'after close');
  });
});

describe('Keyring: trust on first use', () => {
  it('pin-new, known, changed (alarm, nothing of it usable), trust accepts the new identity', async () => {
    const clock = new Clock(T0);
    const alice = openKeyring(clock);
    const bob = openKeyring(clock);
    const bob2 = openKeyring(clock);
    await alice.keyring.own.init({ email: 'alice@example.org' });
    await bob.keyring.own.init({ email: 'bob@example.org', name: 'Bob' });
    await bob2.keyring.own.init({ email: 'bob@example.org', name: 'Bob (new laptop)' });
    const bobFpr = (await bob.keyring.fingerprint()).fingerprint;
    const bob2Fpr = (await bob2.keyring.fingerprint()).fingerprint;

    // Bad input stores nothing.
    await rejectsWith(alice.keyring.correspondents.importPeer('garbage'), 'malformed');
    await rejectsWith(
      alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic(), { expectedAddress: 'carol@example.org' }),
      'address_mismatch',
    );
    await rejectsKeyring(alice.keyring.correspondents.importPeer(await alice.keyring.own.exportPublic()), 'own_identity');
    assert.deepEqual(alice.store.peers(), []);
    await rejectsKeyring(alice.keyring.correspondents.correspondent('bob@example.org'), 'unknown_peer');

    const pinned = await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic());
    assert.equal(pinned.status, 'pinned');
    assert.equal(pinned.address, 'bob@example.org');
    assert.equal(pinned.fingerprint, bobFpr);
    assert.equal(pinned.encryptionKeys.length, 1);
    assert.equal(alice.store.peer('bob@example.org')!.fingerprint, bobFpr);
    assert.equal(alice.store.peerKeys(bobFpr, 'encryption').length, 1);
    // The export carries Bob's ring key with its proof (§18.11): enough for a first mail.
    assert.deepEqual(
      pinned.ringKeys,
      bob.keyring.own.ringAdverts().map((a) => Buffer.from(a.public).toString('hex')),
    );
    assert.equal((await alice.keyring.correspondents.correspondent('bob@example.org')).party.ringKeys.length, 1);

    // Bob's ring keys also arrive in a mail's Offrecord-Keys header; a stranger's are refused.
    const learned = await alice.keyring.correspondents.learnRingKeys('bob@example.org', bob.keyring.own.ringAdverts());
    assert.equal(learned.accepted.length, 1);
    const foreign = await alice.keyring.correspondents.learnRingKeys('bob@example.org', bob2.keyring.own.ringAdverts());
    assert.equal(foreign.accepted.length, 0);
    assert.equal(foreign.rejected[0]?.code, 'bad_certification');
    const before = await alice.keyring.correspondents.correspondent('bob@example.org');
    assert.equal(toHex(before.party.fingerprint), bobFpr);
    assert.deepEqual(
      before.party.ringKeys.map(toHex),
      bob.keyring.own.ringAdverts().map((a) => toHex(a.public)),
    );

    // Known: Bob rotated, his new subkey is accepted (certified by the pinned identity).
    clock.advance(7 * DAY_MS);
    await bob.keyring.own.unlock();
    const rotated = await bob.keyring.own.rotate();
    const known = await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic());
    assert.equal(known.status, 'known');
    assert.ok(known.encryptionKeys.includes(rotated.created.find((c) => c.kind === 'encryption')!.id));
    assert.equal(alice.store.peerKeys(bobFpr, 'encryption').length, 2);

    // Changed: an alarm with both fingerprints; the pin stays; nothing of the new one is used.
    const changed = await alice.keyring.correspondents.importPeer(await bob2.keyring.own.exportPublic());
    assert.equal(changed.status, 'changed');
    assert.equal(changed.pinned, bobFpr);
    assert.ok(changed.warning!.includes(formatFingerprint(bobFpr)));
    assert.ok(changed.warning!.includes(formatFingerprint(bob2Fpr)));
    assert.ok(changed.warning!.includes(`offrecord keys trust bob@example.org --fingerprint ${bob2Fpr.toUpperCase()}`));
    const peer = alice.store.peer('bob@example.org')!;
    assert.equal(peer.fingerprint, bobFpr, 'the old pin stays');
    assert.equal(peer.pending?.fingerprint, bob2Fpr);
    assert.ok(changed.warning!.includes(`offrecord keys trust bob@example.org --fingerprint ${bobFpr.toUpperCase()}`), 'the way to reject');
    const alarm = await rejectsKeyring(alice.keyring.correspondents.correspondent('bob@example.org'), 'identity_changed');
    assert.match(alarm.details.warning!, /CHANGED/);
    // Reading goes on under the pinned identity; the new one's ring keys are not its.
    assert.equal(
      toHex((await alice.keyring.correspondents.correspondent('bob@example.org', { whilePending: true })).party.fingerprint),
      bobFpr,
    );
    assert.deepEqual((await alice.keyring.correspondents.learnRingKeys('bob@example.org', bob2.keyring.own.ringAdverts())).accepted, []);
    assert.deepEqual(alice.store.peerKeys(bob2Fpr), [], 'no key of the new identity is stored');
    // Seen again: held, no second alarm; the pending one stays.
    const again = await alice.keyring.correspondents.importPeer(await bob2.keyring.own.exportPublic());
    assert.deepEqual([again.status, again.pending, again.warning], ['held', bob2Fpr, undefined]);

    // Trust with a fingerprint that is neither: refused, both shown.
    const mismatch = await rejectsKeyring(alice.keyring.correspondents.trust('bob@example.org', 'AAAA'.repeat(10)), 'fingerprint_mismatch');
    assert.ok(mismatch.message.includes(formatFingerprint(bobFpr)));
    assert.ok(mismatch.message.includes(formatFingerprint(bob2Fpr)));
    assert.equal(alice.store.peer('bob@example.org')!.fingerprint, bobFpr);

    // Trust the new identity (spaces and case as GnuPG shows it): it replaces the pin.
    const trusted = await alice.keyring.correspondents.trust('bob@example.org', formatFingerprint(bob2Fpr));
    assert.deepEqual(trusted, { address: 'bob@example.org', fingerprint: bob2Fpr, replaced: bobFpr, discarded: null });
    const after = alice.store.peer('bob@example.org')!;
    assert.equal(after.fingerprint, bob2Fpr);
    assert.equal(after.verified, true);
    assert.equal(after.pending, null);
    assert.equal(alice.store.peerKeys(bob2Fpr, 'encryption').length, 1);
    await rejectsKeyring(alice.keyring.correspondents.correspondent('bob@example.org'), 'no_ring_key');
    await alice.keyring.correspondents.learnRingKeys('bob@example.org', bob2.keyring.own.ringAdverts());
    const now = await alice.keyring.correspondents.correspondent('bob@example.org');
    assert.equal(toHex(now.party.fingerprint), bob2Fpr);
    assert.equal(now.encryptionKey.getFingerprint(), bob2Fpr);
    // The old identity's ring keys are no longer offered.
    assert.ok(!now.party.ringKeys.some((k) => before.party.ringKeys.some((o) => toHex(o) === toHex(k))));

    // Verifying the pinned fingerprint marks it verified; a later change to the old key is again an alarm.
    await alice.keyring.correspondents.trust('bob@example.org', bob2Fpr);
    const back = await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic());
    assert.equal(back.status, 'changed');
    // Confirming the pinned one rejects the pending change: seen again, it is no alarm.
    const kept = await alice.keyring.correspondents.trust('bob@example.org', bob2Fpr);
    assert.equal(kept.discarded, bobFpr);
    assert.equal(alice.store.peer('bob@example.org')!.pending, null);
    assert.equal((await alice.keyring.fingerprint('bob@example.org')).fingerprint, bob2Fpr);
    assert.equal(typeof alice.store.rejectedAt('bob@example.org', bobFpr), 'number');
    const rejected = await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic(), { fromMail: true });
    assert.deepEqual([rejected.status, rejected.warning], ['rejected', undefined]);
    assert.equal(alice.store.peer('bob@example.org')!.pending, null);
    // The user importing it asks again: the way back from a mistaken rejection.
    assert.equal((await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic())).status, 'changed');
  });

  // Two normalizeAddress functions disagreed on a blank address: the keys layer's gave '', the
  // store's threw a TypeError, so `keys fingerprint ' '` ended in an uncoded error. There is one
  // now, total; whoever needs an address refuses a blank one with its own error.
  it('one normalizeAddress: a blank or differently written address is the same for keys and store', async () => {
    assert.equal(normalizeAddress('  Bob@Example.ORG \t'), 'bob@example.org');
    assert.equal(normalizeAddress('   '), '');
    const clock = new Clock(T0);
    const alice = openKeyring(clock);
    const bob = openKeyring(clock);
    await alice.keyring.own.init({ email: 'alice@example.org' });
    await bob.keyring.own.init({ email: 'bob@example.org' });
    await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic());
    assert.equal((await alice.keyring.fingerprint(' BOB@example.org ')).address, 'bob@example.org');
    assert.equal((await alice.keyring.correspondents.correspondent('Bob@Example.org')).address, 'bob@example.org');
    assert.equal((await alice.keyring.fingerprint(' Alice@EXAMPLE.org')).own, true);
    for (const blank of ['', '   ']) {
      await rejectsKeyring(alice.keyring.fingerprint(blank), 'unknown_peer');
      await rejectsKeyring(alice.keyring.correspondents.correspondent(blank), 'unknown_peer');
      await rejectsKeyring(alice.keyring.correspondents.trust(blank, '00'.repeat(20)), 'unknown_peer');
      assert.throws(
        () => alice.store.pinPeer({ address: blank, fingerprint: '00'.repeat(20), certificate: 'x' }),
        /address must not be empty/,
      );
    }
  });
});

describe('Keyring: from keys to the engine', () => {
  it('Alice and Bob, each with a store of their own, exchange first mail, reply and data', async () => {
    // OpenPGP seals and opens at the real time, so this runs near the wall clock.
    const env = new TestEnv(Date.now());
    const clock = { now: () => env.time };
    const setUp = async (email: string, passphrase: string) => {
      const store = openAccountStore(tempPath(), { passphrase: null, clock: clock.now });
      stores.push(store);
      const keyring = new Keyring(store, { clock: clock.now });
      await keyring.own.init({ email, passphrase });
      return { store, keyring };
    };
    const alice = await setUp('alice@example.org', 'alice pw');
    const bob = await setUp('bob@example.org', 'bob pw');
    // They exchange certificates (keys export / keys import) and ring keys (mail headers).
    assert.equal((await alice.keyring.correspondents.importPeer(await bob.keyring.own.exportPublic())).status, 'pinned');
    assert.equal((await bob.keyring.correspondents.importPeer(await alice.keyring.own.exportPublic())).status, 'pinned');
    await alice.keyring.correspondents.learnRingKeys('bob@example.org', bob.keyring.own.ringAdverts());
    await bob.keyring.correspondents.learnRingKeys('alice@example.org', alice.keyring.own.ringAdverts());

    // Bob rotates early: Alice still has only his first subkey, which Bob can still open.
    env.advance(60_000);
    await bob.keyring.own.unlock('bob pw');
    const bobRotation = await bob.keyring.own.rotate({ force: true });
    assert.equal(bobRotation.created.length, 2);

    // One Conversation per mail, as the mail pipeline will build it: the receiver first learns
    // the sender's ring keys from the mail's Offrecord-Keys header.
    const conversation = async (side: typeof alice, peer: string, passphrase: string) => {
      const key = await side.keyring.own.unlock(passphrase);
      await side.keyring.own.rotate(); // opportunistic, as the CLI does
      const { party, encryptionKey } = await side.keyring.correspondents.correspondent(peer);
      return new Conversation({
        store: side.store,
        parties: { local: side.keyring.own.localParty(), peer: party },
        peerEncryptionKey: encryptionKey,
        sealer: await side.keyring.own.sealer(key),
        env,
      });
    };
    const sides = {
      alice: { side: alice, address: 'alice@example.org', passphrase: 'alice pw' },
      bob: { side: bob, address: 'bob@example.org', passphrase: 'bob pw' },
    };
    const exchange = async (fromName: 'alice' | 'bob', body: string) => {
      const from = sides[fromName];
      const to = sides[fromName === 'alice' ? 'bob' : 'alice'];
      env.advance(1000);
      const sent = await (await conversation(from.side, to.address, from.passphrase)).send(text(body));
      assert.equal(sent.kind, 'encrypted', sent.kind === 'error' ? sent.message : '');
      const headers = from.side.keyring.own.ringAdverts();
      await to.side.keyring.correspondents.learnRingKeys(from.address, headers);
      const got = await (
        await conversation(to.side, from.address, to.passphrase)
      ).receive(sent.kind === 'encrypted' ? sent.message : new Uint8Array());
      assert.equal(got.kind, 'plaintext', got.kind === 'error' ? `${got.code}: ${got.message}` : got.kind);
      assert.equal(got.kind === 'plaintext' && str(got.plaintext), body);
      return sent.kind === 'encrypted' ? sent.message : new Uint8Array();
    };

    const first = await exchange('alice', 'hello Bob');
    assert.equal(peekType(first), MessageType.First);
    assert.equal(peekType(await exchange('bob', 'hi Alice')), MessageType.Reply);
    assert.equal(peekType(await exchange('alice', 'data 1')), MessageType.Data);
    assert.equal(peekType(await exchange('bob', 'data 2')), MessageType.Data);
    assert.equal(peekType(await exchange('alice', 'data 3')), MessageType.Data);
    const a = await conversation(alice, 'bob@example.org', 'alice pw');
    const state = await a.state();
    assert.equal(state?.kind, 'established');
    // The session state is in the same account store as the keys.
    assert.equal(alice.store.sessions(toHex(alice.keyring.own.localParty().fingerprint)).length, 1);
  });

  it('the sealer leaves out subkeys past their grace even before rotate runs', async () => {
    const clock = new Clock(T0);
    const { keyring } = openKeyring(clock);
    await keyring.own.init({ email: 'erin@example.org' });
    const key = await keyring.own.unlock();
    assert.ok(key.subkeys.length === 1);
    clock.time = T0 + 18 * DAY_MS;
    const sealer = await keyring.own.sealer(key);
    const keys = (sealer as unknown as { decryptionKeys: openpgp.PrivateKey[] }).decryptionKeys;
    assert.equal(keys[0]!.subkeys.length, 0);
    assert.equal(key.subkeys.length, 1, 'the unlocked key itself is untouched');
  });
});

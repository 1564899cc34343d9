import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { StoreError, type NewOwnKey } from '../../src/store/index.ts';
import { openTemp } from './helpers.ts';

const FP_A = 'a'.repeat(40);
const FP_B = 'b'.repeat(40);
const FP_C = 'c'.repeat(64); // a v6 fingerprint
const bytes = (n: number) => new Uint8Array(randomBytes(n));

function storeError(code: StoreError['code']) {
  return (error: unknown) => error instanceof StoreError && error.code === code;
}

function ownKey(id: string, kind: 'encryption' | 'ring', notBefore: number): NewOwnKey {
  return {
    id,
    kind,
    public: bytes(32),
    secret: bytes(32),
    created: notBefore - 5,
    notBefore,
    notAfter: notBefore + 1000,
    certification: bytes(64),
  };
}

describe('identity', () => {
  it('stores one identity and replaces it', () => {
    const { store } = openTemp();
    assert.equal(store.identity(), null);
    store.setIdentity({ fingerprint: FP_A.toUpperCase(), secretKey: 'ARMORED SECRET 1', certificate: 'CERT', created: 10 });
    assert.deepEqual(store.identity(), { fingerprint: FP_A, secretKey: 'ARMORED SECRET 1', certificate: 'CERT', created: 10 });
    store.setIdentity({ fingerprint: FP_A, secretKey: 'ARMORED SECRET 2', certificate: 'CERT', created: 10 });
    assert.equal(store.identity()?.secretKey, 'ARMORED SECRET 2');
    assert.throws(() => store.setIdentity({ fingerprint: 'xyz', secretKey: '', certificate: '', created: 1 }), TypeError);
    assert.throws(() => store.setIdentity({ fingerprint: 'abcd', secretKey: '', certificate: '', created: 1 }), storeError('constraint'));
    store.close();
  });
});

describe('own short-lived keys', () => {
  it('put, get, list by kind in validity order', () => {
    const { store } = openTemp();
    const e2 = ownKey('e2', 'encryption', 200);
    const e1 = ownKey('E1', 'encryption', 100);
    const r1 = ownKey('01', 'ring', 150);
    for (const k of [e2, e1, r1]) store.putOwnKey(k);
    const got = store.ownKey('e1');
    assert.deepEqual(got, { ...e1, id: 'e1', destroyedAt: null, publishedAt: null });
    assert.deepEqual(
      store.ownKeys().map((k) => k.id),
      ['e1', '01', 'e2'],
    );
    assert.deepEqual(
      store.ownKeys('encryption').map((k) => k.id),
      ['e1', 'e2'],
    );
    assert.deepEqual(
      store.ownKeys('ring').map((k) => k.id),
      ['01'],
    );
    assert.equal(store.ownKey('ff'), null);
    assert.throws(() => store.putOwnKey(e1), storeError('constraint'), 'duplicate id');
    assert.throws(() => store.putOwnKey({ ...ownKey('aa', 'encryption', 1), kind: 'other' as 'ring' }), storeError('constraint'));
    store.close();
  });

  it('destroys a secret once and marks publication once', () => {
    const { store } = openTemp({ clock: () => 777 });
    store.putOwnKey(ownKey('e1', 'encryption', 100));
    store.putOwnKey(ownKey('a1', 'ring', 100));
    assert.equal(store.destroyOwnKeySecret('e1'), true);
    assert.equal(store.destroyOwnKeySecret('e1'), false);
    assert.equal(store.destroyOwnKeySecret('99'), false);
    const destroyed = store.ownKey('e1')!;
    assert.equal(destroyed.secret, null);
    assert.equal(destroyed.destroyedAt, 777);
    assert.equal(store.markPublished('a1', 900), true);
    assert.equal(store.markPublished('a1', 901), false);
    const published = store.ownKey('a1')!;
    assert.equal(published.publishedAt, 900);
    assert.ok(published.secret instanceof Uint8Array, 'a published ring secret stays: it is public now');
    assert.equal(store.deleteOwnKey('a1'), true);
    assert.equal(store.ownKey('a1'), null);
    store.close();
  });
});

describe('peers and TOFU pins', () => {
  it('pins on first use, by lowercased address, and never silently re-pins', () => {
    const { store } = openTemp({ clock: () => 50 });
    assert.equal(store.peer('bob@example.org'), null);
    assert.equal(store.pinPeer({ address: ' Bob@Example.ORG', fingerprint: FP_B, certificate: 'CERT B' }), true);
    const pinned = store.peer('BOB@example.org');
    assert.deepEqual(pinned, {
      address: 'bob@example.org',
      fingerprint: FP_B,
      certificate: 'CERT B',
      firstSeen: 50,
      verified: false,
      pending: null,
    });
    assert.equal(store.pinPeer({ address: 'bob@example.org', fingerprint: FP_C, certificate: 'OTHER' }), false);
    assert.equal(store.peer('bob@example.org')?.fingerprint, FP_B);
    assert.equal(store.setPeerVerified('bob@example.org', true), true);
    assert.equal(store.peer('bob@example.org')?.verified, true);
    assert.equal(store.updatePeerCertificate('bob@example.org', FP_B, 'CERT B2'), true);
    assert.equal(store.updatePeerCertificate('bob@example.org', FP_C, 'CERT C'), false, 'another identity is not a refresh');
    assert.equal(store.peer('bob@example.org')?.certificate, 'CERT B2');
    store.pinPeer({ address: 'bob@work.example', fingerprint: FP_B, certificate: 'CERT B', firstSeen: 3, verified: true });
    assert.deepEqual(
      store.peers(FP_B).map((p) => p.address),
      ['bob@example.org', 'bob@work.example'],
    );
    assert.equal(store.peers().length, 2);
    store.close();
  });

  it('a changed identity waits as pending until accepted or rejected', () => {
    const { store } = openTemp({ clock: () => 60 });
    store.pinPeer({ address: 'bob@example.org', fingerprint: FP_B, certificate: 'CERT B', firstSeen: 1, verified: true });
    assert.equal(store.setPending('nobody@example.org', { fingerprint: FP_C, certificate: 'C' }), false, 'not pinned');
    assert.equal(store.setPending('bob@example.org', { fingerprint: FP_B, certificate: 'B' }), false, 'same identity');
    assert.equal(store.setPending('bob@example.org', { fingerprint: FP_C, certificate: 'CERT C' }), true);
    assert.deepEqual(store.peer('bob@example.org')?.pending, { fingerprint: FP_C, certificate: 'CERT C', seenAt: 60 });
    assert.equal(store.peer('bob@example.org')?.fingerprint, FP_B, 'the pin holds until the user decides');
    assert.equal(store.rejectPending('bob@example.org'), true);
    assert.equal(store.rejectPending('bob@example.org'), false);
    assert.equal(store.peer('bob@example.org')?.pending, null);
    store.setPending('bob@example.org', { fingerprint: FP_C, certificate: 'CERT C', seenAt: 70 });
    assert.equal(store.acceptPending('bob@example.org'), true);
    assert.deepEqual(store.peer('bob@example.org'), {
      address: 'bob@example.org',
      fingerprint: FP_C,
      certificate: 'CERT C',
      firstSeen: 70,
      verified: false,
      pending: null,
    });
    assert.equal(store.acceptPending('bob@example.org'), false);
    assert.equal(store.deletePeer('bob@example.org'), true);
    assert.equal(store.peer('bob@example.org'), null);
    store.close();
  });
});

describe('peer keys', () => {
  it('are unique per (fingerprint, kind, public), listed by kind, and expire', () => {
    const { store } = openTemp({ clock: () => 5 });
    const pub = bytes(32);
    const key = { fingerprint: FP_A, kind: 'ring' as const, public: pub, notBefore: 10, notAfter: 20, certification: bytes(64) };
    assert.equal(store.putPeerKey(key), true);
    assert.equal(store.putPeerKey({ ...key, certification: bytes(64) }), false);
    assert.equal(store.putPeerKey({ ...key, kind: 'encryption', notBefore: 5, notAfter: 30 }), true);
    assert.equal(store.putPeerKey({ ...key, fingerprint: FP_B }), true);
    assert.deepEqual(
      store.peerKeys(FP_A.toUpperCase()).map((k) => k.kind),
      ['encryption', 'ring'],
    );
    const [ring] = store.peerKeys(FP_A, 'ring');
    assert.deepEqual(ring, { ...key, seenAt: 5 });
    assert.equal(store.expirePeerKeys(25), 2);
    assert.deepEqual(
      store.peerKeys(FP_A).map((k) => k.kind),
      ['encryption'],
    );
    store.close();
  });
});

describe('mail pipeline records', () => {
  it('checkpoints per mailbox and processed mail by UID or Message-ID', () => {
    const { store } = openTemp({ clock: () => 1000 });
    assert.equal(store.checkpoint('INBOX'), null);
    store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 3, lastUid: 10 });
    store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 3, lastUid: 12 });
    assert.deepEqual(store.checkpoint('INBOX'), { mailbox: 'INBOX', uidvalidity: 3, lastUid: 12, updatedAt: 1000 });
    assert.throws(() => store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 0, lastUid: 1 }), TypeError);
    const ref = { mailbox: 'INBOX', id: '3:12', epoch: '3' };
    assert.equal(store.markProcessed({ ...ref, messageId: '<a@b>' }), true);
    assert.equal(store.markProcessed({ ...ref, messageId: '<a@b>' }), false);
    assert.equal(store.markProcessed({ mailbox: 'INBOX', id: '4:2', epoch: '4', messageId: '<a@b>', processedAt: 500 }), true);
    assert.equal(store.markProcessed({ mailbox: 'Archive', id: '1:4', epoch: '1', messageId: '<a@b>', processedAt: 500 }), true);
    assert.deepEqual(store.processed(ref), { ...ref, messageId: '<a@b>', processedAt: 1000 });
    assert.equal(store.processed({ mailbox: 'INBOX', id: '4:12' }), null, 'a new UIDVALIDITY is a new mail');
    assert.deepEqual(
      store.processedByMessageId('INBOX', '<a@b>').map((p) => p.id),
      ['4:2', '3:12'],
    );
    assert.equal(store.pruneProcessed(600), 2);
    assert.deepEqual(
      store.processedByMessageId('INBOX', '<a@b>').map((p) => p.id),
      ['3:12'],
    );
    assert.throws(() => store.markProcessed({ mailbox: 'INBOX', id: '', epoch: '' }), TypeError);
    store.close();
  });
});

describe('the plaintext outbox', () => {
  it('keeps deliveries oldest first until each is done', () => {
    const { store } = openTemp();
    const delivery = (id: string, receivedAt: number) => ({
      id: id.repeat(32),
      sender: 'bob@example.org',
      fingerprint: FP_B,
      verified: true,
      message: new TextEncoder().encode(`hi ${id}`),
      receivedAt,
    });
    store.addDelivery(delivery('b', 2));
    store.addDelivery(delivery('a', 3));
    assert.deepEqual(store.deliveries(), [delivery('b', 2), delivery('a', 3)]);
    assert.throws(() => store.addDelivery(delivery('a', 4)), storeError('constraint'));
    assert.equal(store.deliveryDone('b'.repeat(32)), true);
    assert.equal(store.deliveryDone('b'.repeat(32)), false);
    assert.deepEqual(
      store.deliveries().map((d) => d.receivedAt),
      [3],
    );
    store.close();
  });
});

describe('record versions', () => {
  it('a row written by a newer offrecord is refused as too_new, a broken one as corrupt', () => {
    const { store, path } = openTemp();
    store.pinPeer({ address: 'bob@example.org', fingerprint: FP_B, certificate: 'B' });
    store.putOwnKey(ownKey('e1', 'encryption', 1));
    const raw = new Database(path);
    raw.exec('UPDATE peers SET v = 2; UPDATE own_keys SET v = 0');
    raw.close();
    assert.throws(
      () => store.peer('bob@example.org'),
      (e: unknown) => storeError('too_new')(e) && /peer bob@example.org: record version 2/.test((e as Error).message),
    );
    assert.throws(() => store.ownKeys(), storeError('corrupt'));
    store.close();
  });
});

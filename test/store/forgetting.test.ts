// Forgetting is real: after a key is destroyed or a state drops a secret, its bytes are in
// none of the database's files (main, -wal, -shm), whether the store is open or closed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { initiate } from '../../src/protocol/session.ts';
import type { EstablishedState, InitiatingState } from '../../src/protocol/state.ts';
import { openAccountStore } from '../../src/store/index.ts';
import { TestEnv } from '../helpers/parties.ts';
import { establishedState, filesContaining, tempDb } from './helpers.ts';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/** Every form in which a secret could be stored: raw bytes (BLOB) and base64 (JSON). */
function traces(path: string, secret: Uint8Array): string[] {
  return [...filesContaining(path, secret).map((f) => `raw in ${f}`), ...filesContaining(path, b64(secret)).map((f) => `base64 in ${f}`)];
}

describe('forgetting', () => {
  it('control: without secure_delete SQLite leaves a deleted secret in the file (the scan can see it)', () => {
    const path = tempDb();
    const secret = new Uint8Array(randomBytes(32));
    const db = new Database(path);
    db.pragma('secure_delete = OFF');
    db.exec('CREATE TABLE k (id INTEGER PRIMARY KEY, secret BLOB, pad TEXT)');
    db.prepare('INSERT INTO k VALUES (1, ?, ?)').run(Buffer.from(secret), 'x'.repeat(100));
    db.prepare('INSERT INTO k VALUES (2, ?, ?)').run(randomBytes(32), 'y'.repeat(100));
    db.prepare('DELETE FROM k WHERE id = 1').run();
    db.close();
    assert.deepEqual(traces(path, secret), ['raw in main'], 'the scan should find the lingering secret');
  });

  it('a destroyed own key secret is in no file, open or closed', () => {
    const path = tempDb();
    const store = openAccountStore(path);
    const secret = new Uint8Array(randomBytes(32));
    const other = new Uint8Array(randomBytes(32));
    const key = { kind: 'encryption' as const, public: new Uint8Array(randomBytes(32)), created: 1, notBefore: 1, notAfter: 2, certification: new Uint8Array(64) };
    store.putOwnKey({ ...key, id: '0a', secret });
    store.putOwnKey({ ...key, id: '0b', secret: other, public: new Uint8Array(randomBytes(32)) });
    assert.notDeepEqual(traces(path, secret), [], 'control: the stored secret is found');
    assert.equal(store.destroyOwnKeySecret('0a'), true);
    assert.deepEqual(traces(path, secret), [], 'while open');
    assert.notDeepEqual(traces(path, other), [], 'the other key is still there');
    store.close();
    assert.deepEqual(traces(path, secret), [], 'after close');
  });

  it('a DH secret an old session state held is in no file after a save without it', async () => {
    const path = tempDb();
    const store = openAccountStore(path);
    const env = new TestEnv();
    const state = initiate(env);
    const secret = Uint8Array.from(state.ours.first.secret);
    await store.save('alice', 'bob', state, 0);
    assert.deepEqual(traces(path, secret), ['base64 in main'], 'control: found (checkpointed into the main file)');
    // Forgetting, as the engine does it: x1 is gone, x2 moves up, a fresh key comes next.
    const forgot: InitiatingState = { ...state, ours: { first: state.ours.next, next: { id: 3, ...env.newDhKey() } } };
    await store.save('alice', 'bob', forgot, 1);
    assert.deepEqual(traces(path, secret), [], 'while open');
    store.close();
    assert.deepEqual(traces(path, secret), [], 'after close');
  });

  it('a large state (overflow pages): its old plaintext copy and DH secrets are in no file after they are dropped', async () => {
    const path = tempDb();
    const store = openAccountStore(path);
    const established = await establishedState();
    const plaintext = new Uint8Array(randomBytes(20_000)); // spills over several pages
    const big: EstablishedState = { ...established, lastSent: { payload: plaintext, sentAt: 1, sentAs: { senderKeyId: 1, recipientKeyId: 1, counter: 1 } } };
    const retiredSecret = Uint8Array.from(big.keys.ours.sending.secret);
    await store.save('alice', 'bob', big, 0);
    const marker = plaintext.subarray(6000, 6048); // base64 of an aligned slice appears inside the whole one
    const markerB64 = b64(marker);
    assert.ok(filesContaining(path, markerB64).length > 0, 'control: the plaintext copy is stored');
    const smaller: EstablishedState = {
      ...big,
      lastSent: null,
      keys: { ...big.keys, ours: { ...big.keys.ours, sending: big.keys.ours.next, next: { id: 99, ...new TestEnv().newDhKey() } } },
    };
    await store.save('alice', 'bob', smaller, 1);
    assert.deepEqual(filesContaining(path, markerB64), [], 'plaintext copy while open');
    assert.deepEqual(traces(path, retiredSecret), [], 'DH secret while open');
    store.close();
    assert.deepEqual(filesContaining(path, markerB64), [], 'plaintext copy after close');
    assert.deepEqual(traces(path, retiredSecret), [], 'DH secret after close');
  });

  it('without the checkpoint the WAL would keep the old state: forget() is what clears it', async () => {
    const path = tempDb();
    const store = openAccountStore(path, { checkpointAfterSave: false });
    const env = new TestEnv();
    const state = initiate(env);
    const secret = Uint8Array.from(state.ours.first.secret);
    await store.save('alice', 'bob', state, 0);
    await store.save('alice', 'bob', { ...state, ours: { first: state.ours.next, next: { id: 3, ...env.newDhKey() } } }, 1);
    assert.deepEqual(traces(path, secret), ['base64 in -wal'], 'the old page image lingers in the WAL');
    assert.equal(store.forget(), true);
    assert.deepEqual(traces(path, secret), []);
    store.close();
    assert.deepEqual(traces(path, secret), []);
  });

  it('a deleted session and a replaced identity secret key are in no file', async () => {
    const path = tempDb();
    const store = openAccountStore(path);
    const state = initiate(new TestEnv());
    const secret = Uint8Array.from(state.ours.next.secret);
    await store.save('alice', 'bob', state, 0);
    const armored = `-----BEGIN PGP PRIVATE KEY BLOCK-----\n${randomBytes(300).toString('base64')}\n-----END PGP PRIVATE KEY BLOCK-----`;
    store.setIdentity({ fingerprint: 'ab'.repeat(20), secretKey: armored, certificate: 'C', created: 1 });
    store.setIdentity({ fingerprint: 'ab'.repeat(20), secretKey: 'RE-ENCRYPTED', certificate: 'C', created: 1 });
    assert.equal(store.deleteSession('alice', 'bob'), true);
    assert.deepEqual(traces(path, secret), []);
    assert.deepEqual(filesContaining(path, armored), []);
    store.close();
    assert.deepEqual(traces(path, secret), []);
    assert.deepEqual(filesContaining(path, armored), []);
  });
});

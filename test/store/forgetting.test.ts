// Forgetting is real: after a key is destroyed or a state drops a secret, its bytes are in
// none of the database's files (main, -wal, -shm), whether the store is open or closed. Secrets
// are sealed under the account key (docs/PROTOCOL.md §17.1), so they are never there in clear;
// what forgetting removes is their sealed form, which the passphrase would open.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { initiate } from '../../src/protocol/session.ts';
import type { EstablishedState, InitiatingState } from '../../src/protocol/state.ts';
import { openAccountStore } from '../../src/store/index.ts';
import { TestEnv } from '../../kit/parties.ts';
import { establishedState, filesContaining, tempDb } from './helpers.ts';

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');

/** Every form in which a secret could be stored: raw bytes (BLOB) and base64 (JSON). */
function traces(path: string, secret: Uint8Array): string[] {
  return [...filesContaining(path, secret).map((f) => `raw in ${f}`), ...filesContaining(path, b64(secret)).map((f) => `base64 in ${f}`)];
}

/** A stored cell as it is in the file (sealed), read over a connection of its own. */
function cell(path: string, sql: string): Buffer {
  const db = new Database(path, { readonly: true });
  try {
    return Buffer.from((db.prepare(sql).pluck().get() as Buffer | undefined) ?? Buffer.alloc(0));
  } finally {
    db.close();
  }
}

/** 48 bytes from the middle of a sealed value: found only where that value is. */
const middle = (sealed: Buffer) => sealed.subarray(Math.floor(sealed.length / 2) - 24, Math.floor(sealed.length / 2) + 24);

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
    const store = openAccountStore(path, { passphrase: null });
    const secret = new Uint8Array(randomBytes(32));
    const other = new Uint8Array(randomBytes(32));
    const key = {
      kind: 'encryption' as const,
      public: new Uint8Array(randomBytes(32)),
      created: 1,
      notBefore: 1,
      notAfter: 2,
      certification: new Uint8Array(64),
    };
    store.putOwnKey({ ...key, id: '0a', secret });
    store.putOwnKey({ ...key, id: '0b', secret: other, public: new Uint8Array(randomBytes(32)) });
    assert.deepEqual([...traces(path, secret), ...traces(path, other)], [], 'sealed: never in clear');
    const sealed = cell(path, "SELECT secret FROM own_keys WHERE id = '0a'");
    const otherSealed = cell(path, "SELECT secret FROM own_keys WHERE id = '0b'");
    assert.notDeepEqual(filesContaining(path, sealed), [], 'control: the stored secret is found');
    assert.equal(store.destroyOwnKeySecret('0a'), true);
    assert.deepEqual(filesContaining(path, sealed), [], 'while open');
    assert.notDeepEqual(filesContaining(path, otherSealed), [], 'the other key is still there');
    store.close();
    assert.deepEqual(filesContaining(path, sealed), [], 'after close');
  });

  it('a DH secret an old session state held is in no file after a save without it', async () => {
    const path = tempDb();
    const store = openAccountStore(path, { passphrase: null });
    const env = new TestEnv();
    const state = initiate(env);
    const secret = Uint8Array.from(state.ours.first.secret);
    await store.save('alice', 'bob', state, 0);
    assert.deepEqual(traces(path, secret), [], 'sealed: never in clear');
    const sealed = middle(cell(path, 'SELECT state FROM sessions'));
    assert.deepEqual(filesContaining(path, sealed), ['main'], 'control: found (checkpointed into the main file)');
    // Forgetting, as the engine does it: x1 is gone, x2 moves up, a fresh key comes next.
    const forgot: InitiatingState = { ...state, ours: { first: state.ours.next, next: { id: 3, ...env.newDhKey() } } };
    await store.save('alice', 'bob', forgot, 1);
    assert.deepEqual(filesContaining(path, sealed), [], 'while open');
    store.close();
    assert.deepEqual(filesContaining(path, sealed), [], 'after close');
  });

  it('a large state (overflow pages): its old plaintext copy and DH secrets are in no file after they are dropped', async () => {
    const path = tempDb();
    const store = openAccountStore(path, { passphrase: null });
    const established = await establishedState();
    const plaintext = new Uint8Array(randomBytes(20_000)); // spills over several pages
    const big: EstablishedState = {
      ...established,
      lastSent: { payload: plaintext, sentAt: 1, sentAs: { senderKeyId: 1, recipientKeyId: 1, counter: 1 } },
    };
    const retiredSecret = Uint8Array.from(big.keys.ours.sending.secret);
    await store.save('alice', 'bob', big, 0);
    const marker = plaintext.subarray(6000, 6048); // base64 of an aligned slice appears inside the whole one
    assert.deepEqual([...traces(path, marker), ...traces(path, retiredSecret)], [], 'sealed: never in clear');
    const markerB64 = middle(cell(path, 'SELECT state FROM sessions')); // the sealed state, from an overflow page
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
    const store = openAccountStore(path, { passphrase: null, checkpointAfterSave: false });
    const env = new TestEnv();
    const state = initiate(env);
    const secret = Uint8Array.from(state.ours.first.secret);
    await store.save('alice', 'bob', state, 0);
    const sealed = middle(cell(path, 'SELECT state FROM sessions'));
    await store.save('alice', 'bob', { ...state, ours: { first: state.ours.next, next: { id: 3, ...env.newDhKey() } } }, 1);
    assert.deepEqual(traces(path, secret), [], 'sealed: never in clear');
    assert.deepEqual(filesContaining(path, sealed), ['-wal'], 'the old page image lingers in the WAL');
    assert.equal(store.forget(), true);
    assert.deepEqual(filesContaining(path, sealed), []);
    store.close();
    assert.deepEqual(filesContaining(path, sealed), []);
  });

  it('a deleted session and a replaced identity secret key are in no file', async () => {
    const path = tempDb();
    const store = openAccountStore(path, { passphrase: null });
    const state = initiate(new TestEnv());
    const secret = Uint8Array.from(state.ours.next.secret);
    await store.save('alice', 'bob', state, 0);
    const sealedState = middle(cell(path, 'SELECT state FROM sessions'));
    const armored = `-----BEGIN PGP PRIVATE KEY BLOCK-----\n${randomBytes(300).toString('base64')}\n-----END PGP PRIVATE KEY BLOCK-----`;
    store.setIdentity({ fingerprint: 'ab'.repeat(20), secretKey: armored, certificate: 'C', created: 1 });
    const sealedIdentity = middle(cell(path, 'SELECT secret_key FROM identity'));
    assert.deepEqual([...traces(path, secret), ...filesContaining(path, armored)], [], 'sealed: never in clear');
    store.setIdentity({ fingerprint: 'ab'.repeat(20), secretKey: 'RE-ENCRYPTED', certificate: 'C', created: 1 });
    assert.equal(store.deleteSession('alice', 'bob'), true);
    assert.deepEqual(filesContaining(path, sealedState), []);
    assert.deepEqual(filesContaining(path, sealedIdentity), []);
    store.close();
    assert.deepEqual(filesContaining(path, sealedState), []);
    assert.deepEqual(filesContaining(path, sealedIdentity), []);
  });
});

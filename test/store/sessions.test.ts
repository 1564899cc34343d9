import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { initiate } from '../../src/protocol/session.ts';
import { PLACES } from '../../src/store/schema.ts';
import type { AccountKey } from '../../src/store/vault.ts';
import { openAccountStore, StoreError } from '../../src/store/index.ts';
import { assertExchange, sent, str, TestEnv, text } from '../../kit/parties.ts';
import { establishedState, openTemp, storeConversationPair } from './helpers.ts';

const conflict = (error: unknown) => error instanceof ProtocolError && error.code === 'state_conflict';

describe('sessions: the SessionStore contract', () => {
  it('round-trips a real session state through save and load', async () => {
    const { store } = openTemp();
    const initiating = initiate(new TestEnv());
    assert.equal(await store.load('alice', 'bob'), null);
    assert.equal(await store.save('alice', 'bob', initiating, 0), 1);
    assert.deepEqual(await store.load('alice', 'bob'), { state: initiating, revision: 1 });
    const established = await establishedState();
    assert.equal(await store.save('alice', 'bob', established, 1), 2);
    const loaded = await store.load('alice', 'bob');
    assert.deepEqual(loaded, { state: established, revision: 2 });
    // A loaded state is a copy: changing it does not change what is stored.
    if (loaded?.state.kind === 'established') loaded.state.keys.ours.sending.secret.fill(0);
    assert.deepEqual((await store.load('alice', 'bob'))?.state, established);
    store.close();
  });

  it('increments the revision on every save and keeps sessions apart', async () => {
    const { store } = openTemp();
    const state = initiate(new TestEnv());
    for (let expected = 0; expected < 5; expected++) assert.equal(await store.save('alice', 'bob', state, expected), expected + 1);
    assert.equal(await store.save('alice', 'carol', state, 0), 1);
    assert.equal(await store.save('dave', 'bob', state, 0), 1);
    assert.deepEqual(
      store.sessions('alice').map((s) => [s.peer, s.revision]),
      [
        ['bob', 5],
        ['carol', 1],
      ],
    );
    store.close();
  });

  it('compare-and-swap: a save from a stale revision is a state_conflict and changes nothing', async () => {
    const { store } = openTemp();
    const a = initiate(new TestEnv());
    const b = initiate(new TestEnv());
    await store.save('alice', 'bob', a, 0);
    await assert.rejects(store.save('alice', 'bob', b, 0), conflict, 'expected 0 but a session exists');
    await store.save('alice', 'bob', a, 1);
    await assert.rejects(store.save('alice', 'bob', b, 1), conflict, 'stale');
    await assert.rejects(store.save('alice', 'bob', b, 3), conflict, 'from the future');
    await assert.rejects(store.save('alice', 'carol', b, 1), conflict, 'no session yet');
    assert.deepEqual(await store.load('alice', 'bob'), { state: a, revision: 2 });
    assert.equal(await store.load('alice', 'carol'), null);
    assert.throws(() => store.saveSession('alice', 'bob', a, -1), TypeError);
    store.close();
  });

  it('a corrupted record is a clear corrupt error; a newer record version is too_new', async () => {
    const { store, path } = openTemp();
    await store.save('alice', 'bob', initiate(new TestEnv()), 0);
    const raw = new Database(path);
    const update = raw.prepare("UPDATE sessions SET state = ? WHERE local = 'alice' AND peer = 'bob'");
    // Sealed as the store seals, so what is tested is the record inside.
    const key = (store as unknown as { key: AccountKey }).key;
    const put = (json: string) => update.run(key.seal(PLACES.session('alice', 'bob', 1), Buffer.from(json)));
    put('{"v":1,"state":{"kind":"initi');
    await assert.rejects(
      store.load('alice', 'bob'),
      (e: unknown) =>
        e instanceof StoreError && e.code === 'corrupt' && /session alice\/bob: stored record is not valid JSON/.test(e.message),
    );
    put('{"v":7,"state":{}}');
    await assert.rejects(
      store.load('alice', 'bob'),
      (e: unknown) => e instanceof StoreError && e.code === 'too_new' && /version 7/.test(e.message),
    );
    put('{"v":1,"state":{"kind":"initiating"}}');
    await assert.rejects(
      store.load('alice', 'bob'),
      (e: unknown) => e instanceof StoreError && e.code === 'corrupt' && /malformed: state\.version/.test(e.message),
    );
    raw.close();
    store.close();
  });

  it('one transaction holds a session save and the mail checkpoint: both or neither', () => {
    const { store } = openTemp();
    const state = initiate(new TestEnv());
    assert.throws(
      () =>
        store.transaction(() => {
          store.saveSession('alice', 'bob', state, 0);
          store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 9, lastUid: 41 });
          store.markProcessed({ mailbox: 'INBOX', id: '9:41', epoch: '9', messageId: '<m@x>' });
          store.addDelivery({
            id: 'ab'.repeat(16),
            sender: 'bob@x',
            fingerprint: 'cd'.repeat(20),
            verified: false,
            message: new Uint8Array(3),
            receivedAt: 1,
          });
          throw new Error('delivery failed');
        }),
      /delivery failed/,
    );
    assert.equal(store.loadSession('alice', 'bob'), null);
    assert.equal(store.checkpoint('INBOX'), null);
    assert.equal(store.processed({ mailbox: 'INBOX', id: '9:41' }), null);
    assert.deepEqual(store.deliveries(), []);
    const revision = store.transaction(() => {
      const r = store.saveSession('alice', 'bob', state, 0);
      store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 9, lastUid: 41 });
      return r;
    });
    assert.equal(revision, 1);
    assert.equal(store.checkpoint('INBOX')?.lastUid, 41);
    // A conflict inside rolls the whole step back too.
    assert.throws(
      () =>
        store.transaction(() => {
          store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 9, lastUid: 42 });
          store.saveSession('alice', 'bob', state, 0);
        }),
      conflict,
    );
    assert.equal(store.checkpoint('INBOX')?.lastUid, 41);
    assert.throws(
      () => store.transaction((() => Promise.resolve(1)) as () => unknown),
      TypeError,
      'async functions cannot hold a transaction',
    );
    store.close();
  });

  it('deleteSession forgets a session', async () => {
    const { store } = openTemp();
    await store.save('alice', 'bob', initiate(new TestEnv()), 0);
    assert.equal(store.deleteSession('alice', 'bob'), true);
    assert.equal(store.deleteSession('alice', 'bob'), false);
    assert.equal(await store.load('alice', 'bob'), null);
    store.close();
  });
});

describe('conversation over AccountStore', () => {
  it('first mail, reply, then data messages both ways (as test/protocol/conversation.test.ts)', async () => {
    const { alice, bob, aliceStore, bobStore } = await storeConversationPair();
    await assertExchange(alice, bob);
    aliceStore.close();
    bobStore.close();
  });

  it('goes on after both sides close and reopen their databases', async () => {
    const pair = await storeConversationPair();
    assert.equal((await pair.bob.receive(sent(await pair.alice.send(text('one'))))).kind, 'plaintext');
    assert.equal((await pair.alice.receive(sent(await pair.bob.send(text('two'))))).kind, 'plaintext');
    const pending = sent(await pair.alice.send(text('in flight across the restart')));
    pair.aliceStore.close();
    pair.bobStore.close();

    const stores = {
      alice: openAccountStore(pair.paths.alice, { passphrase: null }),
      bob: openAccountStore(pair.paths.bob, { passphrase: null }),
    };
    const { alice, bob } = pair.reconnect(stores);
    const r = await bob.receive(pending);
    assert.equal(r.kind === 'plaintext' && str(r.plaintext), 'in flight across the restart');
    for (let i = 0; i < 3; i++) {
      const rb = await alice.receive(sent(await bob.send(text(`b${i}`))));
      assert.equal(rb.kind === 'plaintext' && str(rb.plaintext), `b${i}`);
      const ra = await bob.receive(sent(await alice.send(text(`a${i}`))));
      assert.equal(ra.kind === 'plaintext' && str(ra.plaintext), `a${i}`);
    }
    stores.alice.close();
    stores.bob.close();
  });

  it('two processes sending from one state: exactly one wins, the other sees state_conflict', async () => {
    const pair = await storeConversationPair();
    assert.equal((await pair.bob.receive(sent(await pair.alice.send(text('one'))))).kind, 'plaintext');
    assert.equal((await pair.alice.receive(sent(await pair.bob.send(text('two'))))).kind, 'plaintext');
    // A second connection to Alice's database, as a second process would have.
    const second = openAccountStore(pair.paths.alice, { passphrase: null });
    const other = pair.reconnect({ alice: second, bob: pair.bobStore }).alice;
    const results = await Promise.all([pair.alice.send(text('x')), other.send(text('y'))]);
    const kinds = results.map((r) => (r.kind === 'error' ? r.code : r.kind)).sort();
    assert.deepEqual(kinds, ['encrypted', 'state_conflict']);
    const winner = results.find((r) => r.kind === 'encrypted') as { message: Uint8Array };
    assert.equal((await pair.bob.receive(winner.message)).kind, 'plaintext');
    second.close();
    pair.aliceStore.close();
    pair.bobStore.close();
  });
});

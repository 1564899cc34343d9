// The store's index of duties due (schema 7, src/protocol/duties.ts, PROTOCOL.md §17.2): a duties
// run visits exactly the sessions where `expire` would change something or an acknowledgement is
// due, read from an index, so idle correspondents cost nothing (issue 15 item 3).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { dutyClocks, dutyCutoffs } from '../../src/protocol/duties.ts';
import { ackDue, DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import { expire, initiate } from '../../src/protocol/session.ts';
import { openAccountStore, type AccountStore } from '../../src/store/index.ts';
import { SCHEMA_VERSION } from '../../src/store/schema.ts';
import { sent, TestEnv, text } from '../../kit/parties.ts';
import { openTemp, storeConversationPair } from './helpers.ts';

const HOUR = 3_600_000;

/** What the engine says is due for `local`'s session with `peer` at `now`. */
function engineDue(store: AccountStore, local: string, peer: string, now: number): boolean {
  const state = store.loadSession(local, peer)!.state;
  return expire(state, new TestEnv(now), DEFAULT_POLICY).state !== state || ackDue(state, now, DEFAULT_POLICY);
}

describe('duties due, from the store index', () => {
  it('lists a session exactly when the engine has a duty due, and no longer once it is done', async () => {
    const pair = await storeConversationPair();
    const { env, aliceStore, bobStore } = pair;
    let { alice, bob } = pair;
    await bob.receive(sent(await alice.send(text('hello'))));
    await alice.receive(sent(await bob.send(text('hi'))));
    for (let i = 0; i < 3; i++) {
      await bob.receive(sent(await alice.send(text(`a${i}`))));
      await alice.receive(sent(await bob.send(text(`b${i}`))));
    }
    await bob.receive(sent(await alice.send(text('unanswered')))); // Bob's ack timer runs, Alice keeps a re-send copy
    const start = env.time;
    const [a, b] = [aliceStore, bobStore].map((s) => s.sessions(localOf(s))[0]!);
    const sides = [
      { store: aliceStore, local: localOf(aliceStore), peer: a!.peer },
      { store: bobStore, local: localOf(bobStore), peer: b!.peer },
    ];
    const offsets = [0, HOUR - 1, HOUR, 72 * HOUR - 1, 72 * HOUR, 7 * 24 * HOUR, 7 * 24 * HOUR + 1];
    const seen = new Set<string>();
    for (const offset of offsets) {
      const now = start + offset;
      for (const { store, local, peer } of sides) {
        const listed = store.sessionsDue(local, dutyCutoffs(now, DEFAULT_POLICY)).includes(peer);
        assert.equal(listed, engineDue(store, local, peer, now), `at +${offset} ms for ${local.slice(0, 8)}`);
        seen.add(String(listed));
      }
    }
    assert.deepEqual([...seen].sort(), ['false', 'true'], 'both answers occur');

    // Doing the duties takes the session off the list.
    env.time = start + 7 * 24 * HOUR + 1;
    ({ alice, bob } = pair.reconnect());
    for (const [conversation, { store, local }] of [
      [alice, sides[0]!],
      [bob, sides[1]!],
    ] as const) {
      await conversation.forgetExpired();
      await conversation.acknowledgeIfDue();
      assert.deepEqual(store.sessionsDue(local, dutyCutoffs(env.time, DEFAULT_POLICY)), []);
    }
  });

  it('a due peer key alone (nothing to wipe) is stored forgotten, so the session leaves the list', async () => {
    const pair = await storeConversationPair();
    await pair.bob.receive(sent(await pair.alice.send(text('hello'))));
    await pair.alice.receive(sent(await pair.bob.send(text('hi'))));
    const local = localOf(pair.aliceStore);
    const peer = pair.aliceStore.sessions(local)[0]!.peer;
    const stored = pair.aliceStore.loadSession(local, peer)!;
    if (stored.state.kind !== 'established') assert.fail(`expected an established session, got ${stored.state.kind}`);
    const { keys } = stored.state;
    const onlyPeerRetired = {
      ...stored.state,
      keys: {
        ...keys,
        ackDueSince: null,
        ours: { ...keys.ours, retired: [] },
        theirs: { ...keys.theirs, retired: [{ key: { id: 0, public: keys.theirs.current.public }, retiredAt: pair.env.time }] },
      },
    };
    pair.aliceStore.saveSession(local, peer, onlyPeerRetired, stored.revision);
    pair.env.advance(72 * HOUR);
    const cutoffs = dutyCutoffs(pair.env.time, DEFAULT_POLICY);
    assert.deepEqual(pair.aliceStore.sessionsDue(local, cutoffs), [peer]);
    await pair.reconnect().alice.forgetExpired();
    assert.deepEqual(pair.aliceStore.sessionsDue(local, cutoffs), []);
  });

  it('reads an index, never the sealed states, and idle sessions are not listed', () => {
    const { store } = openTemp();
    const env = new TestEnv();
    for (let i = 0; i < 50; i++) store.saveSession('alice', `peer${String(i).padStart(2, '0')}`, initiate(env), 0);
    assert.deepEqual(store.sessionsDue('alice', dutyCutoffs(env.now() + 365 * 24 * HOUR, DEFAULT_POLICY)), []);
    const db = new Database(store.path, { readonly: true });
    const plan = db
      .prepare(
        'EXPLAIN QUERY PLAN SELECT peer FROM sessions WHERE local = ? AND (retired_since <= ? OR resend_since <= ? OR ack_since <= ?) ORDER BY peer',
      )
      .all('alice', 0, 0, 0) as { detail: string }[];
    db.close();
    assert.match(plan.map((p) => p.detail).join('; '), /COVERING INDEX sessions_duties/);
    store.close();
  });

  it('a store of schema 6 gets its duty clocks from its sealed states on the first unlock', async () => {
    const pair = await storeConversationPair();
    await pair.bob.receive(sent(await pair.alice.send(text('hello'))));
    await pair.alice.receive(sent(await pair.bob.send(text('hi'))));
    await pair.bob.receive(sent(await pair.alice.send(text('data'))));
    const local = localOf(pair.bobStore);
    const peer = pair.bobStore.sessions(local)[0]!.peer;
    const expected = dutyClocks(pair.bobStore.loadSession(local, peer)!.state);
    assert.notEqual(expected.ackSince, null);
    pair.bobStore.close();
    // Back to schema 6: version 8's skipped mail and its world go too (its triggers by name).
    const db = new Database(pair.paths.bob);
    const triggers = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'mail_world_%'")
      .pluck()
      .all() as string[];
    for (const name of triggers) db.exec(`DROP TRIGGER ${name}`);
    db.exec(`DROP TABLE skipped_mail; DROP TABLE mail_world; DROP INDEX sessions_duties;
      ALTER TABLE sessions DROP COLUMN retired_since; ALTER TABLE sessions DROP COLUMN resend_since;
      ALTER TABLE sessions DROP COLUMN ack_since; ALTER TABLE sessions DROP COLUMN reveals; PRAGMA user_version = 6;`);
    db.close();

    const locked = openAccountStore(pair.paths.bob);
    assert.equal(locked.schemaVersion, 6, 'opening alone stops before a keyed migration');
    assert.equal(locked.sessions(local).length, 1, 'public reads work meanwhile');
    locked.unlock(null);
    assert.equal(locked.schemaVersion, SCHEMA_VERSION);
    const row = new Database(pair.paths.bob, { readonly: true })
      .prepare('SELECT retired_since, resend_since, ack_since, reveals FROM sessions WHERE local = ? AND peer = ?')
      .get(local, peer);
    assert.deepEqual(row, {
      retired_since: expected.retiredSince,
      resend_since: expected.resendSince,
      ack_since: expected.ackSince,
      reveals: expected.reveals,
    });
    locked.close();
  });
});

function localOf(store: AccountStore): string {
  const db = new Database(store.path, { readonly: true });
  const row = db.prepare('SELECT DISTINCT local FROM sessions').get() as { local: string };
  db.close();
  return row.local;
}

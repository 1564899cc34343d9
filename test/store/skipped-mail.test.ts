// Mail looked at once (schema version 8, docs/PROTOCOL.md §18.6): the skip records and the
// world generation that says when a skipped mail is worth reading again.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openAccountStore } from '../../src/store/index.ts';
import { legacyStore } from './legacy.ts';
import { openTemp, tempDir } from './helpers.ts';

const FP_A = 'a'.repeat(40);
const FP_B = 'b'.repeat(40);
const world = { software: '1.0.0' };

describe('skipped mail and the mail world', () => {
  it('the migration to version 8 drops the old checkpoints (the highest UID processed, with skipped mail below it)', async () => {
    const path = `${tempDir()}/old.sqlite`;
    await legacyStore(path, 0);
    const raw = new Database(path);
    raw
      .prepare('INSERT INTO mail_checkpoints (mailbox, v, uidvalidity, last_uid, updated_at) VALUES (?, 1, 7, 900, 1)')
      .run('imap://bob@host/INBOX');
    raw.close();
    const store = openAccountStore(path, { passphrase: null });
    assert.equal(store.checkpoint('imap://bob@host/INBOX'), null, 'the first pass looks at the whole mailbox once more');
    assert.equal(store.mailWorld(), 0);
    assert.deepEqual(store.staleSkippedMail('imap://bob@host/INBOX', { generation: 0, ...world }), []);
    store.close();
  });

  it('a skipped mail is stale when the software changed, when transient, or when keyed and the world moved', () => {
    const { store } = openTemp();
    const mailbox = 'imap://bob@host/INBOX';
    const g = store.mailWorld();
    store.recordSkipped({ mailbox, id: '7:1', epoch: '7', code: 'malformed', world: g, keyed: false, software: '1.0.0', held: null });
    store.recordSkipped({ mailbox, id: '7:2', epoch: '7', code: 'unknown_peer', world: g, keyed: true, software: '1.0.0', held: null });
    store.recordSkipped({ mailbox, id: '7:3', epoch: '7', code: 'io', world: null, keyed: true, software: '1.0.0', held: null });
    const stale = (generation: number, software = '1.0.0') =>
      store
        .staleSkippedMail(mailbox, { generation, software })
        .map((s) => s.id)
        .sort();
    assert.deepEqual(stale(g), ['7:3']);
    assert.deepEqual(stale(g + 1), ['7:2', '7:3']);
    assert.deepEqual(stale(g, '1.0.1'), ['7:1', '7:2', '7:3']);
    assert.equal(store.skippedMail({ mailbox, id: '7:1' })?.code, 'malformed');
    const held = { from: 'alice@example.org', fingerprint: FP_B, pending: FP_B };
    store.recordSkipped({ mailbox, id: '7:4', epoch: '7', code: 'held', world: g, keyed: true, software: '1.0.0', held });
    assert.deepEqual(
      store.heldMail(mailbox).map((h) => [h.id, h.held]),
      [['7:4', held]],
    );
    store.clearSkipped({ mailbox, id: '7:4' });
    store.clearSkipped({ mailbox, id: '7:1' });
    assert.equal(store.skippedMail({ mailbox, id: '7:1' }), null);
    store.clearSkippedOfOtherEpochs(mailbox, '8');
    assert.deepEqual(stale(g + 1), []);
    assert.throws(
      () => store.recordSkipped({ mailbox, id: '', epoch: '7', code: 'x', world: 0, keyed: true, software: '1', held: null }),
      TypeError,
    );
    store.close();
  });

  it('the world moves with keys learned and trust decisions, not with what changes nothing', () => {
    const { store } = openTemp();
    const moved = (action: () => unknown) => {
      const before = store.mailWorld();
      action();
      return store.mailWorld() !== before;
    };
    assert.ok(
      moved(() => store.pinPeer({ address: 'alice@example.org', fingerprint: FP_A, certificate: 'CERT' })),
      'a correspondent pinned',
    );
    assert.ok(
      !moved(() => store.pinPeer({ address: 'alice@example.org', fingerprint: FP_A, certificate: 'CERT' })),
      'pinned again: nothing',
    );
    assert.ok(
      moved(() => store.updatePeerCertificate('alice@example.org', FP_A, 'CERT 2')),
      'a certificate refreshed',
    );
    assert.ok(!moved(() => store.updatePeerCertificate('alice@example.org', FP_A, 'CERT 2')), 'the same certificate: nothing');
    assert.ok(
      moved(() => store.setPeerVerified('alice@example.org', true)),
      'a fingerprint verified',
    );
    const key = {
      fingerprint: FP_A,
      kind: 'ring' as const,
      public: new Uint8Array(32).fill(1),
      notBefore: 1,
      notAfter: 2,
      certification: new Uint8Array(64),
    };
    assert.ok(
      moved(() => store.putPeerKey(key)),
      'a ring key learned',
    );
    assert.ok(!moved(() => store.putPeerKey(key)), 'learned again: nothing');
    assert.ok(
      moved(() => store.setPending('alice@example.org', { fingerprint: FP_B, certificate: 'NEW' })),
      'a changed identity pending',
    );
    assert.ok(
      moved(() => store.rejectPending('alice@example.org')),
      'rejected',
    );
    assert.ok(
      moved(() => store.deletePeer('alice@example.org')),
      'a correspondent forgotten',
    );
    store.close();
  });
});

// Secrets at rest (docs/PROTOCOL.md §17.1): with a copy of the account's files and no passphrase,
// an attacker finds no secret and no plaintext; a sealed value moved to another row, session or
// account does not open; a wrong passphrase changes nothing; a store from before the account key
// is sealed on its first unlock, all or nothing, leaving no clear copy behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { openAccountStore, SCHEMA_VERSION, type AccountStore } from '../../src/store/index.ts';
import { encodeSessionState } from '../../src/store/codec.ts';
import {
  FILE_SUFFIXES,
  establishedState,
  filesContaining,
  scanFiles as scan,
  secretForms,
  startWorker,
  storeError,
  tempDb,
  tempDir,
} from './helpers.ts';
import { legacyStore, secretsOf, TEST_KDF, type LegacyContents } from './legacy.ts';
import { seededRandom } from '../../kit/seeded.ts';
import { runs } from '../../kit/runs.ts';

const PASSPHRASE = 'correct horse battery staple';

function traces(path: string, secret: Uint8Array): string[] {
  return secretForms(secret).flatMap(([form, needle]) => filesContaining(path, needle).map((file) => `${form} in ${file}`));
}

/** The bytes of every file of the database, to compare before and after. */
function fileBytes(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const suffix of FILE_SUFFIXES) if (existsSync(path + suffix)) out[suffix || 'main'] = readFileSync(path + suffix).toString('base64');
  return out;
}

function raw(path: string): Database.Database {
  return new Database(path);
}

/** A protected store holding everything a real account holds, and the secrets in it. */
async function filledStore(path: string): Promise<{ store: AccountStore; secrets: Uint8Array[]; contents: LegacyContents }> {
  const store = openAccountStore(path, { passphrase: PASSPHRASE, kdf: TEST_KDF });
  const state = await establishedState();
  const contents: LegacyContents = {
    identitySecret: `-----BEGIN PGP PRIVATE KEY BLOCK-----\n${randomBytes(600).toString('base64')}\n-----END PGP PRIVATE KEY BLOCK-----\n`,
    ringSecret: new Uint8Array(randomBytes(32)),
    sessions: [
      {
        peer: 'bob',
        state: {
          ...state,
          lastSent: { payload: new Uint8Array(randomBytes(900)), sentAt: 1, sentAs: { senderKeyId: 1, recipientKeyId: 1, counter: 1 } },
        },
      },
    ],
    delivery: new Uint8Array(randomBytes(2000)),
  };
  store.setIdentity({ fingerprint: 'ab'.repeat(20), secretKey: contents.identitySecret, certificate: 'C', created: 1 });
  store.putOwnKey({
    id: 'cd'.repeat(32),
    kind: 'ring',
    public: new Uint8Array(32),
    secret: contents.ringSecret,
    created: 1,
    notBefore: 1,
    notAfter: 2,
    certification: new Uint8Array(64),
  });
  for (const s of contents.sessions) await store.save('alice', s.peer, s.state, 0);
  store.addDelivery({
    id: 'ef'.repeat(16),
    sender: 'bob@example.org',
    fingerprint: 'ab'.repeat(20),
    verified: true,
    message: contents.delivery,
    receivedAt: 1,
  });
  return { store, secrets: secretsOf(contents), contents };
}

describe('secrets at rest', () => {
  it('control: the scan finds a secret stored in clear, in every form', () => {
    const path = tempDb();
    const secret = new Uint8Array(randomBytes(32));
    const db = raw(path);
    db.exec('CREATE TABLE t (a BLOB, b TEXT, c TEXT, d TEXT)');
    const hex = Buffer.from(secret).toString('hex');
    db.prepare('INSERT INTO t VALUES (?, ?, ?, ?)').run(
      Buffer.from(secret),
      hex,
      hex.toUpperCase(),
      Buffer.from(secret).toString('base64'),
    );
    db.close();
    assert.deepEqual(traces(path, secret), ['raw in main', 'hex in main', 'HEX in main', 'base64 in main']);
  });

  it('no secret and no plaintext in the files, -wal or -shm, open or closed; all of it opens with the passphrase', async () => {
    const path = tempDb();
    const { store, secrets, contents } = await filledStore(path);
    assert.ok(secrets.length > 20, `the scan looks for every secret of the state (${secrets.length})`);
    assert.deepEqual(scan(path, secrets), [], 'while open');
    store.close();
    assert.deepEqual(scan(path, secrets), [], 'after close');

    const again = openAccountStore(path, { passphrase: PASSPHRASE });
    assert.equal(again.identity()!.secretKey, contents.identitySecret);
    assert.deepEqual(again.ownKeys('ring')[0]!.secret, contents.ringSecret);
    assert.deepEqual(again.loadSession('alice', 'bob')!.state, contents.sessions[0]!.state);
    assert.deepEqual(again.deliveries()[0]!.message, contents.delivery);
    again.close();
  });

  it('without the passphrase: public data reads, every secret read or write is refused', async () => {
    const path = tempDb();
    (await filledStore(path)).store.close();
    const before = fileBytes(path);
    const locked = openAccountStore(path);
    assert.equal(locked.protection(), 'passphrase');
    assert.equal(locked.identity()!.fingerprint, 'ab'.repeat(20));
    assert.deepEqual(
      locked.sessions('alice').map((s) => [s.peer, s.kind]),
      [['bob', 'established']],
    );
    assert.equal(locked.deliveryCount(), 1);
    assert.equal(locked.ownKeys('ring')[0]!.notAfter, 2);
    assert.throws(() => locked.identity()!.secretKey, storeError('passphrase_required'));
    assert.throws(() => locked.ownKeys('ring')[0]!.secret, storeError('passphrase_required'));
    assert.throws(() => locked.loadSession('alice', 'bob'), storeError('passphrase_required'));
    assert.throws(() => locked.deliveries(), storeError('passphrase_required'));
    assert.throws(
      () =>
        locked.putOwnKey({
          id: '01',
          kind: 'ring',
          public: new Uint8Array(32),
          secret: new Uint8Array(32),
          created: 1,
          notBefore: 1,
          notAfter: 2,
          certification: new Uint8Array(1),
        }),
      storeError('passphrase_required'),
    );
    locked.close();
    assert.deepEqual(fileBytes(path), before, 'nothing written');
  });

  it('wrong, empty or no passphrase: a typed error, and not one byte of the files changes', async () => {
    const path = tempDb();
    (await filledStore(path)).store.close();
    const before = fileBytes(path);
    for (const [passphrase, code] of [
      ['wrong horse', 'bad_passphrase'],
      ['', 'passphrase_required'],
      [null, 'passphrase_required'],
    ] as const) {
      assert.throws(() => openAccountStore(path, { passphrase }), storeError(code));
      assert.deepEqual(fileBytes(path), before, `after ${code}`);
    }
  });

  it('a sealed value copied into another row, session or account does not open: misplaced, nothing read', async () => {
    const path = tempDb();
    const { store } = await filledStore(path);
    const state = (await establishedState()) as unknown as Parameters<AccountStore['save']>[2];
    await store.save('alice', 'carol', state, 0);
    await store.save('alice', 'bob', store.loadSession('alice', 'bob')!.state, 1);
    store.putOwnKey({
      id: '01',
      kind: 'ring',
      public: new Uint8Array(32),
      secret: new Uint8Array(randomBytes(32)),
      created: 1,
      notBefore: 1,
      notAfter: 2,
      certification: new Uint8Array(1),
    });
    store.addDelivery({
      id: '12'.repeat(16),
      sender: 'carol@example.org',
      fingerprint: 'ab'.repeat(20),
      verified: true,
      message: new Uint8Array(10),
      receivedAt: 2,
    });
    const db = raw(path);
    const cell = (sql: string) => db.prepare(sql).pluck().get() as Buffer;
    // Between two sessions of one account.
    const carol = cell("SELECT state FROM sessions WHERE peer = 'carol'");
    db.prepare("UPDATE sessions SET state = ? WHERE peer = 'bob'").run(carol);
    assert.throws(() => store.loadSession('alice', 'bob'), storeError('misplaced', /sessions\.state of alice\/bob\/2/));
    // The same session under another revision number: the revision is bound too.
    db.prepare("UPDATE sessions SET revision = 2 WHERE peer = 'carol'").run();
    assert.throws(() => store.loadSession('alice', 'carol'), storeError('misplaced'));
    db.prepare("UPDATE sessions SET revision = 1 WHERE peer = 'carol'").run();
    assert.ok(store.loadSession('alice', 'carol'));
    // Between two keys, two deliveries.
    db.prepare("UPDATE own_keys SET secret = (SELECT secret FROM own_keys WHERE id = '01') WHERE id != '01'").run();
    assert.throws(() => store.ownKeys('ring').map((k) => k.secret), storeError('misplaced'));
    db.prepare('UPDATE deliveries SET message = (SELECT message FROM deliveries WHERE id = ?) WHERE id != ?').run(
      '12'.repeat(16),
      '12'.repeat(16),
    );
    assert.throws(() => store.deliveries(), storeError('misplaced'));
    // One byte altered.
    const altered = Buffer.from(carol);
    altered[altered.length - 1]! ^= 1;
    db.prepare("UPDATE sessions SET state = ? WHERE peer = 'carol'").run(altered);
    assert.throws(() => store.loadSession('alice', 'carol'), storeError('misplaced'));
    db.close();
    store.close();

    // Between two accounts: the same row key, another account key.
    const other = tempDb('other.sqlite');
    const { store: otherStore } = await filledStore(other);
    otherStore.close();
    const from = raw(other);
    const foreign = {
      state: from.prepare("SELECT state FROM sessions WHERE peer = 'bob'").pluck().get() as Buffer,
      identity: from.prepare('SELECT secret_key FROM identity').pluck().get() as Buffer,
    };
    from.close();
    const to = raw(path);
    to.prepare("UPDATE sessions SET state = ?, revision = 1 WHERE peer = 'bob'").run(foreign.state);
    to.prepare('UPDATE identity SET secret_key = ?').run(foreign.identity);
    to.close();
    const victim = openAccountStore(path, { passphrase: PASSPHRASE });
    assert.throws(() => victim.loadSession('alice', 'bob'), storeError('misplaced'));
    assert.throws(() => victim.identity()!.secretKey, storeError('misplaced'));
    victim.close();
  });

  it('passwd: the account key is wrapped anew; the old passphrase no longer opens, the rows are untouched', async () => {
    const path = tempDb();
    const { store, contents } = await filledStore(path);
    const sealedBefore = raw(path).prepare('SELECT state FROM sessions').pluck().get() as Buffer;
    store.changePassphrase('new passphrase', { kdf: TEST_KDF });
    store.close();
    assert.throws(() => openAccountStore(path, { passphrase: PASSPHRASE }), storeError('bad_passphrase'));
    const reopened = openAccountStore(path, { passphrase: 'new passphrase' });
    assert.deepEqual(reopened.deliveries()[0]!.message, contents.delivery);
    reopened.close();
    assert.deepEqual(raw(path).prepare('SELECT state FROM sessions').pluck().get(), sealedBefore);
  });

  it("scrypt in a child process: the same account key, the same refusals, and its 128 MiB outside the opener's memory peak", async () => {
    const path = tempDb();
    const { store, contents } = await filledStore(path);
    store.changePassphrase(PASSPHRASE); // DEFAULT_KDF, scrypt inline here
    store.close();
    for (const [passphrase, code] of [
      ['wrong horse', 'bad_passphrase'],
      ['', 'passphrase_required'],
    ] as const) {
      assert.throws(() => openAccountStore(path, { passphrase, kdfPlace: 'child' }), storeError(code));
    }
    const worker = new URL('./kdf-worker.ts', import.meta.url).pathname;
    const peak = async (place: 'inline' | 'child') => {
      const w = startWorker<{ hwmKb: number; opened: number }>(worker, [path, place, PASSPHRASE], `kdf ${place}`);
      return w.exited;
    };
    const [inline, child] = [await peak('inline'), await peak('child')];
    assert.equal(child.opened, contents.identitySecret.length, "the child's key opens the sealed identity");
    assert.equal(inline.opened, child.opened);
    assert.ok(
      inline.hwmKb - child.hwmKb > 100 * 1024,
      `peak inline ${inline.hwmKb} kB, with the child ${child.hwmKb} kB: scrypt's 128 MiB must not count`,
    );
    const rewrapped = openAccountStore(path, { passphrase: PASSPHRASE, kdfPlace: 'child' });
    rewrapped.changePassphrase('another one', { kdf: TEST_KDF });
    rewrapped.close();
    openAccountStore(path, { passphrase: 'another one' }).close(); // wrapped in the child, opened inline
  });

  it('a store from before the account key is sealed on its first unlock: same contents, no clear copy anywhere', async () => {
    const path = tempDb();
    const contents = await legacyStore(path, 40);
    const secrets = secretsOf(contents);
    assert.ok(scan(path, secrets).length > 0, 'control: the old store holds them in clear');
    const store = openAccountStore(path);
    assert.equal(store.protection(), 'unset');
    assert.equal(store.legacyIdentitySecret(), contents.identitySecret);
    assert.equal(store.sessions('alice').length, 40, 'public reads work before the migration');
    store.unlock(PASSPHRASE, { kdf: TEST_KDF });
    assert.equal(store.schemaVersion, SCHEMA_VERSION);
    assert.deepEqual(scan(path, secrets), [], 'while open');
    assert.equal(store.identity()!.secretKey, contents.identitySecret);
    assert.deepEqual(store.ownKeys('ring')[0]!.secret, contents.ringSecret);
    for (const s of contents.sessions) assert.deepEqual(store.loadSession('alice', s.peer)!.state, s.state);
    assert.deepEqual(store.deliveries()[0]!.message, contents.delivery);
    store.close();
    assert.deepEqual(scan(path, secrets), [], 'after close');
    assert.throws(() => openAccountStore(path, { passphrase: 'wrong' }), storeError('bad_passphrase'));
  });

  it('the first unlock of a store without a passphrase keeps it without one (kdf none), sealed all the same', async () => {
    const path = tempDb();
    const contents = await legacyStore(path, 1);
    const store = openAccountStore(path, { passphrase: null });
    assert.equal(store.protection(), 'none');
    assert.deepEqual(store.loadSession('alice', contents.sessions[0]!.peer)!.state, contents.sessions[0]!.state);
    store.close();
    assert.deepEqual(scan(path, secretsOf(contents)), []);
  });

  // Each point starts a process and checks 400 sessions: the unit set tries the first 6 (kit/runs.ts).
  const killPoints = runs({ full: 20, unit: 6 });
  it(
    `killed (SIGKILL) at ${killPoints} seeded points of its first unlock, a store is the old one or the sealed one, never a mix, never a loss`,
    { timeout: 300_000 },
    async (t) => {
      const template = tempDb('template.sqlite');
      const contents = await legacyStore(template, 400);
      // Every secret of the first state (shared by all) and of every 40th session (each has its own).
      const secrets = secretsOf({ ...contents, sessions: contents.sessions.filter((_, i) => i % 40 === 0) });
      const worker = new URL('./seal-worker.ts', import.meta.url).pathname;
      const fresh = () => {
        const path = join(tempDir(), 'account.sqlite');
        copyFileSync(template, path);
        return path;
      };
      const run = async (path: string, killAfterMs: number | null) => {
        const w = startWorker<{ ms: number }>(worker, [path, PASSPHRASE, JSON.stringify(TEST_KDF)], 'seal');
        await w.ready;
        w.child.stdin.end('go\n');
        if (killAfterMs === null) return (await w.exited).ms;
        setTimeout(() => w.child.kill('SIGKILL'), killAfterMs);
        await w.exited.catch(() => undefined); // killed: no report
        return null;
      };
      const calibration = (await run(fresh(), null))!;
      // The same kill points on every run.
      const next = seededRandom(0x12c0ffee);
      const outcomes = { old: 0, sealed: 0 };
      for (let point = 0; point < killPoints; point++) {
        const path = fresh();
        const delay = next() * calibration * 1.3;
        await run(path, delay);
        const db = raw(path);
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version < 5) {
          // The old store, whole: every clear value as it was, no account key.
          outcomes.old++;
          assert.equal(db.prepare('SELECT count(*) FROM account_key').pluck().get(), 0, `point ${point}: no account key in the old store`);
          assert.equal(db.prepare('SELECT secret_key FROM identity').pluck().get(), contents.identitySecret);
          const states = new Map(
            db
              .prepare('SELECT peer, state_json FROM sessions')
              .all()
              .map((r) => [(r as { peer: string }).peer, (r as { state_json: string }).state_json]),
          );
          assert.equal(states.size, contents.sessions.length);
          for (const s of contents.sessions)
            assert.equal(states.get(s.peer), encodeSessionState(s.state), `point ${point}: session ${s.peer}`);
          assert.deepEqual(
            new Uint8Array(db.prepare("SELECT secret FROM own_keys WHERE kind = 'ring'").pluck().get() as Buffer),
            contents.ringSecret,
          );
          assert.deepEqual(new Uint8Array(db.prepare('SELECT message FROM deliveries').pluck().get() as Buffer), contents.delivery);
        } else {
          outcomes.sealed++;
        }
        db.close();
        // Either way the next unlock gives back every value, sealed, and no clear copy stays.
        const store = openAccountStore(path, { passphrase: PASSPHRASE, kdf: TEST_KDF });
        assert.equal(store.identity()!.secretKey, contents.identitySecret);
        for (const s of contents.sessions)
          assert.deepEqual(store.loadSession('alice', s.peer)!.state, s.state, `point ${point}: session ${s.peer}`);
        assert.deepEqual(store.ownKeys('ring')[0]!.secret, contents.ringSecret);
        assert.deepEqual(store.deliveries()[0]!.message, contents.delivery);
        store.close();
        assert.deepEqual(scan(path, secrets), [], `point ${point} (killed after ${delay.toFixed(0)} ms): a clear copy remains`);
      }
      t.diagnostic(
        `unlock with migration took ${calibration.toFixed(0)} ms; killed at ${killPoints} points: ${outcomes.old} left the old store, ${outcomes.sealed} the sealed one`,
      );
    },
  );
});

import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { migrate, type Migration } from '../../src/store/schema.ts';
import {
  accountFileName,
  DEFAULT_BUSY_TIMEOUT_MS,
  defaultStoreDirectory,
  defaultStorePath,
  openAccountStore,
  SCHEMA_VERSION,
} from '../../src/store/index.ts';
import { storeError, tempDb, tempDir } from './helpers.ts';

const mode = (path: string) => statSync(path).mode & 0o777;

describe('opening a store', () => {
  it('creates the file 0600 in a new directory 0700, with -wal/-shm 0600 too', () => {
    const dir = join(tempDir(), 'nested', 'offrecord');
    const path = join(dir, 'a@example.org.sqlite');
    const store = openAccountStore(path);
    try {
      assert.equal(mode(dir), 0o700);
      assert.equal(mode(join(dir, '..')), 0o700);
      assert.equal(mode(path), 0o600);
      store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 1, lastUid: 1 }); // some WAL traffic
      for (const side of ['-wal', '-shm']) if (existsSync(path + side)) assert.equal(mode(path + side), 0o600, side);
    } finally {
      store.close();
    }
  });

  it('tightens an existing file to 0600', () => {
    const path = tempDb();
    writeFileSync(path, '');
    chmodSync(path, 0o644);
    openAccountStore(path).close();
    assert.equal(mode(path), 0o600);
  });

  it('sets secure_delete, WAL, FULL sync, a busy timeout, foreign keys and the schema version', () => {
    const path = tempDb();
    openAccountStore(path, { passphrase: null }).close();
    const store = openAccountStore(path, { busyTimeoutMs: 1234 });
    // Inspect through a second connection for what persists, and the store's own for the rest.
    const raw = new Database(path, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(raw.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      assert.equal(store.schemaVersion, SCHEMA_VERSION);
      const db = (store as unknown as { db: Database.Database }).db;
      assert.equal(db.pragma('secure_delete', { simple: true }), 1);
      assert.equal(db.pragma('foreign_keys', { simple: true }), 1);
      assert.equal(db.pragma('synchronous', { simple: true }), 2);
      assert.equal(db.pragma('busy_timeout', { simple: true }), 1234);
    } finally {
      raw.close();
      store.close();
    }
    const defaults = openAccountStore(path);
    assert.equal((defaults as unknown as { db: Database.Database }).db.pragma('busy_timeout', { simple: true }), DEFAULT_BUSY_TIMEOUT_MS);
    defaults.close();
  });

  it('refuses a database newer than the code (too_new) and leaves it alone', () => {
    const path = tempDb();
    openAccountStore(path, { passphrase: null }).close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    assert.throws(
      () => openAccountStore(path),
      storeError('too_new', new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer than this offrecord knows \\(${SCHEMA_VERSION}\\)`)),
    );
    const check = new Database(path, { readonly: true });
    assert.equal(check.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
    check.close();
  });

  it('refuses a file that is not a database (corrupt)', () => {
    const path = tempDb();
    writeFileSync(path, 'this is not a SQLite database, just some text that is long enough to have a header'.repeat(20));
    assert.throws(() => openAccountStore(path), storeError('corrupt'));
  });

  it('reports a path it cannot create as io', () => {
    const file = tempDb('plain-file');
    writeFileSync(file, 'x');
    assert.throws(() => openAccountStore(join(file, 'sub', 'a.sqlite')), storeError('io', /cannot create or open/));
  });

  it('reports a lock held past the busy timeout as locked', () => {
    const path = tempDb();
    const store = openAccountStore(path, { busyTimeoutMs: 50 });
    const other = new Database(path);
    other.prepare('BEGIN IMMEDIATE').run();
    try {
      assert.throws(() => store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 1, lastUid: 2 }), storeError('locked', /busy/));
    } finally {
      other.prepare('ROLLBACK').run();
      other.close();
    }
    store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 1, lastUid: 2 });
    store.close();
  });

  it('opens an in-memory store for tests and demos', () => {
    const store = openAccountStore(':memory:');
    store.setCheckpoint({ mailbox: 'INBOX', uidvalidity: 7, lastUid: 3 });
    assert.equal(store.checkpoint('INBOX')?.lastUid, 3);
    assert.equal(store.forget(), true);
    store.close();
    assert.equal(store.open, false);
  });
});

describe('migrations', () => {
  const table = (db: Database.Database, name: string) =>
    db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name = ?").get(name) as { n: number };

  it('apply in order, one transaction each; a failing one leaves the previous version intact', () => {
    const db = new Database(':memory:');
    const applied: number[] = [];
    const list: Migration[] = [
      { version: 1, description: 'one', up: (d) => (applied.push(1), d.exec('CREATE TABLE one (x)')) },
      {
        version: 2,
        description: 'two fails halfway',
        up: (d) => {
          applied.push(2);
          d.exec('CREATE TABLE two (x)');
          throw new Error('boom');
        },
      },
    ];
    assert.throws(() => migrate(db, list), /boom/);
    assert.deepEqual(applied, [1, 2]);
    assert.equal(db.pragma('user_version', { simple: true }), 1);
    assert.equal(table(db, 'one').n, 1);
    assert.equal(table(db, 'two').n, 0, 'the failed migration rolled back');
    list[1] = { version: 2, description: 'two', up: (d) => (applied.push(2), d.exec('CREATE TABLE two (x)')) };
    assert.equal(migrate(db, list), 2);
    assert.equal(migrate(db, list), 2, 'idempotent');
    assert.deepEqual(applied, [1, 2, 2]);
    assert.throws(() => migrate(db, list.slice(0, 1)), storeError('too_new'));
    db.close();
  });

  it('rejects a list whose versions are not 1..n', () => {
    const db = new Database(':memory:');
    assert.throws(() => migrate(db, [{ version: 2, description: 'x', up: () => {} }]), TypeError);
    db.close();
  });

  it('the current schema has the tables the design names', () => {
    const path = tempDb();
    openAccountStore(path).close();
    const db = new Database(path, { readonly: true });
    for (const name of ['sessions', 'identity', 'own_keys', 'peers', 'peer_keys', 'mail_checkpoints', 'processed_mail']) {
      assert.equal(table(db, name).n, 1, name);
    }
    db.close();
  });
});

describe('default path', () => {
  it('uses $XDG_DATA_HOME/offrecord/<account>.sqlite and makes the directory 0700', () => {
    const base = tempDir();
    mkdirSync(join(base, 'offrecord'), { mode: 0o755 });
    chmodSync(join(base, 'offrecord'), 0o755);
    const path = defaultStorePath('Alice@Example.org', { XDG_DATA_HOME: base });
    assert.equal(path, join(base, 'offrecord', 'alice@example.org.sqlite'));
    assert.equal(mode(join(base, 'offrecord')), 0o700);
  });

  it('falls back to ~/.local/share when XDG_DATA_HOME is unset or relative', () => {
    const home = tempDir();
    const expected = join(home, '.local', 'share', 'offrecord');
    assert.equal(defaultStoreDirectory({ HOME: home }), expected);
    assert.equal(defaultStoreDirectory({ HOME: home, XDG_DATA_HOME: 'relative/dir' }), expected);
    assert.equal(defaultStorePath('bob@example.org', { HOME: home }), join(expected, 'bob@example.org.sqlite'));
    assert.equal(mode(expected), 0o700);
  });

  it('refuses account names that are not file-name safe', () => {
    for (const bad of ['', '../x', 'a/b', '.hidden', 'a\0b', 'x'.repeat(300)]) assert.throws(() => accountFileName(bad), TypeError, bad);
    assert.equal(accountFileName(' Alice+tag@Example.org '), 'alice+tag@example.org.sqlite');
  });
});

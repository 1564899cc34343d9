// The schema, as an ordered list of migrations. `PRAGMA user_version` holds the number of
// migrations applied; each one runs in its own IMMEDIATE transaction together with the
// version bump, so a crash leaves the database at one version or the next, never between.
// Never edit a released migration: append a new one.
//
// Conventions: times are integer milliseconds since the Unix epoch (the engine's Env.now());
// fingerprints and key ids are lowercase hex; addresses are lowercased; every row carries a
// record version `v` (session rows carry theirs inside state_json, see codec.ts); tables are
// STRICT so a wrong type is an error, not a silent conversion.
import type Database from 'better-sqlite3';
import { dutyClocks } from '../protocol/duties.ts';
import { decodeSessionState } from './codec.ts';
import { StoreError } from './errors.ts';
import type { AccountKey, VaultRow } from './vault.ts';

/** What a keyed migration gets: the account key, and the vault row to store with it when it is new. */
export interface Unlocking {
  key: AccountKey;
  vault: VaultRow | null;
}

export interface Migration {
  /** user_version after this migration. */
  version: number;
  description: string;
  /** Runs only once the store is unlocked (it seals what it finds): opening alone stops before it. */
  keyed?: boolean;
  up(db: Database.Database, unlocking: Unlocking | null): void;
}

const HEX = (column: string) => `length(${column}) > 0 AND ${column} NOT GLOB '*[^0-9a-f]*'`;
const FINGERPRINT = (column: string) => `${HEX(column)} AND length(${column}) IN (40, 64)`;
const KIND = (column: string) => `${column} IN ('encryption', 'ring')`;

const V1 = `
CREATE TABLE sessions (
  local      TEXT    NOT NULL,
  peer       TEXT    NOT NULL,
  revision   INTEGER NOT NULL CHECK (revision > 0),
  state_json TEXT    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (local, peer)
) STRICT;

CREATE TABLE identity (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  v           INTEGER NOT NULL DEFAULT 1,
  fingerprint TEXT    NOT NULL CHECK (${FINGERPRINT('fingerprint')}),
  secret_key  TEXT    NOT NULL,
  certificate TEXT    NOT NULL,
  created     INTEGER NOT NULL
) STRICT;

CREATE TABLE own_keys (
  id            TEXT    PRIMARY KEY CHECK (${HEX('id')}),
  v             INTEGER NOT NULL DEFAULT 1,
  kind          TEXT    NOT NULL CHECK (${KIND('kind')}),
  public        BLOB    NOT NULL,
  secret        BLOB,
  created       INTEGER NOT NULL,
  not_before    INTEGER NOT NULL,
  not_after     INTEGER NOT NULL,
  certification BLOB    NOT NULL,
  destroyed_at  INTEGER,
  published_at  INTEGER,
  CHECK (destroyed_at IS NULL OR secret IS NULL)
) STRICT;
CREATE INDEX own_keys_kind ON own_keys (kind, not_before);

CREATE TABLE peers (
  address             TEXT    PRIMARY KEY CHECK (address = lower(address) AND length(address) > 0),
  v                   INTEGER NOT NULL DEFAULT 1,
  fingerprint         TEXT    NOT NULL CHECK (${FINGERPRINT('fingerprint')}),
  certificate         TEXT    NOT NULL,
  first_seen          INTEGER NOT NULL,
  verified            INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
  pending_fingerprint TEXT    CHECK (pending_fingerprint IS NULL OR (${FINGERPRINT('pending_fingerprint')})),
  pending_certificate TEXT,
  pending_seen_at     INTEGER,
  CHECK ((pending_fingerprint IS NULL) = (pending_certificate IS NULL)
     AND (pending_fingerprint IS NULL) = (pending_seen_at IS NULL))
) STRICT;
CREATE INDEX peers_fingerprint ON peers (fingerprint);

CREATE TABLE peer_keys (
  fingerprint   TEXT    NOT NULL CHECK (${FINGERPRINT('fingerprint')}),
  kind          TEXT    NOT NULL CHECK (${KIND('kind')}),
  public        BLOB    NOT NULL,
  v             INTEGER NOT NULL DEFAULT 1,
  not_before    INTEGER NOT NULL,
  not_after     INTEGER NOT NULL,
  certification BLOB    NOT NULL,
  seen_at       INTEGER NOT NULL,
  PRIMARY KEY (fingerprint, kind, public)
) STRICT;

CREATE TABLE mail_checkpoints (
  mailbox     TEXT    PRIMARY KEY,
  v           INTEGER NOT NULL DEFAULT 1,
  uidvalidity INTEGER NOT NULL CHECK (uidvalidity > 0),
  last_uid    INTEGER NOT NULL CHECK (last_uid >= 0),
  updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE processed_mail (
  mailbox      TEXT    NOT NULL,
  uidvalidity  INTEGER NOT NULL CHECK (uidvalidity > 0),
  uid          INTEGER NOT NULL CHECK (uid > 0),
  v            INTEGER NOT NULL DEFAULT 1,
  message_id   TEXT,
  processed_at INTEGER NOT NULL,
  PRIMARY KEY (mailbox, uidvalidity, uid)
) STRICT;
CREATE INDEX processed_mail_message_id ON processed_mail (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX processed_mail_processed_at ON processed_mail (processed_at);
`;

// processed_mail is keyed by the transport's own id (IMAP "<uidvalidity>:<uid>", a Maildir file
// name) with the epoch (UIDVALIDITY) beside it, so Maildir mail fits too. Nothing wrote the v1
// table yet. deliveries is the outbox of plaintext not yet handed to the user's mail store: a
// row is written in the same transaction as the session step that decrypted it.
const V2 = `
DROP TABLE processed_mail;
CREATE TABLE processed_mail (
  mailbox      TEXT    NOT NULL,
  mail_id      TEXT    NOT NULL CHECK (length(mail_id) > 0),
  v            INTEGER NOT NULL DEFAULT 1,
  epoch        TEXT    NOT NULL,
  message_id   TEXT,
  processed_at INTEGER NOT NULL,
  PRIMARY KEY (mailbox, mail_id)
) STRICT;
CREATE INDEX processed_mail_message_id ON processed_mail (mailbox, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX processed_mail_processed_at ON processed_mail (processed_at);

CREATE TABLE deliveries (
  id          TEXT    PRIMARY KEY CHECK (${HEX('id')} AND length(id) = 32),
  v           INTEGER NOT NULL DEFAULT 1,
  sender      TEXT    NOT NULL,
  fingerprint TEXT    NOT NULL CHECK (${FINGERPRINT('fingerprint')}),
  verified    INTEGER NOT NULL CHECK (verified IN (0, 1)),
  message     BLOB    NOT NULL,
  received_at INTEGER NOT NULL
) STRICT;
CREATE INDEX deliveries_received_at ON deliveries (received_at, id);
`;

// publications is the record of what `keys publish` took out of the store: the bundle is written
// here in the same transaction that marks its ring keys published and takes its MAC keys out of
// the sessions, then handed to the target; delivered_at is set once the target has it.
const V3 = `
CREATE TABLE publications (
  name         TEXT    PRIMARY KEY CHECK (length(name) > 0 AND name NOT GLOB '*[^0-9a-zA-Z._-]*'),
  v            INTEGER NOT NULL DEFAULT 1,
  created      INTEGER NOT NULL,
  ring_keys    INTEGER NOT NULL CHECK (ring_keys >= 0),
  mac_keys     INTEGER NOT NULL CHECK (mac_keys >= 0),
  bundle       BLOB    NOT NULL,
  delivered_at INTEGER,
  location     TEXT
) STRICT;
CREATE INDEX publications_undelivered ON publications (created) WHERE delivered_at IS NULL;
`;

// The account key's vault (vault.ts, docs/PROTOCOL.md §17.1): one row, created with the sealing
// below on the first unlock. kdf 'none' is an account without a passphrase (the key as is).
const V4 = `
CREATE TABLE account_key (
  id      INTEGER PRIMARY KEY CHECK (id = 1),
  v       INTEGER NOT NULL DEFAULT 1,
  kdf     TEXT    NOT NULL CHECK (kdf IN ('scrypt', 'none')),
  log_n   INTEGER,
  r       INTEGER,
  p       INTEGER,
  salt    BLOB,
  wrapped BLOB    NOT NULL,
  created INTEGER NOT NULL,
  CHECK ((kdf = 'none') = (salt IS NULL))
) STRICT;
`;

/** Writes the vault row from a VaultRow (named parameters): the sealing migration creates it, passwd replaces it. */
export const PUT_VAULT = `
INSERT INTO account_key (id, v, kdf, log_n, r, p, salt, wrapped, created)
VALUES (1, @v, @kdf, @log_n, @r, @p, @salt, @wrapped, @created)
ON CONFLICT (id) DO UPDATE SET
  v = excluded.v, kdf = excluded.kdf, log_n = excluded.log_n, r = excluded.r, p = excluded.p,
  salt = excluded.salt, wrapped = excluded.wrapped, created = excluded.created
`;

// Version 5 seals every secret and plaintext under the account key, in one transaction with the
// vault row: the session states and the identity's secret key move to BLOB columns; own key
// secrets and delivered plaintext are sealed in place. Same column names as before except
// sessions.state, so the public reads work on a store of either version. sessions.kind is the
// state's kind in clear (idle, initiated, established...), for `offrecord sessions` without the
// passphrase.
const V5_TABLES = `
CREATE TABLE sessions_sealed (
  local      TEXT    NOT NULL,
  peer       TEXT    NOT NULL,
  revision   INTEGER NOT NULL CHECK (revision > 0),
  kind       TEXT    NOT NULL,
  state      BLOB    NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (local, peer)
) STRICT;
CREATE TABLE identity_sealed (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  v           INTEGER NOT NULL DEFAULT 1,
  fingerprint TEXT    NOT NULL CHECK (${FINGERPRINT('fingerprint')}),
  secret_key  BLOB    NOT NULL,
  certificate TEXT    NOT NULL,
  created     INTEGER NOT NULL
) STRICT;
`;

const V5_SWAP = `
DROP TABLE sessions;
ALTER TABLE sessions_sealed RENAME TO sessions;
DROP TABLE identity;
ALTER TABLE identity_sealed RENAME TO identity;
`;

/** The places of sealed values (vault.ts placeData): table, column, every part of the row key. */
export const PLACES = {
  session: (local: string, peer: string, revision: number) => ({ table: 'sessions', column: 'state', key: [local, peer, revision] }),
  identity: (fingerprint: string) => ({ table: 'identity', column: 'secret_key', key: [1, fingerprint] }),
  ownKey: (id: string, kind: string) => ({ table: 'own_keys', column: 'secret', key: [id, kind] }),
  delivery: (id: string) => ({ table: 'deliveries', column: 'message', key: [id] }),
} as const;

function sealEverything(db: Database.Database, unlocking: Unlocking | null): void {
  if (unlocking === null) throw new TypeError('the sealing migration needs the account key');
  const { key, vault } = unlocking;
  if (vault !== null) db.prepare(PUT_VAULT).run(vault);
  db.exec(V5_TABLES);
  const sessions = db.prepare<[], { local: string; peer: string; revision: number; state_json: string; updated_at: number }>(
    'SELECT * FROM sessions',
  );
  const insertSession = db.prepare(
    'INSERT INTO sessions_sealed (local, peer, revision, kind, state, updated_at) VALUES (?, ?, ?, ?, ?, ?)',
  );
  for (const row of sessions.all()) {
    const clear = Buffer.from(row.state_json, 'utf8');
    const kind = (JSON.parse(row.state_json) as { state?: { kind?: unknown } }).state?.kind;
    if (typeof kind !== 'string') throw new StoreError('corrupt', `session ${row.local}/${row.peer}: the stored state has no kind`);
    insertSession.run(
      row.local,
      row.peer,
      row.revision,
      kind,
      key.seal(PLACES.session(row.local, row.peer, row.revision), clear),
      row.updated_at,
    );
    clear.fill(0);
  }
  const identity = db
    .prepare<[], { v: number; fingerprint: string; secret_key: string; certificate: string; created: number }>('SELECT * FROM identity')
    .get();
  if (identity) {
    const clear = Buffer.from(identity.secret_key, 'utf8');
    db.prepare('INSERT INTO identity_sealed (id, v, fingerprint, secret_key, certificate, created) VALUES (1, ?, ?, ?, ?, ?)').run(
      identity.v,
      identity.fingerprint,
      key.seal(PLACES.identity(identity.fingerprint), clear),
      identity.certificate,
      identity.created,
    );
    clear.fill(0);
  }
  db.exec(V5_SWAP);
  const ownKeys = db
    .prepare<[], { id: string; kind: string; secret: Buffer }>('SELECT id, kind, secret FROM own_keys WHERE secret IS NOT NULL')
    .all();
  const sealOwnKey = db.prepare('UPDATE own_keys SET secret = ? WHERE id = ?');
  for (const row of ownKeys) {
    sealOwnKey.run(key.seal(PLACES.ownKey(row.id, row.kind), row.secret), row.id);
    row.secret.fill(0);
  }
  const deliveries = db.prepare<[], { id: string; message: Buffer }>('SELECT id, message FROM deliveries').all();
  const sealDelivery = db.prepare('UPDATE deliveries SET message = ? WHERE id = ?');
  for (const row of deliveries) {
    sealDelivery.run(key.seal(PLACES.delivery(row.id), row.message), row.id);
    row.message.fill(0);
  }
}

/** The version from which every secret column is sealed. */
export const SEALED_VERSION = 5;

// Version 6, rejected_identities: identities the user rejected for an address (a changed identity, declined
// with `keys trust ADDRESS --fingerprint <the pinned one>`): their mail is filed away unread and
// never raises the alarm again (docs/PROTOCOL.md §18.6 step 4).
const V6 = `
CREATE TABLE rejected_identities (
  address     TEXT    NOT NULL CHECK (address = lower(address) AND length(address) > 0),
  fingerprint TEXT    NOT NULL CHECK (${FINGERPRINT('fingerprint')}),
  v           INTEGER NOT NULL DEFAULT 1,
  rejected_at INTEGER NOT NULL,
  PRIMARY KEY (address, fingerprint)
) STRICT;
`;

// Version 7: when each session's timed duties fall due (src/protocol/duties.ts), in clear beside
// the sealed state and written with it, so a duties run or a publication reads an index of the
// sessions with something due instead of opening every session (PROTOCOL.md §17.2). Keyed: the
// existing states are opened once to fill the columns.
const V7 = `
ALTER TABLE sessions ADD COLUMN retired_since INTEGER;
ALTER TABLE sessions ADD COLUMN resend_since INTEGER;
ALTER TABLE sessions ADD COLUMN ack_since INTEGER;
ALTER TABLE sessions ADD COLUMN reveals INTEGER NOT NULL DEFAULT 0 CHECK (reveals >= 0);
CREATE INDEX sessions_duties ON sessions (local, peer, retired_since, resend_since, ack_since, reveals);
`;

function addDutyClocks(db: Database.Database, unlocking: Unlocking | null): void {
  if (unlocking === null) throw new TypeError('the duty clocks migration needs the account key');
  db.exec(V7);
  const rows = db
    .prepare<[], { local: string; peer: string; revision: number; state: Buffer }>('SELECT local, peer, revision, state FROM sessions')
    .all();
  const update = db.prepare(
    'UPDATE sessions SET retired_since = ?, resend_since = ?, ack_since = ?, reveals = ? WHERE local = ? AND peer = ?',
  );
  for (const row of rows) {
    const clear = unlocking.key.open(PLACES.session(row.local, row.peer, row.revision), row.state);
    try {
      const clocks = dutyClocks(decodeSessionState(clear.toString('utf8'), `session ${row.local}/${row.peer}`));
      update.run(clocks.retiredSince, clocks.resendSince, clocks.ackSince, clocks.reveals, row.local, row.peer);
    } finally {
      clear.fill(0);
    }
  }
}

// Version 8, mail looked at once (docs/PROTOCOL.md §18.6): the checkpoint now says every mail up
// to last_uid was looked at (processed, examined or recorded here), so a pass searches only
// above it; it was the highest UID processed, with skipped mail below it, so it starts over once.
// skipped_mail holds the mail left on the server, with the world generation it was skipped under
// (NULL: a transient failure, looked at on the next pass), whether its reason depends on keys at
// all (`keyed`: a malformed mail stays malformed whatever is learned) and the software that
// skipped it: it is read again only when the software changed, or when it is keyed and the
// generation moved. Held mail keeps who held it, so `fetch` can remind the user without reading it. The generation moves with whatever may make held or skipped mail
// processable: a peer or peer key learned, a trust decision, a rejected identity.
const V8 = `
DELETE FROM mail_checkpoints;
CREATE TABLE skipped_mail (
  mailbox    TEXT    NOT NULL,
  mail_id    TEXT    NOT NULL CHECK (length(mail_id) > 0),
  v          INTEGER NOT NULL DEFAULT 1,
  epoch      TEXT    NOT NULL,
  code       TEXT    NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
  world      INTEGER CHECK (world IS NULL OR world >= 0),
  keyed      INTEGER NOT NULL CHECK (keyed IN (0, 1)),
  software   TEXT    NOT NULL CHECK (length(software) BETWEEN 1 AND 64),
  skipped_at INTEGER NOT NULL,
  held_from        TEXT,
  held_fingerprint TEXT,
  held_pending     TEXT,
  CHECK ((held_from IS NULL) = (held_fingerprint IS NULL) AND (held_from IS NULL) = (held_pending IS NULL)),
  PRIMARY KEY (mailbox, mail_id)
) STRICT;
CREATE TABLE mail_world (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  generation INTEGER NOT NULL CHECK (generation >= 0)
) STRICT;
INSERT INTO mail_world (id, generation) VALUES (1, 0);
CREATE TRIGGER mail_world_peer_added AFTER INSERT ON peers BEGIN UPDATE mail_world SET generation = generation + 1; END;
CREATE TRIGGER mail_world_peer_dropped AFTER DELETE ON peers BEGIN UPDATE mail_world SET generation = generation + 1; END;
CREATE TRIGGER mail_world_peer_changed AFTER UPDATE ON peers
  WHEN OLD.fingerprint IS NOT NEW.fingerprint OR OLD.certificate IS NOT NEW.certificate OR OLD.verified IS NOT NEW.verified
    OR OLD.pending_fingerprint IS NOT NEW.pending_fingerprint
  BEGIN UPDATE mail_world SET generation = generation + 1; END;
CREATE TRIGGER mail_world_peer_key_added AFTER INSERT ON peer_keys BEGIN UPDATE mail_world SET generation = generation + 1; END;
CREATE TRIGGER mail_world_identity_rejected AFTER INSERT ON rejected_identities BEGIN UPDATE mail_world SET generation = generation + 1; END;
CREATE TRIGGER mail_world_rejection_dropped AFTER DELETE ON rejected_identities BEGIN UPDATE mail_world SET generation = generation + 1; END;
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'sessions, identity, own and peer keys, TOFU pins, mail checkpoints',
    up: (db) => db.exec(V1),
  },
  {
    version: 2,
    description: 'processed mail by transport id; the outbox of plaintext deliveries',
    up: (db) => db.exec(V2),
  },
  {
    version: 3,
    description: 'the record of published bundles',
    up: (db) => db.exec(V3),
  },
  {
    version: 4,
    description: 'the vault of the account key',
    up: (db) => db.exec(V4),
  },
  {
    version: SEALED_VERSION,
    description: 'every secret and plaintext sealed under the account key',
    keyed: true,
    up: sealEverything,
  },
  {
    version: 6,
    description: 'identities the user rejected',
    up: (db) => db.exec(V6),
  },
  {
    version: 7,
    description: "when each session's duties fall due, indexed",
    keyed: true,
    up: addDutyClocks,
  },
  {
    version: 8,
    description: 'mail looked at once: the checkpoint of every mail looked at, skipped mail and the world it was skipped under',
    up: (db) => db.exec(V8),
  },
];

/** The schema version this code writes and reads. */
export const SCHEMA_VERSION = MIGRATIONS.length;

export function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Brings the database up to the last migration, or without `unlocking` up to the last one
 * before a keyed migration. Refuses a database newer than `migrations` (StoreError 'too_new').
 * Safe against a second process migrating at the same time: each step re-reads the version
 * under the write lock.
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = MIGRATIONS,
  what = 'store',
  unlocking: Unlocking | null = null,
): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new TypeError(`migration ${i} must have version ${i + 1}`);
  });
  const target = migrations.length;
  const check = (version: number) => {
    if (version > target) {
      throw new StoreError(
        'too_new',
        `${what}: the database has schema version ${version}, newer than this offrecord knows (${target}); upgrade offrecord`,
      );
    }
  };
  check(userVersion(db));
  for (const migration of migrations) {
    if (migration.keyed && unlocking === null) break;
    db.transaction(() => {
      const current = userVersion(db);
      check(current);
      if (current >= migration.version) return;
      migration.up(db, unlocking);
      db.pragma(`user_version = ${migration.version}`);
    }).immediate();
  }
  return userVersion(db);
}

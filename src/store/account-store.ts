// One account's local state in one SQLite database (better-sqlite3, synchronous): sessions
// (the protocol's SessionStore), our identity and short-lived keys, TOFU pins of peers and
// their short-lived keys, and where the mail pipeline stands.
//
// Transactions: every write method is atomic on its own; transaction(fn) groups several
// into one (one protocol step = one transaction), taking the write lock up front (BEGIN
// IMMEDIATE) so two processes never both read-then-write the same row.
//
// Forgetting: secure_delete zeroes freed content in the database file, but in WAL mode the
// old page images stay in the -wal file until a checkpoint. So every write that can drop
// secrets (a session save, destroying a key secret, deleting a session or a key, replacing
// the identity) is followed, once the outermost transaction has committed, by
// `PRAGMA wal_checkpoint(TRUNCATE)`, which copies the pages back and empties the WAL.
import type Database from 'better-sqlite3';
import { dutyClocks, type DutyCutoffs } from '../protocol/duties.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { SessionState } from '../protocol/state.ts';
import type { SessionStore, StoredSession } from '../protocol/store.ts';
import { decodeSessionState, encodeSessionState } from './codec.ts';
import { StoreError, storeErrorFrom } from './errors.ts';
import { openDatabase, type OpenOptions } from './open.ts';
import {
  bind,
  blob,
  checkpointFromRow,
  deliveryFromRow,
  identityFromRow,
  addressKey,
  normalizeHex,
  ownKeyFromRow,
  peerFromRow,
  peerKeyFromRow,
  processedFromRow,
  skippedFromRow,
  type CheckpointRow,
  type Delivery,
  type DeliveryRow,
  type IdentityRecord,
  type IdentityRow,
  type KeyKind,
  type MailCheckpoint,
  type MailRef,
  type NewOwnKey,
  type NewPeer,
  type NewPeerKey,
  type OwnKeyRecord,
  type OwnKeyRow,
  type PeerKeyRecord,
  type PeerKeyRow,
  type PeerRecord,
  type PeerRow,
  type PendingIdentity,
  type ProcessedMail,
  type ProcessedRow,
  type SkippedMail,
  type SkippedRow,
  publicationFromRow,
  type Publication,
  type PublicationRow,
} from './records.ts';
import { migrate, PLACES, PUT_VAULT, SCHEMA_VERSION, SEALED_VERSION, userVersion } from './schema.ts';
import { AccountKey, DEFAULT_KDF, type KdfParams, type KdfPlace, type VaultRow } from './vault.ts';
import { systemClock } from '../protocol/env.ts';

export interface AccountStoreOptions extends OpenOptions {
  /** Clock for the times the store records itself (first_seen, destroyed_at, ...); ms since epoch. */
  clock?: () => number;
  /**
   * Checkpoint the WAL after every session save (default true), so an old state's DH
   * secrets and plaintext copy never outlive the save on disk. false defers that to
   * forget(), close() and the other forgetting writes (key destruction, deletions).
   */
  checkpointAfterSave?: boolean;
  /** Unlock at once (see AccountStore.unlock): the passphrase, or null for an account without one. */
  passphrase?: string | null;
  /** scrypt cost for an account key created by this open (default DEFAULT_KDF). */
  kdf?: KdfParams;
  /**
   * 'child' runs scrypt in a child process, so its 128 MiB never count in this process's memory
   * peak (the CLI does, for the long-running watcher above all); default 'inline'.
   */
  kdfPlace?: KdfPlace;
}

/** How the account key is kept: under a passphrase, without one, or not yet made (a store of before version 5). */
export type Protection = 'passphrase' | 'none' | 'unset';

export interface SessionSummary {
  peer: string;
  revision: number;
  /** The state's kind (idle, initiated, established, ...); null in a store not yet sealed (version < 5). */
  kind: string | null;
  updatedAt: number;
}

/** Opens (creating if needed) the database of one account at `path`. */
export function openAccountStore(path: string, options: AccountStoreOptions = {}): AccountStore {
  const store = new AccountStore(
    openDatabase(path, options),
    path,
    options.clock ?? systemClock,
    options.checkpointAfterSave ?? true,
    options.kdfPlace ?? 'inline',
  );
  if (options.passphrase !== undefined) {
    try {
      store.unlock(options.passphrase, options.kdf !== undefined ? { kdf: options.kdf } : {});
    } catch (error) {
      store.close();
      throw error;
    }
  }
  return store;
}

/**
 * Statements prepared on first use: a locked store of an older version has the public columns
 * only under their old table layout, and never prepares the statements of the sealed columns.
 */
function lazily<T extends object>(make: { [K in keyof T]: () => T[K] }): T {
  const out = {} as T;
  for (const name of Object.keys(make) as (keyof T)[]) {
    let made: T[keyof T] | undefined;
    Object.defineProperty(out, name, { get: () => (made ??= make[name]()), enumerable: true });
  }
  return out;
}

function sql(db: Database.Database) {
  const statements = {
    sessionGet: () =>
      db.prepare<[string, string], { revision: number; state: Buffer }>(
        'SELECT revision, state FROM sessions WHERE local = ? AND peer = ?',
      ),
    sessionRevision: () => db.prepare<[string, string], { revision: number }>('SELECT revision FROM sessions WHERE local = ? AND peer = ?'),
    sessionInsert: () =>
      db.prepare(
        `INSERT INTO sessions (local, peer, revision, kind, state, updated_at, retired_since, resend_since, ack_since, reveals)
       VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?)`,
      ),
    sessionUpdate: () =>
      db.prepare(
        `UPDATE sessions SET revision = revision + 1, kind = ?, state = ?, updated_at = ?, retired_since = ?, resend_since = ?, ack_since = ?, reveals = ?
       WHERE local = ? AND peer = ? AND revision = ?`,
      ),
    // A scan of the covering index sessions_duties (~100 bytes a session), never of the sealed states.
    sessionsDue: () =>
      db.prepare<[string, number, number, number], { peer: string }>(
        'SELECT peer FROM sessions WHERE local = ? AND (retired_since <= ? OR resend_since <= ? OR ack_since <= ?) ORDER BY peer',
      ),
    sessionsRevealing: () =>
      db.prepare<[string, number], { peer: string }>(
        'SELECT peer FROM sessions WHERE local = ? AND (reveals > 0 OR retired_since <= ?) ORDER BY peer',
      ),
    sessionList: () =>
      db.prepare<[string], { peer: string; revision: number; kind: string; updated_at: number }>(
        'SELECT peer, revision, kind, updated_at FROM sessions WHERE local = ? ORDER BY peer',
      ),
    legacySessionList: () =>
      db.prepare<[string], { peer: string; revision: number; updated_at: number }>(
        'SELECT peer, revision, updated_at FROM sessions WHERE local = ? ORDER BY peer',
      ),
    sessionDelete: () => db.prepare('DELETE FROM sessions WHERE local = ? AND peer = ?'),

    identityGet: () => db.prepare<[], IdentityRow>('SELECT v, fingerprint, secret_key, certificate, created FROM identity WHERE id = 1'),
    identityPut: () =>
      db.prepare(
        `INSERT INTO identity (id, v, fingerprint, secret_key, certificate, created) VALUES (1, 1, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET v = 1, fingerprint = excluded.fingerprint, secret_key = excluded.secret_key,
         certificate = excluded.certificate, created = excluded.created`,
      ),

    ownKeyGet: () => db.prepare<[string], OwnKeyRow>('SELECT * FROM own_keys WHERE id = ?'),
    ownKeysAll: () => db.prepare<[], OwnKeyRow>('SELECT * FROM own_keys ORDER BY not_before, id'),
    ownKeysByKind: () => db.prepare<[string], OwnKeyRow>('SELECT * FROM own_keys WHERE kind = ? ORDER BY not_before, id'),
    ownKeyInsert: () =>
      db.prepare(
        `INSERT INTO own_keys (id, v, kind, public, secret, created, not_before, not_after, certification)
       VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?)`,
      ),
    ownKeyDestroy: () => db.prepare('UPDATE own_keys SET secret = NULL, destroyed_at = ? WHERE id = ? AND destroyed_at IS NULL'),
    ownKeyPublish: () => db.prepare('UPDATE own_keys SET published_at = ? WHERE id = ? AND published_at IS NULL'),
    ownKeyDelete: () => db.prepare('DELETE FROM own_keys WHERE id = ?'),

    peerGet: () => db.prepare<[string], PeerRow>('SELECT * FROM peers WHERE address = ?'),
    peersAll: () => db.prepare<[], PeerRow>('SELECT * FROM peers ORDER BY address'),
    peersByFingerprint: () => db.prepare<[string], PeerRow>('SELECT * FROM peers WHERE fingerprint = ? ORDER BY address'),
    peerInsert: () =>
      db.prepare(
        `INSERT INTO peers (address, v, fingerprint, certificate, first_seen, verified) VALUES (?, 1, ?, ?, ?, ?)
       ON CONFLICT (address) DO NOTHING`,
      ),
    peerCertificate: () => db.prepare('UPDATE peers SET certificate = ? WHERE address = ? AND fingerprint = ?'),
    peerVerified: () => db.prepare('UPDATE peers SET verified = ? WHERE address = ?'),
    peerSetPending: () =>
      db.prepare(
        'UPDATE peers SET pending_fingerprint = ?, pending_certificate = ?, pending_seen_at = ? WHERE address = ? AND fingerprint != ?',
      ),
    peerClearPending: () =>
      db.prepare(
        'UPDATE peers SET pending_fingerprint = NULL, pending_certificate = NULL, pending_seen_at = NULL WHERE address = ? AND pending_fingerprint IS NOT NULL',
      ),
    peerAcceptPending: () =>
      db.prepare(
        `UPDATE peers SET fingerprint = pending_fingerprint, certificate = pending_certificate, first_seen = pending_seen_at,
         verified = 0, pending_fingerprint = NULL, pending_certificate = NULL, pending_seen_at = NULL
       WHERE address = ? AND pending_fingerprint IS NOT NULL`,
      ),
    peerDelete: () => db.prepare('DELETE FROM peers WHERE address = ?'),
    rejectedInsert: () =>
      db.prepare(
        `INSERT INTO rejected_identities (address, fingerprint, v, rejected_at)
       SELECT address, pending_fingerprint, 1, ? FROM peers WHERE address = ? AND pending_fingerprint IS NOT NULL
       ON CONFLICT (address, fingerprint) DO NOTHING`,
      ),
    rejectedGet: () =>
      db.prepare<[string, string], { rejected_at: number }>(
        'SELECT rejected_at FROM rejected_identities WHERE address = ? AND fingerprint = ?',
      ),

    peerKeysAll: () => db.prepare<[string], PeerKeyRow>('SELECT * FROM peer_keys WHERE fingerprint = ? ORDER BY not_before, public'),
    peerKeysByKind: () =>
      db.prepare<[string, string], PeerKeyRow>('SELECT * FROM peer_keys WHERE fingerprint = ? AND kind = ? ORDER BY not_before, public'),
    peerKeyInsert: () =>
      db.prepare(
        `INSERT INTO peer_keys (fingerprint, kind, public, v, not_before, not_after, certification, seen_at)
       VALUES (?, ?, ?, 1, ?, ?, ?, ?) ON CONFLICT (fingerprint, kind, public) DO NOTHING`,
      ),
    peerKeysExpire: () => db.prepare('DELETE FROM peer_keys WHERE not_after < ?'),

    checkpointGet: () => db.prepare<[string], CheckpointRow>('SELECT * FROM mail_checkpoints WHERE mailbox = ?'),
    checkpointPut: () =>
      db.prepare(
        `INSERT INTO mail_checkpoints (mailbox, v, uidvalidity, last_uid, updated_at) VALUES (?, 1, ?, ?, ?)
       ON CONFLICT (mailbox) DO UPDATE SET v = 1, uidvalidity = excluded.uidvalidity, last_uid = excluded.last_uid,
         updated_at = excluded.updated_at`,
      ),
    processedGet: () => db.prepare<[string, string], ProcessedRow>('SELECT * FROM processed_mail WHERE mailbox = ? AND mail_id = ?'),
    processedByMessageId: () =>
      db.prepare<[string, string], ProcessedRow>(
        'SELECT * FROM processed_mail WHERE mailbox = ? AND message_id = ? ORDER BY processed_at, mail_id',
      ),
    processedInsert: () =>
      db.prepare(
        `INSERT INTO processed_mail (mailbox, mail_id, v, epoch, message_id, processed_at) VALUES (?, ?, 1, ?, ?, ?)
       ON CONFLICT (mailbox, mail_id) DO NOTHING`,
      ),
    processedPrune: () => db.prepare('DELETE FROM processed_mail WHERE processed_at < ?'),
    mailWorld: () => db.prepare<[], { generation: number }>('SELECT generation FROM mail_world WHERE id = 1'),
    skippedGet: () => db.prepare<[string, string], SkippedRow>('SELECT * FROM skipped_mail WHERE mailbox = ? AND mail_id = ?'),
    skippedStale: () =>
      db.prepare<[string, number, string], SkippedRow>(
        'SELECT * FROM skipped_mail WHERE mailbox = ? AND (world IS NULL OR (keyed = 1 AND world != ?) OR software != ?) ORDER BY skipped_at, mail_id',
      ),
    skippedPut: () =>
      db.prepare(
        `INSERT INTO skipped_mail (mailbox, mail_id, v, epoch, code, world, keyed, software, skipped_at, held_from, held_fingerprint, held_pending)
       VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (mailbox, mail_id) DO UPDATE SET v = 1, epoch = excluded.epoch, code = excluded.code, world = excluded.world,
         keyed = excluded.keyed, software = excluded.software, skipped_at = excluded.skipped_at, held_from = excluded.held_from,
         held_fingerprint = excluded.held_fingerprint, held_pending = excluded.held_pending`,
      ),
    skippedHeld: () =>
      db.prepare<[string], SkippedRow>(
        'SELECT * FROM skipped_mail WHERE mailbox = ? AND held_from IS NOT NULL ORDER BY skipped_at, mail_id',
      ),
    skippedDelete: () => db.prepare('DELETE FROM skipped_mail WHERE mailbox = ? AND mail_id = ?'),
    skippedOtherEpochs: () => db.prepare('DELETE FROM skipped_mail WHERE mailbox = ? AND epoch != ?'),
    deliveryInsert: () =>
      db.prepare('INSERT INTO deliveries (id, v, sender, fingerprint, verified, message, received_at) VALUES (?, 1, ?, ?, ?, ?, ?)'),
    deliveriesAll: () => db.prepare<[], DeliveryRow>('SELECT * FROM deliveries ORDER BY received_at, id'),
    deliveryDelete: () => db.prepare('DELETE FROM deliveries WHERE id = ?'),
    deliveryCount: () => db.prepare<[], { n: number }>('SELECT count(*) AS n FROM deliveries'),

    vaultGet: () => db.prepare<[], VaultRow>('SELECT v, kdf, log_n, r, p, salt, wrapped, created FROM account_key WHERE id = 1'),
    vaultPut: () => db.prepare<[VaultRow]>(PUT_VAULT),
    legacyIdentitySecret: () => db.prepare<[], { secret_key: string }>('SELECT secret_key FROM identity WHERE id = 1'),
  };
  return lazily<{ [K in keyof typeof statements]: ReturnType<(typeof statements)[K]> }>(statements);
}

function publicationSql(db: Database.Database) {
  const statements = {
    insert: () => db.prepare('INSERT INTO publications (name, v, created, ring_keys, mac_keys, bundle) VALUES (?, 1, ?, ?, ?, ?)'),
    all: () => db.prepare<[], PublicationRow>('SELECT * FROM publications ORDER BY created, name'),
    undelivered: () => db.prepare<[], PublicationRow>('SELECT * FROM publications WHERE delivered_at IS NULL ORDER BY created, name'),
    delivered: () => db.prepare('UPDATE publications SET delivered_at = ?, location = ? WHERE name = ? AND delivered_at IS NULL'),
  };
  return lazily<{ [K in keyof typeof statements]: ReturnType<(typeof statements)[K]> }>(statements);
}

function checkTime(value: number, name: string): number {
  if (!Number.isSafeInteger(value)) throw new TypeError(`${name} must be an integer time in ms`);
  return value;
}

function checkUid(value: number, name: string, min: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > 0xffffffff)
    throw new TypeError(`${name} must be an IMAP number (${min}..2^32-1)`);
  return value;
}

export class AccountStore implements SessionStore {
  private readonly q: ReturnType<typeof sql>;
  private readonly pub: ReturnType<typeof publicationSql>;
  /** A write dropped data that may hold secrets: checkpoint once the outermost transaction ends. */
  private forgetDue = false;
  /** The unwrapped account key while unlocked (docs/PROTOCOL.md §17.1). */
  private key: AccountKey | null = null;

  constructor(
    private readonly db: Database.Database,
    /** The database path, for messages. */
    readonly path: string,
    private readonly now: () => number = systemClock,
    private readonly checkpointAfterSave = true,
    private readonly kdfPlace: KdfPlace = 'inline',
  ) {
    this.q = sql(db);
    this.pub = publicationSql(db);
  }

  /** The schema version of the open database (PRAGMA user_version). */
  get schemaVersion(): number {
    return userVersion(this.db);
  }

  get open(): boolean {
    return this.db.open;
  }

  // ------------------------------------------------------------ plumbing

  private run<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (error) {
      throw storeErrorFrom(error, `store ${this.path}: ${what}`);
    } finally {
      this.settle();
    }
  }

  /** After the outermost transaction: empty the WAL if something was forgotten. Never throws. */
  private settle(): void {
    if (!this.forgetDue || !this.db.open || this.db.inTransaction) return;
    try {
      this.walCheckpoint();
    } catch {
      // Busy or failed: the data is committed; the next write or forget() tries again.
    }
  }

  /** Returns true if the WAL was fully copied back and truncated. */
  private walCheckpoint(): boolean {
    const [result] = this.db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number; checkpointed: number }[];
    const complete = result !== undefined && result.busy === 0;
    if (complete) this.forgetDue = false;
    return complete;
  }

  /**
   * Runs `fn` as one IMMEDIATE transaction (the write lock is taken up front). Nested calls
   * become savepoints. `fn` must be synchronous: better-sqlite3 cannot hold a transaction
   * across an await. A throw rolls everything back and is rethrown.
   */
  transaction<T>(fn: () => T): T {
    return this.immediate('transaction', fn);
  }

  private immediate<T>(what: string, fn: () => T): T {
    return this.run(what, () => this.db.transaction(fn).immediate());
  }

  /**
   * Makes forgetting final now: copies the WAL back into the database and truncates it, so
   * freed page images (already zeroed by secure_delete in the main file) leave no copy in
   * the -wal file. Returns false if another process's reader kept it from completing within
   * the busy timeout (it is retried after the next write).
   */
  forget(): boolean {
    if (this.db.inTransaction) throw new TypeError('forget() inside a transaction: it runs after the commit by itself');
    return this.run('checkpoint', () => {
      this.forgetDue = true;
      return this.walCheckpoint();
    });
  }

  // ------------------------------------------------------------ the account key

  /** How the account key is kept (public: no passphrase needed to ask). */
  protection(): Protection {
    return this.run('read the account key record', () => {
      if (userVersion(this.db) < SEALED_VERSION) return 'unset';
      const vault = this.q.vaultGet.get();
      if (!vault) throw new StoreError('corrupt', `store ${this.path}: the account key record is missing`);
      return vault.kdf === 'scrypt' ? 'passphrase' : 'none';
    });
  }

  get unlocked(): boolean {
    return this.key !== null;
  }

  /**
   * A store of before version 5 keeps the identity's secret key in clear (under OpenPGP's own
   * passphrase protection, if any): the caller checks the passphrase against it before the first
   * unlock seals it. null once sealed, or without an identity.
   */
  legacyIdentitySecret(): string | null {
    if (userVersion(this.db) >= SEALED_VERSION) return null;
    return this.run('load identity', () => this.q.legacyIdentitySecret.get()?.secret_key ?? null);
  }

  /**
   * Unwraps the account key with `passphrase` (null: an account without one) and keeps it until
   * lock() or close(). The first unlock of a store without an account key makes one, wrapped
   * under `passphrase` with `kdf`, and seals everything the store holds in the same transaction
   * (migration 5), then vacuums so no clear copy stays in the file, its free pages or the WAL.
   * StoreError 'passphrase_required' (none or empty given) or 'bad_passphrase': nothing written.
   */
  unlock(passphrase: string | null, options: { kdf?: KdfParams } = {}): void {
    const what = `store ${this.path}`;
    this.lock();
    const vault = this.run('read the account key record', () =>
      userVersion(this.db) >= SEALED_VERSION ? (this.q.vaultGet.get() ?? null) : null,
    );
    if (vault !== null) {
      const key = AccountKey.unwrap(vault, passphrase, what, this.kdfPlace);
      try {
        // Keyed migrations after the sealing one run on the first unlock that finds them missing.
        if (userVersion(this.db) < SCHEMA_VERSION)
          this.run('bring the store up to date', () => migrate(this.db, undefined, what, { key, vault: null }));
      } catch (error) {
        key.wipe();
        throw error;
      }
      this.key = key;
      return;
    }
    if (userVersion(this.db) >= SEALED_VERSION) throw new StoreError('corrupt', `${what}: the account key record is missing`);
    const key = AccountKey.generate();
    try {
      const created = key.wrap(passphrase, options.kdf ?? DEFAULT_KDF, this.now(), this.kdfPlace);
      this.run('seal the store under the account key', () => migrate(this.db, undefined, what, { key, vault: created }));
      const stored = this.run('read the account key record', () => this.q.vaultGet.get());
      if (!stored || !stored.wrapped.equals(created.wrapped)) {
        // Another process sealed the store first: its key is the account's.
        key.wipe();
        this.key = AccountKey.unwrap(stored!, passphrase, what, this.kdfPlace);
        return;
      }
      this.key = key;
    } catch (error) {
      key.wipe();
      throw error;
    }
    this.vacuum();
  }

  /** Rewrites the whole file and empties the WAL: no freed page or old page image keeps clear data. */
  private vacuum(): void {
    this.run('vacuum', () => {
      this.db.exec('VACUUM');
      this.forgetDue = true;
    });
  }

  /** Wipes the account key from memory; reading or writing a secret then throws 'passphrase_required'. */
  lock(): void {
    this.key?.wipe();
    this.key = null;
  }

  /**
   * Wraps the account key anew under `passphrase` (null: none): one write of the vault row, so a
   * crash leaves the old wrapping or the new one. Rows are not re-encrypted. Needs unlock().
   */
  changePassphrase(passphrase: string | null, options: { kdf?: KdfParams } = {}): void {
    const key = this.requireKey();
    const vault = key.wrap(passphrase, options.kdf ?? DEFAULT_KDF, this.now(), this.kdfPlace);
    this.immediate('store the account key', () => {
      if (this.q.vaultGet.get() === undefined) throw new StoreError('corrupt', `store ${this.path}: the account key record is missing`);
      this.q.vaultPut.run(vault);
      this.forgetDue = true; // the old wrapping must not stay in the WAL
    });
  }

  private requireKey(): AccountKey {
    if (this.key === null)
      throw new StoreError('passphrase_required', `store ${this.path}: the store is locked: unlock it with the passphrase first`);
    return this.key;
  }

  private seal(place: Parameters<AccountKey['seal']>[0], plaintext: Uint8Array): Buffer {
    return this.requireKey().seal(place, plaintext);
  }

  private unseal(place: Parameters<AccountKey['open']>[0], sealed: Uint8Array): Buffer {
    return this.requireKey().open(place, sealed);
  }

  /** Checkpoints, wipes the account key and closes. Using the store afterwards throws. */
  close(): void {
    this.lock();
    if (!this.db.open) return;
    try {
      this.forgetDue = true;
      this.settle();
    } finally {
      this.db.close();
    }
  }

  // ------------------------------------------------------------ sessions (SessionStore)

  async load(local: string, peer: string): Promise<StoredSession | null> {
    return this.loadSession(local, peer);
  }

  async save(local: string, peer: string, state: SessionState, expected: number, alongside?: () => void): Promise<number> {
    return this.saveSession(local, peer, state, expected, alongside);
  }

  async revision(local: string, peer: string): Promise<number> {
    return this.run(`read the revision of session ${local}/${peer}`, () => this.q.sessionRevision.get(local, peer)?.revision ?? 0);
  }

  /** Synchronous load, for use inside transaction(). */
  loadSession(local: string, peer: string): StoredSession | null {
    return this.run(`load session ${local}/${peer}`, () => {
      const row = this.q.sessionGet.get(local, peer);
      if (!row) return null;
      const clear = this.unseal(PLACES.session(local, peer, row.revision), row.state);
      try {
        return { state: decodeSessionState(clear.toString('utf8'), `session ${local}/${peer}`), revision: row.revision };
      } finally {
        clear.fill(0);
      }
    });
  }

  /**
   * Synchronous compare-and-swap save, for use inside transaction(): stores `state` if the
   * stored revision is still `expected` (0: none stored yet) and returns the new revision;
   * otherwise throws ProtocolError('state_conflict'). `alongside` runs in the same transaction
   * (the mail pipeline records the processed mail and its plaintext there).
   */
  saveSession(local: string, peer: string, state: SessionState, expected: number, alongside?: () => void): number {
    if (!Number.isSafeInteger(expected) || expected < 0) throw new TypeError('expected revision must be a non-negative integer');
    const json = Buffer.from(encodeSessionState(state), 'utf8');
    this.requireKey();
    return this.immediate(`save session ${local}/${peer}`, () => {
      const current = this.q.sessionRevision.get(local, peer)?.revision ?? 0;
      if (current !== expected) throw new ProtocolError('state_conflict', 'the session was changed by someone else; load it again');
      const now = this.now();
      const sealed = this.seal(PLACES.session(local, peer, current + 1), json);
      json.fill(0);
      const c = dutyClocks(state);
      const clocks = [c.retiredSince, c.resendSince, c.ackSince, c.reveals] as const;
      if (current === 0) this.q.sessionInsert.run(local, peer, state.kind, sealed, now, ...clocks);
      else this.q.sessionUpdate.run(state.kind, sealed, now, ...clocks, local, peer, current);
      alongside?.();
      // The old state's DH secrets and plaintext copy may be gone from the new one.
      if (this.checkpointAfterSave) this.forgetDue = true;
      return current + 1;
    });
  }

  /** The sessions of `local`, by peer. */
  sessions(local: string): SessionSummary[] {
    return this.run('list sessions', () =>
      userVersion(this.db) >= SEALED_VERSION
        ? this.q.sessionList.all(local).map((r) => ({ peer: r.peer, revision: r.revision, kind: r.kind, updatedAt: r.updated_at }))
        : this.q.legacySessionList.all(local).map((r) => ({ peer: r.peer, revision: r.revision, kind: null, updatedAt: r.updated_at })),
    );
  }

  /**
   * The peers of `local` whose sessions have a duty due by `cutoffs` (src/protocol/duties.ts):
   * what `expire` would forget, or an acknowledgement. Reads the index, not the states.
   */
  sessionsDue(local: string, cutoffs: DutyCutoffs): string[] {
    return this.run('list the sessions with duties due', () =>
      this.q.sessionsDue.all(local, cutoffs.retired, cutoffs.resend, cutoffs.ack).map((r) => r.peer),
    );
  }

  /**
   * The peers of `local` whose sessions hold MAC keys to publish, or will once `expire` forgets
   * a retired key due by `cutoffs` (§10.3, §17.2). Reads the index, not the states.
   */
  sessionsRevealing(local: string, cutoffs: Pick<DutyCutoffs, 'retired'>): string[] {
    return this.run('list the sessions with MAC keys to publish', () =>
      this.q.sessionsRevealing.all(local, cutoffs.retired).map((r) => r.peer),
    );
  }

  /** Forgets a whole session (its keys included). Returns false if there was none. */
  deleteSession(local: string, peer: string): boolean {
    return this.run(`delete session ${local}/${peer}`, () => {
      const deleted = this.q.sessionDelete.run(local, peer).changes > 0;
      if (deleted) this.forgetDue = true;
      return deleted;
    });
  }

  // ------------------------------------------------------------ identity

  identity(): IdentityRecord | null {
    return this.run('load identity', () => {
      const row = this.q.identityGet.get();
      if (!row) return null;
      return identityFromRow(row, (sealed) => {
        const clear = this.unseal(PLACES.identity(row.fingerprint), sealed);
        try {
          return clear.toString('utf8');
        } finally {
          clear.fill(0);
        }
      });
    });
  }

  /** Stores our identity, replacing any before it (a new passphrase re-encrypts the secret key). */
  setIdentity(identity: IdentityRecord): void {
    const fingerprint = normalizeHex(identity.fingerprint, 'fingerprint');
    const clear = Buffer.from(identity.secretKey, 'utf8');
    const sealed = this.seal(PLACES.identity(fingerprint), clear);
    clear.fill(0);
    this.run('store identity', () => {
      this.q.identityPut.run(fingerprint, sealed, identity.certificate, checkTime(identity.created, 'created'));
      this.forgetDue = true; // a replaced armored secret key must not linger in the WAL
    });
  }

  // ------------------------------------------------------------ own short-lived keys

  ownKey(id: string): OwnKeyRecord | null {
    const key = normalizeHex(id, 'key id');
    return this.run(`load own key ${key}`, () => {
      const row = this.q.ownKeyGet.get(key);
      return row ? this.ownKeyRecord(row) : null;
    });
  }

  /** Our short-lived keys, oldest first, destroyed ones included (their secret is null). */
  ownKeys(kind?: KeyKind): OwnKeyRecord[] {
    return this.run('list own keys', () =>
      (kind ? this.q.ownKeysByKind.all(kind) : this.q.ownKeysAll.all()).map((row) => this.ownKeyRecord(row)),
    );
  }

  /** The record of a row; its secret is opened (a fresh copy) each time it is read. */
  private ownKeyRecord(row: OwnKeyRow): OwnKeyRecord {
    return ownKeyFromRow(row, (sealed) => blob(this.unseal(PLACES.ownKey(row.id, row.kind), sealed)));
  }

  putOwnKey(key: NewOwnKey): void {
    const id = normalizeHex(key.id, 'key id');
    const sealed = this.seal(PLACES.ownKey(id, key.kind), key.secret);
    this.run(`store own key ${id}`, () => {
      this.q.ownKeyInsert.run(
        id,
        key.kind,
        bind(key.public),
        sealed,
        checkTime(key.created, 'created'),
        checkTime(key.notBefore, 'notBefore'),
        checkTime(key.notAfter, 'notAfter'),
        bind(key.certification),
      );
    });
  }

  /**
   * Destroys the secret of one of our keys: NULL in the row, zeroed in the file by
   * secure_delete, gone from the WAL by the checkpoint that follows the commit.
   * Returns false if there was no such key or it was already destroyed.
   */
  destroyOwnKeySecret(id: string, at: number = this.now()): boolean {
    const key = normalizeHex(id, 'key id');
    return this.run(`destroy own key ${key}`, () => {
      const destroyed = this.q.ownKeyDestroy.run(checkTime(at, 'at'), key).changes > 0;
      if (destroyed) this.forgetDue = true;
      return destroyed;
    });
  }

  /** Records that a (ring) key's secret was published. Returns false if unknown or already marked. */
  markPublished(id: string, at: number = this.now()): boolean {
    const key = normalizeHex(id, 'key id');
    return this.run(`mark own key ${key} published`, () => this.q.ownKeyPublish.run(checkTime(at, 'at'), key).changes > 0);
  }

  /** Removes a key row entirely (secret included). */
  deleteOwnKey(id: string): boolean {
    const key = normalizeHex(id, 'key id');
    return this.run(`delete own key ${key}`, () => {
      const deleted = this.q.ownKeyDelete.run(key).changes > 0;
      if (deleted) this.forgetDue = true;
      return deleted;
    });
  }

  // ------------------------------------------------------------ peers (TOFU)

  peer(address: string): PeerRecord | null {
    const key = addressKey(address);
    return this.run(`load peer ${key}`, () => {
      const row = this.q.peerGet.get(key);
      return row ? peerFromRow(row) : null;
    });
  }

  /** All pins, or those of one identity. */
  peers(fingerprint?: string): PeerRecord[] {
    return this.run('list peers', () =>
      (fingerprint ? this.q.peersByFingerprint.all(normalizeHex(fingerprint, 'fingerprint')) : this.q.peersAll.all()).map(peerFromRow),
    );
  }

  /**
   * Pins the identity of an address on first use. Returns false, changing nothing, if the
   * address is already pinned: a different identity then goes through setPending().
   */
  pinPeer(peer: NewPeer): boolean {
    const address = addressKey(peer.address);
    const fingerprint = normalizeHex(peer.fingerprint, 'fingerprint');
    return this.run(`pin peer ${address}`, () => {
      const firstSeen = checkTime(peer.firstSeen ?? this.now(), 'firstSeen');
      return this.q.peerInsert.run(address, fingerprint, peer.certificate, firstSeen, peer.verified ? 1 : 0).changes > 0;
    });
  }

  /** Refreshes the pinned certificate (new subkeys) of the same identity. False if not pinned to `fingerprint`. */
  updatePeerCertificate(address: string, fingerprint: string, certificate: string): boolean {
    const key = addressKey(address);
    const fp = normalizeHex(fingerprint, 'fingerprint');
    return this.run(`update peer ${key}`, () => this.q.peerCertificate.run(certificate, key, fp).changes > 0);
  }

  setPeerVerified(address: string, verified: boolean): boolean {
    const key = addressKey(address);
    return this.run(`verify peer ${key}`, () => this.q.peerVerified.run(verified ? 1 : 0, key).changes > 0);
  }

  /**
   * Records a changed identity for a pinned address, awaiting the user's decision (the
   * newest one seen replaces an earlier pending one). Returns false if the address is not
   * pinned or `pending` is the pinned identity itself.
   */
  setPending(address: string, pending: Omit<PendingIdentity, 'seenAt'> & { seenAt?: number }): boolean {
    const key = addressKey(address);
    const fp = normalizeHex(pending.fingerprint, 'fingerprint');
    return this.run(`set pending identity of ${key}`, () => {
      const seenAt = checkTime(pending.seenAt ?? this.now(), 'seenAt');
      return this.q.peerSetPending.run(fp, pending.certificate, seenAt, key, fp).changes > 0;
    });
  }

  /** The user accepts the changed identity: it becomes the pin (unverified). False if none was pending. */
  acceptPending(address: string): boolean {
    const key = addressKey(address);
    return this.run(`accept pending identity of ${key}`, () => this.q.peerAcceptPending.run(key).changes > 0);
  }

  /**
   * The user rejects the changed identity: it is remembered as rejected for the address
   * (rejectedAt) and no longer pending. False if none was pending.
   */
  rejectPending(address: string): boolean {
    const key = addressKey(address);
    return this.immediate(`reject pending identity of ${key}`, () => {
      this.q.rejectedInsert.run(this.now(), key);
      return this.q.peerClearPending.run(key).changes > 0;
    });
  }

  /** When the user rejected `fingerprint` for `address`, or null if never. */
  rejectedAt(address: string, fingerprint: string): number | null {
    const key = addressKey(address);
    const fp = normalizeHex(fingerprint, 'fingerprint');
    return this.run(`look up rejected identity of ${key}`, () => this.q.rejectedGet.get(key, fp)?.rejected_at ?? null);
  }

  deletePeer(address: string): boolean {
    const key = addressKey(address);
    return this.run(`delete peer ${key}`, () => this.q.peerDelete.run(key).changes > 0);
  }

  // ------------------------------------------------------------ peers' short-lived keys

  peerKeys(fingerprint: string, kind?: KeyKind): PeerKeyRecord[] {
    const fp = normalizeHex(fingerprint, 'fingerprint');
    return this.run(`list keys of ${fp}`, () =>
      (kind ? this.q.peerKeysByKind.all(fp, kind) : this.q.peerKeysAll.all(fp)).map(peerKeyFromRow),
    );
  }

  /** Remembers a peer key. Returns false if it was already known (same fingerprint, kind, public). */
  putPeerKey(key: NewPeerKey): boolean {
    const fp = normalizeHex(key.fingerprint, 'fingerprint');
    return this.run(
      `store key of ${fp}`,
      () =>
        this.q.peerKeyInsert.run(
          fp,
          key.kind,
          bind(key.public),
          checkTime(key.notBefore, 'notBefore'),
          checkTime(key.notAfter, 'notAfter'),
          bind(key.certification),
          checkTime(key.seenAt ?? this.now(), 'seenAt'),
        ).changes > 0,
    );
  }

  /** Drops peer keys that expired before `before`; returns how many. */
  expirePeerKeys(before: number): number {
    return this.run('expire peer keys', () => this.q.peerKeysExpire.run(checkTime(before, 'before')).changes);
  }

  // ------------------------------------------------------------ mail pipeline

  checkpoint(mailbox: string): MailCheckpoint | null {
    return this.run(`load checkpoint of ${mailbox}`, () => {
      const row = this.q.checkpointGet.get(mailbox);
      return row ? checkpointFromRow(row) : null;
    });
  }

  setCheckpoint(checkpoint: { mailbox: string; uidvalidity: number; lastUid: number }): void {
    checkUid(checkpoint.uidvalidity, 'uidvalidity', 1);
    checkUid(checkpoint.lastUid, 'lastUid', 0);
    this.run(`store checkpoint of ${checkpoint.mailbox}`, () => {
      this.q.checkpointPut.run(checkpoint.mailbox, checkpoint.uidvalidity, checkpoint.lastUid, this.now());
    });
  }

  processed(ref: Pick<MailRef, 'mailbox' | 'id'>): ProcessedMail | null {
    return this.run(`load processed mail of ${ref.mailbox}`, () => {
      const row = this.q.processedGet.get(ref.mailbox, ref.id);
      return row ? processedFromRow(row) : null;
    });
  }

  /** The processed mails of `mailbox` with this Message-ID (a UIDVALIDITY change renumbers mail). */
  processedByMessageId(mailbox: string, messageId: string): ProcessedMail[] {
    return this.run('find processed mail', () => this.q.processedByMessageId.all(mailbox, messageId).map(processedFromRow));
  }

  /** Marks a mail processed. Returns false if it already was. */
  markProcessed(ref: MailRef & { messageId?: string | null; processedAt?: number }): boolean {
    if (ref.id.length === 0) throw new TypeError('mail id must not be empty');
    return this.run(`mark mail processed in ${ref.mailbox}`, () => {
      const at = checkTime(ref.processedAt ?? this.now(), 'processedAt');
      return this.q.processedInsert.run(ref.mailbox, ref.id, ref.epoch, ref.messageId ?? null, at).changes > 0;
    });
  }

  /** The generation of what may make skipped mail processable (keys, trust); moved by triggers (schema version 8). */
  mailWorld(): number {
    return this.run('load the mail world', () => this.q.mailWorld.get()?.generation ?? 0);
  }

  skippedMail(ref: Pick<MailRef, 'mailbox' | 'id'>): SkippedMail | null {
    return this.run(`load skipped mail of ${ref.mailbox}`, () => {
      const row = this.q.skippedGet.get(ref.mailbox, ref.id);
      return row ? skippedFromRow(row) : null;
    });
  }

  /** Held mail of `mailbox` whose record is current: what `fetch` reminds the user of without reading it. */
  heldMail(mailbox: string): SkippedMail[] {
    return this.run(`load held mail of ${mailbox}`, () => this.q.skippedHeld.all(mailbox).map(skippedFromRow));
  }

  /** Skipped mail of `mailbox` to look at again: for a transient reason, by other software, or keyed and under another world. */
  staleSkippedMail(mailbox: string, world: { generation: number; software: string }): SkippedMail[] {
    return this.run(`load skipped mail of ${mailbox}`, () =>
      this.q.skippedStale.all(mailbox, world.generation, world.software).map(skippedFromRow),
    );
  }

  recordSkipped(skip: Omit<SkippedMail, 'skippedAt'>): void {
    if (skip.id.length === 0) throw new TypeError('mail id must not be empty');
    if (skip.world !== null && !(Number.isSafeInteger(skip.world) && skip.world >= 0))
      throw new TypeError('world must be a generation (an integer >= 0) or null');
    this.run(`record skipped mail in ${skip.mailbox}`, () => {
      const held = skip.held;
      this.q.skippedPut.run(
        skip.mailbox,
        skip.id,
        skip.epoch,
        skip.code,
        skip.world,
        skip.keyed ? 1 : 0,
        skip.software,
        this.now(),
        held?.from ?? null,
        held?.fingerprint ?? null,
        held?.pending ?? null,
      );
    });
  }

  /** The mail is no longer skipped (processed, examined, or gone). */
  clearSkipped(ref: Pick<MailRef, 'mailbox' | 'id'>): void {
    this.run(`clear skipped mail in ${ref.mailbox}`, () => {
      this.q.skippedDelete.run(ref.mailbox, ref.id);
    });
  }

  /** Drops the records of another epoch (after a UIDVALIDITY change their ids name nothing). */
  clearSkippedOfOtherEpochs(mailbox: string, epoch: string): void {
    this.run(`clear skipped mail in ${mailbox}`, () => {
      this.q.skippedOtherEpochs.run(mailbox, epoch);
    });
  }

  /** Forgets processed-mail records older than `before`; returns how many. */
  pruneProcessed(before: number): number {
    return this.run('prune processed mail', () => this.q.processedPrune.run(checkTime(before, 'before')).changes);
  }

  // ------------------------------------------------------------ the plaintext outbox

  addDelivery(delivery: Delivery): void {
    const id = normalizeHex(delivery.id, 'delivery id');
    const fingerprint = normalizeHex(delivery.fingerprint, 'fingerprint');
    const sealed = this.seal(PLACES.delivery(id), delivery.message);
    this.run('store delivery', () => {
      this.q.deliveryInsert.run(
        id,
        delivery.sender,
        fingerprint,
        delivery.verified ? 1 : 0,
        sealed,
        checkTime(delivery.receivedAt, 'receivedAt'),
      );
    });
  }

  /** Deliveries not yet handed over, oldest first (needs the account key: they hold plaintext). */
  deliveries(): Delivery[] {
    this.requireKey();
    return this.run('list deliveries', () =>
      this.q.deliveriesAll.all().map((row) => deliveryFromRow(row, (sealed) => blob(this.unseal(PLACES.delivery(row.id), sealed)))),
    );
  }

  /** How many deliveries wait (public: no passphrase needed). */
  deliveryCount(): number {
    return this.run('count deliveries', () => this.q.deliveryCount.get()?.n ?? 0);
  }

  /** The delivery landed: its plaintext copy goes (zeroed by secure_delete, out of the WAL after the commit). */
  deliveryDone(id: string): boolean {
    const key = normalizeHex(id, 'delivery id');
    return this.run(`remove delivery ${key}`, () => {
      const removed = this.q.deliveryDelete.run(key).changes > 0;
      if (removed) this.forgetDue = true;
      return removed;
    });
  }

  // ------------------------------------------------------------ publication

  /** Records a bundle taken out of the store (call it inside the transaction that marks what it holds). */
  addPublication(publication: Omit<Publication, 'deliveredAt' | 'location'>): void {
    this.run(`record publication ${publication.name}`, () => {
      this.pub.insert.run(
        publication.name,
        checkTime(publication.created, 'created'),
        publication.ringKeys,
        publication.macKeys,
        bind(publication.bundle),
      );
    });
  }

  /** Every recorded bundle (or only those the target does not have yet), oldest first. */
  publications(options: { undelivered?: boolean } = {}): Publication[] {
    return this.run('list publications', () => (options.undelivered ? this.pub.undelivered : this.pub.all).all().map(publicationFromRow));
  }

  /** The target has the bundle. False if unknown or already marked. */
  markPublicationDelivered(name: string, location: string, at: number = this.now()): boolean {
    return this.run(`mark publication ${name} delivered`, () => this.pub.delivered.run(checkTime(at, 'at'), location, name).changes > 0);
  }
}

// A store as offrecord wrote it before the account key (schema version 3, every secret in clear),
// for the migration tests, and the secrets such a store holds.
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import type { SessionState } from '../../src/protocol/state.ts';
import { encodeSessionState, MIGRATIONS } from '../../src/store/index.ts';
import { migrate } from '../../src/store/schema.ts';
import type { KdfParams } from '../../src/store/vault.ts';
import { establishedState } from './helpers.ts';

/** scrypt at 1 MiB: tests make many account keys; the real cost is measured in bench/unlock.ts. */
export const TEST_KDF: KdfParams = { logN: 10, r: 8, p: 1 };

export interface LegacyContents {
  identitySecret: string;
  ringSecret: Uint8Array;
  sessions: { peer: string; state: SessionState }[];
  delivery: Uint8Array;
}

/** Every byte string of a value (session states hold DH secrets, chain keys, the last plaintext). */
export function byteStrings(value: unknown, out: Uint8Array[] = []): Uint8Array[] {
  if (value instanceof Uint8Array) {
    if (value.length >= 16) out.push(value);
  } else if (Array.isArray(value)) {
    for (const item of value) byteStrings(item, out);
  } else if (typeof value === 'object' && value !== null) {
    for (const item of Object.values(value)) byteStrings(item, out);
  }
  return out;
}

/** What must never be found in the files: the identity's secret key, ring secret, states' bytes, plaintext. */
export function secretsOf(contents: LegacyContents): Uint8Array[] {
  return [
    Buffer.from(contents.identitySecret),
    contents.ringSecret,
    contents.delivery,
    ...contents.sessions.flatMap((s) => byteStrings(s.state)),
  ];
}

/** Writes a version-3 store at `path` with `sessions` sessions (one real state each, every DH key its own). */
export async function legacyStore(path: string, sessions: number): Promise<LegacyContents> {
  const base = await establishedState();
  const contents: LegacyContents = {
    identitySecret: `-----BEGIN PGP PRIVATE KEY BLOCK-----\n${randomBytes(600).toString('base64')}\n-----END PGP PRIVATE KEY BLOCK-----\n`,
    ringSecret: new Uint8Array(randomBytes(32)),
    sessions: Array.from({ length: sessions }, (_, i) => ({
      peer: `peer${String(i).padStart(5, '0')}`,
      state: {
        ...base,
        lastSent: { payload: new Uint8Array(randomBytes(700)), sentAt: i, sentAs: { senderKeyId: 1, recipientKeyId: 1, counter: i } },
        keys: {
          ...base.keys,
          ours: { ...base.keys.ours, sending: { ...base.keys.ours.sending, secret: new Uint8Array(randomBytes(32)) } },
        },
      },
    })),
    delivery: new Uint8Array(randomBytes(3000)),
  };
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  migrate(db, MIGRATIONS.slice(0, 3));
  db.prepare('INSERT INTO identity (id, v, fingerprint, secret_key, certificate, created) VALUES (1, 1, ?, ?, ?, 1)').run(
    'ab'.repeat(20),
    contents.identitySecret,
    'CERT',
  );
  const ownKey = db.prepare(
    'INSERT INTO own_keys (id, v, kind, public, secret, created, not_before, not_after, certification) VALUES (?, 1, ?, ?, ?, 1, 1, 2, ?)',
  );
  ownKey.run('cd'.repeat(32), 'ring', Buffer.alloc(32), Buffer.from(contents.ringSecret), Buffer.alloc(64));
  ownKey.run('ef'.repeat(20), 'encryption', Buffer.alloc(32), Buffer.alloc(0), Buffer.alloc(64));
  const session = db.prepare('INSERT INTO sessions (local, peer, revision, state_json, updated_at) VALUES (?, ?, 3, ?, 1)');
  db.transaction(() => {
    for (const s of contents.sessions) session.run('alice', s.peer, encodeSessionState(s.state));
  })();
  db.prepare('INSERT INTO deliveries (id, v, sender, fingerprint, verified, message, received_at) VALUES (?, 1, ?, ?, 1, ?, 1)').run(
    '01'.repeat(16),
    'bob@example.org',
    'ab'.repeat(20),
    Buffer.from(contents.delivery),
  );
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return contents;
}

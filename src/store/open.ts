// Opening an account database: a private file, the pragmas the design asks for, migrations.
import { chmodSync, closeSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreError, storeErrorFrom } from './errors.ts';
import { ensurePrivateDirectory } from './paths.ts';
import { migrate } from './schema.ts';

export const DEFAULT_BUSY_TIMEOUT_MS = 5000;

export interface OpenOptions {
  /** How long to wait for another process's lock before failing with 'locked'. */
  busyTimeoutMs?: number;
}

function fsError(error: unknown, what: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && !code.startsWith('SQLITE_')) {
    return new StoreError('io', `${what}: cannot create or open the file (${code})`, { cause: error });
  }
  return error;
}

/**
 * Creates the file with mode 0600 (and its directory with 0700) before SQLite sees it, so
 * no other user can ever read it; SQLite gives the -wal and -shm files the same mode.
 */
function createPrivateFile(path: string): void {
  ensurePrivateDirectory(dirname(path));
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
  for (const side of [`${path}-wal`, `${path}-shm`]) {
    try {
      chmodSync(side, 0o600);
    } catch (error) {
      if ((error as { code?: unknown }).code !== 'ENOENT') throw error;
    }
  }
}

/**
 * Opens (creating if needed) an account database: secure_delete so freed content is zeroed,
 * WAL with FULL sync so a committed step survives a crash (a counter must never be reused),
 * a busy timeout for the other process, foreign keys, and the schema brought up to date.
 * ':memory:' opens a private in-memory database (no file, no WAL) for tests and demos.
 */
export function openDatabase(path: string, options: OpenOptions = {}): Database.Database {
  const what = `store ${path}`;
  const memory = path === ':memory:';
  const timeout = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isSafeInteger(timeout) || timeout < 0) throw new TypeError('busyTimeoutMs must be a non-negative integer');
  let db: Database.Database;
  try {
    if (!memory) createPrivateFile(path);
    db = new Database(path, { timeout });
  } catch (error) {
    throw storeErrorFrom(fsError(error, what), what);
  }
  try {
    db.pragma('secure_delete = ON');
    if (db.pragma('secure_delete', { simple: true }) !== 1) throw new StoreError('io', `${what}: SQLite refused secure_delete`);
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (!memory && mode !== 'wal')
      throw new StoreError('io', `${what}: cannot use write-ahead logging here (journal mode stays ${String(mode)})`);
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('trusted_schema = OFF');
    migrate(db, undefined, what);
    return db;
  } catch (error) {
    db.close();
    throw storeErrorFrom(error, what);
  }
}

// Stable error codes of the local store. Callers branch on `code`; messages name the
// database and the record, never the stored values (they hold secrets and plaintext).
import { CodedError } from '../crypto/errors.ts';

export type StoreErrorCode =
  /** The file or a stored record cannot be read back: not a database, bad JSON, bad shape. */
  | 'corrupt'
  /** Written by a newer offrecord (schema or record version above what this code knows). */
  | 'too_new'
  /** Another process held the database longer than the busy timeout. */
  | 'locked'
  /** The file system said no: cannot open, read, write, sync, or no space left. */
  | 'io'
  /** A write broke a uniqueness or check rule of the schema: a bug in the caller. */
  | 'constraint'
  /** The operation needs the account key and the store is locked: unlock with the passphrase (an empty one included). */
  | 'passphrase_required'
  /** The passphrase does not unwrap the account key. Nothing was changed. */
  | 'bad_passphrase'
  /** A sealed value does not open at its place: copied from another row, session or account, or altered. */
  | 'misplaced';

export class StoreError extends CodedError<StoreErrorCode> {}

/** better-sqlite3 throws SqliteError with SQLite's extended result code as a string in `code`. */
function sqliteCode(error: unknown): string | null {
  if (typeof error !== 'object' || error === null) return null;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : null;
}

/**
 * Turns SQLite's conditions into StoreError; anything else (ProtocolError, TypeError, our own
 * StoreError) passes through unchanged. SQLite's messages carry no row values, so the
 * original stays attached as `cause` for debugging.
 */
export function storeErrorFrom(error: unknown, what: string): unknown {
  const code = sqliteCode(error);
  if (code === null) return error;
  const base = code.replace(/^(SQLITE_[A-Z]+).*$/, '$1');
  switch (base) {
    case 'SQLITE_BUSY':
    case 'SQLITE_LOCKED':
      return new StoreError('locked', `${what}: the database is busy (another process holds it); try again`, { cause: error });
    case 'SQLITE_CORRUPT':
    case 'SQLITE_NOTADB':
    case 'SQLITE_FORMAT':
      return new StoreError('corrupt', `${what}: the database file is damaged or not an offrecord database`, { cause: error });
    case 'SQLITE_CONSTRAINT':
      return new StoreError('constraint', `${what}: the write breaks a rule of the schema (${code})`, { cause: error });
    case 'SQLITE_IOERR':
    case 'SQLITE_CANTOPEN':
    case 'SQLITE_FULL':
    case 'SQLITE_READONLY':
    case 'SQLITE_PERM':
    case 'SQLITE_NOLFS':
    case 'SQLITE_PROTOCOL':
      return new StoreError('io', `${what}: the database could not be read or written (${code})`, { cause: error });
    default:
      return error; // SQLITE_ERROR, SQLITE_MISUSE, ...: a bug in our SQL, not a condition to handle
  }
}

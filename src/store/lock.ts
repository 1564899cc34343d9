// A lock between processes that the kernel drops with its holder: an exclusive SQLite
// transaction on a file of its own. SQLite locks with POSIX advisory locks, so a holder that is
// killed leaves nothing behind to clean up, and a waiter sleeps in SQLite's busy handler.
import Database from 'better-sqlite3';
import { StoreError } from './errors.ts';

export interface HeldLock {
  release(): void;
}

/** Takes the lock at `path`, waiting up to `waitMs` for another holder; null if it is still held. */
export function takeLock(path: string, waitMs: number): HeldLock | null {
  let db: Database.Database;
  try {
    db = new Database(path, { timeout: waitMs });
  } catch (error) {
    throw new StoreError('io', `cannot open the lock ${path}: ${(error as { code?: string }).code ?? 'failed'}`);
  }
  try {
    db.exec('BEGIN EXCLUSIVE');
  } catch (error) {
    db.close();
    if ((error as { code?: string }).code === 'SQLITE_BUSY') return null;
    throw new StoreError('io', `cannot take the lock ${path}: ${(error as { code?: string }).code ?? 'failed'}`);
  }
  return {
    release: () => {
      if (db.open) db.close(); // ends the transaction, and so the lock
    },
  };
}

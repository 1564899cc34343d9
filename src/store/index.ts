// The local store: one SQLite database per account (see account-store.ts).
export { AccountStore, openAccountStore, type AccountStoreOptions, type SessionSummary } from './account-store.ts';
export { decodeRecord, decodeSessionState, encodeRecord, encodeSessionState, RECORD_VERSION } from './codec.ts';
export { StoreError, type StoreErrorCode } from './errors.ts';
export { DEFAULT_BUSY_TIMEOUT_MS, type OpenOptions } from './open.ts';
export { accountFileName, accountName, defaultStoreDirectory, defaultStorePath } from './paths.ts';
export { takeLock, type HeldLock } from './lock.ts';
export type {
  Delivery,
  IdentityRecord,
  KeyKind,
  MailCheckpoint,
  MailRef,
  NewOwnKey,
  NewPeer,
  NewPeerKey,
  OwnKeyRecord,
  PeerKeyRecord,
  PeerRecord,
  PendingIdentity,
  ProcessedMail,
  Publication,
  SkippedMail,
} from './records.ts';
export { MIGRATIONS, SCHEMA_VERSION, type Migration } from './schema.ts';

// The typed records of an account store and their mapping from rows. Every row carries a
// record version `v`; a row from a newer offrecord is refused, not misread.
import type { RingKey } from '../protocol/wire.ts';
import { StoreError } from './errors.ts';

export type KeyKind = 'encryption' | 'ring';

/** Our long-term identity: one per account database. */
export interface IdentityRecord {
  /** OpenPGP fingerprint, lowercase hex. */
  fingerprint: string;
  /** Armored secret key as given; the keys layer has encrypted it with the passphrase. */
  secretKey: string;
  /** Armored public certificate. */
  certificate: string;
  created: number;
}

/** One of our short-lived keys (encryption subkey or ring key); `certification` binds it to our identity. */
export type OwnKeyRecord = RingKey & {
  /** Key id, lowercase hex. */
  id: string;
  kind: KeyKind;
  /** null once destroyed. */
  secret: Uint8Array | null;
  created: number;
  destroyedAt: number | null;
  publishedAt: number | null;
};

export type NewOwnKey = Omit<OwnKeyRecord, 'secret' | 'destroyedAt' | 'publishedAt'> & { secret: Uint8Array };

export interface PendingIdentity {
  fingerprint: string;
  certificate: string;
  seenAt: number;
}

/** The trust-on-first-use pin of a correspondent's address, and a changed identity awaiting acceptance. */
export interface PeerRecord {
  /** Lowercased. */
  address: string;
  fingerprint: string;
  certificate: string;
  firstSeen: number;
  /** The user compared fingerprints out of band. */
  verified: boolean;
  /** A different identity seen for this address: an alarm until the user accepts or rejects it. */
  pending: PendingIdentity | null;
}

export interface NewPeer {
  address: string;
  fingerprint: string;
  certificate: string;
  firstSeen?: number;
  verified?: boolean;
}

/** A short-lived key of a correspondent, learned from a mail's headers. */
export type PeerKeyRecord = RingKey & {
  fingerprint: string;
  kind: KeyKind;
  seenAt: number;
};

export type NewPeerKey = Omit<PeerKeyRecord, 'seenAt'> & { seenAt?: number };

/** How far a mailbox has been looked at: every mail up to lastUid (docs/PROTOCOL.md §18.6). */
export interface MailCheckpoint {
  mailbox: string;
  uidvalidity: number;
  lastUid: number;
  updatedAt: number;
}

/** A mail in a mailbox: the transport's id, and the epoch it is valid in (IMAP UIDVALIDITY). */
export interface MailRef {
  mailbox: string;
  id: string;
  epoch: string;
}

/**
 * A mail left on the server unprocessed, and what it was skipped under: the world generation
 * (null: a transient failure, looked at on the next pass) and the software. It is not read again
 * until one of them moved (docs/PROTOCOL.md §18.6).
 */
export interface SkippedMail extends MailRef {
  code: string;
  world: number | null;
  /** Whether learning keys or a trust decision may change the outcome (false: malformed and the like). */
  keyed: boolean;
  software: string;
  skippedAt: number;
  /** Held mail (§18.6 step 4): its sender, the identity it is signed by, and the one pending. */
  held: { from: string; fingerprint: string; pending: string } | null;
}

export interface ProcessedMail extends MailRef {
  messageId: string | null;
  processedAt: number;
}

/** Plaintext decrypted and committed, waiting to be handed to the user's mail store. */
export interface Delivery {
  /** 128 random bits, hex: names the delivery wherever it lands, so a retry finds it there. */
  id: string;
  sender: string;
  fingerprint: string;
  verified: boolean;
  /** The inner MIME entity, as the sender wrote it. */
  message: Uint8Array;
  receivedAt: number;
}

/** The row-level version this code writes and reads. */
export const ROW_VERSION = 1;

export function checkRowVersion(v: unknown, what: string): void {
  if (v === ROW_VERSION) return;
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > ROW_VERSION) {
    throw new StoreError('too_new', `${what}: record version ${v}, newer than this offrecord reads (${ROW_VERSION})`);
  }
  throw new StoreError('corrupt', `${what}: record has no valid version`);
}

/** A BLOB as a Uint8Array view (better-sqlite3 returns a Buffer of its own). */
export function blob(value: Buffer): Uint8Array;
export function blob(value: Buffer | null): Uint8Array | null;
export function blob(value: Buffer | null): Uint8Array | null {
  return value === null ? null : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

/** A Uint8Array as a Buffer view, for binding (no copy of secrets). */
export function bind(value: Uint8Array): Buffer {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
}

export interface IdentityRow {
  v: number;
  fingerprint: string;
  /** Sealed (docs/PROTOCOL.md §17.1). */
  secret_key: Buffer;
  certificate: string;
  created: number;
}

/** A record field whose value is sealed: opened by the getter each time it is read. */
function sealedField<T extends object, K extends keyof T>(record: Omit<T, K>, name: K, open: () => T[K]): T {
  return Object.defineProperty(record, name, { get: open, enumerable: true, configurable: true }) as T;
}

/** `openSecret` opens the sealed secret key when the record's secretKey is read. */
export function identityFromRow(row: IdentityRow, openSecret: (sealed: Buffer) => string): IdentityRecord {
  checkRowVersion(row.v, 'identity');
  const sealed = row.secret_key;
  return sealedField<IdentityRecord, 'secretKey'>(
    { fingerprint: row.fingerprint, certificate: row.certificate, created: row.created },
    'secretKey',
    () => openSecret(sealed),
  );
}

export interface OwnKeyRow {
  id: string;
  v: number;
  kind: KeyKind;
  public: Buffer;
  secret: Buffer | null;
  created: number;
  not_before: number;
  not_after: number;
  certification: Buffer;
  destroyed_at: number | null;
  published_at: number | null;
}

/** `openSecret` opens the sealed secret (a fresh copy) each time the record's secret is read. */
export function ownKeyFromRow(row: OwnKeyRow, openSecret: (sealed: Buffer) => Uint8Array): OwnKeyRecord {
  checkRowVersion(row.v, `own key ${row.id}`);
  const sealed = row.secret;
  return sealedField<OwnKeyRecord, 'secret'>(
    {
      id: row.id,
      kind: row.kind,
      public: blob(row.public),
      created: row.created,
      notBefore: row.not_before,
      notAfter: row.not_after,
      certification: blob(row.certification),
      destroyedAt: row.destroyed_at,
      publishedAt: row.published_at,
    },
    'secret',
    () => (sealed === null ? null : openSecret(sealed)),
  );
}

export interface PeerRow {
  address: string;
  v: number;
  fingerprint: string;
  certificate: string;
  first_seen: number;
  verified: number;
  pending_fingerprint: string | null;
  pending_certificate: string | null;
  pending_seen_at: number | null;
}

export function peerFromRow(row: PeerRow): PeerRecord {
  checkRowVersion(row.v, `peer ${row.address}`);
  const pending =
    row.pending_fingerprint !== null && row.pending_certificate !== null && row.pending_seen_at !== null
      ? { fingerprint: row.pending_fingerprint, certificate: row.pending_certificate, seenAt: row.pending_seen_at }
      : null;
  return {
    address: row.address,
    fingerprint: row.fingerprint,
    certificate: row.certificate,
    firstSeen: row.first_seen,
    verified: row.verified === 1,
    pending,
  };
}

export interface PeerKeyRow {
  fingerprint: string;
  kind: KeyKind;
  public: Buffer;
  v: number;
  not_before: number;
  not_after: number;
  certification: Buffer;
  seen_at: number;
}

export function peerKeyFromRow(row: PeerKeyRow): PeerKeyRecord {
  checkRowVersion(row.v, `peer key of ${row.fingerprint}`);
  return {
    fingerprint: row.fingerprint,
    kind: row.kind,
    public: blob(row.public),
    notBefore: row.not_before,
    notAfter: row.not_after,
    certification: blob(row.certification),
    seenAt: row.seen_at,
  };
}

export interface CheckpointRow {
  mailbox: string;
  v: number;
  uidvalidity: number;
  last_uid: number;
  updated_at: number;
}

export function checkpointFromRow(row: CheckpointRow): MailCheckpoint {
  checkRowVersion(row.v, `mail checkpoint ${row.mailbox}`);
  return { mailbox: row.mailbox, uidvalidity: row.uidvalidity, lastUid: row.last_uid, updatedAt: row.updated_at };
}

export interface SkippedRow {
  mailbox: string;
  mail_id: string;
  v: number;
  epoch: string;
  code: string;
  world: number | null;
  keyed: number;
  software: string;
  skipped_at: number;
  held_from: string | null;
  held_fingerprint: string | null;
  held_pending: string | null;
}

export function skippedFromRow(row: SkippedRow): SkippedMail {
  checkRowVersion(row.v, `skipped mail ${row.mailbox}`);
  return {
    mailbox: row.mailbox,
    id: row.mail_id,
    epoch: row.epoch,
    code: row.code,
    world: row.world,
    keyed: row.keyed === 1,
    software: row.software,
    skippedAt: row.skipped_at,
    held:
      row.held_from !== null && row.held_fingerprint !== null && row.held_pending !== null
        ? { from: row.held_from, fingerprint: row.held_fingerprint, pending: row.held_pending }
        : null,
  };
}

export interface ProcessedRow {
  mailbox: string;
  mail_id: string;
  v: number;
  epoch: string;
  message_id: string | null;
  processed_at: number;
}

export function processedFromRow(row: ProcessedRow): ProcessedMail {
  checkRowVersion(row.v, `processed mail ${row.mailbox}`);
  return { mailbox: row.mailbox, id: row.mail_id, epoch: row.epoch, messageId: row.message_id, processedAt: row.processed_at };
}

export interface DeliveryRow {
  id: string;
  v: number;
  sender: string;
  fingerprint: string;
  verified: number;
  message: Buffer;
  received_at: number;
}

/** `openMessage` opens the sealed plaintext. */
export function deliveryFromRow(row: DeliveryRow, openMessage: (sealed: Buffer) => Uint8Array): Delivery {
  checkRowVersion(row.v, `delivery ${row.id}`);
  return {
    id: row.id,
    sender: row.sender,
    fingerprint: row.fingerprint,
    verified: row.verified === 1,
    message: openMessage(row.message),
    receivedAt: row.received_at,
  };
}

const HEX = /^[0-9a-f]+$/;

/** Fingerprints and key ids are stored lowercase; accept either case from callers. */
export function normalizeHex(value: string, name: string): string {
  const hex = value.toLowerCase();
  if (!HEX.test(hex) || hex.length % 2 !== 0) throw new TypeError(`${name} must be hex`);
  return hex;
}

/**
 * The one form of a mail address in offrecord, for keys and comparisons: trimmed and lowercased
 * (addresses compare case-insensitively here). Total: an empty or blank address becomes '', and
 * whoever needs an address refuses that (the store's `addressKey`, the keyring's lookups).
 */
export function normalizeAddress(address: string): string {
  return address.trim().toLowerCase();
}

/** An address as a store key: normalized, and never empty (an empty one is a bug in the caller). */
export function addressKey(address: string): string {
  const key = normalizeAddress(address);
  if (key.length === 0) throw new TypeError('address must not be empty');
  return key;
}

/** A bundle that `keys publish` took out of the store, and whether its target has it yet. */
export interface Publication {
  name: string;
  created: number;
  ringKeys: number;
  macKeys: number;
  bundle: Uint8Array;
  deliveredAt: number | null;
  location: string | null;
}

export interface PublicationRow {
  name: string;
  v: number;
  created: number;
  ring_keys: number;
  mac_keys: number;
  bundle: Buffer;
  delivered_at: number | null;
  location: string | null;
}

export function publicationFromRow(row: PublicationRow): Publication {
  checkRowVersion(row.v, `publication ${row.name}`);
  return {
    name: row.name,
    created: row.created,
    ringKeys: row.ring_keys,
    macKeys: row.mac_keys,
    bundle: blob(row.bundle),
    deliveredAt: row.delivered_at,
    location: row.location,
  };
}

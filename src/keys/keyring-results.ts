// What the keyring's calls take and give back (src/keys/keyring.ts, own-keys.ts,
// correspondents.ts, listing.ts): plain data for the CLI and the mail layer.
import type * as openpgp from 'openpgp';
import type { LocalParty, PeerParty } from '../protocol/authentication.ts';
import type { RingKey } from '../protocol/wire.ts';
import type { Schedule, ShortLivedKind } from './schedule.ts';
import type { RejectedKey } from './tofu.ts';

export interface KeyringOptions {
  /** ms since the epoch; defaults to the system clock. */
  clock?: () => number;
  schedule?: Partial<Schedule>;
}

export interface InitOptions {
  email: string;
  name?: string | undefined;
  /** Protects the stored secret key. Without one it is stored unprotected. */
  passphrase?: string | undefined;
}

export interface InitResult {
  fingerprint: string;
  address: string;
  userId: string;
  /** Armored revocation certificate of the new identity: the caller shows or saves it. */
  revocationCertificate: string;
  protected: boolean;
}

export interface RotatedKey {
  kind: ShortLivedKind;
  id: string;
  notBefore: number;
  notAfter: number;
}

export interface RotationResult {
  created: RotatedKey[];
  /** Secrets destroyed now: expired encryption subkeys past grace, published ring keys' local copies. */
  destroyed: { kind: ShortLivedKind; id: string }[];
  /** Ring keys whose secret is due for publication (kept until published). */
  publicationDue: { kind: 'ring'; id: string }[];
  /** Whether the store changed. */
  changed: boolean;
}

export type OwnKeyState = 'future' | 'current' | 'valid' | 'grace' | 'expired' | 'destroyed' | 'published';
export type PeerKeyState = 'future' | 'valid' | 'grace' | 'expired';

export interface OwnKeyInfo {
  kind: ShortLivedKind;
  id: string;
  created: number;
  notBefore: number;
  notAfter: number;
  state: OwnKeyState;
  destroyedAt: number | null;
  publishedAt: number | null;
  /** Ring keys: the secret is still held and its publication is due. */
  publicationDue: boolean;
}

export interface PeerKeyInfo {
  kind: ShortLivedKind;
  id: string;
  notBefore: number;
  notAfter: number;
  state: PeerKeyState;
}

export interface PeerInfo {
  address: string;
  fingerprint: string;
  userId: string | null;
  firstSeen: number;
  verified: boolean;
  pending: { fingerprint: string; seenAt: number } | null;
  keys: PeerKeyInfo[];
}

export interface IdentityInfo {
  address: string;
  userId: string;
  fingerprint: string;
  created: number;
  /** The stored secret key is passphrase-protected. */
  protected: boolean;
}

export interface KeyringListing {
  identity: IdentityInfo;
  ownKeys: OwnKeyInfo[];
  peers: PeerInfo[];
  /** Keys are due for creation or a secret for destruction: rotate() (any unlocking command) would act. */
  rotationDue: boolean;
}

/**
 * changed: a new identity for a pinned address, now pending (the alarm); held: another identity
 * than the pinned one while a change already awaits the user (no second alarm, nothing stored);
 * rejected: from mail, an identity the user rejected for this address (nothing stored).
 */
export type ImportStatus = 'pinned' | 'known' | 'changed' | 'held' | 'rejected';

export interface ImportResult {
  status: ImportStatus;
  address: string;
  fingerprint: string;
  userId: string;
  /** For 'known': the pinned identity's encryption subkeys now stored; for 'pinned': the accepted ones. */
  encryptionKeys: string[];
  /** The offered ring keys accepted and stored (hex); refusals are in `rejected`. */
  ringKeys: string[];
  rejected: RejectedKey[];
  /** For 'changed', 'held', 'rejected': the pinned fingerprint; for 'changed', the alarm text (the new identity is NOT usable). */
  pinned?: string;
  warning?: string;
  /** For 'held': the identity awaiting the user's decision. */
  pending?: string;
}

export interface LearnResult {
  accepted: RingKey[];
  rejected: RejectedKey[];
}

export interface PeerFingerprint {
  address: string;
  fingerprint: string;
  own: boolean;
  verified: boolean;
  pending: string | null;
}

/**
 * Everything about a correspondent one mail needs, read from the store once: who (address,
 * pinned fingerprint, trust), the party for the session engine and the key first mails are
 * sealed to.
 */
export interface Correspondent {
  address: string;
  /** The pinned identity, lowercase hex. */
  fingerprint: string;
  /** The user compared the fingerprint out of band (`offrecord keys trust`). */
  verified: boolean;
  /** A changed identity awaiting the user's decision, if any. */
  pending: string | null;
  party: PeerParty;
  /** The pinned certificate with its accepted subkeys: first mails are sealed to its current one. */
  encryptionKey: openpgp.PublicKey;
}

/** The key headers of one mail (Autocrypt, Offrecord-Keys), as the mail layer found them. */
export interface AdvertisedKeys {
  autocrypt: string[];
  offrecordKeys: string | null;
}

/**
 * What a mail's key headers say (§18.6 steps 3, 4): `learned` something anew (anything derived
 * from the old keys is stale), nothing new (`unchanged`), or an identity other than the pinned
 * one that is `held` (a change already awaits the user) or `rejected` (the user declined it). A
 * new changed identity is the alarm: KeyringError 'identity_changed'.
 */
export type MailKeys =
  { kind: 'learned' | 'unchanged' } | { kind: 'held'; fingerprint: string; pending: string } | { kind: 'rejected'; fingerprint: string };

/** Everything one received mail needs from the keys wing: its headers' verdict and, under the pinned identity, both parties. */
export type MailCorrespondent =
  Extract<MailKeys, { kind: 'held' | 'rejected' }> | { kind: 'known'; learned: boolean; correspondent: Correspondent; local: LocalParty };

// One typed error for everything under src/keys. Messages are fixed, human-readable strings:
// they never carry key material, passphrases or an underlying library's stack trace, so the
// CLI can print `error.message` as is.
import { CodedError } from '../crypto/errors.ts';

export type KeyErrorCode =
  // Secret keys and passphrases
  | 'passphrase_required'
  | 'bad_passphrase'
  | 'not_a_secret_key'
  | 'locked'
  // Certificates
  | 'too_large'
  | 'malformed'
  | 'not_a_certificate'
  | 'multiple_certificates'
  | 'secret_key_material'
  | 'unsupported_version'
  | 'no_user_id'
  | 'address_mismatch'
  | 'expired'
  | 'revoked'
  | 'not_yet_valid'
  | 'no_encryption_key'
  | 'identity_mismatch'
  // Short-lived keys
  | 'bad_schedule'
  | 'bad_argument'
  | 'bad_ring_key'
  | 'bad_certification'
  /** A ring key without a valid proof that its holder knows its secret (PROTOCOL.md §15.3). */
  | 'bad_proof'
  /** A correspondent advertised one of our own ring keys. */
  | 'own_ring_key'
  | 'validity_too_long'
  | 'no_such_subkey'
  // Headers
  | 'bad_header'
  | 'unknown_attribute'
  | 'duplicate_attribute'
  | 'missing_attribute'
  | 'bad_base64'
  | 'unsupported_protocol';

export class KeyError extends CodedError<KeyErrorCode> {}

/** True for a KeyError, optionally of one code: for tests and the CLI's error mapping. */
export function isKeyError(value: unknown, code?: KeyErrorCode): value is KeyError {
  return value instanceof KeyError && (code === undefined || value.code === code);
}

export type KeyringErrorCode =
  /** No identity in this store: run init first. */
  | 'no_identity'
  /** init on a store that already has an identity. */
  | 'identity_exists'
  /** No pin for this address. */
  | 'unknown_peer'
  /** ALARM: a different identity was seen for the address and awaits the user's decision. */
  | 'identity_changed'
  /** trust: the fingerprint given is neither the pinned nor the pending identity. */
  | 'fingerprint_mismatch'
  /** No usable ring key of the correspondent (none learned yet, or all expired). */
  | 'no_ring_key'
  /** Our identity has no valid encryption subkey (run rotate). */
  | 'no_encryption_key'
  /** A certificate of our own identity, or one claiming our own address, offered as a peer's. */
  | 'own_identity'
  /** Another process changed the keys between our read and our write: try again. */
  | 'conflict';

export interface KeyringErrorDetails {
  address?: string;
  pinned?: string;
  pending?: string;
  given?: string;
  /** The multi-line alarm text for 'identity_changed'. */
  warning?: string;
}

/** What the keyring (src/keys/keyring.ts and its parts) refuses: the account's state, not the input's form. */
export class KeyringError extends CodedError<KeyringErrorCode> {
  readonly details: KeyringErrorDetails;
  constructor(code: KeyringErrorCode, message: string, details: KeyringErrorDetails = {}) {
    super(code, message);
    this.details = details;
  }
}

export function isKeyringError(value: unknown, code?: KeyringErrorCode): value is KeyringError {
  return value instanceof KeyringError && (code === undefined || value.code === code);
}

export type PublicationErrorCode =
  /** Not a bundle, truncated, altered (checksum), or not canonical. */
  | 'malformed'
  /** A bundle format or protocol version this offrecord does not read. */
  | 'unsupported'
  /** Over a size limit. */
  | 'too_large'
  /** The bundle's keys are not the claimed identity's: another identity's certificate or certifications. */
  | 'wrong_identity'
  /** A ring secret that does not belong to its public key. */
  | 'bad_ring_key'
  /** Nothing found where the bundles should be. */
  | 'not_found'
  /** The target or source refused or could not be reached. */
  | 'target'
  /** The account has no identity to publish for. */
  | 'no_identity';

/** Publication of bundles and reading them back (publishing.ts, bundle-*.ts). */
export class PublicationError extends CodedError<PublicationErrorCode> {}

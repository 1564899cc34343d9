// Stable error codes of the protocol layer. Callers branch on `code`; messages are for
// people and never carry secret material or plaintext.
import { CodedError } from '../crypto/errors.ts';

export type ProtocolErrorCode =
  /** Structure, length or encoding is wrong (includes non-canonical values). */
  | 'malformed'
  /** Over a stated size limit. */
  | 'too_large'
  /** A version byte this implementation does not speak. */
  | 'unsupported_version'
  /** The one authentication failure: MAC, ring signature or sealed-envelope integrity. */
  | 'auth'
  /** A message already accepted once. */
  | 'replay'
  /**
   * Authentic, but under a counter of a pair already accepted with another nonce: the peer's
   * state went back (restored from a backup, or copied). Answered like no_session (§9.3, §13.1).
   */
  | 'rewound'
  /** Its keys were forgotten (or its counter fell out of the replay window): it can no longer be read. */
  | 'expired'
  /** No session with this correspondent: our state was lost or never existed. */
  | 'no_session'
  /** A well-formed message that does not fit the session's state. */
  | 'unexpected'
  /** A ring key that is not a currently valid key of the expected party. */
  | 'unknown_key'
  /** The stored session changed under us (another process advanced it first). */
  | 'state_conflict'
  /** The per-key counter space is used up; a new key pair is needed first. */
  | 'counter_exhausted';

export class ProtocolError extends CodedError<ProtocolErrorCode> {}

export function fail(code: ProtocolErrorCode, message: string): never {
  throw new ProtocolError(code, message);
}

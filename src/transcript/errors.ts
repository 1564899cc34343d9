// Errors of the transcript layer, with stable codes; messages name the file and what is missing.
import { CodedError } from '../crypto/errors.ts';

export type ForgeErrorCode =
  /** The keys the alteration needs are not published (yet). */
  | 'not_published'
  /** The alteration needs a plaintext (known or guessed) that was not given, or it does not fit. */
  | 'needs_plaintext'
  /** Not an offrecord mail, or a kind that carries nothing to alter. */
  | 'unsupported'
  /** The transcript lacks a certificate or key the forgery needs. */
  | 'missing';

export class ForgeError extends CodedError<ForgeErrorCode> {}

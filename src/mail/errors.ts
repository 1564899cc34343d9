// Errors of the mail layer, with stable codes; messages name what was wrong, never content.
import { CodedError } from '../crypto/errors.ts';
export type MailErrorCode =
  /** Not a well-formed offrecord mail (missing or duplicated parts, bad headers). */
  | 'malformed'
  /** Over the size limit: refused before parsing. */
  | 'too_large'
  /** An offrecord message of a protocol version we do not speak. */
  | 'unsupported_version'
  /** Addressed to someone else, or from an address that does not match. */
  | 'address'
  /** The mail spool or mailbox could not be read or written (transient: try again later). */
  | 'io'
  /** The server refused our credentials: trying again will not help. */
  | 'auth'
  /** The credential could not be had (the OAuth2 token command failed): the server never saw it. */
  | 'credential'
  /** Processing one mail failed in a way no check foresaw (its reason names the error): that mail is skipped, nothing stops. */
  | 'unprocessable';

export class MailError extends CodedError<MailErrorCode> {}

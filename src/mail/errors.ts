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
  /** The mail is no longer in the mailbox (another client deleted or moved it): nothing to try again. */
  | 'gone'
  /** The server refused our credentials: trying again will not help. */
  | 'auth'
  /** The credential could not be had (the OAuth2 token command failed): the server never saw it. */
  | 'credential'
  /** Processing one mail failed in a way no check foresaw (its reason names the error): that mail is skipped, nothing stops. */
  | 'unprocessable'
  /** No connection: nothing listens at the host and port, the host is unknown or does not answer (transient). */
  | 'unreachable'
  /** The server's TLS certificate is not trusted (self-signed, a private CA, expired, another name). */
  | 'untrusted'
  /** The account's settings cannot work as they are (a CA file that cannot be read). */
  | 'settings'
  /** The server refused a recipient of the mail (SMTP 5xx at RCPT): the settings are fine. */
  | 'recipient';

export class MailError extends CodedError<MailErrorCode> {
  /** The SMTP server's reply code, where it gave one: 4xx is worth another try later, 5xx is a refusal. */
  readonly responseCode: number | undefined;
  constructor(code: MailErrorCode, message: string, options?: { cause?: unknown; responseCode?: number | undefined }) {
    super(code, message, options);
    this.responseCode = options?.responseCode;
  }
}

export type SubmissionErrorCode =
  /** The client's message is not a well-formed RFC 5322 message (header syntax, repeated fields). */
  | 'malformed'
  /** Over what one protocol message carries (§5). */
  | 'too_large'
  /** No recipient in the arguments or the headers. */
  | 'no_recipients'
  /** A recipient that is not a plain address, or the account itself. */
  | 'bad_recipient'
  /** The From header names someone other than the account. */
  | 'sender'
  /** Recipients without offrecord keys, refused by the account's policy: nothing was sent. */
  | 'no_keys'
  /** A recipient's identity key changed: nothing is sent to anyone until the user decides. */
  | 'identity_changed'
  /** The server is away or answered 4xx: sending again later may work. */
  | 'temporary'
  /** The server refused the mail (5xx) or our credentials: sending again will not help. */
  | 'permanent';

/** Why a client's message was not (wholly) sent; `recipients` not sent to, `sent` those that got their copy. */
export class SubmissionError extends CodedError<SubmissionErrorCode> {
  readonly recipients: string[];
  readonly sent: string[];
  constructor(
    code: SubmissionErrorCode,
    message: string,
    details: { recipients?: string[]; sent?: string[] } = {},
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.recipients = details.recipients ?? [];
    this.sent = details.sent ?? [];
  }
}

export type PipelineErrorCode = 'no_keys' | 'identity_changed' | 'protocol' | 'transport';

/** Why the pipeline refused or failed a send; `hint` tells the person what to do (or the alarm's warning). */
export class PipelineError extends CodedError<PipelineErrorCode> {
  constructor(
    code: PipelineErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

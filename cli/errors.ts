// Exit codes and error reporting of the offrecord CLI. Expected errors print one line
// `offrecord: <message>` (more lines for an alarm) and a `hint:` line, never a stack trace;
// anything else is a bug and says so. docs/KEYS-CLI.md documents the codes.
import { CodedError } from '../src/crypto/errors.ts';
import { KeyError } from '../src/keys/errors.ts';
import { KeyringError } from '../src/keys/errors.ts';
import { StoreError } from '../src/store/errors.ts';
import { MailError, PipelineError, SubmissionError } from '../src/mail/errors.ts';
import { PublicationError } from '../src/keys/errors.ts';
import { ForgeError } from '../src/transcript/errors.ts';

export const EXIT = {
  ok: 0,
  /** Wrong command line: unknown command or option, missing argument, no/ambiguous account. */
  usage: 1,
  /** The input is unusable: corrupt, truncated or foreign certificate, unreadable file. */
  input: 2,
  /** Trust alarm: a correspondent's identity changed, or a fingerprint does not match. */
  trust: 3,
  /** The passphrase is wrong or missing. */
  passphrase: 4,
  /** The local store cannot be used: locked by another process, damaged, too new, I/O. */
  store: 5,
  /** The mail server (or a publication target) refused, dropped the connection, or could not be reached; nothing was marked sent. */
  mail: 6,
  /** Some mail could not be processed: it was left untouched on the server (fetch). */
  partial: 7,
  /** A bug in offrecord. */
  internal: 70,
  /** Interrupted at a prompt (Ctrl-C). */
  interrupted: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];
export type ExitName = keyof typeof EXIT;

const EXIT_NAMES = new Map<ExitCode, ExitName>(Object.entries(EXIT).map(([name, code]) => [code, name as ExitName]));

/** An expected failure with its exit code (its `code` is the exit code's name) and a hint for the user. */
export class CliError extends CodedError<ExitName> {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    readonly hint?: string,
  ) {
    super(EXIT_NAMES.get(exitCode)!, message);
  }
}

export type SecretCommandErrorCode = 'too_much_output' | 'timed_out' | 'exit_status' | 'killed' | 'not_run';

/** The user's secret-printing command failed; the message says why, never what it printed (cli/secret-command.ts). */
export class SecretCommandError extends CodedError<SecretCommandErrorCode> {}

/** Standard output is gone (the reader closed the pipe, as `| head` does). */
export class OutputClosedError extends CodedError<'output_closed'> {}

export interface Report {
  exitCode: ExitCode;
  message: string;
  hint?: string;
}

const PASSPHRASE_HINT = 'set OFFRECORD_PASSPHRASE, use --passphrase-command CMD, or run offrecord in a terminal to be asked';

function fromKeyError(error: KeyError): Report {
  switch (error.code) {
    case 'passphrase_required':
      return { exitCode: EXIT.passphrase, message: error.message, hint: PASSPHRASE_HINT };
    case 'bad_passphrase':
      return { exitCode: EXIT.passphrase, message: error.message, hint: 'check OFFRECORD_PASSPHRASE (or what you typed) and try again' };
    case 'locked':
      return { exitCode: EXIT.passphrase, message: error.message, hint: PASSPHRASE_HINT };
    case 'bad_argument':
      return { exitCode: EXIT.usage, message: error.message, hint: 'see offrecord --help' };
    case 'secret_key_material':
      return {
        exitCode: EXIT.input,
        message: error.message,
        hint: 'export the public certificate: gpg --export --armor ADDRESS > key.asc',
      };
    case 'multiple_certificates':
      return { exitCode: EXIT.input, message: error.message, hint: 'export one certificate: gpg --export --armor ADDRESS > key.asc' };
    case 'address_mismatch':
      return { exitCode: EXIT.input, message: error.message, hint: 'check that this is the certificate of the address you expect' };
    case 'too_large':
    case 'malformed':
    case 'not_a_certificate':
      return {
        exitCode: EXIT.input,
        message: error.message,
        hint: 'import an OpenPGP public certificate, armored or binary (e.g. from gpg --export --armor ADDRESS)',
      };
    default:
      return { exitCode: EXIT.input, message: error.message, hint: 'ask your correspondent for a current certificate' };
  }
}

function fromKeyringError(error: KeyringError): Report {
  const address = error.details.address ?? 'ADDRESS';
  switch (error.code) {
    case 'no_identity':
      return { exitCode: EXIT.usage, message: error.message, hint: 'create one: offrecord init --email ADDRESS' };
    case 'identity_exists':
      return { exitCode: EXIT.usage, message: error.message, hint: 'see it with: offrecord keys list' };
    case 'unknown_peer':
      return { exitCode: EXIT.input, message: error.message, hint: `import their certificate first: offrecord keys import FILE` };
    case 'identity_changed':
      return { exitCode: EXIT.trust, message: error.details.warning ?? error.message };
    case 'fingerprint_mismatch':
      return {
        exitCode: EXIT.trust,
        message: error.message,
        hint: `nothing was changed; compare the fingerprint with ${address} again (offrecord keys fingerprint ${address})`,
      };
    case 'no_ring_key':
      return {
        exitCode: EXIT.input,
        message: error.message,
        hint: 'import the file their `offrecord keys export` wrote (offrecord keys import FILE), or wait for their offrecord mail',
      };
    case 'no_encryption_key':
      return { exitCode: EXIT.input, message: error.message, hint: 'offrecord keys rotate' };
    case 'own_identity':
      return { exitCode: EXIT.input, message: error.message, hint: "import your correspondent's certificate, not your own" };
    case 'conflict':
      return { exitCode: EXIT.store, message: error.message, hint: 'run the command again' };
  }
}

function fromStoreError(error: StoreError): Report {
  if (error.code === 'passphrase_required') return { exitCode: EXIT.passphrase, message: error.message, hint: PASSPHRASE_HINT };
  if (error.code === 'bad_passphrase')
    return {
      exitCode: EXIT.passphrase,
      message: error.message,
      hint: 'nothing was changed; check the passphrase (or what your passphrase command printed) and try again',
    };
  const hints: Record<Exclude<StoreError['code'], 'passphrase_required' | 'bad_passphrase'>, string> = {
    locked: 'another offrecord process is using this account; try again in a moment',
    corrupt: 'the database is damaged; restore it from a backup (see docs/KEYS-CLI.md, "Where the data lives")',
    too_new: 'this account was written by a newer offrecord: upgrade offrecord',
    io: 'check the permissions of the data directory and the free disk space',
    constraint: 'this is a bug: please report it',
    misplaced:
      'a sealed record was moved, altered or copied from another account: restore the database from a backup; nothing was delivered from it',
  };
  return { exitCode: EXIT.store, message: error.message, hint: hints[error.code] };
}

const SUBMISSION_HINTS: Partial<Record<SubmissionError['code'], string>> = {
  no_keys:
    'they need to send you one mail with offrecord first (its keys come along), or give you their key (offrecord keys import); to send one plaintext mail carrying your keys instead, allow it for the account: offrecord account add ... --keyless plaintext',
  identity_changed:
    'compare fingerprints with them (offrecord keys fingerprint ADDRESS), then: offrecord keys trust ADDRESS --fingerprint "..."',
  temporary: 'nothing was marked sent: send it again later (a new message: no counter is reused)',
  permanent: 'the server refused it: sending it again unchanged will not help',
  sender: "send from the account's own address, or choose the account with --account",
};

/** Mail errors, each with what the person can do about it (the account's settings, or not). */
function fromMailError(error: MailError): Report {
  const settings = 'offrecord account show; change them with offrecord account add ...';
  const hints: Partial<Record<MailError['code'], [ExitCode, string]>> = {
    untrusted: [
      EXIT.mail,
      `if the server has a certificate of its own (self-signed or a private CA), trust it: offrecord account add ... --ca-file CERT.pem; otherwise check the host name (${settings})`,
    ],
    unreachable: [
      EXIT.mail,
      `check the host and port (${settings}): usually IMAP 993 (tls) or 143 (starttls), SMTP 465 (tls) or 587 (starttls); or the server is down`,
    ],
    auth: [EXIT.mail, `check the user name and the password that --password-env or --password-command gives (${settings})`],
    settings: [EXIT.input, `--ca-file must name a readable PEM certificate file (${settings})`],
    recipient: [EXIT.mail, "check the recipient's address: the server refused it, your account settings are fine"],
    credential: [EXIT.mail, 'run the token command by hand to see why (offrecord account show names it)'],
    io: [EXIT.mail, `try again later; if it persists, check the account settings (${settings})`],
  };
  const [exitCode, hint] = hints[error.code] ?? [EXIT.input, `check the account settings: ${settings}`];
  return { exitCode, message: error.message, hint };
}

/** What to print and which exit code to use for an error thrown by a command. */
export function report(error: unknown): Report {
  if (error instanceof CliError) return { exitCode: error.exitCode, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  if (error instanceof KeyringError) return fromKeyringError(error);
  if (error instanceof KeyError) return fromKeyError(error);
  if (error instanceof StoreError) return fromStoreError(error);
  if (error instanceof PipelineError && error.code === 'transport' && error.cause instanceof MailError) {
    const mail = fromMailError(error.cause);
    return { ...mail, hint: `${mail.hint}; ${error.hint}` };
  }
  if (error instanceof PipelineError) {
    const exitCode = error.code === 'identity_changed' ? EXIT.trust : error.code === 'transport' ? EXIT.mail : EXIT.input;
    return { exitCode, message: error.message, ...(error.hint ? { hint: error.hint } : {}) };
  }
  if (error instanceof PublicationError) {
    if (error.code === 'target')
      return {
        exitCode: EXIT.mail,
        message: error.message,
        hint: 'check the target (directory, URL or address) and try again: what was recorded goes out with the next run',
      };
    if (error.code === 'no_identity')
      return { exitCode: EXIT.usage, message: error.message, hint: 'create one: offrecord init --email ADDRESS' };
    return { exitCode: EXIT.input, message: error.message, hint: 'nothing was kept: ask the publisher for its current bundles' };
  }
  if (error instanceof ForgeError) {
    const hints: Record<ForgeError['code'], string> = {
      not_published:
        'a key is public once revealed in a later mail or published in a bundle: collect bundles with offrecord keys fetch-published',
      needs_plaintext: 'give --known (the plaintext you know or guess) and --text or --payload (the new content, no longer)',
      unsupported: 'give an offrecord first mail, reply, data message or acknowledgement (.eml)',
      missing: 'add more mails of the conversation with --transcript, or the bundles with --keys',
    };
    return { exitCode: EXIT.input, message: error.message, hint: hints[error.code] };
  }
  if (error instanceof SubmissionError) {
    const exitCode =
      error.code === 'temporary' || error.code === 'permanent' ? EXIT.mail : error.code === 'identity_changed' ? EXIT.trust : EXIT.input;
    return { exitCode, message: error.message, ...(SUBMISSION_HINTS[error.code] ? { hint: SUBMISSION_HINTS[error.code] } : {}) };
  }

  if (error instanceof MailError) return fromMailError(error);
  const message = error instanceof Error ? error.message : String(error);
  return {
    exitCode: EXIT.internal,
    message: `internal error: ${message}`,
    hint: 'this is a bug in offrecord, please report it with the command you ran (never include keys or passphrases); OFFRECORD_DEBUG=1 shows the stack trace',
  };
}

/** Prints a report to stderr in the `offrecord: ...` / `hint: ...` form. */
export function printReport(r: Report, error: unknown, stderr: NodeJS.WritableStream = process.stderr): void {
  stderr.write(`offrecord: ${r.message}\n`);
  if (r.hint) stderr.write(`hint: ${r.hint}\n`);
  if (r.exitCode === EXIT.internal && process.env.OFFRECORD_DEBUG && error instanceof Error && error.stack) {
    stderr.write(`${error.stack}\n`);
  }
}

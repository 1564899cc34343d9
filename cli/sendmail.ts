// `offrecord sendmail`: a drop-in for sendmail/msmtp as the sending command of mutt, neomutt,
// aerc and git send-email. A complete RFC 5322 message on standard input, recipients from the
// arguments and/or the headers (-t); the message goes out protected (src/mail/submission.ts).
// Exit codes are sysexits(3), as mail clients expect: EX_TEMPFAIL (75) tells them to keep the
// message and try later. Arguments are parsed the way sendmail's getopt does (clusters such as
// -ti, -oi, -B8BITMIME, -fADDR), not by yargs.
import { StoreError } from '../src/store/errors.ts';
import { SubmissionError, type SubmissionErrorCode } from '../src/mail/errors.ts';
import { envelopeRecipients, readSubmission, senderOf, submit, type KeylessPolicy } from '../src/mail/submission.ts';
import { normalizeAddress } from '../src/store/records.ts';
import { listAccounts } from './account-name.ts';
import { type MailSettings } from './config.ts';
import { CliError, EXIT, printReport, report, type ExitCode } from './errors.ts';
import { withMailAccount } from './mail.ts';
import { clock } from './env.ts';

/** sysexits(3) codes. */
export const SYSEXIT = {
  ok: 0,
  usage: 64,
  dataErr: 65,
  noUser: 67,
  unavailable: 69,
  software: 70,
  ioErr: 74,
  tempFail: 75,
  noPerm: 77,
  config: 78,
} as const;

export interface SendmailArgs {
  account?: string | undefined;
  /** -f / -r: the envelope sender; it must be the account. */
  envelopeFrom?: string | undefined;
  /** -F: the sender's name, used when the message has no From. */
  fullName?: string | undefined;
  /** -t: recipients also from the To, Cc and Bcc headers. */
  readRecipients: boolean;
  verbose: boolean;
  recipients: string[];
}

// sendmail's getopt: these letters take a value (attached, or the next argument).
const WITH_VALUE = new Set(['B', 'C', 'F', 'L', 'N', 'O', 'R', 'V', 'X', 'b', 'e', 'f', 'h', 'o', 'p', 'r']);
// Accepted and without effect: -i/-oi (input always ends at end of file, never at a lone "."),
// -m, -n, -x, -U, -G, -I, -c; -o options, -B body type, -N/-R/-V DSN settings, -h hop count, -L, -X, -C, -O, -e, -p.
const IGNORED = new Set(['i', 'm', 'n', 'x', 'U', 'G', 'I', 'c']);

/** Parses a sendmail command line (what mutt, neomutt, aerc, git send-email and msmtp callers pass). */
export function parseSendmailArgs(argv: string[]): SendmailArgs {
  const args: SendmailArgs = { readRecipients: false, verbose: false, recipients: [] };
  const usage = (message: string): never => {
    throw new CliError(
      EXIT.usage,
      message,
      'offrecord sendmail [-t] [-i] [-f ADDRESS] [-F NAME] [--account ADDRESS] [--] [RECIPIENT...] < message',
    );
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.recipients.push(...argv.slice(i + 1));
      break;
    }
    if (arg.startsWith('--')) {
      const [name, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
      if (name === '--account') {
        const value = inline ?? argv[++i];
        if (value === undefined) usage('--account needs an address');
        args.account = value;
      } else if (name === '--read-envelope-from' || name === '--read-recipients') {
        // msmtp's long forms: the sender always comes from the From header; --read-recipients is -t.
        if (name === '--read-recipients') args.readRecipients = true;
      } else usage(`unknown option ${name}`);
      continue;
    }
    if (!arg.startsWith('-') || arg === '-') {
      args.recipients.push(arg);
      continue;
    }
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j]!;
      if (WITH_VALUE.has(letter)) {
        const value = j + 1 < arg.length ? arg.slice(j + 1) : argv[++i];
        if (value === undefined) usage(`-${letter} needs a value`);
        if (letter === 'f' || letter === 'r') args.envelopeFrom = value;
        else if (letter === 'F') args.fullName = value;
        else if (letter === 'b' && value !== 'm')
          usage(`-b${value} is not supported: offrecord sendmail only sends the message on its standard input (-bm)`);
        break;
      }
      if (letter === 't') args.readRecipients = true;
      else if (letter === 'v') args.verbose = true;
      else if (letter === 'q')
        usage('-q (queue runs) is not supported: offrecord sendmail keeps no queue; the mail client keeps a message that was not sent');
      else if (!IGNORED.has(letter)) usage(`unknown option -${letter}`);
    }
  }
  return args;
}

async function readStdin(limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new SubmissionError('too_large', `the message is over the ${limit}-byte limit`);
    chunks.push(chunk as Buffer);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** The keyless policy of an account: plaintext only where the settings opt in and the policy allows it. */
export function keylessPolicy(settings: MailSettings): KeylessPolicy {
  return settings.keyless === 'plaintext' && settings.policy !== 'require-encryption' ? 'plaintext' : 'refuse';
}

/** Which account sends: --account, else the envelope sender or From that names one, else the only one. */
async function chooseAccount(args: SendmailArgs, raw: Uint8Array): Promise<string | undefined> {
  if (args.account !== undefined) return args.account;
  const accounts = listAccounts();
  if (accounts.length < 2) return undefined;
  const candidates = [args.envelopeFrom, await senderOf(raw)].filter((a): a is string => !!a).map(normalizeAddress);
  return candidates.find((address) => accounts.includes(address));
}

const SUBMISSION_EXIT: Record<SubmissionErrorCode, number> = {
  malformed: SYSEXIT.dataErr,
  too_large: SYSEXIT.dataErr,
  sender: SYSEXIT.dataErr,
  bad_recipient: SYSEXIT.dataErr,
  no_recipients: SYSEXIT.usage,
  no_keys: SYSEXIT.noUser,
  identity_changed: SYSEXIT.noPerm,
  temporary: SYSEXIT.tempFail,
  permanent: SYSEXIT.unavailable,
};

/** The sysexits code for an error of a sendmail run. */
export function sysexit(error: unknown): number {
  if (error instanceof SubmissionError) return SUBMISSION_EXIT[error.code];
  // A busy store is worth a retry; a wrong passphrase (exit 4) is configuration, the rest I/O.
  if (error instanceof StoreError && error.code === 'locked') return SYSEXIT.tempFail;
  const code: ExitCode = report(error).exitCode;
  const map: Partial<Record<ExitCode, number>> = {
    [EXIT.usage]: SYSEXIT.usage,
    [EXIT.input]: SYSEXIT.dataErr,
    [EXIT.trust]: SYSEXIT.noPerm,
    [EXIT.passphrase]: SYSEXIT.config,
    [EXIT.store]: SYSEXIT.ioErr,
    [EXIT.mail]: SYSEXIT.tempFail,
  };
  return map[code] ?? SYSEXIT.software;
}

/** `offrecord sendmail ARGS`: returns the sysexits code; errors are reported on stderr. */
export async function sendmail(argv: string[]): Promise<number> {
  try {
    const args = parseSendmailArgs(argv);
    const raw = await readStdin(64 * 1024 * 1024);
    return await withMailAccount(await chooseAccount(args, raw), async (mail, opened, settings) => {
      if (args.envelopeFrom !== undefined && args.envelopeFrom !== '' && normalizeAddress(args.envelopeFrom) !== opened.account) {
        throw new SubmissionError('sender', `the envelope sender ${args.envelopeFrom} is not the account ${opened.account}`);
      }
      const message = await readSubmission(raw, { account: opened.account, now: new Date(clock()), fullName: args.fullName });
      const recipients = envelopeRecipients([...args.recipients, ...(args.readRecipients ? message.headerRecipients : [])]);
      if (recipients.length === 0)
        throw new SubmissionError(
          'no_recipients',
          args.readRecipients
            ? 'the message headers name no recipient'
            : 'no recipient given (name them as arguments, or use -t to read them from the headers)',
        );
      const sent = await submit(mail, message, recipients, { keyless: keylessPolicy(settings) });
      if (args.verbose) {
        for (const p of sent.protected) process.stderr.write(`offrecord sendmail: sent to ${p.to} (${p.type} message)\n`);
        if (sent.plaintext.length > 0)
          process.stderr.write(`offrecord sendmail: sent to ${sent.plaintext.join(', ')} in PLAINTEXT, carrying your keys\n`);
      }
      return SYSEXIT.ok;
    });
  } catch (error) {
    printReport(report(error), error);
    return sysexit(error);
  }
}

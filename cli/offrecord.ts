#!/usr/bin/env -S node --max-semi-space-size=1
// The offrecord command line. Run it as `npx offrecord ...` (or `npm exec offrecord -- ...`)
// inside the project: that is the compiled dist/cli/offrecord.js (`npm run build`, run by
// `npm install`), which needs no TypeScript loader and a third less memory than
// `node --import tsx cli/offrecord.ts ...`, which runs the sources as they are.
// The small young generation (V8's default semi-space is 16 MB) keeps the long-running
// watcher's resident memory down by about 40 MB, at no measurable cost in throughput.
// docs/KEYS-CLI.md is the user's guide (commands, passphrases, trust alarms, exit codes).
import { createRequire } from 'node:module';
import type { ArgumentsCamelCase, Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { CliError, EXIT, printReport, report, type ExitCode } from './errors.ts';
import { DEFAULT_IMAP_PORT, DEFAULT_SUBMISSION_PORT, STDIO } from './arguments.ts';
import { setPassphraseCommand } from './passphrase.ts';
import { softwareVersion } from '../src/mail/software.ts';

// A command's module, and the libraries under it (openpgp.js, imapflow, nodemailer, mailparser,
// smtp-server: 0.1 to 0.3 s of start-up each here), load only when that command runs.
const commands = {
  forge: () => import('./forge.ts'),
  imap: () => import('./imap.ts'),
  keys: () => import('./keys.ts'),
  mail: () => import('./mail.ts'),
  publish: () => import('./publish.ts'),
  sendmail: () => import('./sendmail.ts'),
  serve: () => import('./serve.ts'),
  sessions: () => import('./sessions.ts'),
  watcher: () => import('./watch.ts'),
};

// yargs's ES module build wraps help text in the middle of words ("den/iable"); its CommonJS
// build wraps at word boundaries (wrap-ansi).
const yargs = createRequire(import.meta.url)('yargs') as typeof import('yargs').default;

const EPILOG = `Environment:
  OFFRECORD_PASSPHRASE  the passphrase of your account (otherwise --passphrase-command, the systemd
                        credential offrecord-passphrase, or asked on a terminal)
  XDG_DATA_HOME         data lives in $XDG_DATA_HOME/offrecord (default ~/.local/share/offrecord)

offrecord sendmail [-t] [-i] [-f ADDRESS] [--] [RECIPIENT...] < message: the sendmail command for
mutt, neomutt, aerc and git send-email (sysexits exit codes; see README).

Exit codes: 0 ok, 1 usage error, 2 bad input, 3 trust alarm, 4 wrong or missing passphrase,
5 store error, 6 mail server or publication target error, 7 some mail left unprocessed, 70 internal error (a bug),
130 interrupted.`;

/**
 * A hint for a usage error, from the shape of the command line: its words and the options
 * given. yargs' messages are prose for people (and may be translated), so they are shown, never
 * parsed. `read` is the command line as yargs read it before validating it, so that an option's
 * value is no word (`--name Alice`); before yargs got that far (an unknown command) only the
 * first word not starting with `-` counts.
 */
function usageHint(argv: string[], read: ArgumentsCamelCase | null): string {
  // Beyond the command words, the positionals yargs did not name (named ones are read[name]).
  const words = read ? read._.map(String) : argv.filter((a) => !a.startsWith('-')).slice(0, 1);
  const options = new Set(argv.filter((a) => a.startsWith('--')).map((a) => a.slice(2).split('=')[0]));
  const [command, sub] = words;
  if (options.has('passphrase')) return 'passphrases are never given on the command line: use OFFRECORD_PASSPHRASE or the prompt';
  if (command === 'init') {
    return words.length > 1
      ? 'give the address as an option: offrecord init --email ADDRESS'
      : 'offrecord init --email alice@example.org [--name "Alice"]';
  }
  if (command === 'keys' && sub === 'trust') {
    if (!options.has('fingerprint') && words.length > 2)
      return 'the fingerprint goes in --fingerprint: offrecord keys trust ADDRESS --fingerprint "XXXX XXXX ..."';
    const address = typeof read?.address === 'string' ? read.address : 'ADDRESS';
    return `compare fingerprints with ${address} first (offrecord keys fingerprint ${address}), then: offrecord keys trust ${address} --fingerprint "XXXX XXXX ..."`;
  }
  if (command === 'keys' && sub === 'import' && read?.file === undefined)
    return 'name the certificate file, or - for standard input: offrecord keys import bob.asc';
  if (command === 'keys') return 'offrecord keys --help lists the key commands';
  return command ? 'offrecord --help lists the commands' : 'offrecord --help';
}

type Handler<A> = (args: A) => Promise<ExitCode>;

/** Runs a command handler and records its exit code (errors go up to main). */
function run<A>(handler: Handler<A>) {
  return async (args: A) => {
    process.exitCode = await handler(args);
  };
}

const jsonOption = { type: 'boolean', default: false, describe: 'machine-readable output (stable fields, see docs/KEYS-CLI.md)' } as const;

function keysCommands(y: Argv<{ account: string | undefined }>) {
  return y
    .usage('offrecord keys <command>\n\nYour identity, your short-lived keys, your correspondents.')
    .command(
      'list',
      'show your identity, short-lived keys and correspondents',
      (c) => c.option('json', jsonOption).example('offrecord keys list --json', 'for scripts'),
      run(async (a) => (await commands.keys()).list({ account: a.account, json: a.json })),
    )
    .command(
      'export',
      'print your public certificate (armored)',
      (c) =>
        c
          .option('secret', { type: 'boolean', default: false, describe: 'export the SECRET key instead (still under your passphrase)' })
          .option('output', { alias: 'o', type: 'string', describe: 'write to FILE instead of standard output', requiresArg: true })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite FILE if it exists' })
          .example('offrecord keys export > alice.asc', 'give alice.asc to your correspondents')
          .example('offrecord keys export --secret -o backup.asc', 'a backup of your secret key'),
      run(async (a) => (await commands.keys()).exportKey({ account: a.account, secret: a.secret, output: a.output, force: a.force })),
    )
    .command(
      'import <file>',
      "import a correspondent's certificate (- for stdin)",
      (c) =>
        c
          .positional('file', { type: 'string', demandOption: true, describe: 'an OpenPGP certificate, armored or binary, or -' })
          .option('expect', { type: 'string', describe: 'refuse the certificate unless it is for ADDRESS', requiresArg: true })
          .option('json', jsonOption)
          .example('gpg --export --armor bob@example.org | offrecord keys import -', 'from GnuPG'),
      run(async (a) => (await commands.keys()).importKey({ account: a.account, file: a.file, expect: a.expect, json: a.json })),
    )
    .command(
      'fingerprint [address]',
      'show your fingerprint or the one pinned for ADDRESS',
      (c) => c.positional('address', { type: 'string', describe: 'a correspondent (default: you)' }).option('json', jsonOption),
      run(async (a) => (await commands.keys()).fingerprint({ account: a.account, address: a.address, json: a.json })),
    )
    .command(
      'trust <address>',
      'mark a key verified, or accept a changed one',
      (c) =>
        c
          .positional('address', { type: 'string', demandOption: true })
          .option('fingerprint', {
            type: 'string',
            demandOption: true,
            requiresArg: true,
            describe: 'the fingerprint you compared (spaces allowed)',
          })
          .example('offrecord keys trust bob@example.org --fingerprint "28D6 3B13 ..."', ''),
      run(async (a) => (await commands.keys()).trust({ account: a.account, address: a.address, fingerprint: a.fingerprint })),
    )
    .command(
      'rotate',
      'create due short-lived keys, destroy expired secrets',
      (c) =>
        c
          .option('force', { type: 'boolean', default: false, describe: 'create new short-lived keys now, whatever the schedule says' })
          .option('json', jsonOption),
      run(async (a) => (await commands.keys()).rotate({ account: a.account, force: a.force, json: a.json })),
    )
    .command(
      'publish',
      'publish expired ring secrets and unrevealed MAC keys (never decryption keys)',
      (c) =>
        c
          .option('to', {
            type: 'string',
            requiresArg: true,
            describe: 'a directory (default: $XDG_DATA_HOME/offrecord/published), an http(s) URL (PUT), or mailto:ADDRESS',
          })
          .option('json', jsonOption)
          .example('offrecord keys publish --to /var/www/keys', 'a directory to serve as is')
          .example('offrecord keys publish --to https://dav.example.org/offrecord/', 'HTTP PUT'),
      run(async (a) => (await commands.publish()).publish({ account: a.account, to: a.to, json: a.json })),
    )
    .command(
      'fetch-published <source>',
      "collect and check a correspondent's published keys (a URL, directory or bundle file)",
      (c) =>
        c
          .positional('source', { type: 'string', demandOption: true })
          .option('identity', { type: 'string', requiresArg: true, describe: 'refuse bundles of any other identity (fingerprint)' })
          .option('output', {
            alias: 'o',
            type: 'string',
            requiresArg: true,
            describe: 'keep the checked bundles here (default: $XDG_DATA_HOME/offrecord/collected)',
          })
          .option('json', jsonOption)
          .example('offrecord keys fetch-published https://example.org/offrecord/ --identity 6299DF35...', ''),
      run(async (a) =>
        (await commands.publish()).fetchPublished({
          source: a.source,
          identity: a.identity,
          output: a.output,
          json: a.json,
        }),
      ),
    )
    .demandCommand(1, 'name a keys command');
}

function accountCommands(y: Argv<{ account: string | undefined }>) {
  return y
    .usage('offrecord account <command>\n\nWhere your mail comes from and goes to.')
    .command(
      'add',
      'set the mail servers of your account (default: the local Maildir spool)',
      (c) =>
        c
          .option('imap-host', { type: 'string', requiresArg: true })
          .option('imap-port', { type: 'number', requiresArg: true, describe: 'default 993 (tls) or 143' })
          .option('smtp-host', { type: 'string', requiresArg: true })
          .option('smtp-port', { type: 'number', requiresArg: true, describe: 'default 465 (tls) or 587' })
          .option('security', {
            choices: ['tls', 'starttls', 'plain'] as const,
            default: 'tls' as const,
            describe: 'plain is refused off loopback',
          })
          .option('imap-security', { choices: ['tls', 'starttls', 'plain'] as const, describe: 'for IMAP alone (default: --security)' })
          .option('smtp-security', {
            choices: ['tls', 'starttls', 'plain'] as const,
            describe: 'for SMTP alone, e.g. starttls on 587 with IMAP over tls (default: --security)',
          })
          .option('user', { type: 'string', requiresArg: true, describe: 'the login name on both servers' })
          .option('ca-file', { type: 'string', requiresArg: true, describe: 'trust this CA certificate (a private CA)' })
          .option('password-env', { type: 'string', requiresArg: true, describe: 'read the password from this environment variable' })
          .option('password-command', { type: 'string', requiresArg: true, describe: 'run this command to get the password' })
          .option('oauth2-token-command', {
            type: 'string',
            requiresArg: true,
            describe: 'OAuth2 (XOAUTH2/OAUTHBEARER): run this command to get an access token at each login',
          })
          .option('maildir', { type: 'string', requiresArg: true, describe: 'use a local Maildir spool at DIR instead of servers' })
          .option('folder', { type: 'string', default: 'OffRecord', describe: 'where processed ciphertext mail is moved' })
          .option('policy', {
            choices: ['opportunistic', 'require-encryption'] as const,
            default: 'opportunistic' as const,
            describe: 'require-encryption refuses plaintext even with send --plaintext',
          })
          .option('keyless', {
            choices: ['refuse', 'plaintext'] as const,
            default: 'refuse' as const,
            describe:
              'sendmail and serve, for a recipient without offrecord keys: refuse the message, or send that recipient one plaintext mail carrying your keys',
          })
          .option('check', {
            type: 'boolean',
            default: true,
            describe: 'log in to both servers before saving (--no-check saves unchecked)',
          })
          .example(
            'offrecord account add --imap-host imap.example.org --smtp-host smtp.example.org --user alice --password-command "pass show mail"',
            '',
          )
          .example(
            'offrecord account add --imap-host imap.gmail.com --smtp-host smtp.gmail.com --user alice@gmail.com --oauth2-token-command "oama access alice@gmail.com"',
            '',
          ),
      run(async (a) =>
        (await commands.mail()).accountAdd({
          account: a.account,
          maildir: a.maildir,
          imapHost: a['imap-host'],
          imapPort: a['imap-port'],
          smtpHost: a['smtp-host'],
          smtpPort: a['smtp-port'],
          security: a.security,
          imapSecurity: a['imap-security'],
          smtpSecurity: a['smtp-security'],
          user: a.user,
          caFile: a['ca-file'],
          passwordEnv: a['password-env'],
          passwordCommand: a['password-command'],
          oauth2TokenCommand: a['oauth2-token-command'],
          folder: a.folder,
          policy: a.policy,
          keyless: a.keyless,
          check: a.check,
        }),
      ),
    )
    .command(
      'show',
      'show the mail settings',
      (c) => c.option('json', jsonOption),
      run(async (a) => (await commands.mail()).accountShow({ account: a.account, json: a.json })),
    )
    .command(
      'credential',
      'make a new password for offrecord serve (shown once, kept hashed)',
      (c) => c,
      run(async (a) => (await commands.serve()).credential({ account: a.account })),
    )
    .command(
      'imap-config',
      'print a Dovecot configuration serving the read mail over IMAP on 127.0.0.1 (for clients without Maildir)',
      (c) =>
        c
          .option('port', { type: 'number', default: DEFAULT_IMAP_PORT, describe: 'the IMAP port on 127.0.0.1' })
          .option('dir', { type: 'string', requiresArg: true, describe: "Dovecot's own run and state files (default: beside the store)" }),
      run(async (a) => (await commands.imap()).imapConfig({ account: a.account, port: a.port, dir: a.dir })),
    )
    .demandCommand(1, 'name an account command');
}

export function parser(argv: string[]) {
  let read: ArgumentsCamelCase | null = null; // the command line as yargs read it, for usageHint
  return yargs(argv)
    .middleware((parsed) => {
      read = parsed;
    }, true)
    .scriptName('offrecord')
    .usage('offrecord <command> [options]\n\nOff-the-record email: deniable and forward-secret.')
    .option('account', {
      type: 'string',
      global: true,
      requiresArg: true,
      describe: 'the account (your address) to use; default: the only one',
    })
    .option('passphrase-command', {
      type: 'string',
      global: true,
      requiresArg: true,
      describe: 'run CMD to get the passphrase (its first line of output), e.g. "pass show offrecord"',
    })
    .middleware((a) => setPassphraseCommand(a['passphrase-command']))
    .command(
      'init',
      'create your identity and first short-lived keys',
      (c) =>
        c
          .option('email', { type: 'string', demandOption: true, requiresArg: true, describe: 'your address' })
          .option('name', { type: 'string', requiresArg: true, describe: 'your name, shown to correspondents' })
          .option('restore', {
            type: 'string',
            requiresArg: true,
            describe: 'restore the identity from a backup (keys export --secret); short-lived keys start fresh',
          })
          .example('OFFRECORD_PASSPHRASE=... offrecord init --email alice@example.org --name Alice', ''),
      run(async (a) =>
        (await commands.keys()).init({
          email: a.email,
          name: a.name,
          account: a.account,
          restore: a.restore,
        }),
      ),
    )
    .command(
      'passwd',
      'change the passphrase (the account key is wrapped anew; nothing else is rewritten)',
      (c) =>
        c
          .option('new-passphrase-command', {
            type: 'string',
            requiresArg: true,
            describe: 'run CMD to get the new passphrase (otherwise asked twice, or OFFRECORD_NEW_PASSPHRASE)',
          })
          .option('none', {
            type: 'boolean',
            default: false,
            describe: 'remove the passphrase: anyone who can read your files can then read your keys and mail',
          }),
      run(async (a) => (await commands.keys()).passwd({ account: a.account, newCommand: a['new-passphrase-command'], none: a.none })),
    )
    .command('keys', 'manage keys: list, export, import, fingerprint, trust, rotate, publish, fetch-published', keysCommands)
    .command('account', 'mail settings: add, show', accountCommands)
    .command(
      'send',
      'send a message (body from stdin or --body-file)',
      (c) =>
        c
          .option('to', { type: 'string', demandOption: true, requiresArg: true })
          .option('subject', { type: 'string', default: '', describe: 'travels inside the protection' })
          .option('attach', { type: 'string', array: true, default: [] as string[], describe: 'attach FILE (repeatable)' })
          .option('body-file', { type: 'string', requiresArg: true })
          .option('html-file', { type: 'string', requiresArg: true, describe: 'an HTML alternative of the body' })
          .option('plaintext', {
            type: 'boolean',
            default: false,
            describe: 'without keys for the recipient, send this once in PLAINTEXT, carrying your keys',
          })
          .example('echo "Lunch on Friday?" | offrecord send --to bob@example.org --subject Lunch', ''),
      run(async (a) =>
        (await commands.mail()).send({
          account: a.account,
          to: a.to,
          subject: a.subject,
          attach: a.attach,
          bodyFile: a['body-file'],
          htmlFile: a['html-file'],
          plaintext: a.plaintext,
        }),
      ),
    )
    .command(
      'fetch',
      'read new mail once: decrypt offrecord mail, learn keys',
      (c) => c.option('json', jsonOption),
      run(async (a) => (await commands.mail()).fetch({ account: a.account, json: a.json })),
    )
    .command(
      'watch',
      'keep watching the mailbox (IMAP IDLE): decrypt new mail into your Maildir as it arrives',
      (c) =>
        c
          .option('once', { type: 'boolean', default: false, describe: 'one pass and the timed duties, then exit (for cron)' })
          .option('maildir', {
            type: 'string',
            requiresArg: true,
            describe: 'deliver read messages into this Maildir (default: the one `account show` names)',
          })
          .option('exec', {
            type: 'string',
            requiresArg: true,
            describe: 'also run this shell command per message, the message on its stdin',
          })
          .option('json', { type: 'boolean', default: false, describe: 'also write each message as a JSON line on stdout' })
          .option('ack-delay', {
            type: 'number',
            requiresArg: true,
            describe: 'seconds to wait for your reply before acknowledging a new key (default 3600)',
          })
          .option('idle-restart', { type: 'number', requiresArg: true, describe: 'seconds between IDLE restarts (default 100)' })
          .option('publish-to', {
            type: 'string',
            requiresArg: true,
            describe: 'publish due keys daily to DIR, an http(s) URL or mailto:ADDRESS (as keys publish), or none',
          })
          .option('serve', {
            type: 'boolean',
            default: false,
            describe: 'also run the SMTP submission server (as offrecord serve) in this process',
          })
          .option('serve-port', { type: 'number', default: DEFAULT_SUBMISSION_PORT, describe: 'its port on 127.0.0.1' })
          .check((a) => {
            for (const name of ['ack-delay', 'idle-restart'] as const) {
              const value = a[name];
              if (value !== undefined && (!Number.isFinite(value) || value <= 0))
                throw new Error(`--${name} must be a positive number of seconds`);
            }
            return true;
          })
          .example('offrecord watch', 'runs until SIGTERM or Ctrl-C; logs JSON lines on stderr')
          .example('offrecord watch --once', 'from cron'),
      run(async (a) =>
        (await commands.watcher()).watch({
          account: a.account,
          once: a.once,
          jsonLines: a.json,
          maildir: a.maildir,
          exec: a.exec,
          ackDelay: a['ack-delay'],
          idleRestart: a['idle-restart'],
          publishTo: a['publish-to'],
          ...(a.serve ? { servePort: a['serve-port'] } : {}),
        }),
      ),
    )
    .command(
      'serve',
      'SMTP submission on 127.0.0.1 for mail clients: what they send goes out protected, as with sendmail',
      (c) =>
        c
          .option('port', { type: 'number', default: DEFAULT_SUBMISSION_PORT, describe: 'the port on 127.0.0.1' })
          .example('offrecord account credential', 'first: the user and password your mail client logs in with (shown once)')
          .example('offrecord serve', 'until SIGTERM or Ctrl-C; logs JSON lines on stderr'),
      run(async (a) => (await commands.serve()).serve({ account: a.account, port: a.port })),
    )
    .command(
      'status',
      "what each account's watcher is doing",
      (c) => c.option('json', jsonOption),
      run(async (a) => (await commands.watcher()).status({ account: a.account, json: a.json })),
    )
    .command(
      'sessions',
      'who you talk to, and in which state',
      (c) => c.option('json', jsonOption),
      run(async (a) => (await commands.sessions()).sessions({ account: a.account, json: a.json })),
    )
    .command(
      'forge <mail>',
      'alter a mail of a transcript with published keys: why your mail is deniable',
      (c) =>
        c
          .positional('mail', { type: 'string', demandOption: true, describe: 'the .eml to alter' })
          .option('transcript', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'the other .eml files of the conversation (or directories of them)',
          })
          .option('keys', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'published bundles: files, directories or URLs (repeatable)',
          })
          .option('known', {
            type: 'string',
            requiresArg: true,
            describe: 'the plaintext you know or guess (data message: its inner message; reply: auth block and payload)',
          })
          .option('text', { type: 'string', requiresArg: true, describe: 'the new text' })
          .option('payload', { type: 'string', requiresArg: true, describe: 'the new inner message, whole, from FILE' })
          .option('subject', { type: 'string', requiresArg: true, describe: 'the subject of a new first mail' })
          .option('answered-share', { type: 'string', requiresArg: true, describe: "reply: the first mail's DH share it answers (hex)" })
          .option('output', {
            alias: 'o',
            type: 'string',
            requiresArg: true,
            describe: 'write the altered mail to FILE (default: standard output)',
          })
          .option('force', { type: 'boolean', default: false, describe: 'overwrite FILE' })
          .example('offrecord forge data.eml --transcript mails/ --keys collected/ --known data.txt --text "I confess." -o forged.eml', ''),
      run(async (a) =>
        (await commands.forge()).forge({
          mail: a.mail,
          transcript: a.transcript,
          keys: a.keys,
          known: a.known,
          text: a.text,
          payload: a.payload,
          subject: a.subject,
          answeredShare: a['answered-share'],
          output: a.output,
          force: a.force,
        }),
      ),
    )
    .command(
      'verify <files..>',
      'what a third party can check about a transcript, and what it proves',
      (c) =>
        c
          .positional('files', { type: 'string', array: true, demandOption: true, describe: '.eml files or directories of them' })
          .option('keys', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'published bundles: files, directories or URLs (repeatable)',
          })
          .option('claim', {
            type: 'string',
            array: true,
            default: [] as string[],
            describe: 'MAIL.eml=FILE: a plaintext someone claims for a first mail (inner form) or reply',
          })
          .option('json', jsonOption),
      run(async (a) => (await commands.forge()).verify({ files: a.files, keys: a.keys, claim: a.claim, json: a.json })),
    )
    .demandCommand(1, 'name a command')
    .recommendCommands()
    .strict()
    .help()
    .alias('h', 'help')
    .version(softwareVersion())
    .epilog(EPILOG)
    .wrap(Math.min(100, process.stdout.columns || 100))
    .exitProcess(false)
    .fail((message, error) => {
      if (error) throw error;
      throw new CliError(EXIT.usage, message || 'bad usage', usageHint(argv, read));
    });
}

export async function main(argv: string[]): Promise<void> {
  // A reader that closed the pipe (`| head`) is heard by the pending write, never as a crash.
  process.stdout.on('error', () => undefined);
  // sendmail's own command line (-oi, -t, -fADDR...), not yargs', and sysexits codes (cli/sendmail.ts).
  if (argv[0] === 'sendmail') {
    process.exitCode = await (await commands.sendmail()).sendmail(argv.slice(1));
    return;
  }
  try {
    // yargs-parser turns a lone "-" into "" or true; NUL never occurs in a real argument.
    await parser(argv.map((a) => (a === '-' ? STDIO : a))).parseAsync();
  } catch (error) {
    const r = report(error);
    printReport(r, error);
    process.exitCode = r.exitCode;
  }
}

await main(hideBin(process.argv));

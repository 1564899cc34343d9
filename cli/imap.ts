// `offrecord account imap-config`: a Dovecot configuration that serves the account's plaintext
// Maildir (where `fetch` and `watch` deliver) over IMAP on 127.0.0.1, for mail clients that read
// only IMAP (Thunderbird, Apple Mail). It only prints: the user saves it and runs
// `dovecot -c FILE`. The login is the account address with the local credential of
// `offrecord serve` (`account credential`); the configuration holds only its SHA-256.
//
// Dovecot runs every process as the Maildir's owner (default_internal_user, default_login_user,
// no chroot), so the same lines work whether that user starts it or root does; Dovecot never
// gives mail access as root, so a Maildir owned by root is refused here with a reason.
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { accountName, defaultStoreDirectory } from '../src/store/index.ts';
import { resolveAccount } from './account-name.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import { plaintextMaildir } from './mail.ts';
import { loadCredential } from './serve.ts';

/** A name from /etc/passwd or /etc/group by its number (Dovecot's user settings want names). */
function nameOf(file: '/etc/passwd' | '/etc/group', id: number): string | undefined {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.split(':'))
      .find((fields) => fields[2] === String(id))?.[0];
  } catch {
    return undefined;
  }
}

export interface ImapConfigArgs {
  account?: string | undefined;
  port: number;
  /** Dovecot's own run and state files; by default beside the store. */
  dir?: string | undefined;
}

/** The dovecot.conf lines for `account` (printed by imapConfig). */
export function imapConfigLines(args: ImapConfigArgs): string[] {
  const account = resolveAccount(args.account);
  const credential = loadCredential(account);
  if (!Number.isInteger(args.port) || args.port < 1 || args.port > 65535)
    throw new CliError(EXIT.usage, `--port ${args.port} is not a TCP port`);
  const maildir = plaintextMaildir(account);
  // The Maildir offrecord delivers into; made here (as fetch would) so Dovecot finds it.
  for (const sub of ['cur', 'new', 'tmp']) mkdirSync(join(maildir, sub), { recursive: true, mode: 0o700 });
  const dir = args.dir ?? join(defaultStoreDirectory(process.env), 'dovecot', accountName(account));
  // Dovecot expands %-variables in paths and filters: a path with % would name another place.
  for (const [what, value] of [
    ['the Maildir', maildir],
    ['the directory', dir],
  ] as const) {
    if (value.includes('%'))
      throw new CliError(EXIT.usage, `${what} ${value} contains %, which Dovecot reads as a variable`, 'choose another --dir');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 }); // Dovecot makes base_dir and state_dir, not its log's directory
  const owner = statSync(maildir);
  if (owner.uid === 0) {
    throw new CliError(
      EXIT.usage,
      `the Maildir ${maildir} belongs to root, and Dovecot never gives mail access as root`,
      'run offrecord as the user who reads the mail',
    );
  }
  const user = nameOf('/etc/passwd', owner.uid);
  const group = nameOf('/etc/group', owner.gid);
  if (user === undefined || group === undefined) {
    throw new CliError(
      EXIT.usage,
      `the owner of ${maildir} (uid ${owner.uid}, gid ${owner.gid}) has no name in /etc/passwd or /etc/group`,
      'Dovecot runs as a named user',
    );
  }
  const file = join(dir, 'dovecot.conf');
  return [
    `# Dovecot serving the offrecord Maildir of ${account} over IMAP on 127.0.0.1:${args.port}`,
    '# (for mail clients that read only IMAP). Save and start it as the user who owns the Maildir:',
    `#   offrecord --account ${account} account imap-config > ${file}`,
    `#   dovecot -c ${file}        # stop: kill $(cat ${join(dir, 'run', 'master.pid')})`,
    `# In the mail client: IMAP server 127.0.0.1, port ${args.port}, no encryption (loopback only),`,
    `# user ${account}, password: the credential of offrecord serve (offrecord account credential).`,
    '# A new credential needs these lines printed again (they hold its SHA-256, never the credential).',
    `base_dir = ${join(dir, 'run')}`,
    `state_dir = ${join(dir, 'state')}`,
    `log_path = ${join(dir, 'dovecot.log')}`,
    `instance_name = offrecord-${accountName(account)}`,
    'protocols = imap',
    'listen = 127.0.0.1',
    'ssl = no',
    'disable_plaintext_auth = no',
    'auth_mechanisms = plain login',
    // Every process as the Maildir's owner: Dovecot refuses mail files and logins as root.
    `default_internal_user = ${user}`,
    `default_internal_group = ${group}`,
    `default_login_user = ${user}`,
    `first_valid_uid = ${owner.uid}`,
    `last_valid_uid = ${owner.uid}`,
    // Dovecot keeps its index files (dovecot.index*, dovecot-uidlist) in the Maildir's top
    // directory, beside cur/new/tmp, where offrecord and Maildir readers do not look.
    `mail_location = maildir:${maildir}`,
    'passdb {',
    '  driver = static',
    `  args = password={SHA256.HEX}${credential.sha256}`,
    `  username_filter = ${account}`,
    '}',
    // Any other login name is refused (without it Dovecot answers a temporary failure).
    'passdb {',
    '  driver = static',
    '  args = nopassword=y',
    '  deny = yes',
    '}',
    'userdb {',
    '  driver = static',
    `  args = uid=${owner.uid} gid=${owner.gid} home=${maildir}`,
    '}',
    'service imap-login {',
    '  chroot =',
    `  inet_listener imap {\n    address = 127.0.0.1\n    port = ${args.port}\n  }`,
    '  inet_listener imaps {\n    port = 0\n  }',
    '}',
    'service anvil {\n  chroot =\n}',
    '',
  ];
}

export async function imapConfig(args: ImapConfigArgs): Promise<ExitCode> {
  process.stdout.write(imapConfigLines(args).join('\n'));
  return EXIT.ok;
}

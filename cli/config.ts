// Per-account mail settings: $XDG_CONFIG_HOME/offrecord/<account>.json (mode 0600). No
// password or access token is ever stored: only the name of an environment variable or a
// command that prints it (e.g. `pass show mail/alice`, or `oama access alice@gmail.com`).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { MaildirSpool } from '../src/mail/maildir.ts';
import { ImapMailbox, SmtpTransport, type Security, type ServerConfig } from '../src/mail/servers.ts';
import type { IncomingMailbox, OutgoingTransport } from '../src/mail/transport.ts';
import { MailError } from '../src/mail/errors.ts';
import { accountName, defaultStoreDirectory } from '../src/store/index.ts';
import { CliError, EXIT, SecretCommandError } from './errors.ts';
import { runSecretCommand } from './secret-command.ts';

export interface ServerSettings {
  host: string;
  port: number;
  security: Security;
  caFile?: string;
}

export interface MailSettings {
  v: 1;
  transport: 'maildir' | 'imap';
  /** The spool directory of the embedded transport. */
  spool?: string;
  imap?: ServerSettings;
  smtp?: ServerSettings;
  user?: string;
  password?: { env: string } | { command: string };
  /** OAuth2 instead of a password: a command that prints an access token (mutt's imap_oauth_refresh_command). */
  oauth2?: { command: string };
  /** Where processed ciphertext mail is moved. */
  folder: string;
  /** require-encryption: never send in plaintext, even with --plaintext. */
  policy?: 'opportunistic' | 'require-encryption';
  /** sendmail and serve, for a recipient without keys: refuse (default), or one plaintext mail carrying our keys. */
  keyless?: 'refuse' | 'plaintext';
}

export function configDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'offrecord');
}

/** The embedded default: a Maildir spool beside the account databases. */
export function defaultSpool(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultStoreDirectory(env), 'spool');
}

function settingsPath(account: string): string {
  return join(configDirectory(), `${accountName(account)}.json`);
}

export function saveSettings(account: string, settings: MailSettings): string {
  mkdirSync(configDirectory(), { recursive: true, mode: 0o700 });
  const path = settingsPath(account);
  writeFileSync(path, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
  return path;
}

export function loadSettings(account: string): MailSettings {
  const path = settingsPath(account);
  if (!existsSync(path)) return { v: 1, transport: 'maildir', spool: defaultSpool(), folder: 'OffRecord' };
  let settings: MailSettings;
  try {
    settings = JSON.parse(readFileSync(path, 'utf8')) as MailSettings;
  } catch {
    throw new CliError(EXIT.input, `the settings in ${path} are not valid JSON`, 'fix or remove the file, then: offrecord account add ...');
  }
  if (settings.v !== 1 || (settings.transport !== 'maildir' && settings.transport !== 'imap')) {
    throw new CliError(
      EXIT.input,
      `the settings in ${path} are of an unknown version`,
      'remove the file and run offrecord account add again',
    );
  }
  return settings;
}

async function password(settings: MailSettings): Promise<string> {
  const source = settings.password;
  if (!source)
    throw new CliError(
      EXIT.usage,
      'no password source is configured',
      'offrecord account add ... --password-env VAR or --password-command CMD',
    );
  if ('env' in source) {
    const value = process.env[source.env];
    if (!value)
      throw new CliError(EXIT.usage, `the environment variable ${source.env} (the mail password) is not set`, `export ${source.env}=...`);
    return value;
  }
  let stdout: string;
  try {
    stdout = await runSecretCommand(source.command, MAX_SECRET_OUTPUT_BYTES);
  } catch (error) {
    if (!(error instanceof SecretCommandError)) throw error;
    throw new CliError(EXIT.mail, `the password command failed: ${error.message}`, `check it by hand: ${source.command}`);
  }
  const value = stdout.replace(/\r?\n$/, '');
  if (!value) throw new CliError(EXIT.mail, 'the password command printed nothing', `check it by hand: ${source.command}`);
  return value;
}

/** What a password or token command may print. */
const MAX_SECRET_OUTPUT_BYTES = 64 * 1024;

/** RFC 6750 b64token, bounded: one line of these characters is an access token, anything else is refused. */
const ACCESS_TOKEN = /^[A-Za-z0-9\-._~+/]{1,16384}=*$/;

/**
 * Runs the token command for a login (it keeps and refreshes the token itself, as for mutt):
 * the token is neither kept nor shown, not even in an error, and the command's environment
 * lacks our secrets (cli/secret-command.ts).
 */
async function accessToken(command: string): Promise<string> {
  let stdout: string;
  try {
    stdout = await runSecretCommand(command, MAX_SECRET_OUTPUT_BYTES);
  } catch (error) {
    if (!(error instanceof SecretCommandError)) throw error;
    throw new MailError('credential', `the OAuth2 token command failed: ${error.message}`);
  }
  const token = stdout.replace(/\r?\n$/, '');
  if (token === '') throw new MailError('credential', 'the OAuth2 token command printed nothing');
  if (!ACCESS_TOKEN.test(token))
    throw new MailError(
      'credential',
      'the OAuth2 token command printed something other than one access token (one line of RFC 6750 token characters)',
    );
  return token;
}

function server(settings: MailSettings, which: 'imap' | 'smtp'): ServerConfig {
  const s = settings[which];
  if (!s || !settings.user)
    throw new CliError(EXIT.usage, `no ${which.toUpperCase()} server is configured`, 'offrecord account add --help');
  const address = { host: s.host, port: s.port, security: s.security, user: settings.user, ...(s.caFile ? { caFile: s.caFile } : {}) };
  const oauth2 = settings.oauth2;
  return oauth2 ? { ...address, accessToken: () => accessToken(oauth2.command) } : { ...address, password: () => password(settings) };
}

export function transports(account: string, settings: MailSettings): { outgoing: OutgoingTransport; incoming: IncomingMailbox } {
  if (settings.transport === 'maildir') {
    const spool = new MaildirSpool(settings.spool ?? defaultSpool());
    return { outgoing: spool.transport(), incoming: spool.mailbox(account) };
  }
  return { outgoing: new SmtpTransport(server(settings, 'smtp')), incoming: new ImapMailbox(server(settings, 'imap')) };
}

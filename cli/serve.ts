// `offrecord account credential` and `offrecord serve`: SMTP submission on 127.0.0.1 for mail
// clients (src/daemon/submission-server.ts). The local credential is made by `account
// credential`, printed once, and kept only as its SHA-256 in
// $XDG_CONFIG_HOME/offrecord/<account>.credential.json (mode 0600); making a new one replaces it.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { jsonLogger, type Logger } from '../src/daemon/log.ts';
import {
  startSubmissionServer,
  newLocalCredential,
  type CredentialRecord,
  type SubmissionServer,
} from '../src/daemon/submission-server.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { accountName } from '../src/store/index.ts';
import { resolveAccount } from './account-name.ts';
import { configDirectory, type MailSettings } from './config.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import { withMailAccount } from './mail.ts';
import { keylessPolicy } from './sendmail.ts';
import { clock } from './env.ts';
import { DEFAULT_SUBMISSION_PORT } from './arguments.ts';

function credentialPath(account: string): string {
  return join(configDirectory(), `${accountName(account)}.credential.json`);
}

export async function credential(args: { account?: string | undefined }): Promise<ExitCode> {
  const account = resolveAccount(args.account);
  const { secret, record } = newLocalCredential();
  mkdirSync(configDirectory(), { recursive: true, mode: 0o700 });
  const path = credentialPath(account);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(record)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
  process.stdout.write(
    `SMTP submission credential for ${account} (shown only now; a new one replaces it):\n` +
      `  server   127.0.0.1, port ${DEFAULT_SUBMISSION_PORT} (offrecord serve), no encryption (loopback only)\n` +
      `  user     ${account}\n` +
      `  password ${secret}\n`,
  );
  return EXIT.ok;
}

/** The account's local credential record (serve and account imap-config check logins against it). */
export function loadCredential(account: string): CredentialRecord {
  const path = credentialPath(account);
  if (!existsSync(path))
    throw new CliError(
      EXIT.usage,
      `${account} has no local submission credential yet`,
      `make one (it is shown once): offrecord --account ${account} account credential`,
    );
  try {
    const record = JSON.parse(readFileSync(path, 'utf8')) as CredentialRecord;
    if (record.v !== 1 || !/^[0-9a-f]{64}$/.test(record.sha256)) throw new Error('bad record');
    return record;
  } catch {
    throw new CliError(
      EXIT.input,
      `the credential file ${path} is damaged`,
      `make a new one: offrecord --account ${account} account credential`,
    );
  }
}

/** Starts the submission server for an open account (serve, and watch --serve). */
export async function startServing(mail: MailAccount, settings: MailSettings, port: number, log: Logger): Promise<SubmissionServer> {
  const credentialRecord = loadCredential(mail.address);
  try {
    return await startSubmissionServer({ account: mail, credential: credentialRecord, keyless: keylessPolicy(settings), log, port });
  } catch (error) {
    throw new CliError(EXIT.usage, `cannot listen on 127.0.0.1:${port}: ${(error as Error).message}`, 'choose another port with --port');
  }
}

export async function serve(args: { account?: string | undefined; port: number }): Promise<ExitCode> {
  const log = jsonLogger((line) => process.stderr.write(line), clock);
  return withMailAccount(args.account, async (mail, _opened, settings) => {
    const server = await startServing(mail, settings, args.port, log);
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        log.log('info', 'serve.signal', { signal });
        process.off('SIGTERM', stop);
        process.off('SIGINT', stop);
        resolve();
      };
      process.on('SIGTERM', stop);
      process.on('SIGINT', stop);
    });
    await server.close();
    return EXIT.ok;
  });
}

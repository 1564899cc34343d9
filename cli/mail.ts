// The handlers of `offrecord account`, `send`, `fetch` and `sessions`.
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { formatFingerprint } from '../src/keys/names.ts';
import { MaildirDelivery, MaildirSpool } from '../src/mail/maildir.ts';
import { allSinks, senderOf, type DeliverySink } from '../src/mail/delivery.ts';
import { parseInner } from '../src/mail/mime.ts';
import type { MailAccount } from '../src/mail/account.ts';
import { processNewMail, pruneProcessed, type FetchReport } from '../src/mail/receive.ts';
import { sendMessage } from '../src/mail/send.ts';
import type { Security } from '../src/mail/servers.ts';
import { defaultStoreDirectory, takeLock, type HeldLock } from '../src/store/index.ts';
import { openAccount, unlockAndRotate, type OpenedAccount } from './account.ts';
import { checkAddress, passLockPath, resolveAccount } from './account-name.ts';
import { configDirectory, defaultSpool, loadSettings, saveSettings, transports, type MailSettings } from './config.ts';
import { CliError, EXIT, OutputClosedError, report, type ExitCode } from './errors.ts';
import { json, terminalLine, terminalText } from './format.ts';
import { formatVerifiedSender, ORIGINAL_HEADER_PREFIX, renamedIn, VERIFIED_SENDER_HEADER } from '../src/mail/sender.ts';
import { clock } from './env.ts';

const out = (text: string) => process.stdout.write(text);

/** Where fetched plaintext is delivered: a Maildir any mail client can read. */
export function plaintextMaildir(account: string): string {
  return new MaildirSpool(join(defaultStoreDirectory(process.env), 'mail')).maildir(account);
}

export async function withMailAccount<T>(
  requested: string | undefined,
  fn: (mail: MailAccount, opened: OpenedAccount, settings: MailSettings) => Promise<T>,
): Promise<T> {
  const opened = openAccount(requested);
  try {
    await unlockAndRotate(opened);
    const settings = loadSettings(opened.account);
    const mail: MailAccount = {
      address: opened.account,
      keyring: opened.keyring,
      store: opened.store,
      privateKey: opened.keyring.own.unlockedKey(),
      ...transports(opened.account, settings),
      processedFolder: settings.folder,
      delivery: new MaildirDelivery(plaintextMaildir(opened.account)),
      clock,
    };
    return await fn(mail, opened, settings);
  } finally {
    opened.close();
  }
}

export interface AccountAddArgs {
  account?: string | undefined;
  maildir?: string | undefined;
  imapHost?: string | undefined;
  imapPort?: number | undefined;
  smtpHost?: string | undefined;
  smtpPort?: number | undefined;
  security: Security;
  imapSecurity?: Security | undefined;
  smtpSecurity?: Security | undefined;
  user?: string | undefined;
  caFile?: string | undefined;
  passwordEnv?: string | undefined;
  passwordCommand?: string | undefined;
  oauth2TokenCommand?: string | undefined;
  folder: string;
  policy: 'opportunistic' | 'require-encryption';
  keyless?: 'refuse' | 'plaintext' | undefined;
  /** Log in to both servers before saving, as mail clients do. */
  check?: boolean | undefined;
}

/**
 * Logs in to the IMAP and the SMTP server as the settings say; the first failure, in the words
 * `report` gives it, refuses the settings.
 */
async function checkServers(account: string, settings: MailSettings): Promise<void> {
  const { incoming, outgoing } = transports(account, settings);
  const checks = [incoming.verify?.(), outgoing.verify?.()].map(
    (check) =>
      check?.then(
        () => null,
        (error: unknown) => error,
      ) ?? null,
  );
  const failure = (await Promise.all(checks)).find((error) => error !== null);
  if (failure === undefined) return;
  const r = report(failure);
  if (r.exitCode === EXIT.internal) throw failure;
  throw new CliError(r.exitCode, `${r.message}: the settings were not saved`, `${r.hint ?? ''} (--no-check saves them unchecked)`.trim());
}

export async function accountAdd(args: AccountAddArgs): Promise<ExitCode> {
  const account = resolveAccount(args.account);
  if (args.keyless === 'plaintext' && args.policy === 'require-encryption') {
    throw new CliError(
      EXIT.usage,
      '--keyless plaintext contradicts --policy require-encryption',
      'choose one: require-encryption never sends plaintext',
    );
  }
  const keyless = args.keyless === 'plaintext' ? { keyless: 'plaintext' as const } : {};
  let settings: MailSettings;
  if (args.imapHost === undefined && args.smtpHost === undefined) {
    settings = { v: 1, transport: 'maildir', spool: args.maildir ?? defaultSpool(), folder: args.folder, policy: args.policy, ...keyless };
  } else {
    if (!args.imapHost || !args.smtpHost || !args.user) {
      throw new CliError(
        EXIT.usage,
        'a real account needs --imap-host, --smtp-host and --user',
        'offrecord account add --imap-host imap.example.org --smtp-host smtp.example.org --user alice --password-env MAIL_PASSWORD',
      );
    }
    if ([args.passwordEnv, args.passwordCommand, args.oauth2TokenCommand].filter((given) => given !== undefined).length !== 1) {
      throw new CliError(
        EXIT.usage,
        'give exactly one of --password-env, --password-command and --oauth2-token-command',
        'neither password nor token is ever stored: --password-env MAIL_PASSWORD, --password-command "pass show mail/alice", or --oauth2-token-command "oama access alice@gmail.com"',
      );
    }
    const imapSecurity = args.imapSecurity ?? args.security;
    const smtpSecurity = args.smtpSecurity ?? args.security;
    settings = {
      v: 1,
      transport: 'imap',
      imap: {
        host: args.imapHost,
        port: args.imapPort ?? (imapSecurity === 'tls' ? 993 : 143),
        security: imapSecurity,
        ...(args.caFile ? { caFile: args.caFile } : {}),
      },
      smtp: {
        host: args.smtpHost,
        port: args.smtpPort ?? (smtpSecurity === 'tls' ? 465 : 587),
        security: smtpSecurity,
        ...(args.caFile ? { caFile: args.caFile } : {}),
      },
      user: args.user,
      ...(args.oauth2TokenCommand !== undefined
        ? { oauth2: { command: args.oauth2TokenCommand } }
        : { password: args.passwordEnv !== undefined ? { env: args.passwordEnv } : { command: args.passwordCommand! } }),
      folder: args.folder,
      policy: args.policy,
      ...keyless,
    };
  }
  const checked = settings.transport === 'imap' && args.check !== false;
  if (checked) await checkServers(account, settings);
  const path = saveSettings(account, settings);
  out(`mail settings of ${account} ${checked ? 'checked (IMAP and SMTP login) and ' : ''}saved in ${path}\n`);
  return EXIT.ok;
}

export async function accountShow(args: { account?: string | undefined; json: boolean }): Promise<ExitCode> {
  const account = resolveAccount(args.account);
  const settings = loadSettings(account);
  if (args.json) out(json({ account, settings, config: configDirectory(), plaintext: plaintextMaildir(account) }));
  else {
    out(`account   ${account}\n`);
    if (settings.transport === 'maildir') out(`transport local Maildir spool ${settings.spool}\n`);
    else {
      out(`imap      ${settings.imap!.host}:${settings.imap!.port} (${settings.imap!.security})\n`);
      out(`smtp      ${settings.smtp!.host}:${settings.smtp!.port} (${settings.smtp!.security})\n`);
      const credential = settings.oauth2
        ? `OAuth2 token from command: ${settings.oauth2.command}`
        : 'env' in settings.password!
          ? `password from $${settings.password.env}`
          : `password from command: ${settings.password!.command}`;
      out(`user      ${settings.user}; ${credential}\n`);
    }
    out(
      `policy    ${settings.policy ?? 'opportunistic'}; recipients without keys (sendmail, serve): ${settings.keyless === 'plaintext' && settings.policy !== 'require-encryption' ? 'one plaintext mail carrying your keys' : 'refused'}\n`,
    );
    out(`processed mail moves to ${settings.folder}; read messages land in ${plaintextMaildir(account)}\n`);
  }
  return EXIT.ok;
}

export interface SendArgs {
  account?: string | undefined;
  to: string;
  subject: string;
  attach: string[];
  bodyFile?: string | undefined;
  htmlFile?: string | undefined;
  plaintext: boolean;
}

function readBody(args: SendArgs): string {
  if (args.bodyFile !== undefined) return readFileSync(args.bodyFile, 'utf8');
  if (process.stdin.isTTY)
    throw new CliError(EXIT.usage, 'no message body', 'pipe it in (echo hi | offrecord send --to ...) or use --body-file FILE');
  return readFileSync(0, 'utf8');
}

export async function send(args: SendArgs): Promise<ExitCode> {
  const to = checkAddress(args.to, '--to');
  const attachments = args.attach.map((file) => {
    try {
      return { filename: basename(file), contentType: 'application/octet-stream', content: new Uint8Array(readFileSync(file)) };
    } catch {
      throw new CliError(EXIT.input, `cannot read the attachment ${file}`);
    }
  });
  const text = readBody(args);
  const html = args.htmlFile !== undefined ? readFileSync(args.htmlFile, 'utf8') : undefined;
  return withMailAccount(args.account, async (mail, _opened, settings) => {
    if (args.plaintext && settings.policy === 'require-encryption') {
      throw new CliError(
        EXIT.usage,
        "this account's policy is require-encryption: it never sends in plaintext",
        "import the recipient's key first (offrecord keys import), or change the policy with offrecord account add --policy opportunistic",
      );
    }
    const outcome = await sendMessage(
      mail,
      { to, subject: args.subject, text, ...(html !== undefined ? { html } : {}), attachments },
      { allowPlaintext: args.plaintext },
    );
    out(
      outcome.kind === 'plaintext'
        ? `sent to ${to} in PLAINTEXT, carrying your keys (their reply can start the protected exchange)\n`
        : `sent to ${to} (${outcome.type} message)\n`,
    );
    return EXIT.ok;
  });
}

/** Resolves once `text` is handed to standard output; rejects with OutputClosedError once it is closed. */
function write(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (error) =>
      error ? reject(new OutputClosedError('output_closed', 'standard output is closed')) : resolve(),
    );
  });
}

/**
 * Shows each delivered message on standard output. It is the last sink: a message leaves the
 * outbox only once shown, so one saved by a run that stopped before showing it (killed, a
 * closed pipe, a failed pass) is shown by the next fetch.
 */
function showSink(asJson: boolean, shown: { count: number; entry: (value: unknown) => Promise<void> }): DeliverySink {
  return {
    deliver: async (delivery) => {
      const sender = senderOf(delivery);
      // The sender's MIME entity did not parse: it is in the Maildir as it came.
      const message = await parseInner(delivery.message).catch(() => null);
      const renamed = renamedIn(delivery.message);
      if (asJson) {
        await shown.entry({
          id: delivery.id,
          kind: 'message',
          from: delivery.sender,
          fingerprint: delivery.fingerprint,
          verified: delivery.verified,
          trust: sender.trust,
          verifiedSender: formatVerifiedSender(sender),
          renamed,
          subject: message?.subject ?? null,
          date: message?.date.toISOString() ?? null,
          text: message?.text ?? null,
          attachments: message?.attachments.map((a) => a.filename) ?? [],
        });
      } else {
        const lines = [
          `From ${delivery.sender}  ${formatFingerprint(delivery.fingerprint)}  ${delivery.verified ? '[verified]' : '[trusted on first use]'}\n`,
          `${VERIFIED_SENDER_HEADER}: ${formatVerifiedSender(sender)}\n`,
          renamed.length > 0
            ? `NOTE: the message's own ${renamed.join(', ')} did not name ${delivery.sender}: not shown as sender, kept as ${renamed.map((n) => ORIGINAL_HEADER_PREFIX + n).join(', ')}\n`
            : '',
          message
            ? `Subject: ${terminalLine(message.subject)}\nDate: ${message.date.toISOString()}\n\n${terminalText((message.text ?? '(no text part)').trimEnd())}\n`
            : '\n(the message could not be read as MIME: it is in your Maildir as it came)\n',
          message && message.attachments.length > 0
            ? `[attachments: ${message.attachments.map((a) => terminalLine(a.filename)).join(', ')}]\n`
            : '',
          '\n',
        ];
        await write(lines.join(''));
      }
      shown.count++;
    },
  };
}

/** How long a fetch waits for another fetch of the same account to finish. */
const FETCH_LOCK_WAIT_MS = 10 * 60_000;

/**
 * One pass at a time per account: a second fetch, or a fetch during a watcher's pass, waits, then
 * finds the mail done and shown (or delivered by the watcher).
 */
function lockFetch(account: string): HeldLock {
  const path = passLockPath(account);
  const free = takeLock(path, 0);
  if (free) return free;
  if (process.stderr.isTTY) process.stderr.write(`waiting for another pass over ${account}'s mail (a fetch or the watcher) to finish...\n`);
  const held = takeLock(path, FETCH_LOCK_WAIT_MS);
  if (held) return held;
  throw new CliError(
    EXIT.store,
    `another offrecord fetch of ${account} has been running for ${FETCH_LOCK_WAIT_MS / 60_000} minutes`,
    'let it finish, or stop it, then fetch again',
  );
}

export async function fetch(args: { account?: string | undefined; json: boolean }): Promise<ExitCode> {
  return withMailAccount(args.account, async (mail, opened) => {
    const lock = lockFetch(opened.account);
    const showProgress = process.stderr.isTTY && !args.json;
    const progress = (done: number, total: number) => {
      if (total >= 10) process.stderr.write(`\r[${'#'.repeat(Math.round((20 * done) / total)).padEnd(20)}] ${done}/${total}`);
    };
    let entries = 0;
    const shown = {
      count: 0,
      // --json: one array, its entries written as they come.
      entry: (value: unknown) => write(`${entries++ === 0 ? '[\n' : ',\n'}${JSON.stringify(value, null, 2).replace(/^/gm, '  ')}`),
    };
    // What the exit status needs of the reports, not the reports: a message's holds its plaintext (PROTOCOL.md §18.9).
    const outcome = { reports: 0, skipped: false, identityChanged: false };
    const skipped = (r: FetchReport): r is Extract<FetchReport, { kind: 'skipped' }> => r.kind === 'skipped';
    let pending: Promise<void> = Promise.resolve();
    try {
      pruneProcessed(mail);
      await processNewMail(
        { ...mail, delivery: allSinks([mail.delivery!, showSink(args.json, shown)]) },
        (r, done, total) => {
          outcome.reports++;
          if (skipped(r)) {
            outcome.skipped = true;
            if (r.code === 'identity_changed') outcome.identityChanged = true;
          }
          if (showProgress) progress(done, total);
          if (args.json) {
            if (r.kind !== 'message') pending = pending.then(() => shown.entry(r)); // messages were shown when delivered
          } else if (r.kind === 'ordinary' && r.advertises) {
            pending = pending.then(() =>
              write(
                `learned the offrecord keys of ${terminalLine(r.advertises!)} from an ordinary mail (left unread for your mail client)\n\n`,
              ),
            );
          } else if (r.kind === 'held') {
            const which =
              r.fingerprint === r.pending
                ? 'the changed identity that awaits your decision'
                : `another identity, while the changed identity ${formatFingerprint(r.pending)} awaits your decision`;
            process.stderr.write(
              `offrecord: held mail ${terminalLine(r.id)} from ${terminalLine(r.from)} where it is: it is signed by ${which} (${formatFingerprint(r.fingerprint)}); see offrecord keys list\n`,
            );
          } else if (r.kind === 'rejected') {
            pending = pending.then(() =>
              write(
                `${r.folder ? `filed mail ${terminalLine(r.id)} into ${r.folder} unread` : `left ordinary mail ${terminalLine(r.id)} to your mail client`}: from ${terminalLine(r.from)}, signed by the identity ${formatFingerprint(r.fingerprint)} you rejected\n\n`,
              ),
            );
          } else if (skipped(r)) {
            process.stderr.write(
              `offrecord: left mail ${terminalLine(r.id)} untouched: ${terminalLine(r.reason)} (${r.code})\n${r.alarm ? `${terminalText(r.alarm)}\n` : ''}`,
            );
          }
        },
        // Held mail is not read again until the user decides, but each fetch says it waits.
        { remindHeld: true },
      );
      if (showProgress && outcome.reports >= 10) process.stderr.write('\n');
      await pending;
      if (args.json) await write(entries === 0 ? '[]\n' : '\n]\n');
      else await write(`${shown.count} message(s) read${shown.count > 0 ? `, saved in ${plaintextMaildir(opened.account)}` : ''}\n`);
    } catch (error) {
      // The reader went away (`offrecord fetch | head`): what was not shown is shown next time.
      if (!(error instanceof OutputClosedError)) throw error;
    } finally {
      lock.release();
    }
    if (outcome.identityChanged) return EXIT.trust;
    return outcome.skipped ? EXIT.partial : EXIT.ok;
  });
}

// The handlers of `offrecord init` and `offrecord keys ...`. Each returns the exit code; errors
// are thrown and turned into messages by cli/errors.ts.
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { isValidEmail } from '../src/keys/names.ts';
import { normalizeFingerprint } from '../src/keys/names.ts';
import { KeyError } from '../src/keys/errors.ts';
import { formatFingerprint } from '../src/keys/names.ts';
import { REJECTED_FOLDER } from '../src/mail/receive.ts';
import { createAccount, openAccount, unlockAll, unlockAndRotate, type OpenedAccount } from './account.ts';
import { checkAddress, dataDirectory } from './account-name.ts';
import { CliError, EXIT, type ExitCode } from './errors.ts';
import {
  fingerprintJson,
  fingerprintText,
  importJson,
  importText,
  json,
  listingJson,
  listingText,
  rotationJson,
  rotationText,
} from './format.ts';
import { newPassphrase, unlockPassphrase } from './passphrase.ts';
import { NEW_PASSPHRASE_ENV } from './secret-command.ts';
import { STDIO } from './arguments.ts';

const out = (text: string) => process.stdout.write(text);
const warn = (text: string) => process.stderr.write(`offrecord: ${text}\n`);

/** Certificates are small; anything much bigger is not one (importCertificate's own limit is lower). */
const MAX_INPUT_BYTES = 1024 * 1024;

async function withAccount<T>(account: string | undefined, fn: (opened: OpenedAccount) => Promise<T>): Promise<T> {
  const opened = openAccount(account);
  try {
    return await fn(opened);
  } finally {
    opened.close();
  }
}

/** Prints what an opportunistic rotation did (on stderr: stdout may be a key being exported). */
function noteRotation(rotated: { created: unknown[]; destroyed: unknown[] }): void {
  if (rotated.created.length > 0 || rotated.destroyed.length > 0) {
    warn(`rotated keys on schedule: ${rotated.created.length} created, ${rotated.destroyed.length} secret(s) destroyed`);
  }
}

// ─── init ────────────────────────────────────────────────────────────────────────────────

export interface InitArgs {
  email: string;
  name?: string | undefined;
  account?: string | undefined;
  /** A backup made by keys export --secret. */
  restore?: string | undefined;
}

export async function init(args: InitArgs): Promise<ExitCode> {
  if (!isValidEmail(args.email.trim())) {
    throw new CliError(
      EXIT.usage,
      `"${args.email}" is not a plain email address`,
      'offrecord init --email alice@example.org [--name "Alice"]',
    );
  }
  const account = checkAddress(args.email, '--email');
  if (args.account !== undefined && checkAddress(args.account, '--account') !== account) {
    throw new CliError(
      EXIT.usage,
      '--account and --email name different addresses',
      `the new account is named after its address: offrecord init --email ${account}`,
    );
  }
  const opened = createAccount(account);
  let done = false;
  try {
    if (opened.keyring.own.hasIdentity()) {
      throw new CliError(EXIT.usage, `the account ${account} already has an identity`, 'see it with: offrecord keys list');
    }
    if (args.restore !== undefined) {
      await restore(opened, account, args.restore);
      done = true;
      return EXIT.ok;
    }
    const passphrase = await newPassphrase(account);
    // The account key guards every secret, the identity's included (docs/PROTOCOL.md §17.1).
    opened.store.unlock(passphrase ?? null);
    const created = await opened.keyring.own.init({ email: args.email.trim(), name: args.name });
    done = true;
    // Like GnuPG's openpgp-revocs.d: kept next to the account, to be copied somewhere safe.
    const revocation = join(dataDirectory(), `${account}.revocation.asc`);
    writeOutput(revocation, created.revocationCertificate, { secret: true, force: true });
    if (passphrase === undefined) {
      warn('WARNING: the account is stored WITHOUT a passphrase: anyone who can read your files can use your keys and read your mail.');
      process.stderr.write('hint: set OFFRECORD_PASSPHRASE, or run offrecord init in a terminal to be asked for one\n');
    }
    out(
      [
        `created the identity of ${created.userId}`,
        `  ${formatFingerprint(created.fingerprint)}`,
        `stored in ${join(dataDirectory(), `${account}.sqlite`)}`,
        `revocation certificate: ${revocation} (keep a copy somewhere safe)`,
        'give your correspondents your certificate (offrecord keys export) and compare this fingerprint with them',
        '',
      ].join('\n'),
    );
    return EXIT.ok;
  } finally {
    if (!done && opened.created) opened.remove();
    else opened.close();
  }
}

/**
 * init --restore: the identity from a backup, unlocked with the passphrase it was exported under
 * (which becomes the account's), with fresh short-lived keys and no session.
 */
async function restore(opened: OpenedAccount, account: string, file: string): Promise<void> {
  const armored = new TextDecoder().decode(readInput(file));
  let backup: openpgp.PrivateKey;
  try {
    backup = await openpgp.readPrivateKey({ armoredKey: armored });
  } catch {
    throw new CliError(EXIT.input, `${file} is not an OpenPGP secret key`, 'give the file offrecord keys export --secret wrote');
  }
  if (!backup.users.some((u) => u.userID?.email !== undefined && u.userID.email.toLowerCase() === account)) {
    throw new CliError(
      EXIT.input,
      `the key in ${file} is not an identity of ${account}`,
      'restore it under the address it was made for: offrecord init --email ADDRESS --restore FILE',
    );
  }
  const passphrase = backup.isDecrypted() ? undefined : await unlockPassphrase(account);
  if (!backup.isDecrypted()) {
    if (passphrase === undefined || passphrase === '')
      throw new CliError(
        EXIT.passphrase,
        'the backup is protected: a passphrase is required',
        'set OFFRECORD_PASSPHRASE, use --passphrase-command CMD, or run offrecord in a terminal to be asked',
      );
    try {
      backup = await openpgp.decryptKey({ privateKey: backup, passphrase });
    } catch {
      throw new CliError(
        EXIT.passphrase,
        'wrong passphrase for the backup',
        'nothing was created; give the passphrase the backup was exported under',
      );
    }
  }
  opened.store.unlock(passphrase ?? null);
  const restored = await opened.keyring.own.restore(backup);
  if (passphrase === undefined)
    warn('WARNING: the account is stored WITHOUT a passphrase: anyone who can read your files can use your keys and read your mail.');
  out(
    [
      `restored the identity of ${restored.userId}`,
      `  ${formatFingerprint(restored.fingerprint)}`,
      'with a fresh encryption subkey and ring key; conversations start anew',
      '',
    ].join('\n'),
  );
}

// ─── keys ────────────────────────────────────────────────────────────────────────────────

export async function list(args: { account?: string | undefined; json?: boolean | undefined }): Promise<ExitCode> {
  return withAccount(args.account, async ({ account, keyring }) => {
    const listing = await keyring.list();
    out(args.json ? json(listingJson(account, listing)) : listingText(listing));
    return EXIT.ok;
  });
}

export function writeOutput(file: string, text: string | Uint8Array, options: { secret: boolean; force: boolean }): void {
  let fd: number;
  try {
    fd = openSync(file, options.force ? 'w' : 'wx', options.secret ? 0o600 : 0o644);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'EEXIST') throw new CliError(EXIT.usage, `${file} exists already`, 'choose another file, or add --force to overwrite it');
    throw new CliError(EXIT.input, `cannot write ${file} (${code ?? 'error'})`, 'check the path and its permissions');
  }
  try {
    writeSync(fd, typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  } finally {
    closeSync(fd);
  }
}

export async function exportKey(args: {
  account?: string | undefined;
  secret?: boolean | undefined;
  output?: string | undefined;
  force?: boolean | undefined;
}): Promise<ExitCode> {
  return withAccount(args.account, async (opened) => {
    let text: string;
    if (args.secret) {
      // A backup of the identity alone, under the account's passphrase (docs/KEYS-CLI.md, "Backups").
      const { rotated, passphrase } = await unlockAll(opened);
      noteRotation(rotated);
      text = await opened.keyring.own.exportBackup(passphrase);
      if (passphrase === undefined) warn('WARNING: this account has no passphrase: the backup is NOT protected by one.');
    } else {
      text = await opened.keyring.own.exportPublic();
    }
    if (!text.endsWith('\n')) text += '\n';
    if (args.output !== undefined && args.output !== STDIO && args.output !== '-') {
      writeOutput(args.output, text, { secret: args.secret === true, force: args.force === true });
      process.stderr.write(`offrecord: wrote the ${args.secret ? 'SECRET key' : 'public certificate'} to ${args.output}\n`);
    } else {
      out(text);
    }
    return EXIT.ok;
  });
}

function readInput(argument: string): Uint8Array {
  const file = argument === STDIO ? '-' : argument;
  try {
    const bytes = file === '-' ? readFileSync(0) : readFileSync(file);
    if (bytes.length > MAX_INPUT_BYTES)
      throw new CliError(EXIT.input, `${file} is too large to be a certificate`, 'import one OpenPGP public certificate');
    if (bytes.length === 0)
      throw new CliError(
        EXIT.input,
        `${file === '-' ? 'standard input' : file} is empty`,
        'import an OpenPGP public certificate (gpg --export --armor ADDRESS)',
      );
    return new Uint8Array(bytes);
  } catch (error) {
    if (error instanceof CliError) throw error;
    const code = (error as { code?: string }).code;
    const hint = code === 'ENOENT' ? 'check the file name; use - to read standard input' : 'check the file and its permissions';
    throw new CliError(EXIT.input, `cannot read ${file} (${code ?? 'error'})`, hint);
  }
}

export async function importKey(args: {
  account?: string | undefined;
  file: string;
  expect?: string | undefined;
  json?: boolean | undefined;
}): Promise<ExitCode> {
  const bytes = readInput(args.file);
  const expected = args.expect !== undefined ? checkAddress(args.expect, '--expect') : undefined;
  return withAccount(args.account, async ({ keyring }) => {
    const result = await keyring.correspondents.importPeer(bytes, expected !== undefined ? { expectedAddress: expected } : {});
    if (args.json) out(json(importJson(result)));
    if (result.status === 'changed') {
      process.stderr.write(`offrecord: ${result.warning}\n`);
      return EXIT.trust;
    }
    if (result.status === 'held') {
      process.stderr.write(
        `offrecord: not imported: ${result.address} is pinned to ${formatFingerprint(result.pinned!)}, and the changed identity ${formatFingerprint(result.pending!)} awaits your decision first (offrecord keys list)\n`,
      );
      return EXIT.trust;
    }
    if (!args.json) out(importText(result));
    return EXIT.ok;
  });
}

export async function fingerprint(args: {
  account?: string | undefined;
  address?: string | undefined;
  json?: boolean | undefined;
}): Promise<ExitCode> {
  const address = args.address !== undefined ? checkAddress(args.address, 'the address') : undefined;
  return withAccount(args.account, async ({ keyring }) => {
    const result = await keyring.fingerprint(address);
    out(args.json ? json(fingerprintJson(result)) : fingerprintText(result));
    return EXIT.ok;
  });
}

export async function trust(args: { account?: string | undefined; address: string; fingerprint: string }): Promise<ExitCode> {
  const address = checkAddress(args.address, 'the address');
  let given: string;
  try {
    given = normalizeFingerprint(args.fingerprint);
  } catch (error) {
    if (!(error instanceof KeyError)) throw error;
    throw new CliError(
      EXIT.usage,
      `"${args.fingerprint}" is not a fingerprint (40 hexadecimal digits)`,
      `copy it from: offrecord keys fingerprint ${address}`,
    );
  }
  return withAccount(args.account, async ({ keyring }) => {
    const result = await keyring.correspondents.trust(address, given);
    if (result.replaced) {
      out(
        `${result.address}: the new identity ${formatFingerprint(result.fingerprint)} replaces ${formatFingerprint(result.replaced)} (verified)\n`,
      );
    } else {
      out(`${result.address}: ${formatFingerprint(result.fingerprint)} marked verified\n`);
      if (result.discarded)
        out(
          `rejected the changed identity ${formatFingerprint(result.discarded)}: its offrecord mail is filed into ${REJECTED_FOLDER} unread from the next fetch on\n`,
        );
    }
    return EXIT.ok;
  });
}

export async function rotate(args: {
  account?: string | undefined;
  force?: boolean | undefined;
  json?: boolean | undefined;
}): Promise<ExitCode> {
  return withAccount(args.account, async (opened) => {
    const result = await unlockAndRotate(opened, { force: args.force === true });
    out(args.json ? json(rotationJson(result)) : rotationText(result));
    return EXIT.ok;
  });
}

export async function passwd(args: { account?: string | undefined; newCommand?: string | undefined; none: boolean }): Promise<ExitCode> {
  return withAccount(args.account, async (opened) => {
    noteRotation(await unlockAndRotate(opened));
    const next = args.none ? null : await newPassphrase(opened.account, { command: args.newCommand, env: NEW_PASSPHRASE_ENV });
    if (next === undefined) {
      throw new CliError(
        EXIT.usage,
        'no new passphrase was given',
        `set ${NEW_PASSPHRASE_ENV}, use --new-passphrase-command CMD, or run offrecord passwd in a terminal; --none removes the passphrase`,
      );
    }
    opened.store.changePassphrase(next);
    if (next === null)
      warn('WARNING: the account is now stored WITHOUT a passphrase: anyone who can read your files can use your keys and read your mail.');
    out(`${next === null ? 'removed the passphrase of' : 'changed the passphrase of'} ${opened.account}\n`);
    return EXIT.ok;
  });
}

// Which account a command is for: the data directory, its accounts, an address checked as one.
// Apart from cli/account.ts so that commands showing public data load no key handling.
import { existsSync, readdirSync } from 'node:fs';
import { isValidEmail } from '../src/keys/names.ts';
import { normalizeAddress } from '../src/store/records.ts';
import { join } from 'node:path';
import { accountFileName, accountName, defaultStoreDirectory } from '../src/store/index.ts';
import { CliError, EXIT } from './errors.ts';

export function dataDirectory(): string {
  return defaultStoreDirectory(process.env);
}

/**
 * The account's pass lock (src/store/lock.ts): one pass over its mail at a time, `fetch` holding
 * it for its run and `watch` for each pass.
 */
export function passLockPath(account: string, directory = dataDirectory()): string {
  return join(directory, `${accountName(account)}.pass.lock`);
}

/** The accounts in the data directory, sorted. */
export function listAccounts(directory = dataDirectory()): string[] {
  if (!existsSync(directory)) return [];
  return readdirSync(directory)
    .filter((name) => name.endsWith('.sqlite'))
    .map((name) => name.slice(0, -'.sqlite'.length))
    .sort();
}

export function checkAddress(address: string, what: string): string {
  if (!isValidEmail(address.trim())) {
    throw new CliError(
      EXIT.usage,
      `${what} "${address}" is not a plain email address`,
      'write it like alice@example.org (no name, no angle brackets)',
    );
  }
  const normalized = normalizeAddress(address);
  accountFileName(normalized); // refuses anything that cannot be a file name
  return normalized;
}

/** The account named by --account, or the only one; a usage error with a hint otherwise. */
export function resolveAccount(requested: string | undefined): string {
  const directory = dataDirectory();
  const accounts = listAccounts(directory);
  if (requested !== undefined) {
    const account = checkAddress(requested, '--account');
    if (!accounts.includes(account)) {
      const others = accounts.length > 0 ? `; accounts here: ${accounts.join(', ')}` : '';
      throw new CliError(EXIT.usage, `no account ${account} in ${directory}`, `create it with: offrecord init --email ${account}${others}`);
    }
    return account;
  }
  if (accounts.length === 0) {
    throw new CliError(EXIT.usage, `no account yet (looked in ${directory})`, 'create one with: offrecord init --email ADDRESS');
  }
  if (accounts.length > 1) {
    throw new CliError(EXIT.usage, `there are several accounts: ${accounts.join(', ')}`, 'choose one with --account ADDRESS');
  }
  return accounts[0]!;
}

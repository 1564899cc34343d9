// Which account a command works on, and opening its store. Accounts are the databases
// <address>.sqlite in the data directory ($XDG_DATA_HOME/offrecord, or ~/.local/share/offrecord).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { isValidEmail, normalizeAddress } from '../src/keys/identity.ts';
import { Keyring, type RotationResult } from '../src/keys/keyring.ts';
import { accountFileName, defaultStoreDirectory, defaultStorePath, openAccountStore, type AccountStore } from '../src/store/index.ts';
import { CliError, EXIT } from './errors.ts';
import { unlockPassphrase } from './passphrase.ts';

export function dataDirectory(): string {
  return defaultStoreDirectory(process.env);
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
    throw new CliError(EXIT.usage, `${what} "${address}" is not a plain email address`, 'write it like alice@example.org (no name, no angle brackets)');
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

export interface OpenedAccount {
  account: string;
  store: AccountStore;
  keyring: Keyring;
  close(): void;
}

/** Opens an existing account's store and keyring. */
export function openAccount(requested: string | undefined): OpenedAccount {
  const account = resolveAccount(requested);
  // Forgotten secrets are checkpointed out of the WAL when the command closes the store,
  // not after every save: one fsync'd checkpoint per command instead of one per message.
  const store = openAccountStore(defaultStorePath(account), { checkpointAfterSave: false });
  const keyring = new Keyring(store);
  return { account, store, keyring, close: () => store.close() };
}

/** Opens (creating) the store for init; remove() deletes the files again if init fails. */
export function createAccount(account: string): OpenedAccount & { created: boolean; remove(): void } {
  const path = defaultStorePath(account);
  const created = !existsSync(path);
  const store = openAccountStore(path);
  const keyring = new Keyring(store);
  return {
    account,
    store,
    keyring,
    created,
    close: () => store.close(),
    remove: () => {
      if (store.open) store.close();
      for (const suffix of ['', '-wal', '-shm', '-journal']) rmSync(path + suffix, { force: true });
    },
  };
}

/**
 * Unlocks the identity (asking for the passphrase if needed and possible) and then applies the
 * rotation schedule, as every command that unlocks does. Returns what rotated.
 */
export async function unlockAndRotate(opened: OpenedAccount, options: { force?: boolean } = {}): Promise<RotationResult> {
  const { keyring, account } = opened;
  const passphrase = (await keyring.isProtected()) ? await unlockPassphrase(account) : undefined;
  await keyring.unlock(passphrase);
  return keyring.rotate(options);
}

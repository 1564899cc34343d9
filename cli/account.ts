// Which account a command works on, and opening its store. Accounts are the databases
// <address>.sqlite in the data directory ($XDG_DATA_HOME/offrecord, or ~/.local/share/offrecord).
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { KeyError } from '../src/keys/errors.ts';
import { isValidEmail, unlockIdentity } from '../src/keys/identity.ts';
import { normalizeAddress } from '../src/store/records.ts';
import { Keyring } from '../src/keys/keyring.ts';
import type { RotationResult } from '../src/keys/keyring-results.ts';
import { accountFileName, defaultStoreDirectory, defaultStorePath, openAccountStore, type AccountStore } from '../src/store/index.ts';
import { CliError, EXIT } from './errors.ts';
import { unlockPassphrase } from './passphrase.ts';
import { clock } from './env.ts';

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
  // scrypt in a child process: its 128 MiB never count in a command's memory peak (the watcher's).
  const store = openAccountStore(defaultStorePath(account), { checkpointAfterSave: false, kdfPlace: 'child', clock });
  const keyring = new Keyring(store, { clock });
  return { account, store, keyring, close: () => store.close() };
}

/** Opens (creating) the store for init; remove() deletes the files again if init fails. */
export function createAccount(account: string): OpenedAccount & { created: boolean; remove(): void } {
  const path = defaultStorePath(account);
  const created = !existsSync(path);
  const store = openAccountStore(path, { kdfPlace: 'child', clock });
  const keyring = new Keyring(store, { clock });
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

/** The passphrase from its sources (cli/passphrase.ts), or exit 4 saying none was found. */
async function requirePassphrase(account: string): Promise<string> {
  const passphrase = await unlockPassphrase(account);
  if (passphrase === undefined)
    throw new CliError(
      EXIT.passphrase,
      `the account ${account} is protected: a passphrase is required`,
      'set OFFRECORD_PASSPHRASE, use --passphrase-command CMD, or run offrecord in a terminal to be asked',
    );
  return passphrase;
}

/**
 * Unwraps the account key (docs/PROTOCOL.md §17.1), asking for the passphrase when the account has
 * one. A store from before the account key is sealed on this first unlock, with the passphrase
 * of its OpenPGP-protected identity, checked first (a wrong one changes nothing). Returns that
 * passphrase for the identity's one last OpenPGP unlock, or undefined.
 */
export async function unlockStore(opened: OpenedAccount): Promise<string | undefined> {
  const { store, account } = opened;
  const protection = store.protection();
  if (protection === 'none') {
    store.unlock(null);
    return undefined;
  }
  if (protection === 'passphrase') {
    const passphrase = await requirePassphrase(account);
    store.unlock(passphrase);
    return passphrase;
  }
  const legacy = store.legacyIdentitySecret();
  if (legacy === null) return undefined; // no identity yet: init makes the account key
  const isProtected = await unlockIdentity(legacy).then(
    () => false,
    (error: unknown) => {
      if (error instanceof KeyError && error.code === 'passphrase_required') return true;
      throw error;
    },
  );
  if (!isProtected) {
    store.unlock(null);
    return undefined;
  }
  const passphrase = await requirePassphrase(account);
  await unlockIdentity(legacy, passphrase); // KeyError 'bad_passphrase' before anything is written
  store.unlock(passphrase);
  return passphrase;
}

/**
 * Unlocks the store and the identity (asking for the passphrase if needed and possible) and then
 * applies the rotation schedule, as every command that unlocks does. Returns what rotated.
 */
export async function unlockAndRotate(opened: OpenedAccount, options: { force?: boolean } = {}): Promise<RotationResult> {
  return (await unlockAll(opened, options)).rotated;
}

/** unlockAndRotate, also returning the passphrase it was given (for a backup protected by it). */
export async function unlockAll(
  opened: OpenedAccount,
  options: { force?: boolean } = {},
): Promise<{ rotated: RotationResult; passphrase: string | undefined }> {
  const { keyring } = opened;
  const passphrase = await unlockStore(opened);
  await keyring.unlock((await keyring.isProtected()) ? passphrase : undefined);
  await keyring.dropOpenPgpProtection();
  return { rotated: await keyring.rotate(options), passphrase };
}

// Opening an account's store and keyring (cli/account-name.ts says which account). Accounts are
// the databases <address>.sqlite in the data directory ($XDG_DATA_HOME/offrecord, or
// ~/.local/share/offrecord).
import { existsSync, rmSync } from 'node:fs';
import { KeyError } from '../src/keys/errors.ts';
import { unlockIdentity } from '../src/keys/identity.ts';
import { Keyring } from '../src/keys/keyring.ts';
import type { RotationResult } from '../src/keys/keyring-results.ts';
import { defaultStorePath, openAccountStore, type AccountStore } from '../src/store/index.ts';
import { CliError, EXIT } from './errors.ts';
import { unlockPassphrase } from './passphrase.ts';
import { clock } from './env.ts';
import { resolveAccount } from './account-name.ts';

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
  await keyring.own.unlock((await keyring.own.isProtected()) ? passphrase : undefined);
  await keyring.own.dropOpenPgpProtection();
  return { rotated: await keyring.own.rotate(options), passphrase };
}

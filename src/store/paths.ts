// Where an account's database lives by default: $XDG_DATA_HOME/offrecord/<account>.sqlite,
// or ~/.local/share/offrecord/<account>.sqlite, in a directory only the user can enter.
import { chmodSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/** Account names become file names: an address-like name, lowercased, nothing path-like. */
const ACCOUNT = /^[a-z0-9_%+@-][a-z0-9._%+@-]{0,253}$/;

/** The account's name as files beside its database are named (settings, watcher lock and status). */
export function accountName(account: string): string {
  const name = account.trim().toLowerCase();
  if (!ACCOUNT.test(name)) throw new TypeError('account name must look like an email address (letters, digits, . _ % + @ -)');
  return name;
}

export function accountFileName(account: string): string {
  return `${accountName(account)}.sqlite`;
}

/** The directory for offrecord's databases; XDG says a relative XDG_DATA_HOME is ignored. */
export function defaultStoreDirectory(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  const base = xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.local', 'share');
  return join(base, 'offrecord');
}

/** Creates the directory (and missing parents) with mode 0700. */
export function ensurePrivateDirectory(directory: string, tighten = false): void {
  mkdirSync(directory, { recursive: true, mode: 0o700 });
  if (tighten) chmodSync(directory, 0o700);
}

/**
 * The default database path of `account`. Creates the offrecord directory with mode 0700
 * (and tightens it to 0700 if it already existed wider: it is ours alone).
 */
export function defaultStorePath(account: string, env: NodeJS.ProcessEnv = process.env): string {
  const file = accountFileName(account);
  const directory = defaultStoreDirectory(env);
  ensurePrivateDirectory(directory, true);
  return join(directory, file);
}

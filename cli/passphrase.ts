// Where the CLI gets the passphrase that unwraps the account key (docs/PROTOCOL.md §17.1), first
// found wins: --passphrase-command CMD (its first line of output), a systemd credential
// ($CREDENTIALS_DIRECTORY/offrecord-passphrase, from LoadCredential=), OFFRECORD_PASSPHRASE, or a
// prompt without echo when stdin is a terminal. Never the passphrase itself on the command line:
// it would land in the shell history and in ps.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliError, EXIT, SecretCommandError } from './errors.ts';
import { PASSPHRASE_ENV, runSecretCommand } from './secret-command.ts';

/** The name of the systemd credential (LoadCredential=offrecord-passphrase:FILE). */
export const PASSPHRASE_CREDENTIAL = 'offrecord-passphrase';
const MAX_PASSPHRASE_BYTES = 4096;

let passphraseCommand: string | undefined;

/** Set from the global --passphrase-command option before a command runs. */
export function setPassphraseCommand(command: string | undefined): void {
  passphraseCommand = command === undefined || command.trim() === '' ? undefined : command;
}

/** The first line of what `command` prints (cli/secret-command.ts: no secret of ours in its environment). */
async function runPassphraseCommand(command: string): Promise<string> {
  let stdout: string;
  try {
    stdout = await runSecretCommand(command, MAX_PASSPHRASE_BYTES);
  } catch (error) {
    if (!(error instanceof SecretCommandError)) throw error;
    throw new CliError(
      EXIT.passphrase,
      `the passphrase command failed: ${error.message}`,
      `nothing was changed; check it by hand: ${command}`,
    );
  }
  const line = stdout.split('\n')[0]!.replace(/\r$/, '');
  if (line === '')
    throw new CliError(EXIT.passphrase, 'the passphrase command printed nothing', `nothing was changed; check it by hand: ${command}`);
  return line;
}

/** The systemd credential, if the service manager passed one (only this process can read it). */
function passphraseFromCredential(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const directory = env.CREDENTIALS_DIRECTORY;
  if (directory === undefined || directory === '') return undefined;
  let text: string;
  try {
    text = readFileSync(join(directory, PASSPHRASE_CREDENTIAL), 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw new CliError(EXIT.passphrase, `cannot read the credential ${PASSPHRASE_CREDENTIAL}`, 'check LoadCredential= in the unit');
  }
  return text.split('\n')[0]!.replace(/\r$/, '');
}

/** The passphrase from the environment, if set and non-empty. */
export function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env, name = PASSPHRASE_ENV): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

export function canPrompt(): boolean {
  return process.stdin.isTTY === true && typeof process.stdin.setRawMode === 'function';
}

/** Reads a line from the terminal without echoing it. Ctrl-C aborts (exit 130), Ctrl-U clears. */
export function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  const output = process.stderr;
  // Echo off before the question shows: keys typed as soon as it appears are never echoed.
  input.setRawMode(true);
  output.write(question);
  input.setEncoding('utf8');
  input.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = () => {
      input.off('data', onData);
      input.setRawMode(false);
      input.pause();
      output.write('\n');
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003' || (ch === '\u0004' && value === '')) {
          finish();
          reject(new CliError(EXIT.interrupted, 'interrupted'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = Array.from(value).slice(0, -1).join('');
        else if (ch === '\u0015') value = '';
        else if (ch >= ' ') value += ch;
      }
    };
    input.on('data', onData);
  });
}

/**
 * A new passphrase for init: from the environment, else asked twice on a terminal, else none
 * (the caller warns). An empty answer at the prompt also means none.
 */
export async function newPassphrase(
  account: string,
  sources: { command?: string | undefined; env?: string } = {},
): Promise<string | undefined> {
  const command = sources.command ?? passphraseCommand;
  if (command !== undefined) return runPassphraseCommand(command);
  if (sources.env === undefined) {
    const fromCredential = passphraseFromCredential();
    if (fromCredential !== undefined) return fromCredential;
  }
  const fromEnv = passphraseFromEnv(process.env, sources.env);
  if (fromEnv !== undefined) return fromEnv;
  if (!canPrompt()) return undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    const first = await promptHidden(`New passphrase for ${account} (empty for none): `);
    if (first === '') return undefined;
    const second = await promptHidden('Repeat the passphrase: ');
    if (first === second) return first;
    process.stderr.write('offrecord: the passphrases differ, try again\n');
  }
  throw new CliError(EXIT.usage, 'the passphrases differed three times', 'run offrecord init again');
}

/**
 * The passphrase to unlock with: the command, the credential, the environment, else a prompt,
 * else undefined (unlocking then says it is required). An empty one is returned as such: the
 * store refuses it (exit 4).
 */
export async function unlockPassphrase(account: string): Promise<string | undefined> {
  if (passphraseCommand !== undefined) return runPassphraseCommand(passphraseCommand);
  const fromCredential = passphraseFromCredential();
  if (fromCredential !== undefined) return fromCredential;
  const fromEnv = passphraseFromEnv();
  if (fromEnv !== undefined) return fromEnv;
  if (!canPrompt()) return undefined;
  return promptHidden(`Passphrase for ${account}: `);
}

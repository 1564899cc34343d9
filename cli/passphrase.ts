// Where the CLI gets a passphrase: OFFRECORD_PASSPHRASE, or a prompt without echo when stdin is a
// terminal. Nothing else (no command-line option: it would land in the shell history and in ps).
import { CliError, EXIT } from './errors.ts';

export const PASSPHRASE_ENV = 'OFFRECORD_PASSPHRASE';

/** The passphrase from the environment, if set and non-empty. */
export function passphraseFromEnv(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const value = env[PASSPHRASE_ENV];
  return value === undefined || value === '' ? undefined : value;
}

export function canPrompt(): boolean {
  return process.stdin.isTTY === true && typeof process.stdin.setRawMode === 'function';
}

/** Reads a line from the terminal without echoing it. Ctrl-C aborts (exit 130), Ctrl-U clears. */
export function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  const output = process.stderr;
  output.write(question);
  input.setRawMode(true);
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
export async function newPassphrase(account: string): Promise<string | undefined> {
  const fromEnv = passphraseFromEnv();
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

/** The passphrase to unlock with: environment, else a prompt, else undefined (unlock then says it is required). */
export async function unlockPassphrase(account: string): Promise<string | undefined> {
  const fromEnv = passphraseFromEnv();
  if (fromEnv !== undefined) return fromEnv;
  if (!canPrompt()) return undefined;
  return promptHidden(`Passphrase for ${account}: `);
}

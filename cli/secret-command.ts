// The user's own commands that print a secret: --passphrase-command, --password-command and
// --oauth2-token-command (pass, secret-tool, oama, mutt_oauth2.py). One way to run them: through
// /bin/sh, bounded in time and output, and with none of our secrets in their environment: a
// child's environment is readable by everything it starts and, on many systems, through /proc.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SecretCommandError } from './errors.ts';

export const PASSPHRASE_ENV = 'OFFRECORD_PASSPHRASE';
/** offrecord passwd: the new passphrase. */
export const NEW_PASSPHRASE_ENV = 'OFFRECORD_NEW_PASSPHRASE';
/** Environment variables that carry a secret of ours; never handed to a child process. */
export const SECRET_ENV = [PASSPHRASE_ENV, NEW_PASSPHRASE_ENV] as const;

export const SECRET_COMMAND_TIMEOUT_MS = 30_000;

/** This process's environment without our secrets, plus `drop` (e.g. the --password-env variable). */
export function childEnvironment(drop: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const child = { ...env };
  for (const name of [...SECRET_ENV, ...drop]) delete child[name];
  return child;
}

/** What `command` prints on stdout; SecretCommandError says why not, never echoing its output. */
export async function runSecretCommand(command: string, maxBytes: number): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('/bin/sh', ['-c', command], {
      env: childEnvironment(),
      timeout: SECRET_COMMAND_TIMEOUT_MS,
      maxBuffer: maxBytes,
    });
    return stdout;
  } catch (error) {
    const e = error as { code?: unknown; signal?: unknown; killed?: boolean };
    if (e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER')
      throw new SecretCommandError('too_much_output', `it printed more than ${maxBytes} bytes`);
    if (e.killed && e.signal === 'SIGTERM')
      throw new SecretCommandError('timed_out', `it ran longer than ${SECRET_COMMAND_TIMEOUT_MS / 1000} s`);
    if (typeof e.code === 'number') throw new SecretCommandError('exit_status', `it exited with status ${e.code}`);
    if (typeof e.signal === 'string') throw new SecretCommandError('killed', `it was killed by ${e.signal}`);
    throw new SecretCommandError('not_run', 'it could not be run');
  }
}

// The user's own commands that print a secret: --passphrase-command, --password-command and
// --oauth2-token-command (pass, secret-tool, oama, mutt_oauth2.py). One way to run them: through
// /bin/sh, bounded in time and output, and with none of our secrets in their environment: a
// child's environment is readable by everything it starts and, on many systems, through /proc.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

export const PASSPHRASE_ENV = 'OFFRECORD_PASSPHRASE';
/** offrecord passwd: the new passphrase. */
export const NEW_PASSPHRASE_ENV = 'OFFRECORD_NEW_PASSPHRASE';
/** Environment variables that carry a secret of ours; never handed to a child process. */
export const SECRET_ENV = [PASSPHRASE_ENV, NEW_PASSPHRASE_ENV] as const;

export const SECRET_COMMAND_TIMEOUT_MS = 30_000;

export class SecretCommandFailed extends Error {
  constructor(readonly why: string) {
    super(why);
    this.name = 'SecretCommandFailed';
  }
}

/** This process's environment without our secrets, plus `drop` (e.g. the --password-env variable). */
export function childEnvironment(drop: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const child = { ...env };
  for (const name of [...SECRET_ENV, ...drop]) delete child[name];
  return child;
}

/** What `command` prints on stdout; SecretCommandFailed says why not, never echoing its output. */
export async function runSecretCommand(command: string, maxBytes: number): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)('/bin/sh', ['-c', command], { env: childEnvironment(), timeout: SECRET_COMMAND_TIMEOUT_MS, maxBuffer: maxBytes });
    return stdout;
  } catch (error) {
    const e = error as { code?: unknown; signal?: unknown; killed?: boolean };
    throw new SecretCommandFailed(
      e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER' ? `it printed more than ${maxBytes} bytes`
      : e.killed && e.signal === 'SIGTERM' ? `it ran longer than ${SECRET_COMMAND_TIMEOUT_MS / 1000} s`
      : typeof e.code === 'number' ? `it exited with status ${e.code}`
      : typeof e.signal === 'string' ? `it was killed by ${e.signal}`
      : 'it could not be run',
    );
  }
}

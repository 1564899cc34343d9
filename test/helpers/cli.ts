// Runs the offrecord CLI as a process, with its own data and config directories.
import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

export interface CliRun {
  status: number;
  stdout: string;
  stderr: string;
}

export function runCli(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const full: NodeJS.ProcessEnv = { ...process.env, XDG_DATA_HOME: join(home, 'data'), XDG_CONFIG_HOME: join(home, 'config'), LC_ALL: 'C', ...env };
  delete full.OFFRECORD_PASSPHRASE;
  return new Promise((done, fail) => {
    const child = execFile(process.execPath, ['--import', 'tsx', join(ROOT, 'cli/offrecord.ts'), ...args], { cwd: ROOT, env: full, maxBuffer: 8 * 1024 * 1024 }, (error, stdout, stderr) => {
      const status = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      if (status === null) fail(error);
      else done({ status, stdout, stderr });
    });
    child.stdin?.end();
  });
}

// The real GnuPG for interop tests: a home of its own per instance, installed when missing
// (kit/require-tool.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from './require-tool.ts';

export interface GpgResult {
  status: number;
  stdout: Buffer;
  stderr: string;
}

/** A GnuPG home of its own (mode 0700) in a temporary directory; close() kills its agent and removes it. */
export class Gpg {
  readonly home: string;
  readonly binary: string;
  constructor() {
    this.binary = requireTool('gpg', 'gnupg');
    this.home = mkdtempSync(join(tmpdir(), 'offrecord-gpg-'));
    chmodSync(this.home, 0o700);
  }

  run(args: string[], input?: string | Uint8Array): GpgResult {
    const result = spawnSync(this.binary, ['--homedir', this.home, '--batch', '--no-tty', ...args], {
      input: input === undefined ? undefined : Buffer.from(input),
      env: { ...process.env, GNUPGHOME: this.home, LC_ALL: 'C' },
      maxBuffer: 16 * 1024 * 1024,
    });
    if (result.error) throw result.error;
    return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr.toString() };
  }

  /** Runs and asserts success. */
  ok(args: string[], input?: string | Uint8Array): GpgResult {
    const result = this.run(args, input);
    assert.equal(result.status, 0, `gpg ${args.join(' ')} failed:\n${result.stderr}`);
    return result;
  }

  version(): string {
    return this.ok(['--version']).stdout.toString().split('\n')[0]!.trim();
  }

  close(): void {
    spawnSync('gpgconf', ['--homedir', this.home, '--kill', 'all'], { env: { ...process.env, GNUPGHOME: this.home } });
    rmSync(this.home, { recursive: true, force: true });
  }
}

/** `gpg --with-colons` records of one kind ('pub', 'sub', 'fpr', 'uid', ...), as field arrays. */
export function colonRecords(output: Buffer | string, kind: string): string[][] {
  return output
    .toString()
    .split('\n')
    .map((line) => line.split(':'))
    .filter((fields) => fields[0] === kind);
}

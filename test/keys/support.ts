// Shared pieces of the key tests: cached identities (key generation is the slow part), a fixed
// clock, and a throwaway GnuPG home for interop tests.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { createIdentity, type CreatedIdentity } from '../../src/keys/identity.ts';
import { KeyError, type KeyErrorCode } from '../../src/keys/errors.ts';
import { DAY_MS } from '../../src/keys/schedule.ts';
import { requireTool } from '../../kit/require-tool.ts';

export { DAY_MS };
/** 2025-01-01T00:00:00Z: tests that do not involve gpg run on this fixed clock. */
export const T0 = Date.UTC(2025, 0, 1);

const identities = new Map<string, Promise<CreatedIdentity>>();

/** One identity per (name, now) per process, created without a passphrase. */
export function testIdentity(name: string, now = T0): Promise<CreatedIdentity> {
  const key = `${name}@${now}`;
  let cached = identities.get(key);
  if (!cached) {
    cached = createIdentity({ email: `${name}@example.org`, name: name[0]!.toUpperCase() + name.slice(1), now });
    identities.set(key, cached);
  }
  return cached;
}

/** Asserts that `promise` rejects with a KeyError of `code`; returns it. */
export async function rejectsWith(promise: Promise<unknown>, code: KeyErrorCode): Promise<KeyError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof KeyError, `expected KeyError(${code}), got ${String(error)}`);
    assert.equal(error.code, code, `expected code ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected KeyError(${code}), but it resolved`);
}

/** Same for synchronous calls. */
export function throwsWith(fn: () => unknown, code: KeyErrorCode): KeyError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof KeyError, `expected KeyError(${code}), got ${String(error)}`);
    assert.equal(error.code, code, `expected code ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected KeyError(${code}), but it returned`);
}

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

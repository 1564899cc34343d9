// Shared pieces of the key tests: cached identities (key generation is the slow part) and a
// fixed clock. The real GnuPG for interop tests is kit/gpg.ts.
import assert from 'node:assert/strict';
import { createIdentity, type CreatedIdentity } from '../../src/keys/identity.ts';
import { KeyError, type KeyErrorCode } from '../../src/keys/errors.ts';
import { DAY_MS } from '../../src/keys/schedule.ts';

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

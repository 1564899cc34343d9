// A hostile correspondent's ring keys (PROTOCOL.md §15.1, §15.3): keys certified correctly by
// her own identity without her holding their secret, and an account whose mail advertises them.
import type * as openpgp from 'openpgp';
import { generateRingSecret, provePossession } from '../../src/crypto/ring.ts';
import type { RingKey } from '../../src/protocol/wire.ts';
import type { Keyring } from '../../src/keys/keyring.ts';
import { fingerprintBytes } from '../../src/keys/pgp.ts';
import { ringKeyStatement, signRingCertification } from '../../src/keys/ringcert.ts';
import type { MailAccount } from '../../src/mail/account.ts';

/**
 * `ringPublic` certified by `identity` for [notBefore, notAfter): a valid certification whose
 * proof of possession is the best a non-holder can make, a valid proof by another key.
 */
export async function certifiedWithoutSecret(
  identity: openpgp.PrivateKey,
  ringPublic: Uint8Array,
  notBefore: number,
  notAfter: number,
): Promise<RingKey> {
  const proof = provePossession(generateRingSecret(), ringKeyStatement(fingerprintBytes(identity), ringPublic, notBefore, notAfter));
  const certification = await signRingCertification(identity, ringPublic, notBefore, notAfter, proof, { now: notBefore });
  return { public: ringPublic, notBefore, notAfter, certification };
}

/** `account` whose mail advertises `adverts` (first) and then, unless `only`, its honest ring keys. */
export function advertising<T extends MailAccount>(account: T, adverts: RingKey[], options: { only?: boolean } = {}): T {
  const honest = account.keyring;
  const own = Object.create(honest.own, {
    ringAdverts: { value: () => [...adverts, ...(options.only ? [] : honest.own.ringAdverts())] },
  }) as Keyring['own'];
  const keyring = Object.create(honest, { own: { value: own } }) as Keyring;
  return { ...account, keyring };
}

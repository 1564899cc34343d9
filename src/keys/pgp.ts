// Small openpgp.js helpers shared by the modules under src/keys: times, fingerprints, subkey
// descriptions and building a certificate from a chosen subset of a key's packets.
import * as openpgp from 'openpgp';
import { KeyError } from './errors.ts';

/** OpenPGP stores times in whole seconds: this is what a `now` in ms becomes on the wire. */
export const floorToSecond = (ms: number): number => Math.floor(ms / 1000) * 1000;

export function assertTime(value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new KeyError('bad_argument', `${what} must be a non-negative integer number of milliseconds`);
  }
}

/** openpgp.js takes `null` for "ignore time" where its typings only say Date. */
export const ANY_TIME = null as unknown as Date;

/** The 20-byte v4 fingerprint of a key's primary, as the session engine wants it. */
export function fingerprintBytes(key: openpgp.Key): Uint8Array {
  const bytes = key.keyPacket.getFingerprintBytes();
  if (!bytes || bytes.length !== 20) throw new KeyError('unsupported_version', 'only OpenPGP v4 keys (20-byte fingerprints) are supported');
  return Uint8Array.from(bytes);
}

/** A short-lived encryption subkey as the scheduler and the store see it. */
export interface SubkeyInfo {
  /** Lowercase hex fingerprint (40 characters): the record id. */
  id: string;
  /** Lowercase hex key id (16 characters), as shown by `gpg --list-keys --keyid-format long`. */
  keyId: string;
  /** Creation time (ms, whole seconds). */
  notBefore: number;
  /** Expiration time (ms), or null if the binding gives no expiration. */
  notAfter: number | null;
  /** Whether this object holds the decryption secret (encrypted or not). */
  hasSecret: boolean;
}

export async function describeSubkey(subkey: openpgp.Subkey): Promise<SubkeyInfo> {
  const expiry = await subkey.getExpirationTime(ANY_TIME);
  const packet = subkey.keyPacket;
  const hasSecret = packet instanceof openpgp.SecretSubkeyPacket && !packet.isDummy() && !packet.isMissingSecretKeyMaterial();
  return {
    id: subkey.getFingerprint(),
    keyId: subkey.getKeyID().toHex(),
    notBefore: subkey.getCreationTime().getTime(),
    notAfter: expiry instanceof Date ? expiry.getTime() : null,
    hasSecret,
  };
}

/** The encryption subkeys of `key` usable at `now` (binding valid, not expired, not revoked), newest first. */
export async function validEncryptionSubkeys(key: openpgp.Key, now: number): Promise<openpgp.Subkey[]> {
  const date = new Date(now);
  const valid: openpgp.Subkey[] = [];
  for (const subkey of key.subkeys) {
    try {
      const found = await key.getEncryptionKey(subkey.getKeyID(), date);
      if (found === subkey) valid.push(subkey);
    } catch {
      // Not an encryption key at `now`: expired, revoked, not yet valid, or a signing subkey.
    }
  }
  return valid.sort((a, b) => b.getCreationTime().getTime() - a.getCreationTime().getTime());
}

/**
 * A public certificate with the primary key, its revocations, the primary user ID with its
 * latest valid self-signature, and exactly `subkeys` (each with its binding signatures).
 */
export async function buildCertificate(key: openpgp.Key, subkeys: openpgp.Subkey[], now: number): Promise<openpgp.PublicKey> {
  const publicKey = key.isPrivate() ? key.toPublic() : key;
  let primaryUser: openpgp.PrimaryUser;
  try {
    primaryUser = await publicKey.getPrimaryUser(new Date(now));
  } catch {
    throw new KeyError('no_user_id', 'the key has no valid user ID');
  }
  if (!primaryUser.user.userID) throw new KeyError('no_user_id', 'the key has no valid user ID');
  const wanted = new Set(subkeys.map((s) => s.getFingerprint()));
  const list = new openpgp.PacketList<openpgp.AnyPacket>();
  list.push(publicKey.keyPacket, ...publicKey.revocationSignatures);
  list.push(primaryUser.user.userID, primaryUser.selfCertification);
  for (const subkey of publicKey.subkeys) {
    if (!wanted.has(subkey.getFingerprint())) continue;
    list.push(subkey.keyPacket, ...subkey.revocationSignatures, ...subkey.bindingSignatures);
  }
  return new openpgp.PublicKey(list);
}

type SignFn = (key: openpgp.SecretKeyPacket, data: unknown, date: Date, detached: boolean, config: openpgp.Config) => Promise<void>;

/**
 * SignaturePacket.sign with the full configuration it needs at run time (openpgp.js's typings
 * omit the parameter and type `data` as bytes; key signatures take { key, bind } or { userID, key }).
 */
export async function signPacket(
  signature: openpgp.SignaturePacket,
  key: openpgp.SecretKeyPacket,
  data: unknown,
  date: Date,
): Promise<void> {
  await (signature.sign as unknown as SignFn).call(signature, key, data, date, false, openpgp.config);
}

// The long-term identity: an OpenPGP v4 certificate that GnuPG 2.2 imports, so that people can
// compare fingerprints with tools they already trust.
//
//   primary key   EdDSA-legacy (ed25519), key flags: certify ONLY. It never signs message
//                 content; it certifies short-lived keys (subkey bindings, ring-key statements).
//   user ID       "Name <email>" with a positive self-certification (SHA-512).
//   subkeys       Curve25519-legacy (ECDH) encryption subkeys, each with a key expiration:
//                 the short-lived first-mail keys (src/keys/shortlived.ts rotates them).
//
// openpgp.js always gives a generated primary key the sign-data flag, so createIdentity replaces
// the user ID's self-certification with one that carries only the certify flag. With that flag
// set, openpgp.js (and GnuPG) refuse to use the identity to sign a message.
import * as openpgp from 'openpgp';
import { KeyError } from './errors.ts';
import { isValidEmail } from './names.ts';
import { DEFAULT_SCHEDULE } from './schedule.ts';
import { assertTime, describeSubkey, fingerprintBytes, signPacket, type SubkeyInfo } from './pgp.ts';
import { systemClock } from '../protocol/env.ts';

/** Default lifetime of the first encryption subkey. */
export const DEFAULT_ENCRYPTION_VALIDITY_MS = DEFAULT_SCHEDULE.validForMs;

export interface CreateIdentityOptions {
  email: string;
  name?: string | undefined;
  /** Protects the armored secret key (OpenPGP S2K). Without one the secret key is stored unprotected. */
  passphrase?: string | undefined;
  /** Creation time in ms (defaults to the system clock); OpenPGP keeps whole seconds. */
  now?: number;
  /** Lifetime of the first encryption subkey. */
  encryptionValidForMs?: number;
}

export interface CreatedIdentity {
  /** The unlocked key, ready to add subkeys and certify ring keys. */
  privateKey: openpgp.PrivateKey;
  /** Armored secret key, encrypted with the passphrase when one was given. */
  armoredSecret: string;
  /** Armored public certificate (primary, user ID, the encryption subkey). */
  armoredPublic: string;
  /** Lowercase hex fingerprint, 40 characters. */
  fingerprint: string;
  /** Armored revocation certificate for the primary key: keep it somewhere safe. */
  revocationCertificate: string;
  /** The first short-lived encryption subkey. */
  encryptionSubkey: SubkeyInfo;
}

function checkName(name: string): void {
  // eslint-disable-next-line no-control-regex
  if (typeof name !== 'string' || name.length > 200 || /[<>\u0000-\u001f\u007f]/.test(name)) {
    throw new KeyError('bad_argument', 'the name must be at most 200 characters without <, > or control characters');
  }
}

/** A certify-only positive self-certification of `userID` by `primary`. */
async function certifyOnlySelfSignature(
  primary: openpgp.SecretKeyPacket,
  userID: openpgp.UserIDPacket,
  date: Date,
): Promise<openpgp.SignaturePacket> {
  const sig = new openpgp.SignaturePacket();
  sig.signatureType = openpgp.enums.signature.certPositive;
  sig.publicKeyAlgorithm = primary.algorithm;
  sig.hashAlgorithm = openpgp.enums.hash.sha512;
  sig.keyFlags = new Uint8Array([openpgp.enums.keyFlags.certifyKeys]);
  sig.isPrimaryUserID = true;
  // Only algorithms GnuPG 2.2 implements: openpgp.js also lists SHA3, and GnuPG then warns
  // about "preferences for unavailable algorithms" on import.
  sig.preferredSymmetricAlgorithms = [openpgp.enums.symmetric.aes256, openpgp.enums.symmetric.aes128];
  sig.preferredHashAlgorithms = [openpgp.enums.hash.sha512, openpgp.enums.hash.sha256];
  sig.preferredCompressionAlgorithms = [
    openpgp.enums.compression.uncompressed,
    openpgp.enums.compression.zlib,
    openpgp.enums.compression.zip,
  ];
  sig.features = new Uint8Array([0x01]); // features: modification detection (SEIPDv1)
  await signPacket(sig, primary, { userID, key: primary }, date);
  return sig;
}

export async function createIdentity(options: CreateIdentityOptions): Promise<CreatedIdentity> {
  const { email, name, passphrase } = options;
  const now = options.now ?? systemClock();
  const validFor = options.encryptionValidForMs ?? DEFAULT_ENCRYPTION_VALIDITY_MS;
  assertTime(now, 'now');
  if (!isValidEmail(email)) throw new KeyError('bad_argument', 'the email address is not a valid addr-spec');
  if (name !== undefined) checkName(name);
  if (!Number.isSafeInteger(validFor) || validFor < 1000) {
    throw new KeyError('bad_argument', 'the encryption key lifetime must be at least one second');
  }
  if (passphrase !== undefined && (typeof passphrase !== 'string' || passphrase.length === 0)) {
    throw new KeyError('bad_argument', 'the passphrase must be a non-empty string (omit it for no passphrase)');
  }
  const date = new Date(now);
  const generated = await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [name ? { name, email } : { email }],
    date,
    subkeys: [{ keyExpirationTime: Math.ceil(validFor / 1000), date }],
    format: 'object',
  });
  const generatedKey = generated.privateKey;
  const primary = generatedKey.keyPacket as openpgp.SecretKeyPacket;
  const user = generatedKey.users[0];
  if (!user?.userID) throw new Error('identity: openpgp.js produced a key without a user ID');
  user.selfCertifications = [await certifyOnlySelfSignature(primary, user.userID, date)];
  const privateKey = new openpgp.PrivateKey(generatedKey.toPacketList());
  const subkey = privateKey.subkeys[0];
  if (!subkey) throw new Error('identity: openpgp.js produced a key without a subkey');
  return {
    privateKey,
    armoredSecret: await lockIdentity(privateKey, passphrase),
    armoredPublic: privateKey.toPublic().armor(),
    fingerprint: privateKey.getFingerprint(),
    revocationCertificate: generated.revocationCertificate,
    encryptionSubkey: await describeSubkey(subkey),
  };
}

/** Armors an unlocked identity for storage, encrypted with `passphrase` when given. */
export async function lockIdentity(privateKey: openpgp.PrivateKey, passphrase?: string): Promise<string> {
  if (!privateKey.isDecrypted()) throw new KeyError('locked', 'the identity key is locked: unlock it first');
  if (passphrase === undefined || passphrase === '') return privateKey.armor();
  const locked = await openpgp.encryptKey({ privateKey, passphrase });
  return locked.armor();
}

/**
 * Reads an armored secret key and unlocks it. A locked key without a passphrase gives
 * 'passphrase_required'; a wrong passphrase gives 'bad_passphrase'.
 */
export async function unlockIdentity(armoredSecret: string, passphrase?: string): Promise<openpgp.PrivateKey> {
  if (typeof armoredSecret !== 'string' || armoredSecret.length > 1024 * 1024) {
    throw new KeyError('malformed', 'the secret key is not an armored OpenPGP key');
  }
  let key: openpgp.PrivateKey;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: armoredSecret });
  } catch {
    if (/-----BEGIN PGP PUBLIC KEY BLOCK-----/.test(armoredSecret)) {
      throw new KeyError('not_a_secret_key', 'this is a public certificate, not a secret key');
    }
    throw new KeyError('malformed', 'the secret key is damaged or not an armored OpenPGP secret key');
  }
  const primary = key.keyPacket as openpgp.SecretKeyPacket;
  if (primary.isDummy() || primary.isMissingSecretKeyMaterial()) {
    throw new KeyError('not_a_secret_key', 'the secret key has no primary secret (a GnuPG stub?)');
  }
  if (fingerprintBytes(key).length !== 20) throw new KeyError('unsupported_version', 'only OpenPGP v4 keys are supported');
  const locked = key.getKeys().some((k) => {
    const p = k.keyPacket as openpgp.SecretKeyPacket;
    return !p.isDummy() && !p.isMissingSecretKeyMaterial() && !p.isDecrypted();
  });
  if (!locked) return key;
  if (passphrase === undefined || passphrase === '') {
    throw new KeyError('passphrase_required', 'the secret key is protected: a passphrase is required');
  }
  try {
    return await openpgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    throw new KeyError('bad_passphrase', 'wrong passphrase for the secret key');
  }
}

/** The identity's 20-byte fingerprint (the session engine's `fingerprint`). */
export function identityFingerprint(key: openpgp.Key): Uint8Array {
  return fingerprintBytes(key);
}

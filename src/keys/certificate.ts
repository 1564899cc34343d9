// Importing a correspondent's certificate: from an Autocrypt header, from `gpg --export
// [--armor]`, or from another offrecord user. Every refusal is a KeyError with a stable code:
//
//   too_large              input over the size limit
//   malformed              corrupt or truncated armor/packets
//   not_a_certificate      an OpenPGP message/signature, or no key at all
//   multiple_certificates  more than one certificate in the input
//   secret_key_material    a secret key (refused: we never want someone's secret)
//   unsupported_version    not an OpenPGP v4 key (the protocol uses 20-byte fingerprints)
//   revoked | expired | not_yet_valid   state of the primary key at `now`
//   no_user_id             no valid self-signed user ID (with an address)
//   address_mismatch       no valid user ID for the expected address
//   no_encryption_key      no encryption subkey valid at `now`
import * as openpgp from 'openpgp';
import { KeyError } from './errors.ts';
import { normalizeAddress } from '../store/records.ts';
import { isValidEmail } from './names.ts';
import { assertTime, fingerprintBytes } from './pgp.ts';
import { checkPrimaryValid } from './ringcert.ts';
import { systemClock } from '../protocol/env.ts';

/** Generous for a certificate with a few dozen subkeys and certifications. */
export const DEFAULT_MAX_CERTIFICATE_BYTES = 256 * 1024;

export interface ImportOptions {
  /** The address the certificate must carry in a valid user ID (compared case-insensitively). */
  expectedAddress?: string | undefined;
  /** Validity time (ms); defaults to the system clock. */
  now?: number | undefined;
  maxBytes?: number;
}

export interface ImportedCertificate {
  certificate: openpgp.PublicKey;
  /** Lowercase hex, 40 characters. */
  fingerprint: string;
  fingerprintBytes: Uint8Array;
  /** The matched (or primary user's) address, lowercased. */
  address: string;
  /** The full user ID string of that address, e.g. "Carol <carol@example.org>". */
  userId: string;
  /** Fingerprint of the key a message to this certificate is encrypted to (newest valid). */
  encryptionKeyId: string;
  /** Expiration of the primary key (ms), null if it does not expire. */
  expires: number | null;
}

const ARMOR_START = /^\s*-----BEGIN PGP /;

function readInput(input: string | Uint8Array, maxBytes: number): { armored: string } | { binary: Uint8Array } {
  if (typeof input === 'string') {
    if (input.length > maxBytes) throw new KeyError('too_large', `the certificate is larger than ${maxBytes} bytes`);
    return { armored: input };
  }
  if (!(input instanceof Uint8Array)) throw new KeyError('malformed', 'a certificate must be armored text or bytes');
  if (input.length > maxBytes) throw new KeyError('too_large', `the certificate is larger than ${maxBytes} bytes`);
  const head = Buffer.from(input.subarray(0, 64)).toString('latin1');
  if (ARMOR_START.test(head)) return { armored: Buffer.from(input).toString('utf8') };
  return { binary: input };
}

async function parse(input: string | Uint8Array, maxBytes: number): Promise<openpgp.Key> {
  const source = readInput(input, maxBytes);
  if ('armored' in source) {
    if (!ARMOR_START.test(source.armored)) throw new KeyError('malformed', 'the certificate is neither armored nor binary OpenPGP');
    if (/-----BEGIN PGP PRIVATE KEY BLOCK-----/.test(source.armored)) {
      throw new KeyError('secret_key_material', 'this is a secret key: import the public certificate (gpg --export) instead');
    }
    if (!/-----BEGIN PGP PUBLIC KEY BLOCK-----/.test(source.armored)) {
      throw new KeyError('not_a_certificate', 'the armored text is not a public key block');
    }
  }
  let keys: openpgp.Key[];
  try {
    keys =
      'armored' in source ? await openpgp.readKeys({ armoredKeys: source.armored }) : await openpgp.readKeys({ binaryKeys: source.binary });
  } catch (error) {
    const message = error instanceof Error ? error.message : '';
    if (/not of type key|no key packet/i.test(message)) {
      throw new KeyError('not_a_certificate', 'the input holds no OpenPGP certificate');
    }
    throw new KeyError('malformed', 'the certificate is corrupt or truncated');
  }
  if (keys.length === 0) throw new KeyError('not_a_certificate', 'the input holds no OpenPGP certificate');
  if (keys.length > 1) throw new KeyError('multiple_certificates', 'the input holds more than one certificate: import one at a time');
  const [key] = keys as [openpgp.Key];
  if (key.isPrivate()) {
    throw new KeyError('secret_key_material', 'this is a secret key: import the public certificate (gpg --export) instead');
  }
  if (key.keyPacket.version !== 4) throw new KeyError('unsupported_version', 'only OpenPGP v4 certificates are supported');
  return key;
}

interface ValidUser {
  address: string;
  userId: string;
}

async function validUsers(key: openpgp.Key, date: Date): Promise<ValidUser[]> {
  const users: ValidUser[] = [];
  for (const user of key.users) {
    const packet = user.userID;
    if (!packet || !packet.email || !isValidEmail(packet.email)) continue;
    try {
      await user.verify(date);
    } catch {
      continue; // revoked, expired, or a bad self-signature
    }
    users.push({ address: normalizeAddress(packet.email), userId: packet.userID });
  }
  return users;
}

/**
 * Reads, validates and returns a single public certificate. See the module comment for the
 * refusal codes; checks run in that order, so the first problem found is the one reported.
 */
export async function importCertificate(input: string | Uint8Array, options: ImportOptions = {}): Promise<ImportedCertificate> {
  const now = options.now ?? systemClock();
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_CERTIFICATE_BYTES;
  assertTime(now, 'now');
  const key = await parse(input, maxBytes);
  const certificate = key as openpgp.PublicKey;
  await checkPrimaryValid(certificate, now);
  const date = new Date(now);
  const users = await validUsers(key, date);
  let chosen: ValidUser | undefined = users[0];
  if (!chosen) throw new KeyError('no_user_id', 'the certificate has no valid user ID with an email address');
  if (options.expectedAddress !== undefined) {
    const expected = normalizeAddress(options.expectedAddress);
    chosen = users.find((u) => u.address === expected);
    if (!chosen) throw new KeyError('address_mismatch', 'the certificate has no valid user ID for the expected address');
  } else {
    const primary = await key.getPrimaryUser(date).catch(() => null);
    const primaryEmail = primary?.user.userID?.email;
    chosen = (primaryEmail && users.find((u) => u.address === normalizeAddress(primaryEmail))) || chosen;
  }
  let encryptionKey: openpgp.Key | openpgp.Subkey;
  try {
    encryptionKey = await key.getEncryptionKey(undefined, date);
  } catch {
    throw new KeyError('no_encryption_key', 'the certificate has no encryption key valid now');
  }
  const expiry = await key.getExpirationTime();
  return {
    certificate,
    fingerprint: key.getFingerprint(),
    fingerprintBytes: fingerprintBytes(key),
    address: chosen.address,
    userId: chosen.userId,
    encryptionKeyId: encryptionKey.getFingerprint(),
    expires: expiry instanceof Date ? expiry.getTime() : null,
  };
}

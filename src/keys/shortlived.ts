// Short-lived keys: encryption subkeys of the identity (forward secrecy for first mails, like
// Signal's signed prekeys) and certified ring keys (deniable authentication). This module makes
// and retires them; the schedule (src/keys/schedule.ts) says when; the store keeps the records.
//
// Encryption subkeys are Curve25519-legacy (ECDH) OpenPGP subkeys bound to the identity by a
// subkey binding signature with a key expiration. Retiring one removes it from the secret key
// (its secret bytes are wiped first): the decryption secret then exists nowhere.
//
// Ring keys are edwards25519 points (src/crypto/ring.ts) certified by the identity over a
// canonical statement (src/keys/ringcert.ts).
import * as openpgp from 'openpgp';
import { generateRingSecret, ringPublicKey } from '../crypto/ring.ts';
import { toHex, wipe } from '../crypto/bytes.ts';
import type { RingKey, SecretRingKey } from '../protocol/wire.ts';
import { KeyError } from './errors.ts';
import { assertTime, buildCertificate, describeSubkey, floorToSecond, validEncryptionSubkeys, type SubkeyInfo } from './pgp.ts';
import { certifyRingKey } from './ringcert.ts';
import { DEFAULT_SCHEDULE, type ShortLivedKeyRecord } from './schedule.ts';

export * from './schedule.ts';
export {
  certifyRingKey,
  checkRingKeyCertification,
  verifyRingKeyCertification,
  ringKeyStatement,
  checkRingPublicKey,
  RING_STATEMENT_TAG,
} from './ringcert.ts';
export type { SubkeyInfo } from './pgp.ts';

function requireUnlocked(privateKey: openpgp.PrivateKey): openpgp.SecretKeyPacket {
  if (!privateKey.isPrivate()) throw new KeyError('not_a_secret_key', 'this needs the identity secret key');
  const primary = privateKey.keyPacket as openpgp.SecretKeyPacket;
  if (primary.isDummy() || primary.isMissingSecretKeyMaterial()) {
    throw new KeyError('not_a_secret_key', 'the identity secret key has no primary secret');
  }
  if (!primary.isDecrypted()) throw new KeyError('locked', 'the identity key is locked: unlock it first');
  return primary;
}

export interface AddEncryptionSubkeyOptions {
  /** Creation time (ms); OpenPGP keeps whole seconds, so notBefore is `now` rounded down. */
  now: number;
  /** Lifetime; the key expiration is rounded up to whole seconds. Default 14 days. */
  validForMs?: number;
}

export interface AddedSubkey {
  /** A new key object: the input plus the subkey and its binding signature. */
  privateKey: openpgp.PrivateKey;
  subkey: SubkeyInfo;
}

/** Adds a Curve25519-legacy encryption subkey with a key expiration, bound by the primary key. */
export async function addEncryptionSubkey(privateKey: openpgp.PrivateKey, options: AddEncryptionSubkeyOptions): Promise<AddedSubkey> {
  const primary = requireUnlocked(privateKey);
  const { now } = options;
  const validFor = options.validForMs ?? DEFAULT_SCHEDULE.validForMs;
  assertTime(now, 'now');
  if (!Number.isSafeInteger(validFor) || validFor < 1000) {
    throw new KeyError('bad_argument', 'an encryption subkey must be valid for at least one second');
  }
  if (now < primary.getCreationTime().getTime()) throw new KeyError('bad_argument', 'cannot add a subkey before the identity was created');
  const updated = await privateKey.addSubkey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    sign: false,
    keyExpirationTime: Math.ceil(validFor / 1000),
    date: new Date(now),
  });
  const subkey = updated.subkeys[updated.subkeys.length - 1];
  if (!subkey) throw new Error('shortlived: openpgp.js did not add the subkey');
  return { privateKey: updated, subkey: await describeSubkey(subkey) };
}

/** Every subkey of the key with its validity, in certificate order. */
export async function listSubkeys(key: openpgp.Key): Promise<SubkeyInfo[]> {
  return Promise.all(key.subkeys.map((s) => describeSubkey(s)));
}

/** A record for the scheduler from a subkey description. */
export function encryptionRecord(subkey: SubkeyInfo, destroyed = !subkey.hasSecret): ShortLivedKeyRecord {
  if (subkey.notAfter === null) throw new KeyError('bad_argument', 'a short-lived encryption subkey must have an expiration');
  return {
    kind: 'encryption',
    id: subkey.id,
    created: subkey.notBefore,
    notBefore: subkey.notBefore,
    notAfter: subkey.notAfter,
    destroyed,
    published: false,
  };
}

/**
 * Armored public certificate: the primary key, its primary user ID with self-signature, and
 * only the encryption subkeys valid at `now` (expired, revoked and retired ones left out).
 */
export async function publicCertificate(key: openpgp.Key, now: number): Promise<string> {
  assertTime(now, 'now');
  return (await buildCertificate(key, await validEncryptionSubkeys(key, now), now)).armor();
}

/**
 * The minimal certificate for an Autocrypt header (binary): primary key, primary user ID with
 * self-signature, and the current (newest valid) encryption subkey with its binding.
 */
export async function minimalCertificate(key: openpgp.Key, now: number): Promise<Uint8Array> {
  assertTime(now, 'now');
  const [current] = await validEncryptionSubkeys(key, now);
  if (!current) throw new KeyError('no_encryption_key', 'the identity has no valid encryption subkey: rotate keys first');
  return (await buildCertificate(key, [current], now)).write();
}

/** Wipes a secret key packet's secret bytes in place (decrypted parameters and encrypted material). */
function wipeSecret(packet: openpgp.SecretSubkeyPacket): void {
  const raw = packet as unknown as {
    keyMaterial?: Uint8Array | null;
    privateParams?: Record<string, Uint8Array> | null;
    clearPrivateParams?: () => void;
  };
  if (raw.privateParams) {
    for (const value of Object.values(raw.privateParams)) if (value instanceof Uint8Array) wipe(value);
    // openpgp.js's own clean-up: drops the parameters and marks the packet as not decrypted.
    raw.clearPrivateParams?.();
  }
  if (raw.keyMaterial instanceof Uint8Array) wipe(raw.keyMaterial);
}

/**
 * Destroys the decryption secret of the subkey `subkeyId` (fingerprint or key id, hex): its
 * secret bytes are overwritten in the given key object, and the returned key no longer contains
 * the subkey at all, so armoring it cannot bring the secret back. Throws 'no_such_subkey'.
 */
export function dropSubkeySecret(privateKey: openpgp.PrivateKey, subkeyId: string): openpgp.PrivateKey {
  const wanted = subkeyId.toLowerCase();
  const subkey = privateKey.subkeys.find((s) => s.getFingerprint() === wanted || s.getKeyID().toHex() === wanted);
  if (!subkey) throw new KeyError('no_such_subkey', 'no subkey with this id in the identity key');
  if (subkey.keyPacket instanceof openpgp.SecretSubkeyPacket) wipeSecret(subkey.keyPacket);
  const list = new openpgp.PacketList<openpgp.AnyPacket>();
  list.push(privateKey.keyPacket, ...privateKey.revocationSignatures);
  for (const user of privateKey.users) list.push(...user.toPacketList());
  for (const other of privateKey.subkeys) {
    if (other === subkey) continue;
    list.push(other.keyPacket, ...other.revocationSignatures, ...other.bindingSignatures);
  }
  return new openpgp.PrivateKey(list);
}

export interface DroppedSubkeys {
  privateKey: openpgp.PrivateKey;
  dropped: SubkeyInfo[];
}

/**
 * Drops every encryption subkey whose expiration + graceMs has passed at `now` (the scheduler's
 * destroy rule). Subkeys without an expiration are never dropped.
 */
export async function dropExpiredSubkeys(
  privateKey: openpgp.PrivateKey,
  now: number,
  graceMs: number = DEFAULT_SCHEDULE.acceptanceGraceMs,
): Promise<DroppedSubkeys> {
  assertTime(now, 'now');
  assertTime(graceMs, 'graceMs');
  let key = privateKey;
  const dropped: SubkeyInfo[] = [];
  for (const info of await listSubkeys(privateKey)) {
    if (info.notAfter !== null && now >= info.notAfter + graceMs) {
      key = dropSubkeySecret(key, info.id);
      dropped.push({ ...info, hasSecret: false });
    }
  }
  return { privateKey: key, dropped };
}

export interface CreateRingKeyOptions {
  now: number;
  validForMs?: number;
}

/**
 * Generates a ring key valid for [now, now + validFor) and certifies it with the identity.
 * `secret` is the ring secret scalar: the store keeps it until publication.
 */
export async function createRingKey(privateKey: openpgp.PrivateKey, options: CreateRingKeyOptions): Promise<SecretRingKey> {
  requireUnlocked(privateKey);
  const { now } = options;
  const validFor = options.validForMs ?? DEFAULT_SCHEDULE.validForMs;
  assertTime(now, 'now');
  if (!Number.isSafeInteger(validFor) || validFor < 1) throw new KeyError('bad_argument', 'a ring key must be valid for a positive time');
  const secret = generateRingSecret();
  const publicKey = ringPublicKey(secret);
  const notAfter = now + validFor;
  const certification = await certifyRingKey(privateKey, secret, now, notAfter, { now });
  return { secret, public: publicKey, notBefore: now, notAfter, certification };
}

/** The scheduler record of a ring key (id = hex of the public key). */
export function ringRecord(key: Pick<RingKey, 'public' | 'notBefore' | 'notAfter'>, created = key.notBefore): ShortLivedKeyRecord {
  return {
    kind: 'ring',
    id: toHex(key.public),
    created,
    notBefore: key.notBefore,
    notAfter: key.notAfter,
    destroyed: false,
    published: false,
  };
}

export { floorToSecond };

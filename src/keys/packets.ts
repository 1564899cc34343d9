// OpenPGP packets as the keyring stores and reads them: a subkey's public packet body and
// binding signature (the `public` and `certification` of a key row), a key cut down to some of
// its subkeys, the certificate and primary user read back from their armor.
import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { normalizeAddress } from '../store/records.ts';
import { KeyError } from './errors.ts';
import { ANY_TIME } from './pgp.ts';

/** The body of a subkey's public key packet (what own_keys/peer_keys keep as `public`). */
export function publicPacketBytes(subkey: openpgp.Subkey): Uint8Array {
  const packet = subkey.keyPacket as unknown as { writePublicKey(): Uint8Array };
  return Uint8Array.from(packet.writePublicKey());
}

/** The newest binding signature of a subkey, serialized. */
export function bindingBytes(subkey: openpgp.Subkey): Uint8Array {
  const sorted = [...subkey.bindingSignatures].sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0));
  const newest = sorted[0];
  if (!newest) throw new KeyError('bad_certification', 'the encryption subkey has no binding signature');
  return newest.write();
}

/** v4 fingerprint of a stored public key packet body: SHA-1(0x99 || len16 || body). */
export function subkeyFingerprintOf(body: Uint8Array): string {
  const header = new Uint8Array([0x99, (body.length >> 8) & 0xff, body.length & 0xff]);
  return createHash('sha1').update(header).update(body).digest('hex');
}

/** A private key object holding only the subkeys `keep` (no secret is wiped: the packets are shared). */
export function withSubkeys(privateKey: openpgp.PrivateKey, keep: (subkey: openpgp.Subkey) => boolean): openpgp.PrivateKey {
  const list = new openpgp.PacketList<openpgp.AnyPacket>();
  list.push(privateKey.keyPacket, ...privateKey.revocationSignatures);
  for (const user of privateKey.users) list.push(...user.toPacketList());
  for (const subkey of privateKey.subkeys) {
    if (keep(subkey)) list.push(subkey.keyPacket, ...subkey.revocationSignatures, ...subkey.bindingSignatures);
  }
  return new openpgp.PrivateKey(list);
}

/** The subkeys of `key` past their expiration plus `graceMs` at `now` (without touching the key). */
export async function expiredSubkeys(key: openpgp.PrivateKey, now: number, graceMs: number): Promise<{ id: string }[]> {
  const out: { id: string }[] = [];
  for (const subkey of key.subkeys) {
    const expiry = await subkey.getExpirationTime(ANY_TIME);
    if (expiry instanceof Date && now >= expiry.getTime() + graceMs) out.push({ id: subkey.getFingerprint() });
  }
  return out;
}

/** A stored armored certificate (or secret key) as a public key. */
export async function readCertificate(armored: string): Promise<openpgp.PublicKey> {
  const key = await openpgp.readKey({ armoredKey: armored });
  return key.isPrivate() ? key.toPublic() : (key as openpgp.PublicKey);
}

/** The primary user's normalized address and user ID at `now` (or at any time), null without one. */
export async function primaryUser(key: openpgp.Key, now: number): Promise<{ address: string; userId: string } | null> {
  const user = await key.getPrimaryUser(new Date(now)).catch(() => key.getPrimaryUser(ANY_TIME).catch(() => null));
  const userID = user?.user.userID;
  if (!userID) return null;
  return { address: userID.email ? normalizeAddress(userID.email) : '', userId: userID.userID };
}

/** Whether an armored secret key holds secret material under a passphrase. */
export async function isProtected(armoredSecret: string): Promise<boolean> {
  try {
    const key = await openpgp.readPrivateKey({ armoredKey: armoredSecret });
    return key.getKeys().some((k) => {
      const p = k.keyPacket as openpgp.SecretKeyPacket;
      return !p.isDummy() && !p.isMissingSecretKeyMaterial() && !p.isDecrypted();
    });
  } catch {
    return false;
  }
}

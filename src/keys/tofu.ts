// Trust on first use (PROTOCOL.md §18.6 step 4, §20.1): the first identity seen for an address
// is pinned; the same one later is known; a different one is an alarm (do not decrypt or answer
// silently: show both fingerprints and how to accept). Short-lived keys offered in mail headers
// are accepted quietly only when the pinned identity certified them.
import * as openpgp from 'openpgp';
import { equalBytes, toHex } from '../crypto/bytes.ts';
import type { RingKey } from '../protocol/wire.ts';
import { KeyError, type KeyErrorCode } from './errors.ts';
import { normalizeAddress } from '../store/records.ts';
import { formatFingerprint, isValidEmail, normalizeFingerprint } from './names.ts';
import { ANY_TIME, assertTime } from './pgp.ts';
import { checkPrimaryValid, checkRingKeyCertification } from './ringcert.ts';
import { DAY_MS, DEFAULT_SCHEDULE } from './schedule.ts';
import { systemClock } from '../protocol/env.ts';

// ─── fingerprints ────────────────────────────────────────────────────────────────────────

// ─── identity decisions ──────────────────────────────────────────────────────────────────

export interface PinnedIdentity {
  fingerprint: string;
  /** The user compared fingerprints out of band. */
  verified: boolean;
}

export interface SeenIdentity {
  fingerprint: string;
}

export type TrustDecision =
  /** Nothing pinned for this address: pin `fingerprint` (unverified). */
  | { kind: 'pin-new'; fingerprint: string }
  /** The pinned identity. */
  | { kind: 'known'; fingerprint: string; verified: boolean }
  /** ALARM: a different identity than the pinned one. Do not decrypt or answer silently. */
  | { kind: 'changed'; pinned: PinnedIdentity; seen: SeenIdentity };

export function decideTrust(pinned: PinnedIdentity | null, seen: SeenIdentity): TrustDecision {
  const seenFingerprint = normalizeFingerprint(seen.fingerprint);
  if (pinned === null) return { kind: 'pin-new', fingerprint: seenFingerprint };
  const pinnedFingerprint = normalizeFingerprint(pinned.fingerprint);
  if (pinnedFingerprint === seenFingerprint) return { kind: 'known', fingerprint: pinnedFingerprint, verified: pinned.verified };
  return {
    kind: 'changed',
    pinned: { fingerprint: pinnedFingerprint, verified: pinned.verified },
    seen: { fingerprint: seenFingerprint },
  };
}

/**
 * The text to show for a 'changed' decision: both fingerprints and both ways out, each with its
 * command: `trustCommand(fingerprint)` keeps that identity (the CLI supplies it).
 */
export function changedIdentityWarning(
  decision: Extract<TrustDecision, { kind: 'changed' }>,
  address: string,
  trustCommand: (fingerprint: string) => string,
): string {
  // One column for the fingerprints, wide enough for the longest label and a space.
  const label = (text: string) => text.padEnd('pinned (verified): '.length);
  return [
    `WARNING: the identity key of ${address} has CHANGED.`,
    `  ${label(`pinned${decision.pinned.verified ? ' (verified)' : ''}:`)}${formatFingerprint(decision.pinned.fingerprint)}`,
    `  ${label('now seen:')}${formatFingerprint(decision.seen.fingerprint)}`,
    'Mail under the new key is neither decrypted nor answered. Someone may be impersonating',
    `${address}, or they made a new key. Compare both fingerprints with them in person or by`,
    'phone, then either accept the new key (only if it is theirs):',
    `  ${trustCommand(decision.seen.fingerprint)}`,
    'or reject it and keep the pinned one:',
    `  ${trustCommand(decision.pinned.fingerprint)}`,
  ].join('\n');
}

// ─── offered short-lived keys ────────────────────────────────────────────────────────────

export interface OfferedKeys {
  /** The certificate from the mail's Autocrypt keydata (object or binary). */
  certificate?: openpgp.PublicKey | Uint8Array;
  /** Ring keys from the mail's Offrecord-Keys header. */
  ring?: readonly RingKey[];
}

export interface AcceptOptions {
  now?: number;
  /** The address the keys must be for (the mail's From); defaults to the pinned primary user's. */
  expectedAddress?: string;
  /** Keys are still accepted this long after their notAfter (delayed mail). */
  acceptanceGraceMs?: number;
  /** Tolerated clock difference for keys and signatures from the future (default 24 h). */
  maxClockSkewMs?: number;
  /** Ring keys valid longer than this are refused: they would undermine deniability (default 60 days). */
  maxRingValidityMs?: number;
  /** Every ring public key of ours, current or past: a correspondent offering one is refused (§15.1). */
  ownRingKeys?: readonly Uint8Array[];
}

export interface AcceptedEncryptionKey {
  /** Subkey fingerprint, lowercase hex. */
  id: string;
  keyId: string;
  notBefore: number;
  notAfter: number | null;
}

export interface RejectedKey {
  kind: 'identity' | 'encryption' | 'ring';
  /** Fingerprint (identity, encryption) or hex ring key. */
  id: string;
  code: KeyErrorCode;
  reason: string;
}

export interface AcceptedPeerKeys {
  /** Accepted offered encryption subkeys, newest first. */
  encryption: AcceptedEncryptionKey[];
  /** Accepted ring keys, current (newest) first: PeerParty.ringKeys order. */
  ring: RingKey[];
  rejected: RejectedKey[];
  /**
   * The pinned certificate updated with the accepted subkeys (its own subkeys still valid at
   * `now` are kept): store it, and seal first mails to it. Null if the identity is unusable.
   */
  certificate: openpgp.PublicKey | null;
}

function reject(kind: RejectedKey['kind'], id: string, error: unknown): RejectedKey {
  if (error instanceof KeyError) return { kind, id, code: error.code, reason: error.message };
  return { kind, id, code: 'malformed', reason: 'the key could not be checked' };
}

async function readOffered(certificate: openpgp.PublicKey | Uint8Array): Promise<openpgp.PublicKey> {
  if (!(certificate instanceof Uint8Array)) return certificate;
  try {
    return (await openpgp.readKey({ binaryKey: certificate })) as openpgp.PublicKey;
  } catch {
    throw new KeyError('malformed', 'the offered certificate is corrupt');
  }
}

/** Email addresses with a valid self-signed user ID at `date`. */
async function certifiedAddresses(key: openpgp.Key, date: Date): Promise<Set<string>> {
  const addresses = new Set<string>();
  for (const user of key.users) {
    const email = user.userID?.email;
    if (!email || !isValidEmail(email)) continue;
    try {
      await user.verify(date);
      addresses.add(normalizeAddress(email));
    } catch {
      // not valid at `date`
    }
  }
  return addresses;
}

/** Pinned primary + revocations from both + pinned user IDs + the given subkeys. */
function mergedCertificate(pinned: openpgp.PublicKey, offered: openpgp.PublicKey | null, subkeys: openpgp.Subkey[]): openpgp.PublicKey {
  const list = new openpgp.PacketList<openpgp.AnyPacket>();
  list.push(pinned.keyPacket, ...pinned.revocationSignatures, ...(offered?.revocationSignatures ?? []));
  for (const user of pinned.users) list.push(...user.toPacketList());
  const seen = new Set<string>();
  for (const subkey of subkeys) {
    if (seen.has(subkey.getFingerprint())) continue;
    seen.add(subkey.getFingerprint());
    list.push(subkey.keyPacket, ...subkey.revocationSignatures, ...subkey.bindingSignatures);
  }
  return new openpgp.PublicKey(list);
}

/** Why `subkey` of `merged` is not a valid encryption key at `now`, or null if it is. */
async function subkeyProblem(merged: openpgp.PublicKey, subkey: openpgp.Subkey, now: number, skew: number): Promise<KeyError | null> {
  const created = subkey.getCreationTime().getTime();
  if (created > now + skew) return new KeyError('not_yet_valid', 'the encryption subkey was created in the future');
  const date = new Date(Math.max(now, created));
  try {
    const found = await merged.getEncryptionKey(subkey.getKeyID(), date);
    if (found.getFingerprint() === subkey.getFingerprint()) return null;
  } catch {
    // classified below
  }
  if (await subkey.isRevoked(null as unknown as openpgp.SignaturePacket, merged.keyPacket, date)) {
    return new KeyError('revoked', 'the encryption subkey is revoked');
  }
  const expiry = await subkey.getExpirationTime(ANY_TIME);
  if (expiry instanceof Date && expiry.getTime() <= now) return new KeyError('expired', 'the encryption subkey has expired');
  return new KeyError('bad_certification', 'the encryption subkey is not bound to the pinned identity as an encryption key');
}

/**
 * Checks keys offered in a mail against the pinned identity certificate. Encryption subkeys must
 * be bound by the pinned primary key (binding signature, encryption flags), unexpired and
 * unrevoked; ring keys must not be one of `ownRingKeys`, must carry a certification by the
 * pinned primary key with a proof of possession (§15.3) and be within
 * [notBefore - skew, notAfter + acceptanceGrace). An offered certificate of another identity or
 * for another address makes every offered key rejected. Never throws for bad offers: they are
 * listed in `rejected`.
 */
export async function acceptPeerKeys(
  pinnedCert: openpgp.PublicKey,
  offered: OfferedKeys,
  options: AcceptOptions = {},
): Promise<AcceptedPeerKeys> {
  const now = options.now ?? systemClock();
  const grace = options.acceptanceGraceMs ?? DEFAULT_SCHEDULE.acceptanceGraceMs;
  const skew = options.maxClockSkewMs ?? DAY_MS;
  const maxValidity = options.maxRingValidityMs ?? 60 * DAY_MS;
  const ownRingKeys = options.ownRingKeys ?? [];
  assertTime(now, 'now');
  assertTime(grace, 'acceptanceGraceMs');
  assertTime(skew, 'maxClockSkewMs');
  assertTime(maxValidity, 'maxRingValidityMs');
  const date = new Date(now);
  const result: AcceptedPeerKeys = { encryption: [], ring: [], rejected: [], certificate: null };
  const pinnedFingerprint = pinnedCert.getFingerprint();
  const rejectAll = (code: KeyErrorCode, reason: string, offeredCert: openpgp.PublicKey | null): AcceptedPeerKeys => {
    for (const subkey of offeredCert?.subkeys ?? [])
      result.rejected.push({ kind: 'encryption', id: subkey.getFingerprint(), code, reason });
    for (const advert of offered.ring ?? []) result.rejected.push({ kind: 'ring', id: toHex(advert.public), code, reason });
    return result;
  };

  // The offered certificate must be the pinned identity.
  let offeredCert: openpgp.PublicKey | null = null;
  if (offered.certificate !== undefined) {
    try {
      offeredCert = await readOffered(offered.certificate);
      if (offeredCert.isPrivate()) throw new KeyError('secret_key_material', 'the offered certificate contains secret key material');
    } catch (error) {
      result.rejected.push(reject('identity', '', error));
      return rejectAll('malformed', 'the offered certificate could not be read', null);
    }
    if (offeredCert.getFingerprint() !== pinnedFingerprint) {
      const reason = 'the offered certificate is not the pinned identity';
      result.rejected.push({ kind: 'identity', id: offeredCert.getFingerprint(), code: 'identity_mismatch', reason });
      return rejectAll('identity_mismatch', reason, offeredCert);
    }
  }

  // The identity must be usable now, counting revocations carried by the offered certificate.
  const identityOnly = mergedCertificate(pinnedCert, offeredCert, []);
  try {
    await checkPrimaryValid(identityOnly, now);
  } catch (error) {
    const rejected = reject('identity', pinnedFingerprint, error);
    result.rejected.push(rejected);
    return rejectAll(rejected.code, rejected.reason, offeredCert);
  }

  // The keys must be for the expected address, in the pinned and in the offered certificate.
  const pinnedAddresses = await certifiedAddresses(pinnedCert, date);
  let expected: string;
  if (options.expectedAddress !== undefined) {
    expected = normalizeAddress(options.expectedAddress);
  } else {
    const primaryEmail = (await pinnedCert.getPrimaryUser(date).catch(() => null))?.user.userID?.email;
    expected = primaryEmail ? normalizeAddress(primaryEmail) : '';
  }
  const offeredAddresses = offeredCert ? await certifiedAddresses(offeredCert, date) : pinnedAddresses;
  if (!expected || !pinnedAddresses.has(expected) || !offeredAddresses.has(expected)) {
    const reason = 'the keys are not certified for the expected address';
    result.rejected.push({ kind: 'identity', id: pinnedFingerprint, code: 'address_mismatch', reason });
    return rejectAll('address_mismatch', reason, offeredCert);
  }

  // Encryption subkeys: bound by the pinned primary key.
  const offeredSubkeys = offeredCert?.subkeys ?? [];
  const merged = mergedCertificate(pinnedCert, offeredCert, offeredSubkeys);
  const acceptedSubkeys: openpgp.Subkey[] = [];
  for (const subkey of merged.subkeys) {
    const problem = await subkeyProblem(merged, subkey, now, skew);
    if (problem) {
      result.rejected.push(reject('encryption', subkey.getFingerprint(), problem));
      continue;
    }
    acceptedSubkeys.push(subkey);
    const expiry = await subkey.getExpirationTime(ANY_TIME);
    result.encryption.push({
      id: subkey.getFingerprint(),
      keyId: subkey.getKeyID().toHex(),
      notBefore: subkey.getCreationTime().getTime(),
      notAfter: expiry instanceof Date ? expiry.getTime() : null,
    });
  }
  result.encryption.sort((a, b) => b.notBefore - a.notBefore);

  // Ring keys: not ours, certified by the pinned primary key with a proof of possession,
  // within their validity (plus grace).
  const seenRing = new Set<string>();
  for (const advert of offered.ring ?? []) {
    const id = toHex(advert.public);
    try {
      if (ownRingKeys.some((own) => equalBytes(own, advert.public))) {
        throw new KeyError('own_ring_key', 'the ring key is one of your own: a correspondent cannot have it');
      }
      if (now >= advert.notAfter + grace) throw new KeyError('expired', 'the ring key has expired');
      if (advert.notBefore > now + skew) throw new KeyError('not_yet_valid', 'the ring key is not valid yet');
      if (advert.notAfter - advert.notBefore > maxValidity) {
        throw new KeyError('validity_too_long', 'the ring key is valid for longer than allowed');
      }
      await checkRingKeyCertification(identityOnly, advert.public, advert.notBefore, advert.notAfter, advert.certification, {
        now,
        maxClockSkewMs: skew,
      });
      if (seenRing.has(id)) continue; // the same key accepted already
      seenRing.add(id);
      result.ring.push({
        public: Uint8Array.from(advert.public),
        notBefore: advert.notBefore,
        notAfter: advert.notAfter,
        certification: Uint8Array.from(advert.certification),
      });
    } catch (error) {
      if (!(error instanceof KeyError)) throw error;
      result.rejected.push(reject('ring', id, error));
    }
  }
  result.ring.sort((a, b) => b.notBefore - a.notBefore || b.notAfter - a.notAfter);

  // The pinned certificate, updated: its still-valid subkeys plus the accepted ones.
  const keep: openpgp.Subkey[] = [];
  for (const subkey of pinnedCert.subkeys) {
    if (!(await subkeyProblem(mergedCertificate(pinnedCert, offeredCert, [subkey]), subkey, now, skew))) keep.push(subkey);
  }
  result.certificate = mergedCertificate(pinnedCert, offeredCert, [...keep, ...acceptedSubkeys]);
  return result;
}

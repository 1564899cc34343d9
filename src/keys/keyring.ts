// The keyring of one account: the identity, our short-lived keys and the pinned identities of
// correspondents, kept in the account's store (src/store) and handed to the session engine in
// the shapes it wants (LocalParty, PeerParty, a Sealer). This is where the pieces of src/keys
// meet the store:
//
//   init       createIdentity + the first encryption subkey + the first ring key, one transaction
//   unlock     the armored secret key (passphrase-protected or not) as an openpgp.js PrivateKey
//   rotate     schedule.plan(): new keys when due, expired decryption secrets destroyed (from the
//              armored identity AND own_keys), ring secrets kept until published
//   importPeer importCertificate + TOFU (pin-new / known / changed = alarm, nothing usable)
//   trust      the user's decision after comparing fingerprints
//
// Where secrets live:
//   * identity.secret_key: the armored secret key (primary + every live encryption subkey),
//     encrypted with the passphrase when there is one.
//   * own_keys rows of kind 'encryption': public = the subkey's public key packet body,
//     certification = its binding signature, secret = an EMPTY marker while the subkey lives
//     (the decryption secret itself is only in the armored identity, under the passphrase; a
//     second, unprotected copy would defeat it), NULL once destroyed.
//   * own_keys rows of kind 'ring': secret = the ring secret scalar (32 bytes), kept until the
//     secret has been published (a later step), never destroyed before.
//
// Times come from the injected clock (ms since the epoch). Every change to the store is one
// transaction; the slow OpenPGP work happens before it, so a failure leaves the store as it was.
import { createHash } from 'node:crypto';
import * as openpgp from 'openpgp';
import { equalBytes, fromHex, toHex } from '../crypto/bytes.ts';
import { OpenPgpSealer } from '../crypto/seal.ts';
import type { LocalParty, PeerParty, RingKeyPair } from '../protocol/authentication.ts';
import type { AccountStore } from '../store/account-store.ts';
import type { NewOwnKey, OwnKeyRecord, PeerKeyRecord, PeerRecord } from '../store/records.ts';
import { importCertificate } from './certificate.ts';
import { KeyError } from './errors.ts';
import { formatKeyExchange, parseKeyExchange } from './exchange.ts';
import { formatOffrecordKeysHeader, SUPPORTED_PROTOCOL_VERSIONS, type RingKeyAdvert } from './headers.ts';
import { createIdentity, lockIdentity, normalizeAddress, unlockIdentity } from './identity.ts';
import { ANY_TIME, validEncryptionSubkeys } from './pgp.ts';
import {
  acceptableKeys,
  addEncryptionSubkey,
  createRingKey,
  currentKeys,
  DAY_MS,
  DEFAULT_SCHEDULE,
  dropExpiredSubkeys,
  floorToSecond,
  dropSubkeySecret,
  plan,
  publicCertificate,
  validateSchedule,
  type Schedule,
  type ShortLivedKeyRecord,
  type ShortLivedKind,
  type CertifiedRingKey,
} from './shortlived.ts';
import {
  acceptPeerKeys,
  changedIdentityWarning,
  decideTrust,
  formatFingerprint,
  normalizeFingerprint,
  type AcceptedPeerKeys,
  type RejectedKey,
  type TrustDecision,
} from './tofu.ts';

// ─── errors ──────────────────────────────────────────────────────────────────────────────

export type KeyringErrorCode =
  /** No identity in this store: run init first. */
  | 'no_identity'
  /** init on a store that already has an identity. */
  | 'identity_exists'
  /** No pin for this address. */
  | 'unknown_peer'
  /** ALARM: a different identity was seen for the address and awaits the user's decision. */
  | 'identity_changed'
  /** trust: the fingerprint given is neither the pinned nor the pending identity. */
  | 'fingerprint_mismatch'
  /** No usable ring key of the correspondent (none learned yet, or all expired). */
  | 'no_ring_key'
  /** Our identity has no valid encryption subkey (run rotate). */
  | 'no_encryption_key'
  /** A certificate of our own identity, or one claiming our own address, offered as a peer's. */
  | 'own_identity'
  /** Another process changed the keys between our read and our write: try again. */
  | 'conflict';

export interface KeyringErrorDetails {
  address?: string;
  pinned?: string;
  pending?: string;
  given?: string;
  /** The multi-line alarm text for 'identity_changed'. */
  warning?: string;
}

export class KeyringError extends Error {
  readonly code: KeyringErrorCode;
  readonly details: KeyringErrorDetails;
  constructor(code: KeyringErrorCode, message: string, details: KeyringErrorDetails = {}) {
    super(message);
    this.name = 'KeyringError';
    this.code = code;
    this.details = details;
  }
}

export function isKeyringError(value: unknown, code?: KeyringErrorCode): value is KeyringError {
  return value instanceof KeyringError && (code === undefined || value.code === code);
}

/** The command that keeps `fingerprint` as the identity of `address`: the alarm's accept (the new one) and reject (the pinned one). */
export function trustCommand(address: string, fingerprint: string): string {
  return `offrecord keys trust ${address} --fingerprint ${normalizeFingerprint(fingerprint).toUpperCase()}`;
}

// ─── result shapes ───────────────────────────────────────────────────────────────────────

export interface KeyringOptions {
  /** ms since the epoch; defaults to Date.now. */
  clock?: () => number;
  schedule?: Partial<Schedule>;
}

export interface InitOptions {
  email: string;
  name?: string;
  /** Protects the stored secret key. Without one it is stored unprotected. */
  passphrase?: string;
}

export interface InitResult {
  fingerprint: string;
  address: string;
  userId: string;
  /** Armored revocation certificate of the new identity: the caller shows or saves it. */
  revocationCertificate: string;
  protected: boolean;
}

export interface RotatedKey {
  kind: ShortLivedKind;
  id: string;
  notBefore: number;
  notAfter: number;
}

export interface RotationResult {
  created: RotatedKey[];
  /** Secrets destroyed now: expired encryption subkeys past grace, published ring keys' local copies. */
  destroyed: { kind: ShortLivedKind; id: string }[];
  /** Ring keys whose secret is due for publication (kept until published). */
  publicationDue: { kind: 'ring'; id: string }[];
  /** Whether the store changed. */
  changed: boolean;
}

export type OwnKeyState = 'future' | 'current' | 'valid' | 'grace' | 'expired' | 'destroyed' | 'published';
export type PeerKeyState = 'future' | 'valid' | 'grace' | 'expired';

export interface OwnKeyInfo {
  kind: ShortLivedKind;
  id: string;
  created: number;
  notBefore: number;
  notAfter: number;
  state: OwnKeyState;
  destroyedAt: number | null;
  publishedAt: number | null;
  /** Ring keys: the secret is still held and its publication is due. */
  publicationDue: boolean;
}

export interface PeerKeyInfo {
  kind: ShortLivedKind;
  id: string;
  notBefore: number;
  notAfter: number;
  state: PeerKeyState;
}

export interface PeerInfo {
  address: string;
  fingerprint: string;
  userId: string | null;
  firstSeen: number;
  verified: boolean;
  pending: { fingerprint: string; seenAt: number } | null;
  keys: PeerKeyInfo[];
}

export interface IdentityInfo {
  address: string;
  userId: string;
  fingerprint: string;
  created: number;
  /** The stored secret key is passphrase-protected. */
  protected: boolean;
}

export interface KeyringListing {
  identity: IdentityInfo;
  ownKeys: OwnKeyInfo[];
  peers: PeerInfo[];
  /** Keys are due for creation or a secret for destruction: rotate() (any unlocking command) would act. */
  rotationDue: boolean;
}

/**
 * changed: a new identity for a pinned address, now pending (the alarm); held: another identity
 * than the pinned one while a change already awaits the user (no second alarm, nothing stored);
 * rejected: from mail, an identity the user rejected for this address (nothing stored).
 */
export type ImportStatus = 'pinned' | 'known' | 'changed' | 'held' | 'rejected';

export interface ImportResult {
  status: ImportStatus;
  address: string;
  fingerprint: string;
  userId: string;
  /** For 'known': the pinned identity's encryption subkeys now stored; for 'pinned': the accepted ones. */
  encryptionKeys: string[];
  /** The offered ring keys accepted and stored (hex); refusals are in `rejected`. */
  ringKeys: string[];
  rejected: RejectedKey[];
  /** For 'changed', 'held', 'rejected': the pinned fingerprint; for 'changed', the alarm text (the new identity is NOT usable). */
  pinned?: string;
  warning?: string;
  /** For 'held': the identity awaiting the user's decision. */
  pending?: string;
}

export interface LearnResult {
  accepted: RingKeyAdvert[];
  rejected: RejectedKey[];
}

export interface PeerFingerprint {
  address: string;
  fingerprint: string;
  own: boolean;
  verified: boolean;
  pending: string | null;
}

export interface PeerForEngine {
  party: PeerParty;
  /** The pinned certificate with its accepted subkeys: first mails are sealed to its current one. */
  encryptionKey: openpgp.PublicKey;
}

// ─── helpers ─────────────────────────────────────────────────────────────────────────────

const EMPTY = new Uint8Array(0);
/** Clock difference tolerated for correspondents' keys (acceptPeerKeys' default). */
const MAX_CLOCK_SKEW_MS = DAY_MS;

export function toRecord(key: OwnKeyRecord): ShortLivedKeyRecord {
  return {
    kind: key.kind,
    id: key.id,
    created: key.created,
    notBefore: key.notBefore,
    notAfter: key.notAfter,
    destroyed: key.destroyedAt !== null,
    published: key.publishedAt !== null,
  };
}

/** The own_keys row of a new certified ring key (its secret kept until published). */
function ringKeyRow(ring: CertifiedRingKey, now: number): NewOwnKey {
  return {
    id: toHex(ring.public),
    kind: 'ring',
    public: ring.public,
    secret: ring.secret,
    created: now,
    notBefore: ring.notBefore,
    notAfter: ring.notAfter,
    certification: ring.certification,
  };
}

/** The body of a subkey's public key packet (what own_keys/peer_keys keep as `public`). */
function publicPacketBytes(subkey: openpgp.Subkey): Uint8Array {
  const packet = subkey.keyPacket as unknown as { writePublicKey(): Uint8Array };
  return Uint8Array.from(packet.writePublicKey());
}

/** The newest binding signature of a subkey, serialized. */
function bindingBytes(subkey: openpgp.Subkey): Uint8Array {
  const sorted = [...subkey.bindingSignatures].sort((a, b) => (b.created?.getTime() ?? 0) - (a.created?.getTime() ?? 0));
  const newest = sorted[0];
  if (!newest) throw new KeyError('bad_certification', 'the encryption subkey has no binding signature');
  return newest.write();
}

/** A private key object holding only the subkeys `keep` (no secret is wiped: the packets are shared). */
function withSubkeys(privateKey: openpgp.PrivateKey, keep: (subkey: openpgp.Subkey) => boolean): openpgp.PrivateKey {
  const list = new openpgp.PacketList<openpgp.AnyPacket>();
  list.push(privateKey.keyPacket, ...privateKey.revocationSignatures);
  for (const user of privateKey.users) list.push(...user.toPacketList());
  for (const subkey of privateKey.subkeys) {
    if (keep(subkey)) list.push(subkey.keyPacket, ...subkey.revocationSignatures, ...subkey.bindingSignatures);
  }
  return new openpgp.PrivateKey(list);
}

async function readCertificate(armored: string): Promise<openpgp.PublicKey> {
  const key = await openpgp.readKey({ armoredKey: armored });
  return key.isPrivate() ? key.toPublic() : (key as openpgp.PublicKey);
}

async function primaryUser(key: openpgp.Key, now: number): Promise<{ address: string; userId: string } | null> {
  const user = await key.getPrimaryUser(new Date(now)).catch(() => key.getPrimaryUser(ANY_TIME).catch(() => null));
  const userID = user?.user.userID;
  if (!userID) return null;
  return { address: userID.email ? normalizeAddress(userID.email) : '', userId: userID.userID };
}

async function isProtected(armoredSecret: string): Promise<boolean> {
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

interface Unlocked {
  key: openpgp.PrivateKey;
  passphrase: string | undefined;
  /** The armored secret this was read from: rotate writes only if the store still holds it. */
  armored: string;
}

// ─── the keyring ─────────────────────────────────────────────────────────────────────────

export class Keyring {
  private readonly clock: () => number;
  readonly schedule: Schedule;
  private unlocked: Unlocked | null = null;

  constructor(
    readonly store: AccountStore,
    options: KeyringOptions = {},
  ) {
    this.clock = options.clock ?? Date.now;
    this.schedule = validateSchedule(options.schedule ?? DEFAULT_SCHEDULE);
  }

  private now(): number {
    return this.clock();
  }

  private requireIdentity() {
    const identity = this.store.identity();
    if (!identity) throw new KeyringError('no_identity', 'this account has no identity yet');
    return identity;
  }

  /** True once an identity exists in the store. */
  hasIdentity(): boolean {
    return this.store.identity() !== null;
  }

  // ── identity ──────────────────────────────────────────────────────────────────────────

  /**
   * Creates the identity, its first encryption subkey and a first ring key, and stores them in
   * one transaction. Refuses if the store already holds an identity.
   */
  async init(options: InitOptions): Promise<InitResult> {
    if (this.hasIdentity()) throw new KeyringError('identity_exists', 'this account already has an identity');
    // Whole seconds, as OpenPGP keeps them: both kinds of key then fall due at the same moment.
    const now = floorToSecond(this.now());
    const created = await createIdentity({
      email: options.email,
      ...(options.name !== undefined ? { name: options.name } : {}),
      ...(options.passphrase !== undefined ? { passphrase: options.passphrase } : {}),
      now,
      encryptionValidForMs: this.schedule.validForMs,
    });
    const { privateKey, encryptionSubkey } = created;
    if (encryptionSubkey.notAfter === null) throw new Error('keyring: the first encryption subkey has no expiration');
    await this.storeNewIdentity(privateKey, created.armoredSecret, created.armoredPublic, now);
    this.unlocked = { key: privateKey, passphrase: options.passphrase || undefined, armored: created.armoredSecret };
    const user = (await primaryUser(privateKey, now))!;
    return {
      fingerprint: created.fingerprint,
      address: user.address,
      userId: user.userId,
      revocationCertificate: created.revocationCertificate,
      protected: options.passphrase !== undefined && options.passphrase !== '',
    };
  }

  /**
   * Restores an identity from a backup (exportBackup, unlocked by the caller): its primary key
   * and user IDs only, whatever subkeys the key holds, with a fresh encryption subkey and ring key
   * and no session (docs/KEYS-CLI.md, "Backups"). Refuses if the store already holds an identity.
   */
  async restore(backup: openpgp.PrivateKey): Promise<{ fingerprint: string; address: string; userId: string }> {
    if (this.hasIdentity()) throw new KeyringError('identity_exists', 'this account already has an identity');
    const now = floorToSecond(this.now());
    const { privateKey } = await addEncryptionSubkey(withSubkeys(backup, () => false), { now, validForMs: this.schedule.validForMs });
    const armored = await lockIdentity(privateKey);
    await this.storeNewIdentity(privateKey, armored, await publicCertificate(privateKey, now), now);
    this.unlocked = { key: privateKey, passphrase: undefined, armored };
    const user = await primaryUser(privateKey, now);
    return { fingerprint: privateKey.getFingerprint(), address: user?.address ?? '', userId: user?.userId ?? '' };
  }

  /** Stores a new identity whose only subkey is a fresh encryption subkey, and a first ring key, in one transaction. */
  private async storeNewIdentity(privateKey: openpgp.PrivateKey, armoredSecret: string, armoredPublic: string, now: number): Promise<void> {
    const subkey = privateKey.subkeys[0]!;
    const notAfter = await subkey.getExpirationTime(ANY_TIME);
    if (!(notAfter instanceof Date)) throw new Error('keyring: the first encryption subkey has no expiration');
    const ring = await createRingKey(privateKey, { now, validForMs: this.schedule.validForMs });
    try {
      this.store.transaction(() => {
        if (this.store.identity()) throw new KeyringError('identity_exists', 'this account already has an identity');
        this.store.setIdentity({
          fingerprint: privateKey.getFingerprint(),
          secretKey: armoredSecret,
          certificate: armoredPublic,
          created: privateKey.getCreationTime().getTime(),
        });
        const notBefore = subkey.getCreationTime().getTime();
        this.store.putOwnKey({
          id: subkey.getFingerprint(),
          kind: 'encryption',
          public: publicPacketBytes(subkey),
          secret: EMPTY,
          created: notBefore,
          notBefore,
          notAfter: notAfter.getTime(),
          certification: bindingBytes(subkey),
        });
        this.store.putOwnKey(ringKeyRow(ring, now));
      });
    } finally {
      ring.secret.fill(0);
    }
  }

  /** Whether the stored secret key needs a passphrase. */
  async isProtected(): Promise<boolean> {
    return isProtected(this.requireIdentity().secretKey);
  }

  /**
   * Unlocks the stored secret key. KeyError 'passphrase_required' (protected, none given) or
   * 'bad_passphrase'. The keyring keeps the unlocked key and the passphrase in memory for
   * rotate() (which re-locks the updated key with it) until lock().
   */
  async unlock(passphrase?: string): Promise<openpgp.PrivateKey> {
    const identity = this.requireIdentity();
    const key = await unlockIdentity(identity.secretKey, passphrase);
    if (key.getFingerprint() !== identity.fingerprint) throw new KeyError('identity_mismatch', 'the stored secret key is not the stored identity');
    this.unlocked = { key, passphrase: passphrase || undefined, armored: identity.secretKey };
    return key;
  }

  /** The key unlock() opened, as rotate() last updated it. */
  unlockedKey(): openpgp.PrivateKey {
    return this.requireUnlocked().key;
  }

  /** Drops the unlocked key and passphrase from the keyring. */
  lock(): void {
    this.unlocked = null;
  }

  private requireUnlocked(): Unlocked {
    if (!this.unlocked) throw new KeyError('locked', 'the identity key is locked: unlock it first');
    return this.unlocked;
  }

  /** Our fingerprint (lowercase hex), address and user ID. */
  async identity(): Promise<IdentityInfo> {
    const identity = this.requireIdentity();
    const cert = await readCertificate(identity.certificate);
    const user = await primaryUser(cert, this.now());
    return {
      address: user?.address ?? '',
      userId: user?.userId ?? '',
      fingerprint: identity.fingerprint,
      created: identity.created,
      protected: await this.passphraseProtected(),
    };
  }

  /** The account key is under a passphrase; before the store is sealed, the armored key is (§17.1). */
  private async passphraseProtected(): Promise<boolean> {
    const protection = this.store.protection();
    if (protection !== 'unset') return protection === 'passphrase';
    return isProtected(this.store.legacyIdentitySecret() ?? '');
  }

  /**
   * Once the store is sealed, the identity's secret key is kept under the account key only
   * (docs/PROTOCOL.md §17.1): an OpenPGP-protected key from before is stored again unprotected
   * inside the sealed column, so the passphrase is not needed after unlocking. Needs unlock().
   */
  async dropOpenPgpProtection(): Promise<boolean> {
    const unlocked = this.requireUnlocked();
    if (!(await isProtected(unlocked.armored))) return false;
    const armored = await lockIdentity(unlocked.key);
    this.store.transaction(() => {
      const identity = this.requireIdentity();
      if (identity.secretKey !== unlocked.armored) throw new KeyringError('conflict', 'the keys were changed by another offrecord process; try again');
      this.store.setIdentity({ ...identity, secretKey: armored });
    });
    this.unlocked = { key: unlocked.key, passphrase: undefined, armored };
    return true;
  }

  // ── rotation ──────────────────────────────────────────────────────────────────────────

  /**
   * Applies the schedule (schedule.ts plan()) at the clock's time: creates the keys that are
   * due (all kinds with `force`), destroys expired decryption secrets (gone from the armored
   * identity and from own_keys), drops local copies of published ring secrets, and reports ring
   * secrets due for publication (kept: an unpublished ring secret is never destroyed). Needs
   * unlock() first. Cheap when nothing is due (no OpenPGP work, no write).
   */
  async rotate(options: { force?: boolean } = {}): Promise<RotationResult> {
    try {
      return await this.rotateOnce(options);
    } catch (error) {
      if (!isKeyringError(error, 'conflict')) throw error;
      // Another process rotated between our read and our write: reload and try once more.
      const passphrase = this.unlocked?.passphrase;
      await this.unlock(passphrase);
      return this.rotateOnce(options);
    }
  }

  private async rotateOnce(options: { force?: boolean }): Promise<RotationResult> {
    const unlocked = this.requireUnlocked();
    const now = floorToSecond(this.now());
    const records = this.store.ownKeys();
    const due = plan(records.map(toRecord), now, this.schedule, { rotateNow: options.force === true });
    const graceMs = this.schedule.acceptanceGraceMs;
    const result: RotationResult = { created: [], destroyed: [], publicationDue: [], changed: false };
    result.publicationDue = due.publish.map((p) => ({ kind: 'ring' as const, id: p.id }));

    // What the armored identity still holds past the grace, whether or not own_keys knows it.
    const expiredInKey = (await dropExpiredPreview(unlocked.key, now, graceMs)).map((s) => s.id);
    const destroyEncryption = new Set<string>([
      ...due.destroy.filter((d) => d.kind === 'encryption').map((d) => d.id),
      ...expiredInKey,
    ]);
    // Only published ring keys are in plan().destroy; check again, never drop an unpublished secret.
    const destroyRing = due.destroy
      .filter((d) => d.kind === 'ring')
      .map((d) => d.id)
      .filter((id) => records.some((r) => r.id === id && r.kind === 'ring' && r.publishedAt !== null));
    if (due.create.length === 0 && destroyEncryption.size === 0 && destroyRing.length === 0) return result;

    // The OpenPGP work, before the transaction.
    let key = unlocked.key;
    const newOwnKeys: NewOwnKey[] = [];
    const ringSecrets: Uint8Array[] = [];
    try {
      for (const create of due.create) {
        if (create.kind === 'encryption') {
          const added = await addEncryptionSubkey(key, { now, validForMs: this.schedule.validForMs });
          key = added.privateKey;
          const subkey = key.subkeys.find((s) => s.getFingerprint() === added.subkey.id)!;
          newOwnKeys.push({
            id: added.subkey.id,
            kind: 'encryption',
            public: publicPacketBytes(subkey),
            secret: EMPTY,
            created: added.subkey.notBefore,
            notBefore: added.subkey.notBefore,
            notAfter: added.subkey.notAfter!,
            certification: bindingBytes(subkey),
          });
          result.created.push({ kind: 'encryption', id: added.subkey.id, notBefore: added.subkey.notBefore, notAfter: added.subkey.notAfter! });
        } else {
          const ring = await createRingKey(key, { now, validForMs: this.schedule.validForMs });
          ringSecrets.push(ring.secret);
          const row = ringKeyRow(ring, now);
          newOwnKeys.push(row);
          result.created.push({ kind: 'ring', id: row.id, notBefore: ring.notBefore, notAfter: ring.notAfter });
        }
      }
      const keyChanged = key !== unlocked.key || destroyEncryption.size > 0;
      let dropped: string[] = [];
      if (destroyEncryption.size > 0) {
        // Both wipe the secret bytes in place and leave the subkeys out of the new key object.
        const expired = await dropExpiredSubkeys(key, now, graceMs);
        key = expired.privateKey;
        for (const id of destroyEncryption) {
          if (key.subkeys.some((s) => s.getFingerprint() === id)) key = dropSubkeySecret(key, id);
        }
        dropped = [...destroyEncryption];
      }
      const armored = keyChanged ? await lockIdentity(key, unlocked.passphrase) : unlocked.armored;
      const certificate = keyChanged ? await publicCertificate(key, now) : null;

      this.store.transaction(() => {
        const identity = this.requireIdentity();
        if (identity.secretKey !== unlocked.armored) {
          throw new KeyringError('conflict', 'the keys were changed by another offrecord process; try again');
        }
        if (keyChanged) {
          this.store.setIdentity({ ...identity, secretKey: armored, certificate: certificate! });
        }
        for (const row of newOwnKeys) this.store.putOwnKey(row);
        for (const id of dropped) {
          if (this.store.destroyOwnKeySecret(id, now)) result.destroyed.push({ kind: 'encryption', id });
        }
        for (const id of destroyRing) {
          if (this.store.destroyOwnKeySecret(id, now)) result.destroyed.push({ kind: 'ring', id });
        }
        // Correspondents' keys past their acceptance are of no use any more.
        this.store.expirePeerKeys(now - graceMs);
      });
      this.unlocked = { key, passphrase: unlocked.passphrase, armored };
      result.changed = true;
      return result;
    } catch (error) {
      // The cached key may have lost wiped subkeys: make the caller unlock again.
      if (key !== unlocked.key || destroyEncryption.size > 0) this.unlocked = null;
      throw error;
    } finally {
      for (const secret of ringSecrets) secret.fill(0);
    }
  }

  // ── what the engine needs ─────────────────────────────────────────────────────────────

  /** Our side for the session engine: fingerprint and the acceptable ring keys with secrets, current first. */
  localParty(): LocalParty {
    const identity = this.requireIdentity();
    const records = this.store.ownKeys('ring');
    const byId = new Map(records.map((r) => [r.id, r]));
    const ringKeys: RingKeyPair[] = [];
    for (const record of acceptableKeys(records.map(toRecord), this.now(), this.schedule, 'ring')) {
      const row = byId.get(record.id);
      if (!row?.secret || row.secret.length === 0) continue;
      ringKeys.push({ public: Uint8Array.from(row.public), secret: Uint8Array.from(row.secret) });
    }
    if (ringKeys.length === 0) throw new KeyringError('no_ring_key', 'we have no valid ring key: run offrecord keys rotate');
    return { fingerprint: fromHex(identity.fingerprint), ringKeys };
  }

  /** Every ring public key of ours, current or past (published ones included). */
  private ownRingPublics(): Uint8Array[] {
    return this.store.ownKeys('ring').map((r) => r.public);
  }

  /** Our ring keys to advertise in the Offrecord-Keys header: valid ones, current first (at most 4). */
  ringAdverts(): RingKeyAdvert[] {
    const records = this.store.ownKeys('ring');
    const byId = new Map(records.map((r) => [r.id, r]));
    return currentKeys(records.map(toRecord), this.now(), 'ring')
      .slice(0, 4)
      .map((r) => byId.get(r.id)!)
      .map((row) => ({ public: Uint8Array.from(row.public), notBefore: row.notBefore, notAfter: row.notAfter, certification: Uint8Array.from(row.certification) }));
  }

  /**
   * Opens first mails with our decryption keys: the encryption subkeys that are valid or still
   * within the acceptance grace (anything older is left out even if rotate has not run yet).
   */
  async sealer(privateKey: openpgp.PrivateKey): Promise<OpenPgpSealer> {
    const now = this.now();
    const cutoff = now - this.schedule.acceptanceGraceMs;
    const expiries = new Map<string, number | null>();
    for (const subkey of privateKey.subkeys) {
      const expiry = await subkey.getExpirationTime(ANY_TIME);
      expiries.set(subkey.getFingerprint(), expiry instanceof Date ? expiry.getTime() : null);
    }
    const live = withSubkeys(privateKey, (s) => {
      const notAfter = expiries.get(s.getFingerprint());
      return notAfter === null || notAfter === undefined || notAfter > cutoff;
    });
    return new OpenPgpSealer([live]);
  }

  /**
   * The correspondent for the session engine and the key to seal first mails to. Refuses an
   * unknown address, a peer without a usable ring key and, unless `whilePending` (reading mail
   * and the protocol's duties, which only ever use the pinned identity), a pending identity change.
   */
  async peerParty(address: string, options: { whilePending?: boolean } = {}): Promise<PeerForEngine> {
    const peer = this.requirePeer(address);
    if (peer.pending && !options.whilePending) throw this.changedError(peer);
    const now = this.now();
    const grace = this.schedule.acceptanceGraceMs;
    // A key from slightly in the future (clock skew, as acceptPeerKeys tolerates) counts as valid.
    // One of our own keys is never the peer's (refused when offered since §15.3; a store may
    // hold one learned before): signing toward it would be refused by the ring anyway.
    const own = this.ownRingPublics();
    const ring = this.store
      .peerKeys(peer.fingerprint, 'ring')
      .filter((k) => k.notBefore <= now + MAX_CLOCK_SKEW_MS && now < k.notAfter + grace)
      .filter((k) => !own.some((o) => equalBytes(o, k.public)))
      .sort((a, b) => {
        const aValid = now < a.notAfter ? 1 : 0;
        const bValid = now < b.notAfter ? 1 : 0;
        return bValid - aValid || b.notBefore - a.notBefore || b.notAfter - a.notAfter;
      });
    if (ring.length === 0) {
      throw new KeyringError('no_ring_key', `no valid ring key of ${peer.address} is known yet: it comes with their offrecord mail or their offrecord keys export`, {
        address: peer.address,
      });
    }
    return {
      party: { fingerprint: fromHex(peer.fingerprint), ringKeys: ring.map((k) => Uint8Array.from(k.public)) },
      encryptionKey: await readCertificate(peer.certificate),
    };
  }

  // ── correspondents ────────────────────────────────────────────────────────────────────

  private requirePeer(address: string): PeerRecord {
    const normalized = normalizeAddress(address);
    const peer = this.store.peer(normalized);
    if (!peer) throw new KeyringError('unknown_peer', `no key is known for ${normalized}`, { address: normalized });
    return peer;
  }

  private changedError(peer: PeerRecord): KeyringError {
    const pending = peer.pending!;
    const decision: Extract<TrustDecision, { kind: 'changed' }> = {
      kind: 'changed',
      pinned: { fingerprint: peer.fingerprint, verified: peer.verified },
      seen: { fingerprint: pending.fingerprint },
    };
    const warning = changedIdentityWarning(decision, peer.address, (fingerprint) => trustCommand(peer.address, fingerprint));
    return new KeyringError('identity_changed', `the identity key of ${peer.address} has changed: nothing is sent to it until you decide`, {
      address: peer.address,
      pinned: peer.fingerprint,
      pending: pending.fingerprint,
      warning,
    });
  }

  /** Stores the accepted encryption subkeys of a correspondent as peer_keys rows. */
  private putEncryptionKeys(fingerprint: string, accepted: AcceptedPeerKeys, now: number): void {
    const cert = accepted.certificate;
    if (!cert) return;
    for (const info of accepted.encryption) {
      const subkey = cert.subkeys.find((s) => s.getFingerprint() === info.id);
      if (!subkey) continue;
      this.store.putPeerKey({
        fingerprint,
        kind: 'encryption',
        public: publicPacketBytes(subkey),
        notBefore: info.notBefore,
        notAfter: info.notAfter ?? Number.MAX_SAFE_INTEGER,
        certification: bindingBytes(subkey),
        seenAt: now,
      });
    }
  }

  /** Stores the accepted ring keys of a correspondent as peer_keys rows. */
  private putRingKeys(fingerprint: string, accepted: AcceptedPeerKeys, now: number): void {
    for (const ring of accepted.ring) {
      this.store.putPeerKey({
        fingerprint,
        kind: 'ring',
        public: ring.public,
        notBefore: ring.notBefore,
        notAfter: ring.notAfter,
        certification: ring.certification,
        seenAt: now,
      });
    }
  }

  /**
   * Imports a correspondent's keys with trust on first use: a certificate (armored or binary),
   * optionally followed by an Offrecord-Keys header with ring keys (what exportPublic writes,
   * §18.11); offered ring keys are checked as a mail's are (§15.1, §15.3): a new
   * address is pinned; the pinned identity refreshes its subkeys; a different identity for a
   * pinned address is recorded as pending and returned as an alarm ('changed'): nothing of it
   * is used until trust() accepts it, and while it is pending another identity is 'held'. With
   * `fromMail` (an Autocrypt header), an identity the user rejected is 'rejected', no alarm.
   * Invalid input throws a KeyError and stores nothing.
   */
  async importPeer(input: string | Uint8Array, options: { expectedAddress?: string; fromMail?: boolean } = {}): Promise<ImportResult> {
    const own = this.requireIdentity();
    const now = this.now();
    const exchange = parseKeyExchange(input);
    const imported = await importCertificate(exchange.certificate, {
      now,
      ...(options.expectedAddress !== undefined ? { expectedAddress: options.expectedAddress } : {}),
    });
    const ownInfo = await this.identity();
    if (imported.fingerprint === own.fingerprint || imported.address === ownInfo.address) {
      throw new KeyringError('own_identity', 'this certificate is your own identity (or claims your address), not a correspondent\'s');
    }
    const address = imported.address;
    const pinned = this.store.peer(address);
    const decision = decideTrust(pinned ? { fingerprint: pinned.fingerprint, verified: pinned.verified } : null, {
      fingerprint: imported.fingerprint,
    });
    const base = { address, fingerprint: imported.fingerprint, userId: imported.userId };

    if (decision.kind === 'changed') {
      const unused = { ...base, encryptionKeys: [], ringKeys: [], rejected: [], pinned: decision.pinned.fingerprint };
      // The alarm is raised once per identity: not again for one rejected, nor while another waits.
      // The user importing a rejected identity asks again (the way back from a mistaken rejection).
      if (options.fromMail && this.store.rejectedAt(address, imported.fingerprint) !== null) return { ...unused, status: 'rejected' };
      if (pinned!.pending) return { ...unused, status: 'held', pending: pinned!.pending.fingerprint };
      this.store.setPending(address, { fingerprint: imported.fingerprint, certificate: imported.certificate.armor(), seenAt: now });
      const warning = changedIdentityWarning(decision, address, (fingerprint) => trustCommand(address, fingerprint));
      return { ...unused, status: 'changed', warning };
    }

    const pinnedCert = decision.kind === 'known' ? await readCertificate(pinned!.certificate) : imported.certificate;
    const accepted = await acceptPeerKeys(pinnedCert, { certificate: imported.certificate, ring: exchange.offrecordKeys?.ring ?? [] }, {
      now,
      expectedAddress: address,
      acceptanceGraceMs: this.schedule.acceptanceGraceMs,
      ownRingKeys: this.ownRingPublics(),
    });
    if (!accepted.certificate) {
      const reason = accepted.rejected.find((r) => r.kind === 'identity');
      throw new KeyError(reason?.code ?? 'malformed', reason?.reason ?? 'the certificate could not be accepted');
    }
    const certificate = accepted.certificate.armor();
    this.store.transaction(() => {
      if (decision.kind === 'pin-new') {
        if (!this.store.pinPeer({ address, fingerprint: imported.fingerprint, certificate, firstSeen: now })) {
          throw new KeyringError('conflict', 'the address was pinned by another offrecord process meanwhile; try again');
        }
      } else {
        this.store.updatePeerCertificate(address, imported.fingerprint, certificate);
      }
      this.putEncryptionKeys(imported.fingerprint, accepted, now);
      this.putRingKeys(imported.fingerprint, accepted, now);
    });
    return {
      ...base,
      status: decision.kind === 'pin-new' ? 'pinned' : 'known',
      encryptionKeys: accepted.encryption.map((e) => e.id),
      ringKeys: accepted.ring.map((r) => toHex(r.public)),
      rejected: accepted.rejected,
    };
  }

  /**
   * Ring keys offered by a correspondent (an Offrecord-Keys header), optionally with the
   * certificate of the same mail (Autocrypt keydata): only keys the pinned identity certified
   * are stored (also while a changed identity is pending: its keys are not the pinned one's).
   */
  async learnRingKeys(address: string, adverts: readonly RingKeyAdvert[], options: { certificate?: Uint8Array } = {}): Promise<LearnResult> {
    const peer = this.requirePeer(address);
    const now = this.now();
    const pinnedCert = await readCertificate(peer.certificate);
    const accepted = await acceptPeerKeys(
      pinnedCert,
      { ring: adverts, ...(options.certificate !== undefined ? { certificate: options.certificate } : {}) },
      { now, expectedAddress: peer.address, acceptanceGraceMs: this.schedule.acceptanceGraceMs, ownRingKeys: this.ownRingPublics() },
    );
    this.store.transaction(() => {
      this.putRingKeys(peer.fingerprint, accepted, now);
      if (options.certificate !== undefined && accepted.certificate && accepted.encryption.length > 0) {
        this.store.updatePeerCertificate(peer.address, peer.fingerprint, accepted.certificate.armor());
        this.putEncryptionKeys(peer.fingerprint, accepted, now);
      }
    });
    return {
      accepted: accepted.ring.map((r) => ({ public: r.public, notBefore: r.notBefore, notAfter: r.notAfter, certification: r.certification })),
      rejected: accepted.rejected,
    };
  }

  /**
   * The user compared `fingerprint` with the correspondent out of band. The pinned one: marked
   * verified (and a pending change, if any, is discarded). The pending one: it replaces the pin
   * and is marked verified. Anything else: KeyringError 'fingerprint_mismatch' naming both.
   */
  async trust(address: string, fingerprint: string): Promise<{ address: string; fingerprint: string; replaced: string | null; discarded: string | null }> {
    const given = normalizeFingerprint(fingerprint);
    const peer = this.requirePeer(address);
    if (given === peer.fingerprint) {
      this.store.transaction(() => {
        if (peer.pending) this.store.rejectPending(peer.address);
        this.store.setPeerVerified(peer.address, true);
      });
      return { address: peer.address, fingerprint: given, replaced: null, discarded: peer.pending?.fingerprint ?? null };
    }
    if (peer.pending && given === peer.pending.fingerprint) {
      const now = this.now();
      const newCert = await readCertificate(peer.pending.certificate);
      const accepted = await acceptPeerKeys(newCert, { certificate: newCert }, {
        now,
        expectedAddress: peer.address,
        acceptanceGraceMs: this.schedule.acceptanceGraceMs,
      });
      this.store.transaction(() => {
        const current = this.store.peer(peer.address);
        if (current?.pending?.fingerprint !== given) {
          throw new KeyringError('conflict', 'the pending identity changed meanwhile; run offrecord keys list and try again');
        }
        this.store.acceptPending(peer.address);
        this.store.setPeerVerified(peer.address, true);
        if (accepted.certificate) {
          this.store.updatePeerCertificate(peer.address, given, accepted.certificate.armor());
          this.putEncryptionKeys(given, accepted, now);
        }
      });
      return { address: peer.address, fingerprint: given, replaced: peer.fingerprint, discarded: null };
    }
    const lines = [
      `the fingerprint you gave for ${peer.address} matches no key seen for it:`,
      `  given:   ${formatFingerprint(given)}`,
      `  pinned:  ${formatFingerprint(peer.fingerprint)}`,
    ];
    if (peer.pending) lines.push(`  pending: ${formatFingerprint(peer.pending.fingerprint)}`);
    throw new KeyringError('fingerprint_mismatch', lines.join('\n'), {
      address: peer.address,
      given,
      pinned: peer.fingerprint,
      ...(peer.pending ? { pending: peer.pending.fingerprint } : {}),
    });
  }

  // ── listings and export ───────────────────────────────────────────────────────────────

  async list(): Promise<KeyringListing> {
    const now = this.now();
    const identity = await this.identity();
    const own = this.store.ownKeys();
    const records = own.map(toRecord);
    const current = new Set(
      (['encryption', 'ring'] as const).map((kind) => currentKeys(records, now, kind)[0]?.id).filter((id): id is string => id !== undefined),
    );
    const due = plan(records, now, this.schedule);
    const publishDue = new Set(due.publish.map((p) => p.id));
    const grace = this.schedule.acceptanceGraceMs;
    const ownKeys: OwnKeyInfo[] = own
      .map((k): OwnKeyInfo => {
        let state: OwnKeyState;
        if (k.publishedAt !== null) state = 'published';
        else if (k.destroyedAt !== null) state = 'destroyed';
        else if (now < k.notBefore) state = 'future';
        else if (current.has(k.id)) state = 'current';
        else if (now < k.notAfter) state = 'valid';
        else if (now < k.notAfter + grace) state = 'grace';
        else state = 'expired';
        return {
          kind: k.kind,
          id: k.id,
          created: k.created,
          notBefore: k.notBefore,
          notAfter: k.notAfter,
          state,
          destroyedAt: k.destroyedAt,
          publishedAt: k.publishedAt,
          publicationDue: publishDue.has(k.id),
        };
      })
      .sort((a, b) => (a.kind === b.kind ? b.notBefore - a.notBefore || (a.id < b.id ? -1 : 1) : a.kind === 'encryption' ? -1 : 1));
    const peers: PeerInfo[] = [];
    for (const peer of this.store.peers()) {
      const cert = await readCertificate(peer.certificate).catch(() => null);
      const user = cert ? await primaryUser(cert, now) : null;
      peers.push({
        address: peer.address,
        fingerprint: peer.fingerprint,
        userId: user?.userId ?? null,
        firstSeen: peer.firstSeen,
        verified: peer.verified,
        pending: peer.pending ? { fingerprint: peer.pending.fingerprint, seenAt: peer.pending.seenAt } : null,
        keys: this.store.peerKeys(peer.fingerprint).map((k) => peerKeyInfo(k, now, grace)),
      });
    }
    return { identity, ownKeys, peers, rotationDue: due.create.length > 0 || due.destroy.length > 0 };
  }

  /**
   * What a correspondent imports to write a first mail (§18.11): the armored public certificate
   * with the encryption subkeys valid now, then the Offrecord-Keys header with our valid ring
   * keys and their proofs of possession.
   */
  async exportPublic(): Promise<string> {
    const identity = this.requireIdentity();
    const now = this.now();
    const cert = await readCertificate(identity.certificate);
    if ((await validEncryptionSubkeys(cert, now)).length === 0) {
      throw new KeyringError('no_encryption_key', 'your identity has no valid encryption subkey: run offrecord keys rotate');
    }
    const ring = this.ringAdverts();
    if (ring.length === 0) throw new KeyringError('no_ring_key', 'we have no valid ring key: run offrecord keys rotate');
    const header = formatOffrecordKeysHeader({ versions: [...SUPPORTED_PROTOCOL_VERSIONS], ring }, { fold: true });
    return formatKeyExchange(await publicCertificate(cert, now), header);
  }

  /**
   * A backup of the identity (docs/KEYS-CLI.md, "Backups"): the primary key and its user IDs,
   * OpenPGP-protected with `passphrase` when given, and nothing forgetting is meant to destroy:
   * no encryption subkey (those decrypt first mails), no ring key. Restoring it starts fresh
   * short-lived keys and sessions. Needs unlock().
   */
  async exportBackup(passphrase?: string): Promise<string> {
    const identityOnly = withSubkeys(this.requireUnlocked().key, () => false);
    return lockIdentity(identityOnly, passphrase);
  }

  /** Our fingerprint, or a correspondent's pinned one (with a pending change if any). */
  async fingerprint(address?: string): Promise<PeerFingerprint> {
    if (address === undefined) {
      const identity = await this.identity();
      return { address: identity.address, fingerprint: identity.fingerprint, own: true, verified: true, pending: null };
    }
    const normalized = normalizeAddress(address);
    const identity = await this.identity();
    if (normalized === identity.address) {
      return { address: identity.address, fingerprint: identity.fingerprint, own: true, verified: true, pending: null };
    }
    const peer = this.requirePeer(normalized);
    return { address: peer.address, fingerprint: peer.fingerprint, own: false, verified: peer.verified, pending: peer.pending?.fingerprint ?? null };
  }
}

function peerKeyInfo(k: PeerKeyRecord, now: number, grace: number): PeerKeyInfo {
  let state: PeerKeyState;
  if (now < k.notBefore) state = 'future';
  else if (now < k.notAfter) state = 'valid';
  else if (now < k.notAfter + grace) state = 'grace';
  else state = 'expired';
  const id = k.kind === 'ring' ? toHex(k.public) : subkeyFingerprintOf(k.public);
  return { kind: k.kind, id, notBefore: k.notBefore, notAfter: k.notAfter, state };
}

/** v4 fingerprint of a stored public key packet body: SHA-1(0x99 || len16 || body). */
function subkeyFingerprintOf(body: Uint8Array): string {
  const header = new Uint8Array([0x99, (body.length >> 8) & 0xff, body.length & 0xff]);
  return createHash('sha1').update(header).update(body).digest('hex');
}

/** The subkeys of `key` past their expiration plus `graceMs` at `now` (without touching the key). */
async function dropExpiredPreview(key: openpgp.PrivateKey, now: number, graceMs: number): Promise<{ id: string }[]> {
  const out: { id: string }[] = [];
  for (const subkey of key.subkeys) {
    const expiry = await subkey.getExpirationTime(ANY_TIME);
    if (expiry instanceof Date && now >= expiry.getTime() + graceMs) out.push({ id: subkey.getFingerprint() });
  }
  return out;
}

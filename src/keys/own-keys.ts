// Our own keys (docs/KEYS-CLI.md): the identity, its short-lived encryption subkeys and ring
// keys, their rotation by the schedule, and what the session engine needs of our side (the local
// party, the sealer that opens first mails, the ring keys we advertise).
//
//   init       createIdentity + the first encryption subkey + the first ring key, one transaction
//   unlock     the armored secret key (passphrase-protected or not) as an openpgp.js PrivateKey
//   rotate     schedule.plan(): new keys when due, expired decryption secrets destroyed (from the
//              armored identity AND own_keys), ring secrets kept until published
//
// Where secrets live:
//   * identity.secret_key: the armored secret key (primary + every live encryption subkey),
//     encrypted with the passphrase when there is one.
//   * own_keys rows of kind 'encryption': public = the subkey's public key packet body,
//     certification = its binding signature, secret = an EMPTY marker while the subkey lives
//     (the decryption secret itself is only in the armored identity, under the passphrase; a
//     second, unprotected copy would defeat it), NULL once destroyed.
//   * own_keys rows of kind 'ring': secret = the ring secret scalar (32 bytes), kept until the
//     secret has been published (src/keys/publishing.ts), never destroyed before.
//
// Every change to the store is one transaction; the slow OpenPGP work happens before it, so a
// failure leaves the store as it was.
import type * as openpgp from 'openpgp';
import { fromHex, toHex } from '../crypto/bytes.ts';
import { OpenPgpSealer } from '../crypto/seal.ts';
import type { LocalParty, RingKeyPair } from '../protocol/authentication.ts';
import type { RingKey, SecretRingKey } from '../protocol/wire.ts';
import type { NewOwnKey, OwnKeyRecord } from '../store/records.ts';
import { KeyError, KeyringError, isKeyringError } from './errors.ts';
import { formatKeyExchange } from './exchange.ts';
import { formatOffrecordKeysHeader, SUPPORTED_PROTOCOL_VERSIONS } from './headers.ts';
import { createIdentity, lockIdentity, unlockIdentity } from './identity.ts';
import { KeyringPart } from './keyring-context.ts';
import type { IdentityInfo, InitOptions, InitResult, RotationResult } from './keyring-results.ts';
import { bindingBytes, expiredSubkeys, isProtected, primaryUser, publicPacketBytes, readCertificate, withSubkeys } from './packets.ts';
import { ANY_TIME, validEncryptionSubkeys } from './pgp.ts';
import {
  acceptableKeys,
  addEncryptionSubkey,
  createRingKey,
  currentKeys,
  dropExpiredSubkeys,
  dropSubkeySecret,
  floorToSecond,
  plan,
  publicCertificate,
  type ShortLivedKeyRecord,
} from './shortlived.ts';

const EMPTY = new Uint8Array(0);

/** The scheduler's view of an own_keys row. */
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
function ringKeyRow(ring: SecretRingKey, now: number): NewOwnKey {
  return { ...ringKeyOf(ring), id: toHex(ring.public), kind: 'ring', secret: ring.secret, created: now };
}

/** The four fields of a ring key, copied out of a row or a new key. */
function ringKeyOf(key: RingKey): RingKey {
  return {
    public: Uint8Array.from(key.public),
    notBefore: key.notBefore,
    notAfter: key.notAfter,
    certification: Uint8Array.from(key.certification),
  };
}

interface Unlocked {
  key: openpgp.PrivateKey;
  passphrase: string | undefined;
  /** The armored secret this was read from: rotate writes only if the store still holds it. */
  armored: string;
}

export class OwnKeys extends KeyringPart {
  private unlocked: Unlocked | null = null;

  /** The stored identity; KeyringError 'no_identity' before init. */
  requireIdentity() {
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
      name: options.name,
      passphrase: options.passphrase,
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
    const { privateKey } = await addEncryptionSubkey(
      withSubkeys(backup, () => false),
      { now, validForMs: this.schedule.validForMs },
    );
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
    if (key.getFingerprint() !== identity.fingerprint)
      throw new KeyError('identity_mismatch', 'the stored secret key is not the stored identity');
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
      if (identity.secretKey !== unlocked.armored)
        throw new KeyringError('conflict', 'the keys were changed by another offrecord process; try again');
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
    const expiredInKey = (await expiredSubkeys(unlocked.key, now, graceMs)).map((s) => s.id);
    const destroyEncryption = new Set<string>([...due.destroy.filter((d) => d.kind === 'encryption').map((d) => d.id), ...expiredInKey]);
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
          result.created.push({
            kind: 'encryption',
            id: added.subkey.id,
            notBefore: added.subkey.notBefore,
            notAfter: added.subkey.notAfter!,
          });
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
      // Each read of `secret` opens the sealed value anew (a fresh copy): read it once.
      const secret = row?.secret;
      if (!row || !secret || secret.length === 0) continue;
      ringKeys.push({ public: Uint8Array.from(row.public), secret });
    }
    if (ringKeys.length === 0) throw new KeyringError('no_ring_key', 'we have no valid ring key: run offrecord keys rotate');
    return { fingerprint: fromHex(identity.fingerprint), ringKeys };
  }

  /** Every ring public key of ours, current or past (published ones included). */
  /** Every ring public key of ours, current or past (published ones included). */
  ringPublics(): Uint8Array[] {
    return this.store.ownKeys('ring').map((r) => r.public);
  }

  /** Our ring keys to advertise in the Offrecord-Keys header: valid ones, current first (at most 4). */
  ringAdverts(): RingKey[] {
    const records = this.store.ownKeys('ring');
    const byId = new Map(records.map((r) => [r.id, r]));
    return currentKeys(records.map(toRecord), this.now(), 'ring')
      .slice(0, 4)
      .map((r) => ringKeyOf(byId.get(r.id)!));
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
}

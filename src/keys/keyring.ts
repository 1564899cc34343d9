// The keyring of one account: a thin front over its two parts, which share one context (the
// account's store, the clock, the schedule):
//
//   own keys        (own-keys.ts)        identity, rotation, ring keys, the sealer
//   correspondents  (correspondents.ts)  pins, trust on first use, peer keys, `correspondent()`
//
// and the listing of both (listing.ts). The result types are in keyring-results.ts, the errors in
// errors.ts, the OpenPGP packet helpers in packets.ts. Times come from the injected clock (ms
// since the epoch).
import type * as openpgp from 'openpgp';
import type { OpenPgpSealer } from '../crypto/seal.ts';
import type { LocalParty } from '../protocol/authentication.ts';
import type { RingKey } from '../protocol/wire.ts';
import type { AccountStore } from '../store/account-store.ts';
import { normalizeAddress } from '../store/records.ts';
import { Correspondents } from './correspondents.ts';
import type { KeyringContext } from './keyring-context.ts';
import type {
  AdvertisedKeys,
  Correspondent,
  IdentityInfo,
  ImportResult,
  InitOptions,
  InitResult,
  KeyringListing,
  KeyringOptions,
  LearnResult,
  MailCorrespondent,
  MailKeys,
  PeerFingerprint,
  RotationResult,
} from './keyring-results.ts';
import { listKeyring } from './listing.ts';
import { OwnKeys } from './own-keys.ts';
import { DEFAULT_SCHEDULE, validateSchedule, type Schedule } from './schedule.ts';
import { systemClock } from '../protocol/env.ts';

export class Keyring {
  readonly schedule: Schedule;
  readonly own: OwnKeys;
  readonly correspondents: Correspondents;
  private readonly context: KeyringContext;

  constructor(
    readonly store: AccountStore,
    options: KeyringOptions = {},
  ) {
    this.schedule = validateSchedule(options.schedule ?? DEFAULT_SCHEDULE);
    this.context = { store, clock: options.clock ?? systemClock, schedule: this.schedule };
    this.own = new OwnKeys(this.context);
    this.correspondents = new Correspondents(this.context, this.own);
  }

  // ── own keys ──────────────────────────────────────────────────────────────────────────

  hasIdentity(): boolean {
    return this.own.hasIdentity();
  }

  init(options: InitOptions): Promise<InitResult> {
    return this.own.init(options);
  }

  restore(backup: openpgp.PrivateKey): Promise<{ fingerprint: string; address: string; userId: string }> {
    return this.own.restore(backup);
  }

  isProtected(): Promise<boolean> {
    return this.own.isProtected();
  }

  unlock(passphrase?: string): Promise<openpgp.PrivateKey> {
    return this.own.unlock(passphrase);
  }

  unlockedKey(): openpgp.PrivateKey {
    return this.own.unlockedKey();
  }

  lock(): void {
    this.own.lock();
  }

  identity(): Promise<IdentityInfo> {
    return this.own.identity();
  }

  dropOpenPgpProtection(): Promise<boolean> {
    return this.own.dropOpenPgpProtection();
  }

  rotate(options: { force?: boolean } = {}): Promise<RotationResult> {
    return this.own.rotate(options);
  }

  localParty(): LocalParty {
    return this.own.localParty();
  }

  ringAdverts(): RingKey[] {
    return this.own.ringAdverts();
  }

  sealer(privateKey: openpgp.PrivateKey): Promise<OpenPgpSealer> {
    return this.own.sealer(privateKey);
  }

  exportPublic(): Promise<string> {
    return this.own.exportPublic();
  }

  exportBackup(passphrase?: string): Promise<string> {
    return this.own.exportBackup(passphrase);
  }

  // ── correspondents ────────────────────────────────────────────────────────────────────

  correspondent(address: string, options: { whilePending?: boolean } = {}): Promise<Correspondent> {
    return this.correspondents.correspondent(address, options);
  }

  fromMail(from: string, advertised: AdvertisedKeys): Promise<MailCorrespondent> {
    return this.correspondents.fromMail(from, advertised);
  }

  learnFromMail(from: string, advertised: AdvertisedKeys): Promise<MailKeys> {
    return this.correspondents.learnFromMail(from, advertised);
  }

  importPeer(input: string | Uint8Array, options: { expectedAddress?: string; fromMail?: boolean } = {}): Promise<ImportResult> {
    return this.correspondents.importPeer(input, options);
  }

  learnRingKeys(address: string, adverts: readonly RingKey[], options: { certificate?: Uint8Array } = {}): Promise<LearnResult> {
    return this.correspondents.learnRingKeys(address, adverts, options);
  }

  trust(
    address: string,
    fingerprint: string,
  ): Promise<{ address: string; fingerprint: string; replaced: string | null; discarded: string | null }> {
    return this.correspondents.trust(address, fingerprint);
  }

  // ── both ──────────────────────────────────────────────────────────────────────────────

  async list(): Promise<KeyringListing> {
    return listKeyring(this.context, await this.own.identity());
  }

  /** Our fingerprint, or a correspondent's pinned one (with a pending change if any). */
  async fingerprint(address?: string): Promise<PeerFingerprint> {
    const identity = await this.own.identity();
    if (address === undefined || normalizeAddress(address) === identity.address) {
      return { address: identity.address, fingerprint: identity.fingerprint, own: true, verified: true, pending: null };
    }
    return this.correspondents.fingerprint(address);
  }
}

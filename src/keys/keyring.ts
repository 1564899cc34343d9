// The keyring of one account: its two parts over one shared context (the account's store, the
// clock, the schedule), which callers use directly:
//
//   keyring.own             (own-keys.ts)        identity, rotation, ring keys, the sealer
//   keyring.correspondents  (correspondents.ts)  pins, trust on first use, peer keys, `correspondent()`
//
// The front holds only what needs both: the listing (listing.ts) and `fingerprint`, ours or a
// correspondent's. The result types are in keyring-results.ts, the errors in errors.ts, the
// OpenPGP packet helpers in packets.ts. Times come from the injected clock (ms since the epoch).
import type { AccountStore } from '../store/account-store.ts';
import { normalizeAddress } from '../store/records.ts';
import { Correspondents } from './correspondents.ts';
import type { KeyringContext } from './keyring-context.ts';
import type { KeyringListing, KeyringOptions, PeerFingerprint } from './keyring-results.ts';
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

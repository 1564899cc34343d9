// What the parts of the keyring share: the account's store, the clock and the key schedule.
import type { AccountStore } from '../store/account-store.ts';
import type { Schedule } from './schedule.ts';

export interface KeyringContext {
  readonly store: AccountStore;
  /** ms since the epoch. */
  readonly clock: () => number;
  readonly schedule: Schedule;
}

/** A part of the keyring: reads its store, clock and schedule from the shared context. */
export abstract class KeyringPart {
  constructor(protected readonly context: KeyringContext) {}

  protected get store(): AccountStore {
    return this.context.store;
  }

  protected get schedule(): Schedule {
    return this.context.schedule;
  }

  protected now(): number {
    return this.context.clock();
  }
}

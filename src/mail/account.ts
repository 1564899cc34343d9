// A mail account as the pipeline sees it: the keyring (who is who, which keys), the store
// (sessions, processed mail, the plaintext outbox) and the two transports; and the
// conversation with one correspondent that send, receive and duties each step.
import type * as openpgp from 'openpgp';
import type { Keyring } from '../keys/keyring.ts';
import type { Correspondent } from '../keys/keyring-results.ts';
import type { LocalParty } from '../protocol/authentication.ts';
import type { Sealer } from '../crypto/seal.ts';
import { Conversation } from '../protocol/context.ts';
import { systemEnv } from '../protocol/env.ts';
import type { DutyCutoffs } from '../protocol/duties.ts';
import type { Policy } from '../protocol/policy.ts';
import type { SessionStore } from '../protocol/store.ts';
import type { IncomingMailbox, OutgoingTransport } from './transport.ts';
import type { DeliverySink, Outbox } from './delivery.ts';
import type { Delivery, MailCheckpoint, MailRef, ProcessedMail, SkippedMail } from '../store/records.ts';
import { systemClock } from '../protocol/env.ts';

/** What may make skipped mail processable: the store's generation (keys, trust) and this software (§18.6). */
export interface MailWorld {
  generation: number;
  software: string;
}

/** What the pipeline keeps in the account's store besides sessions: which mail is done, the outbox. */
export interface MailLedger extends Outbox {
  processed(ref: Pick<MailRef, 'mailbox' | 'id'>): ProcessedMail | null;
  processedByMessageId(mailbox: string, messageId: string): ProcessedMail[];
  markProcessed(ref: MailRef & { messageId?: string | null }): boolean;
  checkpoint(mailbox: string): MailCheckpoint | null;
  setCheckpoint(checkpoint: { mailbox: string; uidvalidity: number; lastUid: number }): void;
  mailWorld(): number;
  skippedMail(ref: Pick<MailRef, 'mailbox' | 'id'>): SkippedMail | null;
  staleSkippedMail(mailbox: string, world: MailWorld): SkippedMail[];
  heldMail(mailbox: string): SkippedMail[];
  recordSkipped(skip: Omit<SkippedMail, 'skippedAt'>): void;
  clearSkipped(ref: Pick<MailRef, 'mailbox' | 'id'>): void;
  clearSkippedOfOtherEpochs(mailbox: string, epoch: string): void;
  addDelivery(delivery: Delivery): void;
  transaction<T>(fn: () => T): T;
  pruneProcessed(before: number): number;
  /** Makes forgetting final on disk (the WAL's copies of dropped secrets); false if it could not yet. */
  forget(): boolean;
  /** The peers whose sessions have a duty due (src/protocol/duties.ts), from an index. */
  sessionsDue(local: string, cutoffs: DutyCutoffs): string[];
  peers(fingerprint?: string): { address: string; fingerprint: string }[];
}

export interface MailAccount {
  address: string;
  keyring: Keyring;
  store: SessionStore & MailLedger;
  /** Our unlocked identity: opens first mails, certifies nothing here. */
  privateKey: openpgp.PrivateKey;
  outgoing: OutgoingTransport;
  incoming: IncomingMailbox;
  /** Where processed ciphertext mail goes (it is unreadable once its keys are forgotten). */
  processedFolder?: string;
  /**
   * Where decrypted messages go, exactly once: each is committed to the store's outbox with the
   * session step, then handed here. Without a sink they are only in the fetch reports.
   */
  delivery?: DeliverySink;
  policy?: Policy;
  clock?: () => number;
}

export const now = (account: MailAccount) => (account.clock ?? systemClock)();

/** Builds the OpenPGP sealer only when a first mail needs it: most mail never does. */
function lazySealer(account: MailAccount): Sealer {
  let sealer: Promise<Sealer> | null = null;
  const get = () => (sealer ??= account.keyring.own.sealer(account.privateKey));
  return {
    seal: async (plaintext, recipient) => (await get()).seal(plaintext, recipient),
    open: async (sealed) => (await get()).open(sealed),
  };
}

/** `whilePending`: reading and duties go on under the pinned identity while a changed one awaits the user. */
export async function conversationWith(
  account: MailAccount,
  address: string,
  options: { whilePending?: boolean } = {},
): Promise<Conversation> {
  return conversationOf(account, await account.keyring.correspondents.correspondent(address, options), account.keyring.own.localParty());
}

/** The conversation between `local` and a correspondent the keyring gave. */
export function conversationOf(account: MailAccount, peer: Correspondent, local: LocalParty): Conversation {
  return new Conversation({
    store: account.store,
    parties: { local, peer: peer.party },
    peerEncryptionKey: peer.encryptionKey,
    sealer: lazySealer(account),
    ...(account.policy ? { policy: account.policy } : {}),
    ...(account.clock ? { env: { ...systemEnv, now: account.clock } } : {}),
  });
}

// The mail pipeline: a user message out as an offrecord mail, and offrecord mail in as the
// user's message. It joins the keyring (who is who, which keys), the session engine
// (Conversation), the MIME carriage and a transport. A mail that cannot be processed is left
// where it is, untouched, with the reason in the report.
import { createHash, randomBytes } from 'node:crypto';
import type * as openpgp from 'openpgp';
import { isKeyError } from '../keys/errors.ts';
import { autocryptHeaderFor, formatOffrecordKeysHeader, parseOffrecordKeysHeader, selectAutocryptHeader, SUPPORTED_PROTOCOL_VERSIONS } from '../keys/headers.ts';
import { isKeyringError, type Keyring } from '../keys/keyring.ts';
import type { Sealer } from '../crypto/seal.ts';
import { toHex } from '../crypto/bytes.ts';
import { Conversation } from '../protocol/context.ts';
import { systemEnv } from '../protocol/env.ts';
import type { Policy } from '../protocol/policy.ts';
import type { SessionStore } from '../protocol/store.ts';
import { MessageType } from '../protocol/wire.ts';
import { MailError } from './errors.ts';
import { StoreError } from '../store/errors.ts';
import { composeInner, composeProtected, parseAdvertisement, parseInner, parseProtected, type Attachment, type UserMessage } from './mime.ts';
import type { IncomingMailbox, OutgoingTransport } from './transport.ts';
import { flushOutbox, handOver, senderOf, type DeliverySink, type Outbox } from './delivery.ts';
import { attestSender, type Attested, type VerifiedSender } from './sender.ts';
import type { Delivery, MailCheckpoint, MailRef, ProcessedMail } from '../store/records.ts';
import MailComposer from 'nodemailer/lib/mail-composer';

/** What the pipeline keeps in the account's store besides sessions: which mail is done, the outbox. */
export interface MailLedger extends Outbox {
  processed(ref: Pick<MailRef, 'mailbox' | 'id'>): ProcessedMail | null;
  processedByMessageId(mailbox: string, messageId: string): ProcessedMail[];
  markProcessed(ref: MailRef & { messageId?: string | null }): boolean;
  checkpoint(mailbox: string): MailCheckpoint | null;
  setCheckpoint(checkpoint: { mailbox: string; uidvalidity: number; lastUid: number }): void;
  addDelivery(delivery: Delivery): void;
  transaction<T>(fn: () => T): T;
  pruneProcessed(before: number): number;
  /** Makes forgetting final on disk (the WAL's copies of dropped secrets); false if it could not yet. */
  forget(): boolean;
  sessions(local: string): { peer: string }[];
  peers(): { address: string; fingerprint: string }[];
}

/**
 * How long a processed mail is remembered: long enough for one left on the server (its MOVE
 * failed) to be filed by a later pass rather than refused as a replay.
 */
export const PROCESSED_KEPT_MS = 30 * 24 * 3_600_000;

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

export interface Draft {
  to: string;
  subject: string;
  text?: string;
  html?: string;
  attachments?: Attachment[];
  inReplyTo?: string;
  references?: string[];
}

export type SendOutcome = { kind: 'encrypted'; type: 'first' | 'reply' | 'data' } | { kind: 'plaintext' };

export class PipelineError extends Error {
  constructor(
    readonly code: 'no_keys' | 'identity_changed' | 'protocol' | 'transport',
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'PipelineError';
  }
}

const now = (account: MailAccount) => (account.clock ?? Date.now)();

/** The key headers every mail of ours carries (§18.3, §18.4). */
export async function advertHeaders(account: MailAccount) {
  return {
    autocrypt: await autocryptHeaderFor(account.privateKey, account.address, now(account)),
    offrecordKeys: formatOffrecordKeysHeader({ versions: [...SUPPORTED_PROTOCOL_VERSIONS], ring: account.keyring.ringAdverts() }),
  };
}

/** Builds the OpenPGP sealer only when a first mail needs it: most mail never does. */
function lazySealer(account: MailAccount): Sealer {
  let sealer: Promise<Sealer> | null = null;
  const get = () => (sealer ??= account.keyring.sealer(account.privateKey));
  return {
    seal: async (plaintext, recipient) => (await get()).seal(plaintext, recipient),
    open: async (sealed) => (await get()).open(sealed),
  };
}

/** `whilePending`: reading and duties go on under the pinned identity while a changed one awaits the user. */
export async function conversationWith(account: MailAccount, address: string, options: { whilePending?: boolean } = {}): Promise<Conversation> {
  const peer = await account.keyring.peerParty(address, options);
  return new Conversation({
    store: account.store,
    parties: { local: account.keyring.localParty(), peer: peer.party },
    peerEncryptionKey: peer.encryptionKey,
    sealer: lazySealer(account),
    ...(account.policy ? { policy: account.policy } : {}),
    ...(account.clock ? { env: { ...systemEnv, now: account.clock } } : {}),
  });
}

/** Sends a protocol message (user message, NAK, re-send) as an offrecord mail. */
async function dispatch(account: MailAccount, to: string, protocol: Uint8Array, threading: Pick<Draft, 'inReplyTo' | 'references'> = {}) {
  const raw = await composeProtected({ from: account.address, to, protocol, ...(await advertHeaders(account)), ...threading });
  try {
    await account.outgoing.send(raw, { from: account.address, to: [to] });
  } catch (error) {
    throw new PipelineError('transport', error instanceof Error ? error.message : String(error), 'the message was not sent; its session counter stays used, so sending again is safe', { cause: error });
  }
}

const TYPE_OF: Partial<Record<MessageType, 'first' | 'reply' | 'data'>> = {
  [MessageType.First]: 'first',
  [MessageType.Reply]: 'reply',
  [MessageType.Data]: 'data',
};

/**
 * The conversation with `address`, or null when we hold no offrecord keys for it (the caller
 * decides whether plaintext may go instead). A changed identity is an alarm, never null.
 */
export async function conversationOrNone(account: MailAccount, address: string): Promise<Conversation | null> {
  try {
    return await conversationWith(account, address);
  } catch (error) {
    if (isKeyringError(error, 'identity_changed')) throw new PipelineError('identity_changed', error.message, error.details.warning);
    if (isKeyringError(error, 'unknown_peer') || isKeyringError(error, 'no_ring_key')) return null;
    throw error;
  }
}

/** Sends `inner` (a complete MIME message) protected, as the next message of `conversation` with `to`. */
export async function sendProtected(account: MailAccount, conversation: Conversation, to: string, inner: Uint8Array, threading: Pick<Draft, 'inReplyTo' | 'references'> = {}): Promise<SendOutcome> {
  const result = await conversation.send(inner);
  if (result.kind === 'error') throw new PipelineError('protocol', `${result.code}: ${result.message}`);
  await dispatch(account, to, result.message, threading);
  return { kind: 'encrypted', type: TYPE_OF[result.message[3] as MessageType] ?? 'data' };
}

/**
 * Sends a user message. Without keys for the recipient it goes out in plaintext only with
 * `allowPlaintext` (paper 5.1: it carries our keys, so their reply can start the exchange).
 */
export async function sendMessage(account: MailAccount, draft: Draft, options: { allowPlaintext?: boolean } = {}): Promise<SendOutcome> {
  const user: UserMessage = {
    from: account.address,
    to: draft.to,
    subject: draft.subject,
    date: new Date(now(account)),
    ...(draft.text !== undefined ? { text: draft.text } : {}),
    ...(draft.html !== undefined ? { html: draft.html } : {}),
    attachments: draft.attachments ?? [],
  };
  const conversation = await conversationOrNone(account, draft.to);
  if (!conversation) {
    if (!options.allowPlaintext) {
      throw new PipelineError('no_keys', `no offrecord keys are known for ${draft.to}: refusing to send in plaintext`, 'import the file their `offrecord keys export` wrote (offrecord keys import FILE), or allow one plaintext mail that carries your keys (--plaintext)');
    }
    await sendPlaintext(account, user, draft);
    return { kind: 'plaintext' };
  }
  return sendProtected(account, conversation, draft.to, await composeInner(user), draft);
}

async function sendPlaintext(account: MailAccount, user: UserMessage, draft: Draft): Promise<void> {
  const headers = await advertHeaders(account);
  const raw = await new MailComposer({
    from: user.from,
    to: user.to,
    subject: user.subject,
    date: user.date,
    text: user.text,
    html: user.html,
    inReplyTo: draft.inReplyTo,
    references: draft.references,
    headers: { Autocrypt: headers.autocrypt, 'Offrecord-Keys': headers.offrecordKeys },
    attachments: user.attachments.map((a) => ({ filename: a.filename, contentType: a.contentType, content: Buffer.from(a.content) })),
  })
    .compile()
    .build();
  await account.outgoing.send(new Uint8Array(raw), { from: account.address, to: [user.to] });
}

export type FetchReport =
  /** `raw` and `message` are as the user gets them: the header attests `sender` (§18.6, step 7). */
  | { id: string; kind: 'message'; from: string; fingerprint: string; verified: boolean; sender: VerifiedSender; renamed: string[]; message: UserMessage; raw: Uint8Array }
  | { id: string; kind: 'protocol'; from: string }
  /** Processed in an earlier pass that stopped before filing it away: filed now. */
  | { id: string; kind: 'refiled' }
  | { id: string; kind: 'ordinary'; advertises?: string }
  /**
   * Under another identity than the pinned one while a changed identity (`pending`) awaits the
   * user: left where it is, without a second alarm, until the user decides (§18.6 step 4).
   */
  | { id: string; kind: 'held'; from: string; fingerprint: string; pending: string }
  /** Under an identity the user rejected: filed into `folder` unread (null: ordinary mail, left to the mail client). */
  | { id: string; kind: 'rejected'; from: string; fingerprint: string; folder: string | null }
  | { id: string; kind: 'skipped'; reason: string; code: string; alarm?: string };

// Headers already learned from, per keyring: a sender repeats the same keys in every mail,
// and verifying them again costs more than the rest of processing the mail.
const learned = new WeakMap<Keyring, Map<string, string>>();

/** Where mail under an identity the user rejected goes, unread (§18.6 step 4). */
export const REJECTED_FOLDER = 'OffRecord-Rejected';

/**
 * What a mail's key headers say: `learned` something anew (anything derived from the old keys
 * is stale), nothing new (`unchanged`), or an identity other than the pinned one that is `held`
 * (a change already awaits the user) or `rejected` (the user declined it). A new changed
 * identity throws the alarm.
 */
type KeysVerdict = { kind: 'learned' | 'unchanged' } | { kind: 'held'; fingerprint: string; pending: string } | { kind: 'rejected'; fingerprint: string };

/** Learns the keys a mail from `from` advertises (Autocrypt identity, Offrecord-Keys ring keys). */
async function learnKeys(account: MailAccount, from: string, autocrypt: string[], offrecordKeys: string | null): Promise<KeysVerdict> {
  const digest = createHash('sha256').update(JSON.stringify([autocrypt, offrecordKeys])).digest('hex');
  let seen = learned.get(account.keyring);
  if (!seen) learned.set(account.keyring, (seen = new Map()));
  if (seen.get(from) === digest) return { kind: 'unchanged' };
  const verdict = await learnKeysNow(account, from, autocrypt, offrecordKeys);
  if (verdict.kind === 'learned') seen.set(from, digest);
  return verdict;
}

/** What one fetch pass reuses across the mails of one sender. */
interface Correspondent {
  conversation: Conversation;
  fingerprint: string;
  verified: boolean;
}
type PassCache = Map<string, Promise<Correspondent>>;

function correspondent(account: MailAccount, cache: PassCache, from: string): Promise<Correspondent> {
  let entry = cache.get(from);
  if (!entry) {
    entry = (async () => {
      const who = await account.keyring.fingerprint(from);
      return { conversation: await conversationWith(account, from, { whilePending: true }), fingerprint: who.fingerprint, verified: who.verified };
    })();
    entry.catch(() => cache.delete(from));
    cache.set(from, entry);
  }
  return entry;
}

async function learnKeysNow(account: MailAccount, from: string, autocrypt: string[], offrecordKeys: string | null): Promise<KeysVerdict> {
  const header = selectAutocryptHeader(autocrypt, from);
  if (header) {
    const imported = await account.keyring.importPeer(header.keydata, { expectedAddress: from, fromMail: true });
    if (imported.status === 'changed') throw new PipelineError('identity_changed', `the identity key of ${from} has changed`, imported.warning);
    if (imported.status === 'held') return { kind: 'held', fingerprint: imported.fingerprint, pending: imported.pending! };
    if (imported.status === 'rejected') return { kind: 'rejected', fingerprint: imported.fingerprint };
  }
  if (offrecordKeys !== null) {
    await account.keyring.learnRingKeys(from, parseOffrecordKeysHeader(offrecordKeys).ring, header ? { certificate: header.keydata } : {});
  }
  return { kind: 'learned' };
}

/**
 * What a failure while processing one mail means for the pass. Only the account's own store
 * stops it: everything else arose from this mail (its bytes went through parsers, key checks and
 * the engine), so it is this mail's skip with a reason, never the end of `fetch` or the watcher.
 */
function skipped(id: string, error: unknown): FetchReport {
  if (error instanceof PipelineError) return { id, kind: 'skipped', code: error.code, reason: error.message, ...(error.hint ? { alarm: error.hint } : {}) };
  if (isKeyringError(error, 'identity_changed')) return { id, kind: 'skipped', code: 'identity_changed', reason: error.message, ...(error.details.warning ? { alarm: error.details.warning } : {}) };
  if (isKeyringError(error) || isKeyError(error) || error instanceof MailError) return { id, kind: 'skipped', code: error.code, reason: error.message };
  if (error instanceof StoreError) throw error;
  const what = error instanceof Error ? `${error.name}${'code' in error && typeof error.code === 'string' ? ` ${error.code}` : ''}: ${error.message}` : String(error);
  return skipped(id, new MailError('unprocessable', `processing this mail failed unexpectedly (${what})`, { cause: error }));
}

/**
 * One mail: processed and filed away, or left untouched with the reason. Resolves once the
 * mail's session step is committed; `filed` then settles once the mail is filed away (the
 * pass overlaps that round trip with the next mail's work).
 */
async function processOne(account: MailAccount, id: string, cache: PassCache, read: Promise<Uint8Array>): Promise<{ filed: Promise<FetchReport> }> {
  const settled = (report: FetchReport) => ({ filed: Promise.resolve(report) });
  const { incoming, store } = account;
  const folder = account.processedFolder ?? 'OffRecord';
  const fileAway = (report: FetchReport, into = folder) => {
    const done = incoming.done(id, into);
    return done.then(
      () => report,
      (error: unknown) => skipped(id, error),
    );
  };
  const position = incoming.position(id);
  const ref: MailRef = { mailbox: incoming.name, id, epoch: position ? String(position.uidvalidity) : '' };
  try {
    if (store.processed(ref)) return { filed: fileAway({ id, kind: 'refiled' }) };
    const raw = await read;
    const mail = await parseProtected(raw);
    if (!mail) {
      // Ordinary mail stays where it is; if it advertises offrecord keys, we learn them.
      const advert = await parseAdvertisement(raw);
      const keys = advert ? await learnKeys(account, advert.from, advert.autocrypt, advert.offrecordKeys) : null;
      if (advert && keys?.kind === 'learned') cache.delete(advert.from);
      // Not marked examined: looked at again once the user decided about the changed identity.
      if (advert && keys?.kind === 'held') return settled({ id, kind: 'held', from: advert.from, fingerprint: keys.fingerprint, pending: keys.pending });
      await incoming.examined(id);
      if (advert && keys?.kind === 'rejected') return settled({ id, kind: 'rejected', from: advert.from, fingerprint: keys.fingerprint, folder: null });
      return settled({ id, kind: 'ordinary', ...(advert ? { advertises: advert.from } : {}) });
    }
    // After a UIDVALIDITY change the same mail comes back under a new id: known by its Message-ID
    // from the old epoch (a Message-ID repeated within one epoch is a different mail).
    if (mail.messageId && store.processedByMessageId(ref.mailbox, mail.messageId).some((p) => p.epoch !== ref.epoch)) {
      store.markProcessed({ ...ref, messageId: mail.messageId });
      return { filed: fileAway({ id, kind: 'refiled' }) };
    }
    if (!mail.to.includes(account.address.toLowerCase())) {
      throw new MailError('address', `addressed to ${mail.to.join(', ') || 'nobody'}, not to ${account.address}`);
    }
    const keys = await learnKeys(account, mail.from, mail.autocrypt, mail.offrecordKeys);
    if (keys.kind === 'held') return settled({ id, kind: 'held', from: mail.from, fingerprint: keys.fingerprint, pending: keys.pending });
    if (keys.kind === 'rejected') return { filed: fileAway({ id, kind: 'rejected', from: mail.from, fingerprint: keys.fingerprint, folder: REJECTED_FOLDER }, REJECTED_FOLDER) };
    if (keys.kind === 'learned') cache.delete(mail.from);
    const who = await correspondent(account, cache, mail.from);
    // What commits with the session step: the mail is done, and its plaintext waits in the outbox.
    const committed: { recorded: boolean; delivery: Delivery | null } = { recorded: false, delivery: null };
    const record = (plaintext: Uint8Array | null) => {
      store.markProcessed({ ...ref, messageId: mail.messageId ?? null });
      if (position) {
        const last = store.checkpoint(ref.mailbox);
        const lastUid = last && last.uidvalidity === position.uidvalidity ? Math.max(last.lastUid, position.uid) : position.uid;
        store.setCheckpoint({ mailbox: ref.mailbox, uidvalidity: position.uidvalidity, lastUid });
      }
      if (plaintext && account.delivery) {
        committed.delivery = { id: randomBytes(16).toString('hex'), sender: mail.from, fingerprint: who.fingerprint, verified: who.verified, message: plaintext, receivedAt: now(account) };
        store.addDelivery(committed.delivery);
      }
      committed.recorded = true;
    };
    // The inner message is read, and attested, before anything commits: one that breaks §18.5
    // is refused whole, and what is handed over later can no longer fail on its content.
    const sender = senderOf({ sender: mail.from, fingerprint: who.fingerprint, verified: who.verified });
    const inner: { read: { message: UserMessage; attested: Attested } | null } = { read: null };
    const inspect = async (plaintext: Uint8Array) => {
      const message = await parseInner(plaintext);
      // As handed over, From is the authenticated address (the rest of the message is as written).
      inner.read = { message: { ...message, from: sender.address }, attested: await attestSender(plaintext, sender) };
    };
    const result = await who.conversation.receive(mail.protocol, { alongside: record, inspect });
    for (const out of result.outgoing) await dispatch(account, mail.from, out, mail.messageId ? { inReplyTo: mail.messageId } : {});
    // A replay is an authentic copy of a message already accepted (the check follows the MAC or
    // ring signature, §9.4): a second delivery by a mail server, nothing new in it. Filed away
    // like a known mail, so it is not reported again on every pass (§18.6).
    if (result.kind === 'error' && result.code === 'replay') {
      store.markProcessed({ ...ref, messageId: mail.messageId ?? null });
      return { filed: fileAway({ id, kind: 'refiled' }) };
    }
    // Left where it is, with the protocol's own code (expired, auth, malformed...).
    if (result.kind === 'error') return settled({ id, kind: 'skipped', code: result.code, reason: result.message });
    if (!committed.recorded) store.transaction(() => record(result.kind === 'plaintext' ? result.plaintext : null)); // a step that changed no state
    if (committed.delivery && account.delivery) {
      await handOver(account.delivery, committed.delivery, false).catch((error: unknown) => {
        throw error instanceof MailError ? error : new SinkFailure(error);
      });
      store.deliveryDone(committed.delivery.id);
    }
    const filed = fileAway({ id, kind: 'protocol', from: mail.from });
    if (result.kind === 'ignore' || !inner.read) return { filed };
    const { message, attested } = inner.read;
    const report: FetchReport = { id, kind: 'message', from: mail.from, fingerprint: who.fingerprint, verified: who.verified, sender, renamed: attested.renamed, message, raw: attested.message };
    return { filed: filed.then((r) => (r.kind === 'skipped' ? r : report)) };
  } catch (error) {
    if (error instanceof SinkFailure) throw error.cause; // our own delivery failed, not this mail: the plaintext waits in the outbox
    return settled(skipped(id, error));
  }
}

/** The account's delivery sink failed in a way it did not name: the pass stops, as for the store. */
class SinkFailure {
  constructor(readonly cause: unknown) {}
}

/** Mails read ahead of the one being processed (the server's MOVE and FETCH queue on one connection). */
const READ_AHEAD = 2;

export interface PassOptions {
  /** Keep the mailbox's connection for the next pass (the watcher); the caller closes it. */
  keepOpen?: boolean;
  /** Mail not to look at in this pass (the watcher's list of mail it already skipped). */
  ignore?: ReadonlySet<string>;
  /** Stops the pass before the next mail; the mail in hand is finished first. */
  signal?: AbortSignal;
}

export interface FetchOptions extends PassOptions {
  /** Hears after each mail. */
  progress?: (done: number, total: number) => void;
}

/**
 * One pass over new mail, oldest first; `onReport` hears each mail's outcome as it settles, and
 * the pass keeps none of them (a long backlog does not pile up in memory). While one mail is
 * processed, the next ones are already being read and the one before is being filed away: each
 * mail is still filed only after its own session step is committed.
 */
export async function processNewMail(account: MailAccount, onReport: (report: FetchReport, done: number, total: number) => void, options: PassOptions = {}): Promise<void> {
  // Plaintext committed by an earlier pass that stopped before handing it over goes first.
  if (account.delivery) await flushOutbox(account.store, account.delivery);
  const cache: PassCache = new Map();
  // A read overlapped with other work that fails (e.g. the connection dropped under it) is tried once more.
  const readAhead = (id: string): Promise<Uint8Array> => {
    const read = account.incoming.read(id).catch(() => account.incoming.read(id));
    read.catch(() => undefined); // awaited by processOne, which reports the failure
    return read;
  };
  let filing: Promise<FetchReport> | null = null;
  try {
    const ids = (await account.incoming.list()).filter((id) => !options.ignore?.has(id));
    let done = 0;
    const settle = async () => {
      if (!filing) return;
      const report = await filing;
      filing = null;
      onReport(report, ++done, ids.length);
    };
    const reads: Promise<Uint8Array>[] = [];
    for (let i = 0; i < ids.length && !options.signal?.aborted; i++) {
      while (reads.length < Math.min(ids.length, i + 1 + READ_AHEAD)) reads.push(readAhead(ids[reads.length]!));
      const read = reads[i]!;
      delete reads[i]; // the pass holds at most READ_AHEAD mails beyond the current one
      const { filed } = await processOne(account, ids[i]!, cache, read);
      await settle();
      filing = filed;
    }
    await settle();
  } finally {
    if (filing) await (filing as Promise<FetchReport>).catch(() => undefined);
    if (!options.keepOpen) await account.incoming.close();
  }
}

/** One pass over new mail (processNewMail), its reports in a list: for `offrecord fetch`. */
export async function fetchMessages(account: MailAccount, options: FetchOptions = {}): Promise<FetchReport[]> {
  const reports: FetchReport[] = [];
  await processNewMail(
    account,
    (report, done, total) => {
      reports.push(report);
      options.progress?.(done, total);
    },
    options,
  );
  return reports;
}

/**
 * What time asks of an account with nothing to read: drop old processed-mail records, forget
 * what is due in every session, and send the empty acknowledgement where a new share arrived
 * and the user has not replied (paper 4.2), so the correspondent can forget its old key.
 * Returns the addresses acknowledged.
 */
export async function performDuties(account: MailAccount): Promise<{ acknowledged: string[]; skipped: { address: string; reason: string }[] }> {
  account.store.pruneProcessed(now(account) - PROCESSED_KEPT_MS);
  const local = toHex(account.keyring.localParty().fingerprint);
  const addressOf = new Map<string, string>();
  for (const peer of account.store.peers()) if (!addressOf.has(peer.fingerprint)) addressOf.set(peer.fingerprint, peer.address);
  const acknowledged: string[] = [];
  const skippedPeers: { address: string; reason: string }[] = [];
  for (const { peer } of account.store.sessions(local)) {
    const address = addressOf.get(peer);
    if (!address) continue;
    try {
      const conversation = await conversationWith(account, address, { whilePending: true });
      await conversation.forgetExpired();
      const ack = await conversation.acknowledgeIfDue();
      if (ack?.kind === 'encrypted') {
        await dispatch(account, address, ack.message);
        acknowledged.push(address);
      } else if (ack?.kind === 'error') skippedPeers.push({ address, reason: `${ack.code}: ${ack.message}` });
    } catch (error) {
      // One correspondent's trouble (a changed identity awaiting the user, keys not valid now)
      // does not keep the others' duties from being done; a failed send is retried by the caller.
      if (!isKeyringError(error) && !isKeyError(error)) throw error;
      skippedPeers.push({ address, reason: error.message });
    }
  }
  return { acknowledged, skipped: skippedPeers };
}

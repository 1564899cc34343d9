// Offrecord mail in as the user's message: one pass over new mail, oldest first. Each mail is
// processed and filed away, or left where it is, untouched, with the reason in its report.
import { randomBytes } from 'node:crypto';
import { isKeyError, isKeyringError } from '../keys/errors.ts';
import type { Correspondent, MailCorrespondent } from '../keys/keyring-results.ts';
import type { Conversation } from '../protocol/context.ts';
import { MailError, PipelineError } from './errors.ts';
import { StoreError } from '../store/errors.ts';
import { MAX_MAIL_BYTES, parseAdvertisement, parseInner, parseProtected, type IncomingMail, type UserMessage } from './mime.ts';
import { flushOutbox, handOver, senderOf } from './delivery.ts';
import { attestation, attested, type Attestation, type VerifiedSender } from './sender.ts';
import type { Delivery, MailRef } from '../store/records.ts';
import { softwareVersion } from './software.ts';
import { LIMITS } from '../protocol/wire.ts';
import type { ScanMark } from './transport.ts';
import { conversationOf, now, type MailAccount, type MailWorld } from './account.ts';
import { dispatch } from './send.ts';

export type FetchReport =
  /** `raw` and `message` are as the user gets them: the header attests `sender` (§18.6, step 7). */
  | {
      id: string;
      kind: 'message';
      from: string;
      fingerprint: string;
      verified: boolean;
      sender: VerifiedSender;
      renamed: string[];
      message: UserMessage;
      raw: Uint8Array;
    }
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

/** Where mail under an identity the user rejected goes, unread (§18.6 step 4). */
export const REJECTED_FOLDER = 'OffRecord-Rejected';

/** One Conversation per sender per pass: it reuses the state it saved last while nobody else saved. */
type PassCache = Map<string, Conversation>;

/** The pass's conversation with the sender of a mail, made anew when the mail's headers taught us new keys. */
function conversationFor(
  account: MailAccount,
  cache: PassCache,
  from: string,
  found: Extract<MailCorrespondent, { kind: 'known' }>,
): Conversation {
  let conversation = cache.get(from);
  if (!conversation || found.learned) {
    conversation = conversationOf(account, found.correspondent, found.local);
    cache.set(from, conversation);
  }
  return conversation;
}

/**
 * What a failure while processing one mail means for the pass. Only the account's own store
 * stops it: everything else arose from this mail (its bytes went through parsers, key checks and
 * the engine), so it is this mail's skip with a reason, never the end of `fetch` or the watcher.
 */
function skipped(id: string, error: unknown): FetchReport {
  if (error instanceof PipelineError)
    return { id, kind: 'skipped', code: error.code, reason: error.message, ...(error.hint ? { alarm: error.hint } : {}) };
  if (isKeyringError(error, 'identity_changed'))
    return {
      id,
      kind: 'skipped',
      code: 'identity_changed',
      reason: error.message,
      ...(error.details.warning ? { alarm: error.details.warning } : {}),
    };
  if (isKeyringError(error) || isKeyError(error) || error instanceof MailError)
    return { id, kind: 'skipped', code: error.code, reason: error.message };
  if (error instanceof StoreError) throw error;
  const what =
    error instanceof Error
      ? `${error.name}${'code' in error && typeof error.code === 'string' ? ` ${error.code}` : ''}: ${error.message}`
      : String(error);
  return skipped(id, new MailError('unprocessable', `processing this mail failed unexpectedly (${what})`, { cause: error }));
}

/**
 * What a mail becomes once handled: its report, and the folder to file it into when it is to be
 * filed away (the pass files its mails together: fileAll); a mail that cannot be filed is that
 * mail's skip, and a later pass files it (refiled).
 */
interface Handled {
  report: FetchReport;
  folder?: string;
}

/** An outcome that needs no round trip to the server: the mail stays where it is. */
const settled = (report: FetchReport): Handled => ({ report });

/** The mail is to be moved into `folder`, with the pass's other mails. */
const fileAway = (account: MailAccount, report: FetchReport, folder = account.processedFolder ?? 'OffRecord'): Handled => ({
  report,
  folder,
});

/**
 * Files the outcomes that go into a folder, one call per folder for all of them; the outcomes
 * come back with a failure to file as the mail's skip. A call that fails for several mails is
 * tried again one mail at a time, so that only the mails that cannot be filed say so.
 */
async function fileAll(account: MailAccount, outcomes: readonly Handled[]): Promise<FetchReport[]> {
  const failed = new Map<string, unknown>();
  const folders = new Set(outcomes.flatMap((o) => (o.folder === undefined ? [] : [o.folder])));
  for (const folder of folders) {
    const ids = outcomes.filter((o) => o.folder === folder).map((o) => o.report.id);
    // Mail under a rejected identity is filed unread (§18.6 step 4): the user never read it.
    const how = { unread: folder === REJECTED_FOLDER };
    try {
      await account.incoming.done(ids, folder, how);
    } catch (error) {
      if (ids.length === 1) failed.set(ids[0]!, error);
      else for (const id of ids) await account.incoming.done([id], folder, how).catch((e: unknown) => failed.set(id, e));
    }
  }
  return outcomes.map(({ report }) => (failed.has(report.id) ? skipped(report.id, failed.get(report.id)) : report));
}

/** What commits with the mail's session step: the mail is done, and the outbox row its plaintext makes. */
interface Receipt {
  processed: MailRef & { messageId: string | null };
  /** The outbox row for the plaintext (without it), when the account has a sink. */
  delivery: Omit<Delivery, 'message'> | null;
}

function receiptFor(account: MailAccount, ref: MailRef, mail: IncomingMail, who: Correspondent): Receipt {
  return {
    processed: { ...ref, messageId: mail.messageId ?? null },
    delivery: account.delivery
      ? {
          id: randomBytes(16).toString('hex'),
          sender: mail.from,
          fingerprint: who.fingerprint,
          verified: who.verified,
          receivedAt: now(account),
        }
      : null,
  };
}

/** Records a receipt, inside the store transaction that saves the session step (or one of its own). */
function record(store: MailAccount['store'], receipt: Receipt, plaintext: Uint8Array | null): void {
  const { processed, delivery } = receipt;
  store.markProcessed(processed);
  if (plaintext && delivery) store.addDelivery({ ...delivery, message: plaintext });
}

/**
 * The inner message as the user gets it, read, and its attested header section made (§18.5;
 * §18.6 step 7). The attested whole is put together only after the commit, so that the commit's
 * copies (the sealed outbox row) and it are never in memory at once (§18.9).
 */
async function readInner(plaintext: Uint8Array, sender: VerifiedSender): Promise<{ message: UserMessage; attestation: Attestation }> {
  const message = await parseInner(plaintext);
  // As handed over, From is the authenticated address (the rest of the message is as written).
  return { message: { ...message, from: sender.address }, attestation: await attestation(plaintext, sender) };
}

/** Ordinary mail stays where it is; if it advertises offrecord keys, we learn them. */
async function receiveOrdinary(account: MailAccount, cache: PassCache, id: string, raw: Uint8Array): Promise<FetchReport> {
  const advert = await parseAdvertisement(raw);
  if (!advert) {
    await account.incoming.examined(id);
    return { id, kind: 'ordinary' };
  }
  const keys = await account.keyring.correspondents.learnFromMail(advert.from, advert);
  if (keys.kind === 'learned') cache.delete(advert.from);
  // Not marked examined: looked at again once the user decided about the changed identity.
  if (keys.kind === 'held') return { id, kind: 'held', from: advert.from, fingerprint: keys.fingerprint, pending: keys.pending };
  await account.incoming.examined(id);
  if (keys.kind === 'rejected') return { id, kind: 'rejected', from: advert.from, fingerprint: keys.fingerprint, folder: null };
  return { id, kind: 'ordinary', advertises: advert.from };
}

/**
 * The mail read and parsed, or ordinary mail's outcome. The raw bytes live only here: once
 * parsed, nothing refers to them while the mail is processed (§18.9).
 */
async function readMail(
  account: MailAccount,
  cache: PassCache,
  id: string,
  read: () => Promise<Uint8Array>,
): Promise<IncomingMail | { report: FetchReport }> {
  const raw = await read();
  return (await parseProtected(raw)) ?? { report: await receiveOrdinary(account, cache, id, raw) };
}

/**
 * One mail: processed, or left untouched with the reason. Resolves once the mail's session step
 * is committed, with the folder to file it into: the pass files it after that (fileAll).
 */
async function processOne(account: MailAccount, id: string, cache: PassCache, read: () => Promise<Uint8Array>): Promise<Handled> {
  const { incoming, store } = account;
  const position = incoming.position(id);
  const ref: MailRef = { mailbox: incoming.name, id, epoch: position ? String(position.uidvalidity) : '' };
  try {
    if (store.processed(ref)) return fileAway(account, { id, kind: 'refiled' });
    const mail = await readMail(account, cache, id, read);
    if ('report' in mail) return settled(mail.report);
    // After a UIDVALIDITY change the same mail comes back under a new id: known by its Message-ID
    // from the old epoch (a Message-ID repeated within one epoch is a different mail).
    if (mail.messageId && store.processedByMessageId(ref.mailbox, mail.messageId).some((p) => p.epoch !== ref.epoch)) {
      store.markProcessed({ ...ref, messageId: mail.messageId });
      return fileAway(account, { id, kind: 'refiled' });
    }
    if (!mail.to.includes(account.address.toLowerCase())) {
      throw new MailError('address', `addressed to ${mail.to.join(', ') || 'nobody'}, not to ${account.address}`);
    }
    // The mail's one entry into the keys wing: its headers learned, both parties read once.
    const found = await account.keyring.correspondents.fromMail(mail.from, mail);
    if (found.kind === 'held')
      return settled({ id, kind: 'held', from: mail.from, fingerprint: found.fingerprint, pending: found.pending });
    if (found.kind === 'rejected')
      return fileAway(
        account,
        { id, kind: 'rejected', from: mail.from, fingerprint: found.fingerprint, folder: REJECTED_FOLDER },
        REJECTED_FOLDER,
      );
    const who = found.correspondent;
    const sender = senderOf({ sender: mail.from, fingerprint: who.fingerprint, verified: who.verified });
    const receipt = receiptFor(account, ref, mail, who);
    // The inner message is read and attested before anything commits: one that breaks §18.5 is
    // refused whole, and what is handed over later can no longer fail on its content.
    const result = await conversationFor(account, cache, mail.from, found).receive(mail.protocol, {
      inspect: (plaintext) => readInner(plaintext, sender),
      alongside: (plaintext) => record(store, receipt, plaintext),
    });
    for (const out of result.outgoing) await dispatch(account, mail.from, out, mail.messageId ? { inReplyTo: mail.messageId } : {});
    // A replay is an authentic copy of a message already accepted (the check follows the MAC or
    // ring signature, §9.4): a second delivery by a mail server, nothing new in it. Filed away
    // like a known mail, so it is not reported again on every pass (§18.6).
    if (result.kind === 'error' && result.code === 'replay') {
      store.markProcessed(receipt.processed);
      return fileAway(account, { id, kind: 'refiled' });
    }
    // Left where it is, with the protocol's own code (expired, auth, malformed...).
    if (result.kind === 'error') return settled({ id, kind: 'skipped', code: result.code, reason: result.message });
    const plaintext = result.kind === 'plaintext' ? result.plaintext : null;
    if (!result.committed) store.transaction(() => record(store, receipt, plaintext)); // a step that changed no state
    // What the user gets: made once, for the sink and the report.
    const raw = result.kind === 'plaintext' ? attested(result.plaintext, result.inspected.attestation) : null;
    if (plaintext && receipt.delivery && account.delivery) {
      await handOver(account.delivery, { ...receipt.delivery, message: plaintext }, false, raw ?? undefined).catch((error: unknown) => {
        throw error instanceof MailError ? error : new SinkFailure(error);
      });
      store.deliveryDone(receipt.delivery.id);
    }
    if (result.kind === 'ignore') return fileAway(account, { id, kind: 'protocol', from: mail.from });
    return fileAway(account, {
      id,
      kind: 'message',
      from: mail.from,
      fingerprint: who.fingerprint,
      verified: who.verified,
      sender,
      renamed: result.inspected.attestation.renamed,
      message: result.inspected.message,
      raw: raw!,
    });
  } catch (error) {
    if (error instanceof SinkFailure) throw error.cause; // our own delivery failed, not this mail: the plaintext waits in the outbox
    return settled(skipped(id, error));
  }
}

/** The account's delivery sink failed in a way it did not name: the pass stops, as for the store. */
class SinkFailure {
  constructor(readonly cause: unknown) {}
}

/**
 * The bound on a pass's memory (§18.9): its peak resident memory above where it started is at
 * most this many times LIMITS.maxPayload, whatever the number of mails in the pass. Measured,
 * not derived: the copies of one big mail that cannot be avoided are listed in §18.9.
 */
export const MEMORY_BOUND_PAYLOADS = 14;

/** Mails read ahead of the one being processed (the server's MOVE and FETCH queue on one connection). */
const READ_AHEAD = 2;
/**
 * Bytes of mail read ahead at most: big mails are read one at a time, so a pass holds one big
 * mail and its copies at once (MEMORY_BOUND_PAYLOADS). A mail whose size the mailbox does not
 * know counts as big: it is never read ahead.
 */
const READ_AHEAD_BYTES = LIMITS.maxPayload / 4;

/**
 * Mails filed together at most (fileAll): a pass over a long backlog files them in batches, so a
 * stopped process leaves at most this many processed mails for the next pass to file (refiled).
 */
const FILE_BATCH = 100;
/** Plaintext held by reports waiting for their mails to be filed, at most (MEMORY_BOUND_PAYLOADS): a batch holding more is filed at once. */
const FILE_BATCH_BYTES = LIMITS.maxPayload / 4;

/** The bytes of plaintext a report holds. */
const heldBytes = (report: FetchReport): number => (report.kind === 'message' ? report.raw.byteLength : 0);

export interface PassOptions {
  /** Keep the mailbox's connection for the next pass (the watcher); the caller closes it. */
  keepOpen?: boolean;
  /** Mail not to look at in this pass (the watcher's list of mail it already skipped). */
  ignore?: ReadonlySet<string>;
  /** Also reports held mail that was not read again (its record is current): `fetch` reminds the user of it. */
  remindHeld?: boolean;
  /** Stops the pass before the next mail; the mail in hand is finished first. */
  signal?: AbortSignal;
}

export interface FetchOptions extends PassOptions {
  /** Hears after each mail. */
  progress?: (done: number, total: number) => void;
}

/**
 * How long a processed mail is remembered: long enough for one left on the server (its MOVE
 * failed) to be filed by a later pass rather than refused as a replay. Older records are dropped
 * by pruneProcessed, so the table holds one month's mail, however long the account's history (§18.6).
 */
export const PROCESSED_KEPT_MS = 30 * 24 * 3_600_000;

/**
 * Drops the processed-mail records older than PROCESSED_KEPT_MS: once per `fetch` and per duties
 * run of the watcher (§18.6), not per pass; records are only ever added by a pass, so that bounds
 * them for both.
 */
export function pruneProcessed(account: MailAccount): void {
  account.store.pruneProcessed(now(account) - PROCESSED_KEPT_MS);
}

/**
 * One pass over new mail, oldest first; `onReport` hears each mail's outcome as it settles, and
 * the pass keeps none of them (a long backlog does not pile up in memory). While one mail is
 * processed, the next ones are already being read and the one before is being filed away: each
 * mail is still filed only after its own session step is committed.
 */
export async function processNewMail(
  account: MailAccount,
  onReport: (report: FetchReport, done: number, total: number) => void,
  options: PassOptions = {},
): Promise<void> {
  // Plaintext committed by an earlier pass that stopped before handing it over goes first.
  if (account.delivery) await flushOutbox(account.store, account.delivery);
  const cache: PassCache = new Map();
  const reported = new Set<string>();
  let done = 0;
  const hear = (report: FetchReport, _done: number, total: number) => {
    reported.add(report.id);
    onReport(report, ++done, total);
  };
  try {
    const world = account.store.mailWorld();
    const first = await passRound(account, cache, hear, options, () => listPass(account, options.ignore));
    // Keys learned in this pass (from a mail's headers, or by another process) may make mail
    // skipped before processable: it is read again now, not on the next pass. The mailbox is not
    // listed again (mail new since waits for the next pass): the skip records say what to read.
    // Mail this pass already reported is not looked at twice in it: its own outcome (an alarm
    // recording a pending key, say) may be what moved the world.
    if (first && account.store.mailWorld() !== world && !options.signal?.aborted) {
      const ignore = new Set([...(options.ignore ?? []), ...reported]);
      await passRound(account, cache, hear, options, () => listAgain(account, first, ignore));
    }
    if (options.remindHeld) {
      for (const held of account.store.heldMail(account.incoming.name)) {
        if (!reported.has(held.id) && held.held) onReport({ id: held.id, kind: 'held', ...held.held }, ++done, done);
      }
    }
  } finally {
    if (!options.keepOpen) await account.incoming.close();
  }
}

/** One listing and the mail it gives, each mail's outcome kept (§18.6); returns the listing. */
async function passRound(
  account: MailAccount,
  cache: PassCache,
  onReport: (report: FetchReport, done: number, total: number) => void,
  options: PassOptions,
  list: () => Promise<PassListing> | PassListing,
): Promise<PassListing | null> {
  // A read overlapped with other work that fails (e.g. the connection dropped under it) is tried once more.
  const readAhead = (id: string): Promise<Uint8Array> => {
    const read = account.incoming.read(id).catch(() => account.incoming.read(id));
    read.catch(() => undefined); // awaited by processOne, which reports the failure
    return read;
  };
  let pass: PassListing | null = null;
  const settled = new Set<string>();
  // Outcomes in order, waiting for their mails to be filed together; reports keep the mails' order.
  const waiting: Handled[] = [];
  let done = 0;
  const settle = async () => {
    const batch = waiting.splice(0);
    for (const report of await fileAll(account, batch)) {
      remember(account, pass!, report);
      settled.add(report.id);
      // Mail gone from the mailbox since it was listed or recorded (another client moved it) is nobody's news.
      if (report.kind === 'skipped' && report.code === 'gone') continue;
      onReport(report, ++done, pass!.ids.length);
    }
  };
  try {
    pass = await list();
    const ids = pass.ids;
    const sizeOf = (id: string) => account.incoming.size?.(id) ?? MAX_MAIL_BYTES;
    const reads: Promise<Uint8Array>[] = [];
    // One mail, in a function of its own: nothing of it stays referenced from the loop once it returns.
    const next = async (i: number) => {
      // The current mail, then those after it while they are few and small.
      if (reads.length === i) reads.push(readAhead(ids[i]!));
      let ahead = 0;
      for (let j = i + 1; j < reads.length; j++) ahead += sizeOf(ids[j]!);
      while (reads.length < Math.min(ids.length, i + 1 + READ_AHEAD)) {
        ahead += sizeOf(ids[reads.length]!);
        if (ahead > READ_AHEAD_BYTES) break;
        reads.push(readAhead(ids[reads.length]!));
      }
      // Taken out when read: the pass holds at most READ_AHEAD mails, READ_AHEAD_BYTES, beyond the current one.
      const read = () => {
        const taken = reads[i]!;
        delete reads[i];
        return taken;
      };
      waiting.push(await processOne(account, ids[i]!, cache, read));
      // A big mail's report (its plaintext) is let go once it is filed, before the next mail is read.
      const filing = waiting.filter((o) => o.folder !== undefined).length;
      if (filing === 0 || filing >= FILE_BATCH || waiting.reduce((sum, o) => sum + heldBytes(o.report), 0) > FILE_BATCH_BYTES)
        await settle();
    };
    for (let i = 0; i < ids.length && !options.signal?.aborted; i++) await next(i);
  } finally {
    // Mail processed before a failure is filed still; one that cannot be is refiled by a later pass.
    if (pass) await settle().catch(() => undefined);
    if (pass) advanceMark(account, pass, settled);
  }
  return pass;
}

/** Per-mail outcomes that say the connection or the outgoing server failed, not the mail: it is looked at again on the next pass. */
export const TRANSIENT_SKIPS: ReadonlySet<string> = new Set(['io', 'unreachable', 'transport', 'state_conflict']);

/** Per-mail outcomes about the mail's own bytes: no key learned and no trust decision changes them, only new software. */
const STRUCTURAL_SKIPS: ReadonlySet<string> = new Set(['malformed', 'too_large', 'unsupported_version', 'address', 'unprocessable']);

interface PassListing {
  /** What this pass reads: skipped mail whose world moved, then new mail. */
  ids: string[];
  /** The new mail from the mailbox, in order, with the mark to keep once all of it is looked at. */
  fresh: string[];
  mark: ScanMark | null;
  /** The mark the pass started from. */
  from: ScanMark | null;
  /** Mail this pass looks at again that has a skip record. */
  recorded: Set<string>;
  /** Mail left out because its skip record is current, or the caller asked to. */
  passedOver: Set<string>;
}

/**
 * The mail of one pass (§18.6): new mail (above the stored mark where the mailbox has UIDs) and
 * skipped mail skipped under another world; skipped mail whose world has not moved is not read.
 */
async function listPass(account: MailAccount, ignore: ReadonlySet<string> | undefined): Promise<PassListing> {
  const { incoming, store } = account;
  const world: MailWorld = { generation: store.mailWorld(), software: softwareVersion() };
  const stored = store.checkpoint(incoming.name);
  const from = stored ? { uidvalidity: stored.uidvalidity, lastUid: stored.lastUid } : null;
  const listed = incoming.listSince ? await incoming.listSince(from) : { ids: await incoming.list(), mark: null };
  const stale = store.staleSkippedMail(incoming.name, world);
  let again: string[] = [];
  if (listed.mark) {
    // Mail below the mark is not listed: the stale skips are read by id. After a UIDVALIDITY
    // change the old ids name nothing: their records go.
    const epoch = String(listed.mark.uidvalidity);
    if (from && from.uidvalidity !== listed.mark.uidvalidity) store.clearSkippedOfOtherEpochs(incoming.name, epoch);
    const fresh = new Set(listed.ids);
    again = stale.filter((s) => s.epoch === epoch && !fresh.has(s.id)).map((s) => s.id);
  } else {
    // Everything unprocessed is listed: a record of mail no longer there is dropped.
    const present = new Set(listed.ids);
    for (const s of stale) if (!present.has(s.id)) store.clearSkipped({ mailbox: incoming.name, id: s.id });
  }
  const staleIds = new Set(stale.map((s) => s.id));
  const passedOver = new Set<string>();
  const recorded = new Set<string>(again);
  const ids = [...again];
  for (const id of listed.ids) {
    if (ignore?.has(id) || (!staleIds.has(id) && store.skippedMail({ mailbox: incoming.name, id }))) {
      passedOver.add(id);
      continue;
    }
    if (staleIds.has(id)) recorded.add(id);
    ids.push(id);
  }
  return { ids: ids.filter((id) => !ignore?.has(id)), fresh: listed.ids, mark: listed.mark, from, recorded, passedOver };
}

/**
 * The second look of a pass whose world moved (§18.6): the mail of `first`'s epoch whose skip
 * record that move made stale, from the store, without listing the mailbox again.
 */
function listAgain(account: MailAccount, first: PassListing, ignore: ReadonlySet<string>): PassListing {
  const { incoming, store } = account;
  const epoch = first.mark ? String(first.mark.uidvalidity) : '';
  const world: MailWorld = { generation: store.mailWorld(), software: softwareVersion() };
  const ids = store
    .staleSkippedMail(incoming.name, world)
    .filter((s) => s.epoch === epoch && !ignore.has(s.id))
    .map((s) => s.id);
  return { ids, fresh: [], mark: null, from: null, recorded: new Set(ids), passedOver: new Set() };
}

/** Keeps what a settled mail's outcome says about reading it again (§18.6). */
function remember(account: MailAccount, pass: PassListing, report: FetchReport): void {
  const { incoming, store } = account;
  const ref = { mailbox: incoming.name, id: report.id };
  const position = incoming.position(report.id);
  const epoch = position ? String(position.uidvalidity) : '';
  if (report.kind === 'held') {
    const held = { from: report.from, fingerprint: report.fingerprint, pending: report.pending };
    store.recordSkipped({ ...ref, epoch, code: 'held', world: store.mailWorld(), keyed: true, software: softwareVersion(), held });
  } else if (report.kind === 'skipped' && report.code !== 'gone') {
    // The alarm's mail is looked at once more on the next pass, where it is held with its
    // sender and identity on record, for the reminders of `remindHeld`.
    const world = TRANSIENT_SKIPS.has(report.code) || report.code === 'identity_changed' ? null : store.mailWorld();
    store.recordSkipped({
      ...ref,
      epoch,
      code: report.code,
      world,
      keyed: !STRUCTURAL_SKIPS.has(report.code),
      software: softwareVersion(),
      held: null,
    });
  } else if (pass.recorded.has(report.id)) store.clearSkipped(ref);
}

/** Moves the stored mark over the new mail looked at, up to the first that was not (a pass stopped early). */
function advanceMark(account: MailAccount, pass: PassListing, settled: ReadonlySet<string>): void {
  if (!pass.mark) return;
  let lastUid = pass.mark.lastUid;
  const firstLeft = pass.fresh.find((id) => !settled.has(id) && !pass.passedOver.has(id));
  if (firstLeft !== undefined) lastUid = account.incoming.position(firstLeft)!.uid - 1;
  const from = pass.from && pass.from.uidvalidity === pass.mark.uidvalidity ? pass.from.lastUid : -1;
  if (lastUid <= from) return;
  account.store.setCheckpoint({ mailbox: account.incoming.name, uidvalidity: pass.mark.uidvalidity, lastUid });
}

/** One pass over new mail (processNewMail), its reports in a list: for `offrecord fetch`. */
export async function fetchMessages(account: MailAccount, options: FetchOptions = {}): Promise<FetchReport[]> {
  pruneProcessed(account);
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

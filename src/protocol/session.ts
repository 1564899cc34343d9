// The session engine: pure steps in the ts-mls style. Each step takes the state (never
// mutated), the parties' keys, the input, an injected clock and randomness, and returns the
// new state, what to send and which secret buffers to wipe once the new state is stored.
// Errors are thrown as ProtocolError before anything is returned, so a failed step leaves
// the caller's state exactly as it was. docs/PROTOCOL.md is the specification.
import { randomBytes } from 'node:crypto';
import { compareBytes, equalBytes, toHex } from '../crypto/bytes.ts';
import { prepareRing, RingError, ringSign, ringVerify, ringVerifyKeys, sortRing, type PreparedRing } from '../crypto/ring.ts';
import { firstContext, replyContext } from './contexts.ts';
import { fail, ProtocolError } from './errors.ts';
import { aesCtr, deriveDirectionKeys, generateDhKeyPair, hmacSha256, messageKey, type DhKeyPair, type DirectionKeys } from './keyschedule.ts';
import {
  pairKey,
  STATE_VERSION,
  type Common,
  type EstablishedState,
  type InitiatingState,
  type KeyState,
  type LastSent,
  type OwnDhKey,
  type PeerDhKey,
  type ReplayWindow,
  type RespondingState,
  type Retired,
  type SentAs,
  type SessionState,
} from './state.ts';
import {
  decodeFirstInner,
  decodeNak,
  decodeReplyPlaintext,
  decodeSealed,
  encodeAuthenticated,
  encodeFirstInner,
  encodeNak,
  encodeReplyPlaintext,
  encodeSealed,
  LIMITS,
  MESSAGE_ID_LENGTH,
  MessageType,
  NONCE_LENGTH,
  type AuthBlock,
  type Nak,
  type SealedMessage,
} from './wire.ts';

/** Clock and randomness, injected so that steps are reproducible in tests and vectors. */
export interface Env {
  now(): number;
  random(length: number): Uint8Array;
  /** A fresh X25519 key pair; a deterministic Env derives it from random(32). */
  newDhKey(): DhKeyPair;
}

export const systemEnv: Env = {
  now: () => Date.now(),
  random: (length) => new Uint8Array(randomBytes(length)),
  newDhKey: generateDhKeyPair,
};

export interface Policy {
  /** How long a retired DH key is still accepted for receiving (mail is slow and reorders). */
  graceMs: number;
  /** At most this many retired own (and peer) keys are held, whatever the clock says. */
  maxRetired: number;
  /** Counters tracked exactly per pair; older ones are refused as expired. */
  replayWindow: number;
  /** How long the last sent plaintext is kept for a NAK re-send. */
  resendWindowMs: number;
  /** A NAK naming the last sent message allows a re-send only if the peer's fresh first mail follows within this. */
  nakResendWindowMs: number;
  /** After a new peer share arrives, how long to wait for the user before acknowledging. */
  ackDelayMs: number;
  /** How many first-mail and reply ids are remembered against replays. */
  maxSeenAuthIds: number;
  /** A first mail or reply signed further in the future than this (by our clock) is refused. */
  maxClockSkewMs: number;
  /** A first mail or reply signed longer ago than this is refused as expired. */
  maxAuthAgeMs: number;
  /** At most one NAK and fresh start per this interval, however many unreadable mails arrive. */
  nakIntervalMs: number;
}

const HOUR = 3_600_000;
export const DEFAULT_POLICY: Policy = {
  graceMs: 72 * HOUR,
  maxRetired: 8,
  replayWindow: 1024,
  resendWindowMs: 7 * 24 * HOUR,
  nakResendWindowMs: 1 * HOUR,
  ackDelayMs: 1 * HOUR,
  maxSeenAuthIds: 256,
  maxClockSkewMs: 24 * HOUR,
  maxAuthAgeMs: 30 * 24 * HOUR,
  nakIntervalMs: 1 * HOUR,
};

export interface RingKeyPair {
  public: Uint8Array;
  secret: Uint8Array;
}

/** Our side: identity fingerprint and our valid ring keys, the current one first. */
export interface LocalParty {
  fingerprint: Uint8Array;
  ringKeys: RingKeyPair[];
}

/** The correspondent: identity fingerprint and its valid ring keys, the current one first. */
export interface PeerParty {
  fingerprint: Uint8Array;
  ringKeys: Uint8Array[];
}

export interface Parties {
  local: LocalParty;
  peer: PeerParty;
}

export type Outgoing =
  /** A first mail's inner bytes: the caller seals them to the peer's encryption key. */
  | { kind: 'first'; inner: Uint8Array }
  | { kind: 'wire'; bytes: Uint8Array };

export interface SendStep {
  state: SessionState;
  outgoing: Outgoing;
  wipe: Uint8Array[];
}

export interface ReceiveStep {
  state: SessionState | null;
  /** The user's plaintext, or null for a protocol-only message (ack, NAK, empty first mail). */
  payload: Uint8Array | null;
  wipe: Uint8Array[];
  /** A cached plaintext to send again under the new session (NAK handling, paper 5.1). */
  resend: Uint8Array | null;
}

// ---------------------------------------------------------------- helpers

const MAX_KEY_ID = 0xffffffff;
/** Shared by steps that wipe nothing: never pushed to (callers only spread or iterate it). */
const NO_WIPE: Uint8Array[] = [];

function newOwnKey(id: number, env: Env): OwnDhKey {
  if (id > MAX_KEY_ID) fail('counter_exhausted', 'key ids of this session are used up: start a new session');
  return { id, ...env.newDhKey() };
}

function common(origin: Common['origin'], peerCreated: number, previous: Common | null): Common {
  return {
    version: STATE_VERSION,
    origin,
    peerCreated,
    seenAuthIds: previous?.seenAuthIds ?? [],
    lastSent: previous?.lastSent ?? null,
    nakAt: previous?.nakAt ?? null,
    nakSentAt: previous?.nakSentAt ?? null,
  };
}

const ringCache = new Map<string, PreparedRing>();
const RING_CACHE_SIZE = 64;

/** Prepared rings keep precomputed tables for the two keys of a live session. */
function ringFor(a: Uint8Array, b: Uint8Array): PreparedRing {
  const [p0, p1] = sortRing(a, b);
  const id = toHex(p0) + toHex(p1);
  let ring = ringCache.get(id);
  if (!ring) {
    ring = prepareRing(p0, p1);
    if (ringCache.size >= RING_CACHE_SIZE) ringCache.delete(ringCache.keys().next().value!);
    ringCache.set(id, ring);
  }
  return ring;
}

function signAuth(parties: Parties, env: Env, context: (unsigned: AuthBlock) => Uint8Array): AuthBlock {
  const local = parties.local.ringKeys[0];
  const peer = parties.peer.ringKeys[0];
  if (!local || !peer) fail('unknown_key', 'no valid ring key for one of the two parties');
  const unsigned: AuthBlock = {
    senderFingerprint: parties.local.fingerprint,
    recipientFingerprint: parties.peer.fingerprint,
    senderRingKey: local.public,
    recipientRingKey: peer,
    created: env.now(),
    messageId: env.random(MESSAGE_ID_LENGTH),
    signature: new Uint8Array(0),
  };
  let ring: PreparedRing;
  try {
    ring = ringFor(local.public, peer);
  } catch (error) {
    // The peer's key equals ours or is not a valid ring member: a typed refusal of this step.
    if (error instanceof RingError) fail('unknown_key', `cannot sign toward this ring key of the correspondent (${error.code})`);
    throw error;
  }
  return signAuthBlock(unsigned, ring, local.secret, context(unsigned), env.random(32));
}

/**
 * Ring-signs an auth block over `context` with `secret`, which must belong to one of its two
 * ring keys: ours when sending, a published one when forging (src/protocol/forge.ts).
 */
export function signAuthBlock(unsigned: AuthBlock, ring: PreparedRing, secret: Uint8Array, context: Uint8Array, random: Uint8Array): AuthBlock {
  try {
    return { ...unsigned, signature: ringSign(ring, secret, context, random) };
  } catch (error) {
    if (error instanceof RingError) fail('unknown_key', `cannot sign with these ring keys (${error.code})`);
    throw error;
  }
}

/**
 * Checks the signature first, so that any tampering gives the one 'auth' error, and only then
 * whether the (authentic) block names the parties and ring keys we expect.
 */
function verifyAuth(parties: Parties, auth: AuthBlock, context: Uint8Array): void {
  const senderKnown = parties.peer.ringKeys.some((k) => equalBytes(k, auth.senderRingKey));
  const recipientKnown = parties.local.ringKeys.some((k) => equalBytes(k.public, auth.recipientRingKey));
  try {
    // Only rings of known keys earn precomputed tables: a stranger must not evict a live session's.
    if (senderKnown && recipientKnown) ringVerify(ringFor(auth.senderRingKey, auth.recipientRingKey), context, auth.signature);
    else ringVerifyKeys(...sortRing(auth.senderRingKey, auth.recipientRingKey), context, auth.signature);
  } catch (error) {
    if (error instanceof RingError) fail('auth', 'authentication failed');
    throw error;
  }
  if (!equalBytes(auth.senderFingerprint, parties.peer.fingerprint) || !equalBytes(auth.recipientFingerprint, parties.local.fingerprint)) {
    fail('unexpected', 'message names another pair of identities');
  }
  if (!senderKnown) fail('unknown_key', 'signed with a ring key that is not a valid key of the correspondent');
  if (!recipientKnown) fail('unknown_key', 'signed for a ring key of ours that is not valid');
}

/** Signed times come from the peer's clock: refuse the absurd ones, and the too old. */
function checkCreated(auth: AuthBlock, now: number, policy: Policy): void {
  if (auth.created > now + policy.maxClockSkewMs) fail('unexpected', 'signed with a time in the future; check the clocks');
  if (auth.created < now - policy.maxAuthAgeMs) fail('expired', 'signed too long ago to be accepted');
}

function rememberAuthId(state: Common, messageId: Uint8Array, policy: Policy): string[] {
  const id = toHex(messageId);
  if (state.seenAuthIds.includes(id)) fail('replay', 'this message was already accepted');
  return [...state.seenAuthIds, id].slice(-policy.maxSeenAuthIds);
}

// ---------------------------------------------------------------- key bookkeeping

function findOurs(keys: KeyState, id: number): OwnDhKey | null {
  const { ours } = keys;
  if (ours.sending.id === id) return ours.sending;
  if (ours.next.id === id) return ours.next;
  for (const r of ours.retired) if (r.key.id === id) return r.key;
  return null;
}

function findTheirs(keys: KeyState, id: number): PeerDhKey | null {
  const { theirs } = keys;
  if (theirs.current.id === id) return theirs.current;
  if (theirs.previous?.id === id) return theirs.previous;
  for (const r of theirs.retired) if (r.key.id === id) return r.key;
  return null;
}

/**
 * An empty plain object for per-pair records ("ourId:theirId" keys), put in V8's dictionary
 * mode at once: pair keys are ever new strings, and giving every fresh record its own chain of
 * hidden classes costs more than all of a step's bookkeeping. Same prototype, same key order.
 */
function emptyRecord<T>(): Record<string, T> {
  const record: Record<string, unknown> = { a: 0, b: 0 };
  delete record.a;
  delete record.b;
  return record as Record<string, T>;
}

/** { ...record, [pair]: value }, built as an emptyRecord(). */
function withEntry<T>(record: Record<string, T>, pair: string, value: T): Record<string, T> {
  const out = emptyRecord<T>();
  for (const key in record) out[key] = record[key]!;
  out[pair] = value;
  return out;
}

/** Retired lists are in retirement order, so what is due is always a prefix. */
function dueCount(list: Retired<unknown>[], now: number, policy: Policy): number {
  let i = 0;
  while (i < list.length && (list.length - i > policy.maxRetired || now - list[i]!.retiredAt >= policy.graceMs)) i++;
  return i;
}

/** Whether id is among the key ids of the first `count` entries of a retired list. */
function idIn(list: Retired<{ id: number }>[], count: number, id: number): boolean {
  for (let i = 0; i < count; i++) if (list[i]!.key.id === id) return true;
  return false;
}

/**
 * Forgets retired keys past the grace window (or over the count bound). Before a pair dies,
 * the MAC key we verified messages with is queued for revelation: we will never accept
 * anything under it again, so publishing it costs nothing and makes the transcript forgeable.
 */
function sweep(keys: KeyState, now: number, policy: Policy, update?: { pair: string; window: ReplayWindow }): { keys: KeyState; wipe: Uint8Array[] } {
  const oursRetired = keys.ours.retired;
  const theirsRetired = keys.theirs.retired;
  const oursDue = dueCount(oursRetired, now, policy);
  const theirsDue = dueCount(theirsRetired, now, policy);
  if (oursDue === 0 && theirsDue === 0) {
    // `update` is the replay window just accepted: the same as sweeping { ...received, [pair]: window }.
    return { keys: update ? { ...keys, received: withEntry(keys.received, update.pair, update.window) } : keys, wipe: NO_WIPE };
  }

  // Pair keys are "ourId:theirId" (pairKey), both decimal: parsed in place, without slicing.
  const alive = (pair: string): boolean => {
    let ourId = 0;
    let i = 0;
    for (; i < pair.length; i++) {
      const c = pair.charCodeAt(i);
      if (c === 58) break; // ':'
      ourId = ourId * 10 + (c - 48);
    }
    let theirId = 0;
    for (i++; i < pair.length; i++) theirId = theirId * 10 + (pair.charCodeAt(i) - 48);
    return !idIn(oursRetired, oursDue, ourId) && !idIn(theirsRetired, theirsDue, theirId);
  };
  const received = emptyRecord<ReplayWindow>();
  const pendingReveals = keys.pendingReveals.slice();
  let updated = false;
  for (const pair in keys.received) {
    let window = keys.received[pair]!;
    if (update && pair === update.pair) {
      window = update.window;
      updated = true;
    }
    if (alive(pair)) received[pair] = window;
    else pendingReveals.push(window.macKey);
  }
  if (update && !updated) {
    if (alive(update.pair)) received[update.pair] = update.window;
    else pendingReveals.push(update.window.macKey);
  }
  const sendCounters = emptyRecord<number>();
  for (const pair in keys.sendCounters) if (alive(pair)) sendCounters[pair] = keys.sendCounters[pair]!;
  const wipe: Uint8Array[] = [];
  for (let i = 0; i < oursDue; i++) wipe.push(oursRetired[i]!.key.secret);
  return {
    keys: {
      ...keys,
      ours: oursDue === 0 ? keys.ours : { ...keys.ours, retired: oursRetired.slice(oursDue) },
      theirs: theirsDue === 0 ? keys.theirs : { ...keys.theirs, retired: theirsRetired.slice(theirsDue) },
      received,
      sendCounters,
      pendingReveals,
    },
    wipe,
  };
}

// ---------------------------------------------------------------- starting

/** A new session as initiator: x1 is signed into the first mail, x2 is announced later. */
export function initiate(env: Env): InitiatingState {
  const first = newOwnKey(1, env);
  return {
    ...common({ share: first.public, created: env.now() }, 0, null),
    kind: 'initiating',
    ours: { first, next: newOwnKey(2, env) },
  };
}

function respondTo(share: Uint8Array, created: number, env: Env, previous: SessionState | null): RespondingState {
  // MAC keys of the replaced session will never be checked again: they go out with the new one.
  const carried = previous && previous.kind !== 'initiating'
    ? [...previous.keys.pendingReveals, ...Object.values(previous.keys.received).map((w) => w.macKey)]
    : [];
  return {
    ...common({ share, created }, created, previous),
    kind: 'responding',
    keys: {
      ours: { sending: newOwnKey(1, env), next: newOwnKey(2, env), retired: [] },
      theirs: { current: { id: 1, public: share }, previous: null, retired: [] },
      sendCounters: {},
      received: {},
      pendingReveals: carried,
      ackDueSince: env.now(),
    },
  };
}

/** Every secret a state holds, for wiping when the whole session is replaced. */
function allSecrets(state: SessionState): Uint8Array[] {
  if (state.kind === 'initiating') return [state.ours.first.secret, state.ours.next.secret];
  const { ours } = state.keys;
  return [ours.sending.secret, ours.next.secret, ...ours.retired.map((r) => r.key.secret)];
}

// ---------------------------------------------------------------- sending

function sealUnder(keys: KeyState, type: SealedMessage['type'], plaintext: Uint8Array, env: Env, replyDh?: Uint8Array) {
  const { sending, next } = keys.ours;
  const { current } = keys.theirs;
  const pair = pairKey(sending.id, current.id);
  const counter = (keys.sendCounters[pair] ?? 0) + 1;
  if (counter > LIMITS.maxCounter) fail('counter_exhausted', 'counter space of this key pair is used up');
  const outbound = deriveDirectionKeys(sending.secret, sending, current, 'send');
  const nonce = env.random(NONCE_LENGTH);
  const key = messageKey(outbound.key, nonce);
  const fields = {
    type,
    senderKeyId: sending.id,
    recipientKeyId: current.id,
    nextDh: next.public,
    counter,
    nonce,
    ciphertext: aesCtr(key, counter, plaintext),
    ...(replyDh ? { senderDh: replyDh } : {}),
  };
  const authenticated = encodeAuthenticated(fields);
  const reveals = keys.pendingReveals.slice(0, LIMITS.maxReveals);
  const bytes = encodeSealed(authenticated, hmacSha256(outbound.macKey, authenticated), reveals);
  const newKeys: KeyState = {
    ...keys,
    sendCounters: withEntry(keys.sendCounters, pair, counter),
    pendingReveals: keys.pendingReveals.slice(reveals.length),
    ackDueSince: null,
  };
  const sentAs: SentAs = { senderKeyId: sending.id, recipientKeyId: current.id, counter };
  return { bytes, keys: newKeys, sentAs, wipe: [outbound.key, outbound.macKey, key] };
}

/**
 * Sends a user message: a first mail while initiating, a reply while responding, a data
 * message once established. The returned state (with the counter advanced) MUST be stored
 * before the bytes leave.
 */
export function send(state: SessionState, parties: Parties, payload: Uint8Array, env: Env, policy: Policy = DEFAULT_POLICY): SendStep {
  if (payload.length > LIMITS.maxPayload) fail('too_large', `payload over the ${LIMITS.maxPayload}-byte limit`);
  if (state.kind === 'initiating') {
    // No copy is kept of a first mail: no NAK can name one (§13.3).
    const dhShare = state.ours.first.public;
    const auth = signAuth(parties, env, (a) => firstContext(a, dhShare, payload));
    const inner = encodeFirstInner({ auth, dhShare, payload });
    return { state, outgoing: { kind: 'first', inner }, wipe: [] };
  }
  const swept = sweep(state.keys, env.now(), policy);
  let sealed;
  if (state.kind === 'responding') {
    const { sending, next } = swept.keys.ours;
    const auth = signAuth(parties, env, (a) => replyContext(a, sending.public, state.origin.share, next.public, payload));
    sealed = sealUnder(swept.keys, MessageType.Reply, encodeReplyPlaintext(auth, payload), env, sending.public);
  } else {
    sealed = sealUnder(swept.keys, payload.length > 0 ? MessageType.Data : MessageType.Ack, payload, env);
  }
  // The re-send copy is the last non-empty message; a NAK recorded for the one before no longer counts.
  const replaced = payload.length > 0;
  const lastSent: LastSent | null = replaced ? { payload: payload.slice(), sentAt: env.now(), sentAs: sealed.sentAs } : state.lastSent;
  const wipe = [...swept.wipe, ...sealed.wipe];
  if (replaced && state.lastSent) wipe.push(state.lastSent.payload);
  return {
    state: { ...state, keys: sealed.keys, lastSent, nakAt: replaced ? null : state.nakAt },
    outgoing: { kind: 'wire', bytes: sealed.bytes },
    wipe,
  };
}

/** True when a new peer share has waited longer than the ack delay without an answer (paper 4.2). */
export function ackDue(state: SessionState | null, now: number, policy: Policy = DEFAULT_POLICY): boolean {
  if (!state || state.kind === 'initiating' || state.keys.ackDueSince === null) return false;
  return now - state.keys.ackDueSince >= policy.ackDelayMs;
}

/** The empty acknowledgement: an ack once established, an empty reply while responding. */
export function acknowledge(state: SessionState, parties: Parties, env: Env, policy: Policy = DEFAULT_POLICY): SendStep {
  if (state.kind === 'initiating') fail('unexpected', 'nothing to acknowledge before the reply');
  return send(state, parties, new Uint8Array(0), env, policy);
}

/** NAK for a message we could not read (we lost our state); sent beside a fresh first mail. */
export function nakFor(bytes: Uint8Array): Uint8Array {
  const { message } = decodeSealed(bytes);
  const nak: Nak = { senderKeyId: message.senderKeyId, recipientKeyId: message.recipientKeyId, counter: message.counter };
  return encodeNak(nak);
}

// ---------------------------------------------------------------- receiving

function unchanged(state: SessionState | null, payload: Uint8Array | null): ReceiveStep {
  return { state, payload: payload && payload.length > 0 ? payload : null, wipe: [], resend: null };
}

/**
 * Whether the cached plaintext goes out again now that the peer proved itself anew (§13.3): only
 * if a NAK named it (nakAt is set only then) shortly before, and the copy is within its window.
 */
function resendAfterRestart(state: Common, now: number, policy: Policy): Uint8Array | null {
  if (state.nakAt === null || state.lastSent === null) return null;
  if (now - state.nakAt > policy.nakResendWindowMs) return null;
  return now - state.lastSent.sentAt <= policy.resendWindowMs ? state.lastSent.payload : null;
}

/** A first mail, already unsealed from its OpenPGP envelope by the caller. */
export function receiveFirst(state: SessionState | null, parties: Parties, inner: Uint8Array, env: Env, policy: Policy = DEFAULT_POLICY): ReceiveStep {
  const { auth, dhShare, payload } = decodeFirstInner(inner);
  verifyAuth(parties, auth, firstContext(auth, dhShare, payload));
  const now = env.now();
  checkCreated(auth, now, policy);
  const seenAuthIds = state ? rememberAuthId(state, auth.messageId, policy) : [toHex(auth.messageId)];

  const restart = (previous: SessionState | null): ReceiveStep => {
    const next = respondTo(dhShare, auth.created, env, previous);
    const resend = previous ? resendAfterRestart(previous, now, policy) : null;
    // The copy belongs to the replaced session: a re-send makes a new one under the new session.
    const wipe = previous ? allSecrets(previous) : [];
    if (previous?.lastSent && !resend) wipe.push(previous.lastSent.payload);
    return {
      state: { ...next, seenAuthIds, nakAt: null, lastSent: null },
      payload: payload.length > 0 ? payload : null,
      wipe,
      resend,
    };
  };

  if (!state) return restart(null);
  // Authentic mail from the peer: whatever a NAK claimed, its sender is alive (§13.2).
  const delivered = (): ReceiveStep => unchanged({ ...state, seenAuthIds, peerCreated: Math.max(state.peerCreated, auth.created), nakAt: null }, payload);
  if (equalBytes(dhShare, state.origin.share)) return delivered();
  if (state.kind === 'initiating') {
    // Crossing first mails: the greater share wins, so both sides agree on one session. A first
    // mail no newer than one the peer already signed is from a session it abandoned.
    const wins = compareBytes(dhShare, state.origin.share) > 0 && auth.created > state.peerCreated;
    return wins ? restart(state) : delivered();
  }
  // Newer than anything the peer signed in this session: it started over (lost its state).
  // Otherwise a late delivery (an earlier session, or the losing side of a crossing).
  return auth.created > state.peerCreated ? restart(state) : delivered();
}

/** A reply, data message or acknowledgement. */
export function receiveSealed(state: SessionState | null, parties: Parties, bytes: Uint8Array, env: Env, policy: Policy = DEFAULT_POLICY): ReceiveStep {
  const { message, authenticated } = decodeSealed(bytes);
  if (!state) fail('no_session', 'no session with this correspondent: it must start again');
  if (state.kind === 'initiating') {
    if (message.type !== MessageType.Reply) fail('no_session', 'a data message before any reply: the session was lost');
    return acceptFirstReply(state, parties, message, authenticated, env, policy);
  }
  return acceptUnderKeys(state, parties, message, authenticated, env, policy);
}

function openSealed(keys: DirectionKeys, message: SealedMessage, authenticated: Uint8Array): Uint8Array {
  if (!equalBytes(hmacSha256(keys.macKey, authenticated), message.mac)) fail('auth', 'authentication failed');
  const key = messageKey(keys.key, message.nonce);
  const plaintext = aesCtr(key, message.counter, message.ciphertext);
  key.fill(0);
  return plaintext;
}

/** A peer's announced next share must be new: one it used before would restart counters under old keys (§8.4). */
function checkFreshShare(keys: KeyState, share: Uint8Array): void {
  const { ours, theirs } = keys;
  const held = [theirs.current, theirs.previous, ...theirs.retired.map((r) => r.key), ours.sending, ours.next, ...ours.retired.map((r) => r.key)];
  if (held.some((k) => k !== null && equalBytes(k.public, share))) fail('unexpected', 'the peer announced a DH share that is already in use');
}

/** The replay-window tag of a message: the first 8 bytes of its nonce, hex. */
function nonceTag(nonce: Uint8Array): string {
  return toHex(nonce.subarray(0, 8));
}

function acceptFirstReply(
  state: InitiatingState,
  parties: Parties,
  message: SealedMessage,
  authenticated: Uint8Array,
  env: Env,
  policy: Policy,
): ReceiveStep {
  const { first, next } = state.ours;
  if (message.recipientKeyId !== first.id || message.senderKeyId !== 1) fail('auth', 'authentication failed');
  const senderDh = message.senderDh!;
  const pairKeys = deriveDirectionKeys(first.secret, first, { id: 1, public: senderDh }, 'receive');
  const plaintext = openSealed(pairKeys, message, authenticated);
  const { auth, payload } = decodeReplyPlaintext(plaintext);
  verifyAuth(parties, auth, replyContext(auth, senderDh, first.public, message.nextDh, payload));
  const now = env.now();
  checkCreated(auth, now, policy);
  const seenAuthIds = rememberAuthId(state, auth.messageId, policy);
  if (equalBytes(message.nextDh, senderDh) || equalBytes(message.nextDh, first.public) || equalBytes(message.nextDh, next.public)) {
    fail('unexpected', 'the peer announced a DH share that is already in use');
  }
  const keys: KeyState = {
    ours: { sending: first, next, retired: [] },
    theirs: { current: { id: 2, public: message.nextDh }, previous: { id: 1, public: senderDh }, retired: [] },
    sendCounters: {},
    received: { [pairKey(first.id, 1)]: { max: message.counter, seen: [message.counter], nonces: [nonceTag(message.nonce)], macKey: pairKeys.macKey } },
    pendingReveals: [],
    ackDueSince: now,
  };
  const { ours: _initiatorKeys, ...rest } = state;
  const established: EstablishedState = { ...rest, kind: 'established', keys, seenAuthIds, peerCreated: Math.max(state.peerCreated, auth.created), nakAt: null };
  return { state: established, payload: payload.length > 0 ? payload : null, wipe: [pairKeys.key], resend: null };
}

function checkWindow(window: ReplayWindow | undefined, counter: number, nonce: Uint8Array, macKey: Uint8Array, policy: Policy): ReplayWindow {
  const tag = nonceTag(nonce);
  if (!window) return { max: counter, seen: [counter], nonces: [tag], macKey };
  if (counter <= window.max - policy.replayWindow) fail('expired', 'counter is older than the replay window');
  const index = window.seen.indexOf(counter);
  if (index >= 0) {
    if (window.nonces[index] === tag) fail('replay', 'this message was already accepted');
    fail('rewound', "another message under a counter already used: the correspondent's state went back (restored or copied)");
  }
  const max = Math.max(window.max, counter);
  const floor = max - policy.replayWindow;
  // seen is ascending: keep what is above the floor, with counter (and its tag) in its place.
  const seen: number[] = [];
  const nonces: string[] = [];
  let placed = false;
  for (let i = 0; i < window.seen.length; i++) {
    const c = window.seen[i]!;
    if (!placed && counter < c) {
      if (counter > floor) {
        seen.push(counter);
        nonces.push(tag);
      }
      placed = true;
    }
    if (c > floor) {
      seen.push(c);
      nonces.push(window.nonces[i]!);
    }
  }
  if (!placed && counter > floor) {
    seen.push(counter);
    nonces.push(tag);
  }
  return { max, seen, nonces, macKey: window.macKey };
}

function acceptUnderKeys(
  state: RespondingState | EstablishedState,
  parties: Parties,
  message: SealedMessage,
  authenticated: Uint8Array,
  env: Env,
  policy: Policy,
): ReceiveStep {
  const now = env.now();
  const swept = sweep(state.keys, now, policy);
  const keys = swept.keys;
  const our = findOurs(keys, message.recipientKeyId);
  const their = findTheirs(keys, message.senderKeyId);
  // Ids we never announced (or the peer never could have) are forgeries; lower ones were forgotten.
  if (!our) fail(message.recipientKeyId > keys.ours.next.id ? 'auth' : 'expired', message.recipientKeyId > keys.ours.next.id ? 'authentication failed' : 'the keys of this message were forgotten');
  if (!their) fail(message.senderKeyId > keys.theirs.current.id ? 'auth' : 'expired', message.senderKeyId > keys.theirs.current.id ? 'authentication failed' : 'the keys of this message were forgotten');
  const pairKeys = deriveDirectionKeys(our.secret, our, their, 'receive');
  const wipe = [...swept.wipe, pairKeys.key];
  if (keys.received[pairKey(our.id, their.id)]) wipe.push(pairKeys.macKey); // a fresh pair keeps it in the window
  let payload = openSealed(pairKeys, message, authenticated);
  // After the MAC, like every `unexpected` (§9.4): only the peer can make it get this far.
  if (message.type === MessageType.Reply && state.kind === 'responding') fail('unexpected', 'a reply while we are the responder');
  let { seenAuthIds, peerCreated } = state;
  if (message.type === MessageType.Reply) {
    // A second reply sent before our first data message reached the responder.
    if (!equalBytes(message.senderDh!, their.public)) fail('auth', 'authentication failed');
    const reply = decodeReplyPlaintext(payload);
    const answered = findOurs(keys, 1);
    if (!answered) fail('expired', 'the keys of this message were forgotten');
    verifyAuth(parties, reply.auth, replyContext(reply.auth, their.public, answered.public, message.nextDh, reply.payload));
    checkCreated(reply.auth, now, policy);
    seenAuthIds = rememberAuthId(state, reply.auth.messageId, policy);
    peerCreated = Math.max(peerCreated, reply.auth.created);
    payload = reply.payload;
  }
  const pair = pairKey(our.id, their.id);
  const window = checkWindow(keys.received[pair], message.counter, message.nonce, pairKeys.macKey, policy);
  if (their.id === keys.theirs.current.id) checkFreshShare(keys, message.nextDh);

  let { ours, theirs } = keys;
  let ackDueSince = keys.ackDueSince;
  // The peer used our newest key: it has it, so our older one can retire (paper 4.2).
  if (our.id === ours.next.id) {
    ours = {
      sending: ours.next,
      next: newOwnKey(ours.next.id + 1, env),
      retired: [...ours.retired, { key: ours.sending, retiredAt: now }],
    };
  }
  // The peer now sends under the key we knew as newest: its announced next key becomes current.
  if (their.id === theirs.current.id) {
    theirs = {
      current: { id: theirs.current.id + 1, public: message.nextDh },
      previous: theirs.current,
      retired: theirs.previous ? [...theirs.retired, { key: theirs.previous, retiredAt: now }] : theirs.retired,
    };
    ackDueSince = ackDueSince ?? now;
  } else if (theirs.previous && their.id === theirs.previous.id) {
    // Still under its older key after we answered the newer one: what we sent was lost or is
    // late, so acknowledge again, or the peer would keep its old key alive (paper 4.2).
    ackDueSince = ackDueSince ?? now;
  }
  const resweep = sweep({ ...keys, ours, theirs, ackDueSince }, now, policy, { pair, window });
  const kind = 'established' as const;
  // The peer used a key of ours newer than the one the copy went under: its state is past that
  // key, so the copy is acknowledged and erased (§13.3).
  let { lastSent } = state;
  if (lastSent && message.recipientKeyId > lastSent.sentAs.senderKeyId) {
    wipe.push(lastSent.payload);
    lastSent = null;
  }
  return {
    state: { ...state, kind, keys: resweep.keys, seenAuthIds, peerCreated, lastSent, nakAt: null },
    payload: payload.length > 0 ? payload : null,
    wipe: [...wipe, ...resweep.wipe],
    resend: null,
  };
}

/**
 * Forgetting on schedule, with no traffic needed: retired keys past the grace window, and
 * the re-send copy of the last plaintext once its window is over. Run it periodically.
 */
export function expire(state: SessionState, env: Env, policy: Policy = DEFAULT_POLICY): { state: SessionState; wipe: Uint8Array[] } {
  const now = env.now();
  const wipe: Uint8Array[] = [];
  let next = state;
  if (state.lastSent && now - state.lastSent.sentAt > policy.resendWindowMs) {
    wipe.push(state.lastSent.payload);
    next = { ...next, lastSent: null, nakAt: null };
  }
  if (next.kind !== 'initiating') {
    const swept = sweep(next.keys, now, policy);
    wipe.push(...swept.wipe);
    if (swept.keys !== next.keys) next = { ...next, keys: swept.keys };
  }
  return { state: next, wipe };
}

/**
 * A NAK says the peer lost its state. It is unauthenticated, so it only marks the session, and
 * only if it names the message we keep a copy of (§13.2): that copy goes out again only if a
 * ring-signed first mail from the same peer follows within nakResendWindowMs. Any other NAK
 * changes nothing.
 */
export function receiveNak(state: SessionState | null, bytes: Uint8Array, env: Env): ReceiveStep {
  const nak = decodeNak(bytes);
  const sentAs = state?.lastSent?.sentAs;
  if (!state || !sentAs || !namesMessage(nak, sentAs)) return unchanged(state, null);
  return { state: { ...state, nakAt: env.now() }, payload: null, wipe: [], resend: null };
}

function namesMessage(nak: Nak, sentAs: SentAs): boolean {
  return nak.senderKeyId === sentAs.senderKeyId && nak.recipientKeyId === sentAs.recipientKeyId && nak.counter === sentAs.counter;
}

export { ProtocolError };

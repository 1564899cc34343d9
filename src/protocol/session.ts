// The session engine's steps (docs/PROTOCOL.md §11): pure, in the ts-mls style. Each step
// takes the state (never mutated), the parties' keys, the input, an injected clock and
// randomness, and returns the new state, what to send and which secret buffers to wipe once the
// new state is stored. Errors are thrown as ProtocolError before anything is returned, so a
// failed step leaves the caller's state exactly as it was. Authentication (§6) is in
// authentication.ts, the keys and per-pair records (§8, §9.1, §10.1) in key-bookkeeping.ts and
// replay-window.ts, the settings and rules of time in policy.ts.
import { compareBytes, equalBytes, toHex } from '../crypto/bytes.ts';
import { checkCreated, rememberAuthId, signAuth, verifyAuth, type Parties } from './authentication.ts';
import { firstContext, replyContext } from './contexts.ts';
import type { Env } from './env.ts';
import { fail } from './errors.ts';
import { carriedReveals, checkFreshShare, findOurs, findTheirs, newOwnKey, rotate, sweep, withEntry } from './key-bookkeeping.ts';
import { aesCtr, deriveDirectionKeys, hmacSha256, messageKey, type DirectionKeys } from './keyschedule.ts';
import { DEFAULT_POLICY, resendAfterRestart, type Policy } from './policy.ts';
import { checkWindow, openWindow } from './replay-window.ts';
import {
  liveOwnSecrets,
  pairKey,
  STATE_VERSION,
  type Common,
  type EstablishedState,
  type InitiatingState,
  type KeyState,
  type LastSent,
  type RespondingState,
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
  MessageType,
  NONCE_LENGTH,
  type Nak,
  type SealedMessage,
} from './wire.ts';

export type Outgoing =
  /** A first mail's inner bytes: the caller seals them to the peer's encryption key. */
  { kind: 'first'; inner: Uint8Array } | { kind: 'wire'; bytes: Uint8Array };

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

/** What every state holds (§11.1); a replacing session keeps the replaced one's ids, copy and NAK times. */
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

// ---------------------------------------------------------------- starting

/** A new session as initiator: x1 is signed into the first mail, x2 is announced later (§8.2). */
export function initiate(env: Env): InitiatingState {
  const first = newOwnKey(1, env);
  return {
    ...common({ share: first.public, created: env.now() }, 0, null),
    kind: 'initiating',
    ours: { first, next: newOwnKey(2, env) },
  };
}

/** The session a first mail starts, replacing `previous`; `reveals` is what it carries over (§10.1, §11.4). */
function respondTo(share: Uint8Array, created: number, env: Env, previous: SessionState | null, reveals: Uint8Array[]): RespondingState {
  return {
    ...common({ share, created }, created, previous),
    kind: 'responding',
    keys: {
      ours: { sending: newOwnKey(1, env), next: newOwnKey(2, env), retired: [] },
      theirs: { current: { id: 1, public: share }, previous: null, retired: [] },
      sendCounters: {},
      received: {},
      pendingReveals: reveals,
      ackDueSince: env.now(),
    },
  };
}

// ---------------------------------------------------------------- sending

/** A sealed message under (`sending`, peer `current`) with the next counter and the queued reveals (§5.5, §8.3, §10.1). */
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
 * message once established (§11.2). The returned state (with the counter advanced) MUST be
 * stored before the bytes leave (§17).
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

/** The empty acknowledgement: an ack once established, an empty reply while responding (§12). */
export function acknowledge(state: SessionState, parties: Parties, env: Env, policy: Policy = DEFAULT_POLICY): SendStep {
  if (state.kind === 'initiating') fail('unexpected', 'nothing to acknowledge before the reply');
  return send(state, parties, new Uint8Array(0), env, policy);
}

/** NAK for a message we could not read (we lost our state); sent beside a fresh first mail (§13.1). */
export function nakFor(bytes: Uint8Array): Uint8Array {
  const { message } = decodeSealed(bytes);
  const nak: Nak = { senderKeyId: message.senderKeyId, recipientKeyId: message.recipientKeyId, counter: message.counter };
  return encodeNak(nak);
}

// ---------------------------------------------------------------- receiving

function unchanged(state: SessionState | null, payload: Uint8Array | null): ReceiveStep {
  return { state, payload: payload && payload.length > 0 ? payload : null, wipe: [], resend: null };
}

/** A first mail, already unsealed from its OpenPGP envelope by the caller: deliver, start, restart (§11.2–11.4). */
export function receiveFirst(
  state: SessionState | null,
  parties: Parties,
  inner: Uint8Array,
  env: Env,
  policy: Policy = DEFAULT_POLICY,
): ReceiveStep {
  const { auth, dhShare, payload } = decodeFirstInner(inner);
  verifyAuth(parties, auth, firstContext(auth, dhShare, payload));
  const now = env.now();
  checkCreated(auth, now, policy);
  const seenAuthIds = state ? rememberAuthId(state, auth.messageId, policy) : [toHex(auth.messageId)];

  const restart = (previous: SessionState | null): ReceiveStep => {
    // MAC keys of the replaced session will never be checked again: they go out with the new one.
    const carried = previous && previous.kind !== 'initiating' ? carriedReveals(previous.keys, policy) : { queue: [], wipe: [] };
    const next = respondTo(dhShare, auth.created, env, previous, carried.queue);
    const resend = previous ? resendAfterRestart(previous, now, policy) : null;
    // The copy belongs to the replaced session: a re-send makes a new one under the new session.
    const wipe = previous ? [...liveOwnSecrets(previous).map((k) => k.secret), ...carried.wipe] : [];
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
  const delivered = (): ReceiveStep =>
    unchanged({ ...state, seenAuthIds, peerCreated: Math.max(state.peerCreated, auth.created), nakAt: null }, payload);
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

/** A reply, data message or acknowledgement, checked in the order of §9.4. */
export function receiveSealed(
  state: SessionState | null,
  parties: Parties,
  bytes: Uint8Array,
  env: Env,
  policy: Policy = DEFAULT_POLICY,
): ReceiveStep {
  const { message, authenticated } = decodeSealed(bytes);
  if (!state) fail('no_session', 'no session with this correspondent: it must start again');
  if (state.kind === 'initiating') {
    if (message.type !== MessageType.Reply) fail('no_session', 'a data message before any reply: the session was lost');
    return acceptFirstReply(state, parties, message, authenticated, env, policy);
  }
  return acceptUnderKeys(state, parties, message, authenticated, env, policy);
}

/** MAC first, in constant time, then decryption (§9.4 step 4). */
function openSealed(keys: DirectionKeys, message: SealedMessage, authenticated: Uint8Array): Uint8Array {
  if (!equalBytes(hmacSha256(keys.macKey, authenticated), message.mac)) fail('auth', 'authentication failed');
  const key = messageKey(keys.key, message.nonce);
  const plaintext = aesCtr(key, message.counter, message.ciphertext);
  key.fill(0);
  return plaintext;
}

/** The first reply while initiating: the session becomes established with the keys of §8.2 (§9.4, last paragraph). */
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
    received: { [pairKey(first.id, 1)]: openWindow(message.counter, message.nonce, pairKeys.macKey) },
    pendingReveals: [],
    ackDueSince: now,
  };
  const { ours: _initiatorKeys, ...rest } = state;
  const established: EstablishedState = {
    ...rest,
    kind: 'established',
    keys,
    seenAuthIds,
    peerCreated: Math.max(state.peerCreated, auth.created),
    nakAt: null,
  };
  return { state: established, payload: payload.length > 0 ? payload : null, wipe: [pairKeys.key], resend: null };
}

/** A sealed message in a responding or established session: §9.4 steps 2 to 8. */
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
  if (!our)
    fail(
      message.recipientKeyId > keys.ours.next.id ? 'auth' : 'expired',
      message.recipientKeyId > keys.ours.next.id ? 'authentication failed' : 'the keys of this message were forgotten',
    );
  if (!their)
    fail(
      message.senderKeyId > keys.theirs.current.id ? 'auth' : 'expired',
      message.senderKeyId > keys.theirs.current.id ? 'authentication failed' : 'the keys of this message were forgotten',
    );
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

  const resweep = sweep(rotate(keys, our.id, their.id, message.nextDh, now, env), now, policy, { pair, window });
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
 * the re-send copy of the last plaintext once its window is over (§9.1, §13.3). Run it periodically.
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

// Session state: a union on `kind` (docs/PROTOCOL.md, "Session state machine").
// Plain data only (numbers, strings, Uint8Array), so stores can serialise it and steps can
// share unchanged parts between the old and the new state.

export const STATE_VERSION = 1;

export interface OwnDhKey {
  id: number;
  secret: Uint8Array;
  public: Uint8Array;
}

export interface PeerDhKey {
  id: number;
  public: Uint8Array;
}

/** A key pair retired by a rotation: still accepted for receiving until the grace window ends. */
export interface Retired<K> {
  key: K;
  retiredAt: number;
}

/** Counters seen under one pair: everything above `max - window` is tracked exactly. */
export interface ReplayWindow {
  max: number;
  seen: number[];
  /**
   * Per entry of `seen`, the first 8 bytes (hex) of that message's nonce: the same counter again
   * is a replay with the same nonce, a rewound sender with another (§9.3).
   */
  nonces: string[];
  /** The receive-direction MAC key of the pair, kept so it can be revealed once the pair is gone. */
  macKey: Uint8Array;
}

export interface KeyState {
  ours: { sending: OwnDhKey; next: OwnDhKey; retired: Retired<OwnDhKey>[] };
  theirs: { current: PeerDhKey; previous: PeerDhKey | null; retired: Retired<PeerDhKey>[] };
  /** Last counter used per pair "ourId:theirId". */
  sendCounters: Record<string, number>;
  /** Pairs under which at least one message was accepted, with their replay windows. */
  received: Record<string, ReplayWindow>;
  /** MAC keys of forgotten pairs, to be revealed in the next outgoing message (paper 4.4); at most maxPendingReveals (§10.1). */
  pendingReveals: Uint8Array[];
  /** When a new peer share arrived that we have not yet answered (paper 4.2). */
  ackDueSince: number | null;
}

/** Which first mail the session grew from: a later, different one restarts it. */
export interface Origin {
  share: Uint8Array;
  created: number;
}

/** The ids and counter a sealed message went out under: what a NAK must echo to name it. */
export interface SentAs {
  senderKeyId: number;
  recipientKeyId: number;
  counter: number;
}

export interface LastSent {
  payload: Uint8Array;
  sentAt: number;
  sentAs: SentAs;
}

export interface Common {
  version: typeof STATE_VERSION;
  origin: Origin;
  /**
   * The newest `created` of the peer's first mails and replies in this session: only a first
   * mail newer than this (by the peer's own clock) restarts the session.
   */
  peerCreated: number;
  /** Message ids of first mails and replies already accepted (hex), newest last. */
  seenAuthIds: string[];
  /**
   * Last non-empty plaintext we sent as a sealed message, kept for a NAK re-send (paper 5.1,
   * PROTOCOL.md §13.3) until the peer acknowledges it or resendWindowMs passes.
   */
  lastSent: LastSent | null;
  /**
   * When a NAK naming `lastSent` arrived (unauthenticated, §13.2). Cleared by any authenticated
   * message from the peer and whenever `lastSent` changes.
   */
  nakAt: number | null;
  /** When we last answered an unreadable message with a NAK and a fresh start. */
  nakSentAt: number | null;
}

export interface InitiatingState extends Common {
  kind: 'initiating';
  ours: { first: OwnDhKey; next: OwnDhKey };
}

export interface RespondingState extends Common {
  kind: 'responding';
  keys: KeyState;
}

export interface EstablishedState extends Common {
  kind: 'established';
  keys: KeyState;
}

export type SessionState = InitiatingState | RespondingState | EstablishedState;

export function pairKey(ourId: number, theirId: number): string {
  return `${ourId}:${theirId}`;
}

/** Own DH secrets still held: the bound the spec promises is 2 + policy.maxRetired. */
export function liveOwnSecrets(state: SessionState): OwnDhKey[] {
  if (state.kind === 'initiating') return [state.ours.first, state.ours.next];
  const { ours } = state.keys;
  return [ours.sending, ours.next, ...ours.retired.map((r) => r.key)];
}

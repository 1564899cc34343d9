// The engine's policy: its settings (docs/PROTOCOL.md §19, "Policy defaults") and the rules of
// time built on them: what is due for forgetting (§9.1), when an ack is due (§12), when the
// re-send copy goes out again (§13.3).
import type { Common, Retired, SessionState } from './state.ts';

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
  /** At most this many MAC keys wait in the queue for revelation; one more is erased instead (§10.1). */
  maxPendingReveals: number;
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
  maxPendingReveals: 1024,
  maxClockSkewMs: 24 * HOUR,
  maxAuthAgeMs: 30 * 24 * HOUR,
  nakIntervalMs: 1 * HOUR,
};

/**
 * How many retired keys are due for forgetting (§9.1): past the grace window, or over the count
 * bound. Retired lists are in retirement order, so what is due is always a prefix.
 */
export function dueCount(list: Retired<unknown>[], now: number, policy: Policy): number {
  let i = 0;
  while (i < list.length && (list.length - i > policy.maxRetired || now - list[i]!.retiredAt >= policy.graceMs)) i++;
  return i;
}

/** True when a new peer share has waited longer than the ack delay without an answer (§12, paper 4.2). */
export function ackDue(state: SessionState | null, now: number, policy: Policy = DEFAULT_POLICY): boolean {
  if (!state || state.kind === 'initiating' || state.keys.ackDueSince === null) return false;
  return now - state.keys.ackDueSince >= policy.ackDelayMs;
}

/**
 * Whether the cached plaintext goes out again now that the peer proved itself anew (§13.3): only
 * if a NAK named it (nakAt is set only then) shortly before, and the copy is within its window.
 */
export function resendAfterRestart(state: Common, now: number, policy: Policy): Uint8Array | null {
  if (state.nakAt === null || state.lastSent === null) return null;
  if (now - state.nakAt > policy.nakResendWindowMs) return null;
  return now - state.lastSent.sentAt <= policy.resendWindowMs ? state.lastSent.payload : null;
}

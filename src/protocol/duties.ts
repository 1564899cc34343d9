// When a session's timed duties fall due, from its state alone (§9.1, §12, §13.3), so a store can
// keep these instants beside the sealed state and a duties run visits only the sessions with
// something due, not every idle correspondent (PROTOCOL.md §17.2).
import type { Policy } from './policy.ts';
import type { SessionState } from './state.ts';

/** The instants the duty timers start from; null where no timer runs. */
export interface DutyClocks {
  /**
   * The older of the oldest retired own key's and the oldest retired peer key's `retiredAt`:
   * `expire` forgets from the head of each list, so the head decides (§9.1). The count bound
   * (`maxRetired`) is applied by the step that retires a key, so a stored state is within it.
   */
  retiredSince: number | null;
  /** When the copy kept for a re-send was sent (§13.3). */
  resendSince: number | null;
  /** When the acknowledgement timer started (§12). */
  ackSince: number | null;
  /** MAC keys of forgotten pairs waiting to be revealed or published (§10). */
  reveals: number;
}

export function dutyClocks(state: SessionState): DutyClocks {
  const resendSince = state.lastSent?.sentAt ?? null;
  if (state.kind === 'initiating') return { retiredSince: null, resendSince, ackSince: null, reveals: 0 };
  const { ours, theirs, ackDueSince, pendingReveals } = state.keys;
  const heads = [ours.retired[0]?.retiredAt, theirs.retired[0]?.retiredAt].filter((t): t is number => t !== undefined);
  return { retiredSince: heads.length > 0 ? Math.min(...heads) : null, resendSince, ackSince: ackDueSince, reveals: pendingReveals.length };
}

/** A duty is due at `now` when its clock is at or before its cutoff. */
export interface DutyCutoffs {
  retired: number;
  resend: number;
  ack: number;
}

export function dutyCutoffs(now: number, policy: Policy): DutyCutoffs {
  return {
    retired: now - policy.graceMs, // now − retired_at ≥ graceMs (§9.1)
    resend: now - policy.resendWindowMs - 1, // erased once now − sent_at > resendWindowMs (§13.3)
    ack: now - policy.ackDelayMs, // the timer has run for ackDelayMs (§12)
  };
}

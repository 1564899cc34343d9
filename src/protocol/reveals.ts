// What a session owes publication (PROTOCOL.md §10.3): the MAC keys it queued for in-band
// revelation (§10.1) that have not gone out. Taking them is a step like the engine's others, a
// pure function from state to new state, and saving its result is a compare-and-swap like
// Conversation's, so session state changes nowhere outside src/protocol/.
import type { Env } from './env.ts';
import { DEFAULT_POLICY, type Policy } from './policy.ts';
import { expire } from './session.ts';
import type { SessionState } from './state.ts';
import type { StoredSession } from './store.ts';

export interface RevealStep {
  /** The state with what was due forgotten and the queued MAC keys taken out. */
  state: SessionState;
  /** The MAC keys for a bundle, in queue order. */
  reveals: Uint8Array[];
  /** Forgotten secrets of the state taken in: wipe once the new state is stored (or dropped). */
  wipe: Uint8Array[];
}

/**
 * Forgets first what is due, as any load does (its MAC keys join the queue, §9.1, §10.1), then
 * takes out every queued MAC key. A state without any gives `reveals: []` and is otherwise
 * `expire`'s result.
 */
export function takeReveals(state: SessionState, env: Env, policy: Policy = DEFAULT_POLICY): RevealStep {
  const expired = expire(state, env, policy);
  const next = expired.state;
  if (next.kind === 'initiating' || next.keys.pendingReveals.length === 0) return { state: next, reveals: [], wipe: expired.wipe };
  return { state: { ...next, keys: { ...next.keys, pendingReveals: [] } }, reveals: next.keys.pendingReveals, wipe: expired.wipe };
}

/**
 * The synchronous side of a session store, for use inside the caller's own transaction:
 * AccountStore's loadSession and saveSession, the same compare-and-swap its SessionStore.save
 * (what Conversation commits through) runs.
 */
export interface SessionTransactionStore {
  loadSession(local: string, peer: string): StoredSession | null;
  saveSession(local: string, peer: string, state: SessionState, expected: number): number;
}

export type StoredReveals =
  /** Nothing stored, or nothing queued: nothing saved. */
  | { kind: 'none'; wipe: Uint8Array[] }
  /** More queued than `room`: nothing saved, they wait for the next bundle. */
  | { kind: 'no_room'; wipe: Uint8Array[] }
  /** Taken out, and the session saved without them. */
  | { kind: 'taken'; reveals: Uint8Array[]; wipe: Uint8Array[] };

/**
 * Loads the session of `local` with `peer`, takes its reveals (takeReveals) if at most `room`
 * are queued, and saves it without them (ProtocolError 'state_conflict' if it changed since the
 * load). Run it inside the transaction that records the bundle, so a MAC key is never both in a
 * bundle and still queued, nor lost. The caller wipes `wipe` once that transaction is over.
 */
export function takeStoredReveals(
  store: SessionTransactionStore,
  local: string,
  peer: string,
  room: number,
  env: Env,
  policy: Policy = DEFAULT_POLICY,
): StoredReveals {
  const stored = store.loadSession(local, peer);
  if (!stored) return { kind: 'none', wipe: [] };
  const step = takeReveals(stored.state, env, policy);
  if (step.reveals.length === 0) return { kind: 'none', wipe: step.wipe };
  if (step.reveals.length > room) return { kind: 'no_room', wipe: step.wipe };
  store.saveSession(local, peer, step.state, stored.revision);
  return { kind: 'taken', reveals: step.reveals, wipe: step.wipe };
}

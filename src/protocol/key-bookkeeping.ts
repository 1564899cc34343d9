// The keys a responding or established session holds and its per-pair records (docs/PROTOCOL.md
// §8.1): finding a message's keys, rotating on receipt (§8.4), forgetting what is due (§9.1)
// and queuing the MAC keys of forgotten pairs for revelation (§10.1). Pure: new KeyState out,
// secrets to wipe beside it.
import { equalBytes } from '../crypto/bytes.ts';
import type { Env } from './env.ts';
import { fail } from './errors.ts';
import { dueCount, type Policy } from './policy.ts';
import type { KeyState, OwnDhKey, PeerDhKey, ReplayWindow, Retired } from './state.ts';

const MAX_KEY_ID = 0xffffffff;
/** Shared by steps that wipe nothing: never pushed to (callers only spread or iterate it). */
const NO_WIPE: Uint8Array[] = [];

/** A new own DH key; ids stop at 2^32 − 1 (§8.3, §19). */
export function newOwnKey(id: number, env: Env): OwnDhKey {
  if (id > MAX_KEY_ID) fail('counter_exhausted', 'key ids of this session are used up: start a new session');
  return { id, ...env.newDhKey() };
}

export function findOurs(keys: KeyState, id: number): OwnDhKey | null {
  const { ours } = keys;
  if (ours.sending.id === id) return ours.sending;
  if (ours.next.id === id) return ours.next;
  for (const r of ours.retired) if (r.key.id === id) return r.key;
  return null;
}

export function findTheirs(keys: KeyState, id: number): PeerDhKey | null {
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
export function withEntry<T>(record: Record<string, T>, pair: string, value: T): Record<string, T> {
  const out = emptyRecord<T>();
  for (const key in record) out[key] = record[key]!;
  out[pair] = value;
  return out;
}

/** Whether id is among the key ids of the first `count` entries of a retired list. */
function idIn(list: Retired<{ id: number }>[], count: number, id: number): boolean {
  for (let i = 0; i < count; i++) if (list[i]!.key.id === id) return true;
  return false;
}

/**
 * Forgets retired keys past the grace window (or over the count bound, §9.1). Before a pair dies,
 * the MAC key we verified messages with is queued for revelation (§10.1): we will never accept
 * anything under it again, so publishing it costs nothing and makes the transcript forgeable.
 */
export function sweep(
  keys: KeyState,
  now: number,
  policy: Policy,
  update?: { pair: string; window: ReplayWindow },
): { keys: KeyState; wipe: Uint8Array[] } {
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
  const wipe: Uint8Array[] = [];
  let updated = false;
  for (const pair in keys.received) {
    let window = keys.received[pair]!;
    if (update && pair === update.pair) {
      window = update.window;
      updated = true;
    }
    if (alive(pair)) received[pair] = window;
    else queueReveal(pendingReveals, window.macKey, wipe, policy);
  }
  if (update && !updated) {
    if (alive(update.pair)) received[update.pair] = update.window;
    else queueReveal(pendingReveals, update.window.macKey, wipe, policy);
  }
  const sendCounters = emptyRecord<number>();
  for (const pair in keys.sendCounters) if (alive(pair)) sendCounters[pair] = keys.sendCounters[pair]!;
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

/**
 * Queues a forgotten pair's MAC key for revelation (§10.1) or, once the queue holds
 * maxPendingReveals keys, erases it (§11.6). Only a correspondent that makes us forget pairs
 * faster than we write fills the queue, and the keys it loses authenticate its own messages.
 */
function queueReveal(queue: Uint8Array[], macKey: Uint8Array, wipe: Uint8Array[], policy: Policy): void {
  if (queue.length < policy.maxPendingReveals) queue.push(macKey);
  else wipe.push(macKey);
}

/**
 * The queue a replacing session starts with (§10.1, §11.4): the replaced session's queue, then
 * the MAC keys of its accepted pairs, up to the same bound; what does not fit is to be wiped.
 */
export function carriedReveals(keys: KeyState, policy: Policy): { queue: Uint8Array[]; wipe: Uint8Array[] } {
  const queue = keys.pendingReveals.slice(0, policy.maxPendingReveals);
  const wipe = keys.pendingReveals.slice(policy.maxPendingReveals);
  for (const pair in keys.received) queueReveal(queue, keys.received[pair]!.macKey, wipe, policy);
  return { queue, wipe };
}

/** A peer's announced next share must be new: one it used before would restart counters under old keys (§8.4). */
export function checkFreshShare(keys: KeyState, share: Uint8Array): void {
  const { ours, theirs } = keys;
  const held = [
    theirs.current,
    theirs.previous,
    ...theirs.retired.map((r) => r.key),
    ours.sending,
    ours.next,
    ...ours.retired.map((r) => r.key),
  ];
  if (held.some((k) => k !== null && equalBytes(k.public, share)))
    fail('unexpected', 'the peer announced a DH share that is already in use');
}

/**
 * The keys after an accepted message under (ourId, theirId) that announced `nextDh` (§8.4), with
 * the ack timer started where the peer needs an answer (§12).
 */
export function rotate(keys: KeyState, ourId: number, theirId: number, nextDh: Uint8Array, now: number, env: Env): KeyState {
  let { ours, theirs } = keys;
  let ackDueSince = keys.ackDueSince;
  // The peer used our newest key: it has it, so our older one can retire (paper 4.2).
  if (ourId === ours.next.id) {
    ours = {
      sending: ours.next,
      next: newOwnKey(ours.next.id + 1, env),
      retired: [...ours.retired, { key: ours.sending, retiredAt: now }],
    };
  }
  // The peer now sends under the key we knew as newest: its announced next key becomes current.
  if (theirId === theirs.current.id) {
    theirs = {
      current: { id: theirs.current.id + 1, public: nextDh },
      previous: theirs.current,
      retired: theirs.previous ? [...theirs.retired, { key: theirs.previous, retiredAt: now }] : theirs.retired,
    };
    ackDueSince = ackDueSince ?? now;
  } else if (theirs.previous && theirId === theirs.previous.id) {
    // Still under its older key after we answered the newer one: what we sent was lost or is
    // late, so acknowledge again, or the peer would keep its old key alive (paper 4.2).
    ackDueSince = ackDueSince ?? now;
  }
  return { ...keys, ours, theirs, ackDueSince };
}

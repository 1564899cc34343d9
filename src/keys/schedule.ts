// The rotation schedule of short-lived keys, as a pure function of the key records and the time.
//
// Both kinds follow the same timeline (defaults in parentheses):
//
//   created/notBefore ── rotateEvery (7 d): a successor is created ── notAfter (14 d after creation)
//     encryption: decryption secret destroyed at notAfter + acceptanceGrace (3 d)
//     ring:       secret published at notAfter + publicationGrace (7 d), never destroyed before
//                 it is published (then the local copy is dropped: it is public anyway)
//
// publicationGrace > acceptanceGrace is enforced: correspondents accept a ring key until
// notAfter + acceptanceGrace, so when its secret becomes public nobody accepts it any more, and
// every mail it ever signed becomes forgeable by anyone (the deniability the paper asks for).
// validFor >= rotateEvery so that there is always a valid key of each kind.
import { KeyError } from './errors.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;

export type ShortLivedKind = 'encryption' | 'ring';
export const SHORT_LIVED_KINDS: readonly ShortLivedKind[] = ['encryption', 'ring'];

/** What the store keeps about one own short-lived key (no secrets). Times in ms since the epoch. */
export interface ShortLivedKeyRecord {
  kind: ShortLivedKind;
  /** Encryption: subkey fingerprint (lowercase hex). Ring: hex of the ring public key. */
  id: string;
  created: number;
  notBefore: number;
  notAfter: number;
  /** The secret no longer exists (decryption secret wiped; ring secret dropped after publication). */
  destroyed: boolean;
  /** Ring keys only: the secret has been published. Always false for encryption keys. */
  published: boolean;
}

export interface Schedule {
  /** A new key of each kind when the newest is this old. */
  rotateEveryMs: number;
  /** Lifetime of each key: notAfter = notBefore + validFor. */
  validForMs: number;
  /** After notAfter, mail to/from the key is still accepted this long (delayed mail). */
  acceptanceGraceMs: number;
  /** After notAfter, ring secrets are published after this long. Must exceed acceptanceGraceMs. */
  publicationGraceMs: number;
}

export const DEFAULT_SCHEDULE: Readonly<Schedule> = Object.freeze({
  rotateEveryMs: 7 * DAY_MS,
  validForMs: 14 * DAY_MS,
  acceptanceGraceMs: 3 * DAY_MS,
  publicationGraceMs: 7 * DAY_MS,
});

/** Hard cap on any configured period: ten years. */
const MAX_PERIOD_MS = 3650 * DAY_MS;

/** Fills defaults and checks the constraints; throws KeyError('bad_schedule') with the reason. */
export function validateSchedule(partial: Partial<Schedule> = {}): Schedule {
  const schedule: Schedule = { ...DEFAULT_SCHEDULE, ...partial };
  for (const [name, value] of Object.entries(schedule)) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_PERIOD_MS) {
      throw new KeyError('bad_schedule', `${name} must be an integer number of milliseconds between 0 and ten years`);
    }
  }
  if (schedule.rotateEveryMs < 60_000) throw new KeyError('bad_schedule', 'rotateEveryMs must be at least one minute');
  if (schedule.validForMs < schedule.rotateEveryMs) {
    throw new KeyError('bad_schedule', 'validForMs must be at least rotateEveryMs, or there would be times without a valid key');
  }
  if (schedule.validForMs % 1000 !== 0) {
    throw new KeyError('bad_schedule', 'validForMs must be whole seconds (OpenPGP key expiration is in seconds)');
  }
  if (schedule.publicationGraceMs <= schedule.acceptanceGraceMs) {
    throw new KeyError(
      'bad_schedule',
      'publicationGraceMs must be longer than acceptanceGraceMs: a ring secret must never be public while the key is still accepted',
    );
  }
  return schedule;
}

export interface PlannedKey {
  kind: ShortLivedKind;
  notBefore: number;
  notAfter: number;
}

export interface PlannedAction {
  kind: ShortLivedKind;
  id: string;
}

export interface Plan {
  /** Keys to create now (at most one per kind). */
  create: PlannedKey[];
  /** Records whose secret must be destroyed now: expired encryption keys past the grace, published ring keys. */
  destroy: PlannedAction[];
  /** Ring keys whose secret is due for publication. */
  publish: PlannedAction[];
}

export interface PlanOptions {
  /** Create a key of these kinds now whatever the schedule says (`offrecord keys rotate`); true = both. */
  rotateNow?: boolean | readonly ShortLivedKind[];
}

const isLive = (k: ShortLivedKeyRecord): boolean => !k.destroyed && !(k.kind === 'ring' && k.published);
const isValidAt = (k: ShortLivedKeyRecord, now: number): boolean => isLive(k) && k.notBefore <= now && now < k.notAfter;

/** Newest first: by notBefore, then creation, then id (a total order, so results are stable). */
function newestFirst(a: ShortLivedKeyRecord, b: ShortLivedKeyRecord): number {
  return b.notBefore - a.notBefore || b.created - a.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function checkRecords(ownKeys: readonly ShortLivedKeyRecord[], now: number): void {
  if (!Number.isSafeInteger(now) || now < 0) throw new KeyError('bad_argument', 'now must be a non-negative integer (ms)');
  for (const k of ownKeys) {
    if (k.kind !== 'encryption' && k.kind !== 'ring') throw new KeyError('bad_argument', 'unknown short-lived key kind');
    if (!(k.notBefore < k.notAfter)) throw new KeyError('bad_argument', `key ${k.id}: notBefore must precede notAfter`);
  }
}

/** What is due at `now`. Pure: the caller carries the actions out and updates the records. */
export function plan(
  ownKeys: readonly ShortLivedKeyRecord[],
  now: number,
  schedule: Schedule = DEFAULT_SCHEDULE,
  options: PlanOptions = {},
): Plan {
  const s = validateSchedule(schedule);
  checkRecords(ownKeys, now);
  const forced = new Set<ShortLivedKind>(
    options.rotateNow === true ? SHORT_LIVED_KINDS : options.rotateNow === false || !options.rotateNow ? [] : options.rotateNow,
  );
  const result: Plan = { create: [], destroy: [], publish: [] };
  for (const kind of SHORT_LIVED_KINDS) {
    const ofKind = ownKeys.filter((k) => k.kind === kind);
    const live = ofKind.filter(isLive);
    const newestCreated = live.reduce((max, k) => Math.max(max, k.created), -Infinity);
    const anyValid = live.some((k) => isValidAt(k, now));
    if (forced.has(kind) || !anyValid || now - newestCreated >= s.rotateEveryMs) {
      result.create.push({ kind, notBefore: now, notAfter: now + s.validForMs });
    }
    for (const k of [...ofKind].sort(newestFirst).reverse()) {
      if (k.destroyed) continue;
      if (kind === 'encryption') {
        if (now >= k.notAfter + s.acceptanceGraceMs) result.destroy.push({ kind, id: k.id });
      } else if (k.published) {
        result.destroy.push({ kind, id: k.id });
      } else if (now >= k.notAfter + s.publicationGraceMs) {
        result.publish.push({ kind, id: k.id });
      }
    }
  }
  return result;
}

/** Keys to advertise and use at `now` (valid, live), current (newest) first. */
export function currentKeys(ownKeys: readonly ShortLivedKeyRecord[], now: number, kind?: ShortLivedKind): ShortLivedKeyRecord[] {
  checkRecords(ownKeys, now);
  return ownKeys.filter((k) => (kind === undefined || k.kind === kind) && isValidAt(k, now)).sort(newestFirst);
}

/**
 * Keys under which incoming mail is still accepted at `now`: the valid ones (current first),
 * then those expired less than acceptanceGrace ago. For LocalParty.ringKeys and decryption.
 */
export function acceptableKeys(
  ownKeys: readonly ShortLivedKeyRecord[],
  now: number,
  schedule: Schedule = DEFAULT_SCHEDULE,
  kind?: ShortLivedKind,
): ShortLivedKeyRecord[] {
  const s = validateSchedule(schedule);
  const valid = currentKeys(ownKeys, now, kind);
  const inGrace = ownKeys
    .filter((k) => (kind === undefined || k.kind === kind) && isLive(k) && k.notAfter <= now && now < k.notAfter + s.acceptanceGraceMs)
    .sort(newestFirst);
  return [...valid, ...inGrace];
}

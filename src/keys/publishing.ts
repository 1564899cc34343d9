// Publishing (docs/PROTOCOL.md §10.3, §15.2, §5.7): expired ring secrets and MAC keys that never
// went out in band, written as a BUNDLE to a target (bundle-targets.ts). Reading and checking a
// correspondent's bundles is bundle-reading.ts and bundle-verification.ts.
//
// What is published, and only this: ring secrets whose key expired more than the publication
// grace ago (nobody accepts the key any more, §15), and the MAC keys of forgotten pairs still
// queued for in-band revelation (the session's reveal queue: nobody accepts them either, §10.1).
// Decryption secrets, DH secrets and session keys never enter a bundle; a MAC key is a one-way
// hash of an encryption key (keyschedule.ts macKeyFor) and does not reveal it.
//
// Crash safety: one transaction records the bundle (publications table), marks its ring keys
// published and takes its MAC keys out of the sessions; only then is it handed to the target,
// and marked delivered once the target has it. A crash in between leaves a recorded, undelivered
// bundle that the next run delivers again under the same name: an item is never in two bundles
// and never lost. Targets must treat a repeated name as the same bundle.
//
// The MAC keys come out of the sessions through the protocol's own step (takeStoredReveals,
// src/protocol/reveals.ts): only src/protocol/ changes session state.
import * as openpgp from 'openpgp';
import { toHex } from '../crypto/bytes.ts';
import { forgetKeyMaterial, sha256 } from '../protocol/keyschedule.ts';
import { dutyCutoffs } from '../protocol/duties.ts';
import { takeStoredReveals } from '../protocol/reveals.ts';
import { systemEnv } from '../protocol/env.ts';
import { DEFAULT_POLICY, type Policy } from '../protocol/policy.ts';
import { encodeBundle, LIMITS, type SecretRingKey } from '../protocol/wire.ts';
import type { AccountStore } from '../store/account-store.ts';
import type { PublicationTarget } from './bundle-targets.ts';
import { PublicationError } from './errors.ts';
import { toRecord } from './own-keys.ts';
import { plan, validateSchedule, type Schedule } from './schedule.ts';
import { systemClock } from '../protocol/env.ts';

export interface PublishOptions {
  store: AccountStore;
  target: PublicationTarget;
  /** ms since the epoch; defaults to the system clock. */
  clock?: () => number;
  schedule?: Partial<Schedule>;
  /** The session policy, for forgetting what is due before taking its MAC keys (default DEFAULT_POLICY). */
  policy?: Policy;
}

export interface PublishedBundleInfo {
  name: string;
  created: number;
  ringKeys: number;
  macKeys: number;
  location: string;
}

export interface PublishResult {
  /** The bundle made by this run, if anything was due. */
  bundle: PublishedBundleInfo | null;
  /** Bundles of earlier runs that had not reached their target and now did. */
  redelivered: PublishedBundleInfo[];
}

interface Taken {
  name: string;
  bundle: Uint8Array;
  created: number;
  ringKeys: number;
  macKeys: number;
}

/** The ring keys due for publication at `now`, with their secrets (oldest first, at most the bundle limit). */
function dueRingKeys(store: AccountStore, now: number, schedule: Schedule): { id: string; key: SecretRingKey }[] {
  const rows = store.ownKeys('ring');
  const due = new Set(plan(rows.map(toRecord), now, schedule).publish.map((p) => p.id));
  return rows
    .filter((r) => due.has(r.id) && r.secret !== null && r.secret.length === 32)
    .slice(0, LIMITS.maxBundleRingKeys)
    .map((r) => ({
      id: r.id,
      key: { public: r.public, secret: r.secret!, notBefore: r.notBefore, notAfter: r.notAfter, certification: r.certification },
    }));
}

/**
 * Publishes what is due at the clock's time to `target`: first any bundle an earlier run recorded
 * but did not deliver, then a new one if anything is due. The watcher daemon calls this on a
 * schedule; `offrecord keys publish` once. Throws PublicationError('target') if the target fails
 * (what was recorded stays recorded, and goes out with the next run).
 */
export async function publishDue(options: PublishOptions): Promise<PublishResult> {
  const { store, target } = options;
  const clock = options.clock ?? systemClock;
  const schedule = validateSchedule(options.schedule);
  const policy = options.policy ?? DEFAULT_POLICY;
  const identity = store.identity();
  if (!identity) throw new PublicationError('no_identity', 'this account has no identity yet');
  const certificate = (await openpgp.readKey({ armoredKey: identity.certificate })).toPublic().write();
  const now = clock();
  const env = { ...systemEnv, now: () => now };
  const wipe: Uint8Array[] = [];

  let taken: Taken | null;
  try {
    taken = store.transaction((): Taken | null => {
      const ring = dueRingKeys(store, now, schedule);
      const macKeys = new Map<string, Uint8Array>();
      // Only sessions with MAC keys queued, or about to be once a retired key is forgotten,
      // from the store's index (PROTOCOL.md §17.2): idle correspondents are not opened.
      for (const peer of store.sessionsRevealing(identity.fingerprint, dutyCutoffs(now, policy))) {
        const session = takeStoredReveals(store, identity.fingerprint, peer, LIMITS.maxBundleMacKeys - macKeys.size, env, policy);
        wipe.push(...session.wipe);
        if (session.kind === 'no_room') break; // the rest next time
        if (session.kind === 'taken') for (const key of session.reveals) macKeys.set(toHex(key), key);
      }
      if (ring.length === 0 && macKeys.size === 0) return null;
      const bundle = encodeBundle({
        identity: Buffer.from(identity.fingerprint, 'hex'),
        created: now,
        certificate,
        ringKeys: ring.map((r) => r.key),
        macKeys: [...macKeys.values()],
      });
      const name = `bundle-${now}-${toHex(sha256(bundle)).slice(0, 16)}.offrecord`;
      store.addPublication({ name, created: now, ringKeys: ring.length, macKeys: macKeys.size, bundle });
      for (const r of ring) store.markPublished(r.id, now);
      return { name, bundle, created: now, ringKeys: ring.length, macKeys: macKeys.size };
    });
  } finally {
    // The loaded copies of forgotten DH secrets: stored or not, nothing needs them any more.
    forgetKeyMaterial(wipe);
  }

  const result: PublishResult = { bundle: null, redelivered: [] };
  for (const p of store.publications({ undelivered: true })) {
    const location = await target.deliver(identity.fingerprint, p.name, p.bundle);
    store.markPublicationDelivered(p.name, location, clock());
    const info = { name: p.name, created: p.created, ringKeys: p.ringKeys, macKeys: p.macKeys, location };
    if (taken && p.name === taken.name) result.bundle = info;
    else result.redelivered.push(info);
  }
  return result;
}

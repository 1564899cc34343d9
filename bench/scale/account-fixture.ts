// A real account with many correspondents, made fast: `offrecord init` (the compiled CLI) in a
// home of its own, then sessions built once by the engine directly (a real first mail, reply and
// data both ways: pure steps, no OpenPGP, no mail) and written N times through the store API,
// each under a correspondent of its own (a pin, a ring key). Seconds where mail would take hours.
// Used by the correspondents and publication curves.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toHex } from '../../src/crypto/bytes.ts';
import { generateRingSecret, ringPublicKey } from '../../src/crypto/ring.ts';
import type { Parties } from '../../src/protocol/authentication.ts';
import { systemEnv } from '../../src/protocol/env.ts';
import { initiate, receiveFirst, receiveSealed, send } from '../../src/protocol/session.ts';
import type { EstablishedState, SessionState } from '../../src/protocol/state.ts';
import { defaultStorePath, openAccountStore, type AccountStore } from '../../src/store/index.ts';
import { median } from '../harness.ts';

export const ACCOUNT = 'bob@example.test';
const PASSPHRASE = 'scale bench passphrase';
export const CLI = join(import.meta.dirname, '..', '..', 'dist', 'cli', 'offrecord.js');
export const HOUR = 3_600_000;

export interface Home {
  dir: string;
  env: NodeJS.ProcessEnv;
}

/** A fresh home with Bob's account in it, made by `offrecord init`. */
export function makeHome(): Home {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-scale-'));
  const env = {
    ...process.env,
    HOME: dir,
    XDG_DATA_HOME: join(dir, 'data'),
    XDG_CONFIG_HOME: join(dir, 'config'),
    OFFRECORD_PASSPHRASE: PASSPHRASE,
  };
  const init = spawnSync(process.execPath, [CLI, 'init', '--email', ACCOUNT, '--name', 'Bob'], { env, encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`offrecord init failed: ${init.stderr}`);
  return { dir, env };
}

export function storePath(home: Home): string {
  return defaultStorePath(ACCOUNT, home.env);
}

export function openStore(home: Home): AccountStore {
  return openAccountStore(storePath(home), { passphrase: PASSPHRASE, kdfPlace: 'child', checkpointAfterSave: false });
}

/** Bob's side of a real session: first mail, reply, then data both ways (pure engine steps). */
export function templateState(): EstablishedState {
  const party = () => {
    const secret = generateRingSecret();
    return { fingerprint: crypto.getRandomValues(new Uint8Array(20)), secret, public: ringPublicKey(secret) };
  };
  const a = party();
  const b = party();
  const alice: Parties = {
    local: { fingerprint: a.fingerprint, ringKeys: [{ secret: a.secret, public: a.public }] },
    peer: { fingerprint: b.fingerprint, ringKeys: [b.public] },
  };
  const bob: Parties = {
    local: { fingerprint: b.fingerprint, ringKeys: [{ secret: b.secret, public: b.public }] },
    peer: { fingerprint: a.fingerprint, ringKeys: [a.public] },
  };
  const text = (s: string) => new TextEncoder().encode(s);
  const first = send(initiate(systemEnv), alice, text('hello'), systemEnv);
  if (first.outgoing.kind !== 'first') throw new Error('expected a first mail');
  let bobState: SessionState = receiveFirst(null, bob, first.outgoing.inner, systemEnv).state!;
  let aliceState: SessionState = first.state;
  for (let i = 0; i < 3; i++) {
    const reply = send(bobState, bob, text(`b${i}`), systemEnv);
    bobState = reply.state;
    if (reply.outgoing.kind !== 'wire') throw new Error('expected a sealed message');
    aliceState = receiveSealed(aliceState, alice, reply.outgoing.bytes, systemEnv).state!;
    const data = send(aliceState, alice, text(`a${i}`), systemEnv);
    aliceState = data.state;
    if (data.outgoing.kind !== 'wire') throw new Error('expected a sealed message');
    bobState = receiveSealed(bobState, bob, data.outgoing.bytes, systemEnv).state!;
  }
  if (bobState.kind !== 'established') throw new Error(`Bob's session is ${bobState.kind}`);
  return bobState;
}

export interface Variant {
  /** An acknowledgement overdue by an hour. */
  ackDue?: boolean;
  /** MAC keys queued for publication. */
  reveals?: number;
}

/** The template with nothing due at `now`, but for what `variant` asks. */
export function variant(template: EstablishedState, now: number, v: Variant = {}): EstablishedState {
  const { keys } = template;
  return {
    ...template,
    lastSent: template.lastSent && { ...template.lastSent, sentAt: now },
    keys: {
      ...keys,
      ackDueSince: v.ackDue ? now - 2 * HOUR : null,
      pendingReveals: Array.from({ length: v.reveals ?? 0 }, () => crypto.getRandomValues(new Uint8Array(32))),
      ours: { ...keys.ours, retired: keys.ours.retired.map((r) => ({ ...r, retiredAt: now })) },
      theirs: { ...keys.theirs, retired: keys.theirs.retired.map((r) => ({ ...r, retiredAt: now })) },
    },
  };
}

/** Correspondents `from`..`to`-1, each with a pin, a ring key and a session, in one transaction. */
export function addCorrespondents(home: Home, template: EstablishedState, from: number, to: number, v: Variant = {}): void {
  const store = openStore(home);
  const now = Date.now();
  try {
    const identity = store.identity()!;
    store.transaction(() => {
      for (let i = from; i < to; i++) {
        const fingerprint = toHex(crypto.getRandomValues(new Uint8Array(20)));
        // Bob's own certificate stands in for each correspondent's: only its size and its
        // encryption subkey (for first mails, none here) matter to what is measured.
        store.pinPeer({ address: `c${i}@example.test`, fingerprint, certificate: identity.certificate, firstSeen: now });
        store.putPeerKey({
          fingerprint,
          kind: 'ring',
          public: ringPublicKey(generateRingSecret()),
          notBefore: now - 24 * HOUR,
          notAfter: now + 14 * 24 * HOUR,
          certification: new Uint8Array(64),
          seenAt: now,
        });
        store.saveSession(identity.fingerprint, fingerprint, variant(template, now, v), 0);
      }
    });
  } finally {
    store.close();
  }
}

export const timed = async (work: () => Promise<unknown> | unknown): Promise<number> => {
  const start = performance.now();
  await work();
  return performance.now() - start;
};

/**
 * Wall milliseconds of `offrecord ARGS` as a process, the median of 3. A shell starts it and
 * times it: spawned straight from this process, which holds the fixture (hundreds of MB), each
 * fork would copy this process's page tables, a cost a user's shell does not pay.
 */
export function processMs(home: Home, args: string[]): number {
  const times = Array.from({ length: 3 }, () => {
    const run = spawnSync(
      'bash',
      ['-c', 'TIMEFORMAT=%3R; { time "$@" > /dev/null 2> "$OFFRECORD_BENCH_ERR"; } 2>&1', 'offrecord', process.execPath, CLI, ...args],
      { env: { ...home.env, OFFRECORD_BENCH_ERR: join(home.dir, 'process-stderr') }, encoding: 'utf8' },
    );
    const seconds = Number(run.stdout.trim().split('\n').at(-1));
    if (run.status !== 0 || !Number.isFinite(seconds)) throw new Error(`offrecord ${args.join(' ')} failed: ${run.stdout}${run.stderr}`);
    return seconds * 1000;
  });
  return median(times);
}

// The session state stays bounded whatever the correspondent sends (docs/PROTOCOL.md §11.6):
// for every list and map in it, a correspondent that tries to grow it, driven through the pure
// steps (no OpenPGP: first mails go in as their inner form).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { encodeSessionState } from '../../src/store/codec.ts';
import type { Parties } from '../../src/protocol/authentication.ts';
import { DEFAULT_POLICY } from '../../src/protocol/policy.ts';
import { initiate, receiveFirst, receiveSealed, send, type SendStep } from '../../src/protocol/session.ts';
import type { EstablishedState, InitiatingState, OwnDhKey, PeerDhKey, SessionState } from '../../src/protocol/state.ts';
import { identity, partiesFor, str, TestEnv, text } from '../../kit/parties.ts';

const wire = (step: SendStep): Uint8Array => {
  if (step.outgoing.kind !== 'wire') assert.fail('expected a sealed message');
  return step.outgoing.bytes;
};
const inner = (step: SendStep): Uint8Array => {
  if (step.outgoing.kind !== 'first') assert.fail('expected a first mail');
  return step.outgoing.inner;
};
const established = (state: SessionState | null): EstablishedState => {
  assert.equal(state?.kind, 'established');
  return state as EstablishedState;
};

interface Session {
  env: TestEnv;
  pa: Parties;
  pb: Parties;
  alice: EstablishedState;
  bob: EstablishedState;
}

/** Alice initiates; first mail, reply and one data message: both established. */
async function session(): Promise<Session> {
  const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
  const env = new TestEnv();
  const pa = partiesFor(a, b);
  const pb = partiesFor(b, a);
  const first = send(initiate(env), pa, text('first'), env);
  let bob = receiveFirst(null, pb, inner(first), env).state!;
  const reply = send(bob, pb, text('reply'), env);
  bob = reply.state;
  const aliceStep = send(receiveSealed(first.state, pa, wire(reply), env).state!, pa, text('data'), env);
  bob = receiveSealed(bob, pb, wire(aliceStep), env).state!;
  return { env, pa, pb, alice: established(aliceStep.state), bob: established(bob) };
}

/**
 * Hostile Bob moves to the share he just announced without waiting for Alice to use it, so each
 * of his messages is under the share Alice knows as his newest: every one makes her rotate his keys
 * (§8.4 step 2) and, past maxRetired, forget a pair she accepted mail under (§9.1, §10.1).
 */
function selfRotated(bob: EstablishedState, env: TestEnv): EstablishedState {
  const { ours } = bob.keys;
  const next: OwnDhKey = { id: ours.next.id + 1, ...env.newDhKey() };
  return {
    ...bob,
    keys: {
      ...bob.keys,
      ours: { sending: ours.next, next, retired: [...ours.retired, { key: ours.sending, retiredAt: env.now() }].slice(-8) },
    },
  };
}

describe('the MAC-key queue is bounded (§10.1, §11.6)', () => {
  const MESSAGES = DEFAULT_POLICY.maxPendingReveals + 200;
  let flooded: Session;
  const wiped = new Set<Uint8Array>();
  const windowKeys = new Set<Uint8Array>();

  before(async () => {
    flooded = await session();
    let { alice, bob } = flooded;
    const { env, pa, pb } = flooded;
    for (let i = 0; i < MESSAGES; i++) {
      const step = send(bob, pb, text(`m${i}`), env);
      bob = selfRotated(established(step.state), env);
      const received = receiveSealed(alice, pa, wire(step), env);
      assert.equal(str(received.payload!), `m${i}`, 'every message is read');
      for (const key of received.wipe) wiped.add(key);
      alice = established(received.state);
      for (const window of Object.values(alice.keys.received)) windowKeys.add(window.macKey);
    }
    flooded = { ...flooded, alice, bob };
  });

  it('a correspondent that makes us forget a pair with every message, while we stay silent, fills it only to maxPendingReveals', () => {
    const { pendingReveals } = flooded.alice.keys;
    assert.ok(windowKeys.size > MESSAGES, `the attack forgot ${windowKeys.size} pairs`);
    assert.equal(pendingReveals.length, DEFAULT_POLICY.maxPendingReveals);
  });

  it('a MAC key that does not fit is erased, never left behind', () => {
    const live = new Set(Object.values(flooded.alice.keys.received).map((w) => w.macKey));
    const queued = new Set(flooded.alice.keys.pendingReveals);
    const dropped = [...windowKeys].filter((key) => !live.has(key) && !queued.has(key));
    assert.ok(dropped.length > 0);
    assert.ok(
      dropped.every((key) => wiped.has(key)),
      'every forgotten MAC key is queued or in the step wipe list',
    );
  });

  it('a restart carries the old queue and windows into the new session, up to the same bound', () => {
    const { env, pa, pb } = flooded;
    env.advance(1000);
    const fresh = send(initiate(env), pb, text('starting over'), env);
    const restarted = receiveFirst(flooded.alice, pa, inner(fresh), env);
    assert.equal(restarted.state?.kind, 'responding');
    const keys = (restarted.state as Exclude<SessionState, InitiatingState>).keys;
    assert.equal(keys.pendingReveals.length, DEFAULT_POLICY.maxPendingReveals);
    const kept = new Set(keys.pendingReveals);
    const left = Object.values(flooded.alice.keys.received)
      .map((w) => w.macKey)
      .filter((key) => !kept.has(key));
    assert.ok(left.length > 0 && left.every((key) => restarted.wipe.includes(key)), 'the windows that do not fit are erased');
  });
});

/** Alternating messages: each side answers under the other's newest share, so both rotate every time. */
function alternate(s: Session, rounds: number, onRound?: (round: number, s: Session) => void): Session {
  let { alice, bob } = s;
  const { env, pa, pb } = s;
  const payload = new Uint8Array(100).fill(0x61);
  for (let round = 1; round <= rounds; round++) {
    const fromAlice = send(alice, pa, payload, env);
    alice = established(fromAlice.state);
    bob = established(receiveSealed(bob, pb, wire(fromAlice), env).state);
    const fromBob = send(bob, pb, payload, env);
    bob = established(fromBob.state);
    alice = established(receiveSealed(alice, pa, wire(fromBob), env).state);
    onRound?.(round, { ...s, alice, bob });
  }
  return { ...s, alice, bob };
}

describe('the per-pair records are bounded (§8.1, §9.3, §11.6)', () => {
  it('one pair: a correspondent sending past the replay window while we stay silent keeps it at replayWindow counters', async () => {
    const s = await session();
    let { alice, bob } = s;
    for (let i = 0; i < DEFAULT_POLICY.replayWindow + 100; i++) {
      const step = send(bob, s.pb, text(`m${i}`), s.env);
      bob = established(step.state);
      alice = established(receiveSealed(alice, s.pa, wire(step), s.env).state);
    }
    const windows = Object.values(alice.keys.received);
    const longest = Math.max(...windows.map((w) => w.seen.length));
    assert.equal(longest, DEFAULT_POLICY.replayWindow, 'the window is full, and no longer');
    assert.ok(windows.every((w) => w.nonces.length === w.seen.length));
  });

  it('a correspondent sending under every pair of keys both sides hold: at most (2 + maxRetired)² pairs, maxRetired retired keys a side', async () => {
    // Both sides rotate until their retired lists are full (no time passes: only the count bound).
    const s = alternate(await session(), 2 * DEFAULT_POLICY.maxRetired);
    let { alice } = s;
    const { bob, env, pa, pb } = s;
    const own: OwnDhKey[] = [bob.keys.ours.sending, bob.keys.ours.next, ...bob.keys.ours.retired.map((r) => r.key)];
    const peers: PeerDhKey[] = [
      bob.keys.theirs.current,
      ...(bob.keys.theirs.previous ? [bob.keys.theirs.previous] : []),
      ...bob.keys.theirs.retired.map((r) => r.key),
    ];
    let accepted = 0;
    for (const sending of own) {
      for (const current of peers) {
        const crafted: EstablishedState = {
          ...bob,
          keys: { ...bob.keys, ours: { ...bob.keys.ours, sending }, theirs: { ...bob.keys.theirs, current } },
        };
        try {
          alice = established(receiveSealed(alice, pa, wire(send(crafted, pb, text('any pair'), env)), env).state);
          accepted++;
        } catch {
          // Some pairs are refused (a share announced again, keys forgotten by the count bound): fine.
        }
        const { keys } = alice;
        const pairs = (2 + DEFAULT_POLICY.maxRetired) ** 2;
        assert.ok(Object.keys(keys.received).length <= pairs && Object.keys(keys.sendCounters).length <= pairs);
        assert.ok(keys.ours.retired.length <= DEFAULT_POLICY.maxRetired && keys.theirs.retired.length <= DEFAULT_POLICY.maxRetired);
      }
    }
    assert.ok(accepted > 50, `the attack got ${accepted} messages accepted under distinct pairs`);
  });
});

describe('the remembered first-mail and reply ids are bounded (§6.3, §11.6)', () => {
  it('a correspondent sending first mail after first mail of one session: at most maxSeenAuthIds ids', async () => {
    const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
    const env = new TestEnv();
    const pa = partiesFor(a, b);
    const bob = initiate(env);
    let alice: SessionState | null = null;
    for (let i = 0; i < DEFAULT_POLICY.maxSeenAuthIds + 40; i++) {
      env.advance(1);
      alice = receiveFirst(alice, pa, inner(send(bob, partiesFor(b, a), text(`first ${i}`), env)), env).state;
    }
    assert.equal(alice?.seenAuthIds.length, DEFAULT_POLICY.maxSeenAuthIds);
  });
});

describe('the stored state is flat over a long conversation (§11.6)', () => {
  it('as large after 1,000 messages as after 100, time passing as it does', async () => {
    const sizes = new Map<number, number>();
    alternate(await session(), 500, (round, s) => {
      s.env.advance(10 * 60_000);
      if (round === 50 || round === 500) sizes.set(round * 2, encodeSessionState(s.alice).length);
    });
    const [at100, at1000] = [sizes.get(100)!, sizes.get(1000)!];
    assert.ok(Math.abs(at1000 - at100) <= at100 * 0.02, `${at100} bytes after 100 messages, ${at1000} after 1,000`);
  });
});

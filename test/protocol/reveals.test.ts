// Taking what a session owes publication (§10.3) is a protocol step: pure (state in; new state,
// reveals and secrets to wipe out), saved by compare-and-swap, and nothing outside src/protocol/
// (the store below it aside) edits or saves session state.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProtocolError } from '../../src/protocol/errors.ts';
import { takeReveals, takeStoredReveals, type SessionTransactionStore } from '../../src/protocol/reveals.ts';
import { initiate } from '../../src/protocol/session.ts';
import type { EstablishedState, RespondingState, SessionState } from '../../src/protocol/state.ts';
import type { StoredSession } from '../../src/protocol/store.ts';
import { conversationPair, text } from '../../kit/parties.ts';

/** A session state with two MAC keys queued for revelation, from a real exchange. */
async function queuedState(): Promise<{
  state: RespondingState | EstablishedState;
  queued: Uint8Array[];
  env: Awaited<ReturnType<typeof conversationPair>>['env'];
}> {
  const pair = await conversationPair();
  const first = await pair.alice.send(text('hello'));
  assert.equal(first.kind, 'encrypted');
  await pair.bob.receive(first.kind === 'encrypted' ? first.message : new Uint8Array());
  const state = await pair.bob.state();
  assert.ok(state && state.kind !== 'initiating');
  const queued = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
  return { state: { ...state, keys: { ...state.keys, pendingReveals: queued } }, queued, env: pair.env };
}

/** The synchronous compare-and-swap of a store, in memory. */
class Sessions implements SessionTransactionStore {
  readonly rows = new Map<string, StoredSession>();
  loadSession(local: string, peer: string): StoredSession | null {
    return this.rows.get(`${local}/${peer}`) ?? null;
  }
  saveSession(local: string, peer: string, state: SessionState, expected: number): number {
    const current = this.rows.get(`${local}/${peer}`)?.revision ?? 0;
    if (current !== expected) throw new ProtocolError('state_conflict', 'changed meanwhile');
    this.rows.set(`${local}/${peer}`, { state, revision: current + 1 });
    return current + 1;
  }
}

describe('takeReveals (§10.3)', () => {
  it('takes the queued MAC keys out of a new state and leaves the state it was given as it was', async () => {
    const { state, queued, env } = await queuedState();
    const step = takeReveals(state, env);
    assert.deepEqual(step.reveals, queued);
    assert.equal(step.state.kind !== 'initiating' && step.state.keys.pendingReveals.length, 0);
    assert.equal(state.keys.pendingReveals.length, 2, 'the state given is not changed');
    assert.deepEqual(takeReveals(step.state, env).reveals, [], 'nothing twice');
    assert.deepEqual(takeReveals(initiate(env), env).reveals, [], 'an initiating session owes nothing');
  });

  it('saves by compare-and-swap, and only when the reveals fit the room left in the bundle', async () => {
    const { state, queued, env } = await queuedState();
    const store = new Sessions();
    store.saveSession('a', 'b', state, 0);
    assert.equal(takeStoredReveals(store, 'a', 'b', 1, env).kind, 'no_room');
    assert.equal(store.loadSession('a', 'b')!.revision, 1, 'no room: nothing saved');
    const taken = takeStoredReveals(store, 'a', 'b', 2, env);
    assert.deepEqual(taken.kind === 'taken' && taken.reveals, queued);
    const stored = store.loadSession('a', 'b')!;
    assert.equal(stored.revision, 2);
    assert.equal(stored.state.kind !== 'initiating' && stored.state.keys.pendingReveals.length, 0);
    assert.equal(takeStoredReveals(store, 'a', 'b', 2, env).kind, 'none');
    assert.equal(takeStoredReveals(store, 'a', 'nobody', 2, env).kind, 'none');
  });

  it('nothing outside src/protocol/ and the store edits or saves session state', () => {
    const offenders: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (path.endsWith('.ts') && /\.saveSession\(|pendingReveals/.test(readFileSync(path, 'utf8'))) offenders.push(path);
      }
    };
    for (const dir of ['src/crypto', 'src/keys', 'src/mail', 'src/daemon', 'cli']) walk(dir);
    assert.deepEqual(offenders, []);
  });
});

// Property-based tests over a lossy, duplicating, reordering mail network (issue: protocol core).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { toHex } from '../../src/crypto/bytes.ts';
import type { Conversation } from '../../src/protocol/context.ts';
import { deriveDirectionKeys } from '../../src/protocol/keyschedule.ts';
import { DEFAULT_POLICY, type Policy } from '../../src/protocol/policy.ts';
import { liveOwnSecrets, type SessionState } from '../../src/protocol/state.ts';
import { decodeSealed, MessageType, peekType } from '../../src/protocol/wire.ts';
import { conversationPair, str, text } from '../../kit/parties.ts';
import { runs } from '../../kit/runs.ts';

type Side = 'alice' | 'bob';
const other = (side: Side): Side => (side === 'alice' ? 'bob' : 'alice');

const policy: Policy = { ...DEFAULT_POLICY, graceMs: 10_000, maxRetired: 3, ackDelayMs: 2_000 };

const command = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('send' as const), side: fc.constantFrom<Side>('alice', 'bob') }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('deliver' as const), pick: fc.nat(), keep: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('drop' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('tick' as const), ms: fc.integer({ min: 0, max: 15_000 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('ack' as const), side: fc.constantFrom<Side>('alice', 'bob') }) },
);

interface InFlight {
  to: Side;
  bytes: Uint8Array;
  expected: string | null;
  id: number;
}

/** Receive-direction MAC keys of every pair a state still holds: those must never be revealed. */
function liveRecvMacs(state: SessionState | null): Set<string> {
  const out = new Set<string>();
  if (!state || state.kind === 'initiating') return out;
  const { ours, theirs } = state.keys;
  const own = [ours.sending, ours.next, ...ours.retired.map((r) => r.key)];
  const peer = [theirs.current, ...(theirs.previous ? [theirs.previous] : []), ...theirs.retired.map((r) => r.key)];
  for (const o of own) for (const p of peer) out.add(toHex(deriveDirectionKeys(o.secret, o, p, 'receive').macKey));
  return out;
}

/** The MAC key the receiver will use for this message, computed from its state before receiving. */
function macKeyUsed(state: SessionState | null, bytes: Uint8Array): string | null {
  if (!state || state.kind === 'initiating') return null;
  const { message } = decodeSealed(bytes);
  const { ours, theirs } = state.keys;
  const o = [ours.sending, ours.next, ...ours.retired.map((r) => r.key)].find((k) => k.id === message.recipientKeyId);
  const p = [theirs.current, theirs.previous, ...theirs.retired.map((r) => r.key)].find((k) => k?.id === message.senderKeyId);
  return o && p ? toHex(deriveDirectionKeys(o.secret, o, p, 'receive').macKey) : null;
}

describe('properties over an unreliable network', () => {
  it('every delivery yields its own plaintext once or a typed error; bounds and revelation hold', async () => {
    // Totals over all runs, so the property cannot pass vacuously.
    const seen = { plaintext: 0, ignore: 0, replay: 0, expired: 0, reveals: 0, rotations: 0 };
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 30, maxLength: 120, size: 'max' }), async (commands) => {
        const pair = await conversationPair(policy);
        const convo: Record<Side, Conversation> = { alice: pair.alice, bob: pair.bob };
        const network: InFlight[] = [];
        const delivered = new Set<number>();
        const revealed: Record<Side, Set<string>> = { alice: new Set(), bob: new Set() };
        const usedMacs: Record<Side, Set<string>> = { alice: new Set(), bob: new Set() };
        let nextId = 0;

        const post = async (from: Side, bytes: Uint8Array, expected: string | null) => {
          const state = await convo[from].state();
          if (peekType(bytes) !== MessageType.First) {
            const live = liveRecvMacs(state);
            for (const key of decodeSealed(bytes).message.reveals) {
              assert.ok(!live.has(toHex(key)), 'a MAC key is revealed only after its pair is gone');
              revealed[from].add(toHex(key));
              seen.reveals++;
            }
          }
          network.push({ to: other(from), bytes, expected, id: nextId++ });
        };

        const send = async (side: Side) => {
          const state = await convo[side].state();
          if (side === 'bob' && !state) return; // Bob starts nothing here: Alice is the initiator
          const body = `${side}-${nextId}`;
          const result = await convo[side].send(text(body));
          assert.equal(result.kind, 'encrypted');
          if (result.kind === 'encrypted') await post(side, result.message, body);
        };

        const deliver = async (item: InFlight) => {
          const before = await convo[item.to].state();
          const mac = peekType(item.bytes) === MessageType.First ? null : macKeyUsed(before, item.bytes);
          const result = await convo[item.to].receive(item.bytes);
          seen[result.kind === 'error' ? (result.code as 'replay') : result.kind]++;
          if (result.kind === 'error') {
            assert.ok(['expired', 'replay'].includes(result.code), `unexpected error ${result.code}: ${result.message}`);
            if (result.code === 'replay') assert.ok(delivered.has(item.id), 'replay only for what was delivered');
            assert.deepEqual(await convo[item.to].state(), before, 'a failed receive changes nothing');
          } else {
            assert.ok(!delivered.has(item.id), 'delivered at most once');
            delivered.add(item.id);
            if (item.expected === null) assert.equal(result.kind, 'ignore');
            else assert.equal(result.kind === 'plaintext' && str(result.plaintext), item.expected, 'never a wrong plaintext');
            if (mac) usedMacs[item.to].add(mac);
          }
          for (const out of result.outgoing) await post(item.to, out, null);
          const after = await convo[item.to].state();
          if (after) assert.ok(liveOwnSecrets(after).length <= 2 + policy.maxRetired, 'own DH secrets stay bounded');
          if (
            after &&
            after.kind !== 'initiating' &&
            before?.kind !== 'initiating' &&
            before &&
            after.keys.ours.next.id > before.keys.ours.next.id
          )
            seen.rotations++;
        };

        await send('alice');
        for (const c of commands) {
          if (c.op === 'send') await send(c.side);
          else if (c.op === 'tick') pair.env.advance(c.ms);
          else if (c.op === 'ack') {
            const ack = await convo[c.side].acknowledgeIfDue();
            if (ack?.kind === 'encrypted') await post(c.side, ack.message, null);
          } else if (network.length > 0) {
            const index = c.pick % network.length;
            const item = network[index]!;
            if (c.op === 'drop' || !c.keep) network.splice(index, 1);
            if (c.op === 'deliver') await deliver(item);
          }
        }

        // Flush: let everything retire, then each side speaks (in order) so reveals go out.
        for (let round = 0; round < 3; round++) {
          pair.env.advance(policy.graceMs + 1);
          for (const side of ['alice', 'bob'] as const) {
            if (!(await convo[side].state())) continue;
            const result = await convo[side].send(text(`flush-${side}-${round}`));
            if (result.kind !== 'encrypted') continue;
            await post(side, result.message, `flush-${side}-${round}`);
            const item = network.pop()!;
            await deliver(item);
          }
        }
        for (const side of ['alice', 'bob'] as const) {
          const live = liveRecvMacs(await convo[side].state());
          for (const key of usedMacs[side]) {
            if (!live.has(key)) assert.ok(revealed[side].has(key), `${side}: every retired MAC key it used is revealed`);
          }
        }
      }),
      { numRuns: runs({ full: 60, unit: 15 }) },
    );
    for (const [what, count] of Object.entries(seen)) assert.ok(count > 0, `the runs exercised ${what}`);
  });
});

// Measures what the WAL checkpoint after every session save costs (not a test: run it with
// `node --import tsx test/store/checkpoint-cost.ts [saves]`). Saves a real established
// session state over and over, with and without checkpointAfterSave, in a fresh database.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { openAccountStore } from '../../src/store/index.ts';
import { encodeSessionState } from '../../src/store/codec.ts';
import { conversationPair, text } from '../../kit/parties.ts';

const saves = Number(process.argv[2] ?? 300);

async function establishedState() {
  const { alice, bob } = await conversationPair();
  const send = async (from: typeof alice, to: typeof bob, body: string) => {
    const result = await from.send(text(body));
    if (result.kind !== 'encrypted') throw new Error(result.kind);
    await to.receive(result.message);
  };
  await send(alice, bob, 'hello');
  await send(bob, alice, 'hi');
  for (let i = 0; i < 5; i++) {
    await send(alice, bob, `a${i}`);
    await send(bob, alice, `b${i}`);
  }
  const state = await alice.state();
  if (!state) throw new Error('no state');
  return state;
}

function measure(checkpointAfterSave: boolean, state: Awaited<ReturnType<typeof establishedState>>): number[] {
  const dir = mkdtempSync(join(tmpdir(), 'offrecord-cost-'));
  const store = openAccountStore(join(dir, 'a.sqlite'), { passphrase: null, checkpointAfterSave });
  const times: number[] = [];
  try {
    for (let i = 0; i < saves; i++) {
      const changed = { ...state, peerCreated: state.peerCreated + i };
      const start = performance.now();
      store.saveSession('alice', 'bob', changed, i);
      times.push(performance.now() - start);
    }
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return times.sort((a, b) => a - b);
}

const state = await establishedState();
console.log(`state JSON: ${encodeSessionState(state).length} bytes; ${saves} saves each; times per save in ms`);
for (const round of [1, 2]) {
  for (const checkpointAfterSave of [false, true]) {
    const t = measure(checkpointAfterSave, state);
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    const q = (p: number) => t[Math.min(t.length - 1, Math.floor(p * t.length))]!.toFixed(3);
    console.log(
      `round ${round} checkpointAfterSave=${String(checkpointAfterSave).padEnd(5)} mean ${mean.toFixed(3)}  median ${q(0.5)}  p90 ${q(0.9)}  p99 ${q(0.99)}`,
    );
  }
}

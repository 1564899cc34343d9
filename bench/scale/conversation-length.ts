// Issue 15 item 4, conversation length: one conversation of N = 10 to 10,000 data messages,
// Alice and Bob taking turns (each answers under the other's newest share, so both rotate with
// every message; ten minutes pass per message, so the grace window forgets as well as the count
// bound). Two curves from the same run:
//   conversation-step   the cost of message N: the pure steps (send, receive) with both new
//                       states encoded as a store writes them, and the same message through two
//                       Conversations over the sealed SQLite store (load, step, save, checkpoint).
//                       Baseline: the bare crypto of one message on the same payload (two X25519
//                       agreements, AES-256-CTR and HMAC-SHA256, node:crypto), timed beside it.
//   conversation-state  the stored state's size after message N (docs/PROTOCOL.md §11.6).
//                       Baseline: the state of the same session just established (message 0).
// Each point is the median CPU time over the twenty messages that end at N (the ten of N = 10),
// over the repeats too, after a conversation played and thrown away to warm the JIT. The stores
// are on tmpfs (/dev/shm), so the disk's flushes, the same at every N, do not drown the step.
import { createCipheriv, createHmac, diffieHellman, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Parties } from '../../src/protocol/authentication.ts';
import { initiate, receiveFirst, receiveSealed, send, type SendStep } from '../../src/protocol/session.ts';
import type { SessionState } from '../../src/protocol/state.ts';
import { encodeSessionState } from '../../src/store/codec.ts';
import { openAccountStore } from '../../src/store/account-store.ts';
import { conversationOver, identity, partiesFor, sent, TestEnv, type TestIdentity } from '../../kit/parties.ts';
import type { Curve, CurveModule, Point } from './curve.ts';
import { median, sizes } from './sizes.ts';

const PAYLOAD = new Uint8Array(100).fill(0x61);
const WINDOW = 20;
const PURE_REPEATS = 3;
/** Messages of a conversation played first and thrown away, so that N = 10 is not a cold start. */
const WARM_UP = 300;
const MINUTES_PER_MESSAGE = 10;
const TARGET_GROWTH = 1.1;

/** N = 10, then the harness's sizes up to 10,000. */
const points = (): number[] => [10, ...sizes().filter((n) => n <= 10_000)];

const wire = (step: SendStep): Uint8Array => {
  if (step.outgoing.kind !== 'wire') throw new Error('expected a sealed message');
  return step.outgoing.bytes;
};
const inner = (step: SendStep): Uint8Array => {
  if (step.outgoing.kind !== 'first') throw new Error('expected a first mail');
  return step.outgoing.inner;
};

/** The crypto floor of one message: what no implementation of this protocol can skip. */
function bareCrypto(): () => void {
  const a = generateKeyPairSync('x25519');
  const b = generateKeyPairSync('x25519');
  const key = new Uint8Array(32).fill(7);
  const iv = new Uint8Array(16);
  return () => {
    diffieHellman({ privateKey: a.privateKey, publicKey: b.publicKey });
    diffieHellman({ privateKey: b.privateKey, publicKey: a.publicKey });
    const cipher = createCipheriv('aes-256-ctr', key, iv);
    const ciphertext = Buffer.concat([cipher.update(PAYLOAD), cipher.final()]);
    createHmac('sha256', key).update(ciphertext).digest();
  };
}

interface Samples {
  /** Per N: the CPU times (µs) of the messages ending at N. */
  pure: Map<number, number[]>;
  store: Map<number, number[]>;
  bare: Map<number, number[]>;
  /** Per N: Alice's encoded state, bytes (message 0: just established). */
  stateBytes: Map<number, number>;
}

/**
 * CPU time (user + system, µs) of this process since `start`: on two cores shared with other
 * work, wall time measures the scheduler more than the step.
 */
const cpuMicros = (start: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(start);
  return used.user + used.system;
};

const push = (map: Map<number, number[]>, n: number, value: number): void => {
  map.set(n, [...(map.get(n) ?? []), value]);
};

/** The n whose window holds message `m`, if any. */
const windowOf = (ns: number[], m: number): number | undefined => ns.find((n) => m > n - WINDOW && m <= n);

/** The pure steps, Alice and Bob in turns; message m is sent by Alice when m is odd. */
function pureConversation(alice: Parties, bob: Parties, ns: number[], samples: Samples, record: boolean): void {
  const env = new TestEnv();
  const first = send(initiate(env), alice, PAYLOAD, env);
  let b = receiveFirst(null, bob, inner(first), env).state!;
  const reply = send(b, bob, PAYLOAD, env);
  b = reply.state;
  let a: SessionState = receiveSealed(first.state, alice, wire(reply), env).state!;
  if (record) samples.stateBytes.set(0, encodeSessionState(a).length);
  const floor = bareCrypto();
  const last = ns[ns.length - 1]!;
  for (let m = 1; m <= last; m++) {
    env.advance(MINUTES_PER_MESSAGE * 60_000);
    const [from, to, fromState, toState] = m % 2 === 1 ? [alice, bob, a, b] : [bob, alice, b, a];
    const start = process.cpuUsage();
    const out = send(fromState, from, PAYLOAD, env);
    const received = receiveSealed(toState, to, wire(out), env).state!;
    encodeSessionState(out.state);
    encodeSessionState(received);
    const cpu = cpuMicros(start);
    if (m % 2 === 1) [a, b] = [out.state, received];
    else [b, a] = [out.state, received];
    const n = windowOf(ns, m);
    if (n === undefined) continue;
    push(samples.pure, n, cpu);
    const bareStart = process.cpuUsage();
    floor();
    push(samples.bare, n, cpuMicros(bareStart));
    if (record && m === n) samples.stateBytes.set(n, encodeSessionState(a).length);
  }
}

/** The same conversation through Conversations over two sealed SQLite stores, as the mail pipeline runs it. */
async function storedConversation(ids: { alice: TestIdentity; bob: TestIdentity }, ns: number[], samples: Samples): Promise<void> {
  // On tmpfs where there is one: the disk's flushes (synchronous=FULL) would drown the step.
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), 'offrecord-conversation-'));
  const env = new TestEnv(Date.now());
  const stores = [
    openAccountStore(join(dir, 'alice.sqlite'), { passphrase: null, clock: () => env.now() }),
    openAccountStore(join(dir, 'bob.sqlite'), { passphrase: null, clock: () => env.now() }),
  ] as const;
  try {
    const alice = conversationOver(stores[0], ids.alice, ids.bob, env);
    const bob = conversationOver(stores[1], ids.bob, ids.alice, env);
    await bob.receive(sent(await alice.send(PAYLOAD)));
    await alice.receive(sent(await bob.send(PAYLOAD)));
    const last = ns[ns.length - 1]!;
    for (let m = 1; m <= last; m++) {
      env.advance(MINUTES_PER_MESSAGE * 60_000);
      const [from, to] = m % 2 === 1 ? [alice, bob] : [bob, alice];
      const start = process.cpuUsage();
      const result = await to.receive(sent(await from.send(PAYLOAD)));
      const cpu = cpuMicros(start);
      if (result.kind !== 'plaintext') throw new Error(`message ${m}: ${result.kind === 'error' ? result.code : result.kind}`);
      const n = windowOf(ns, m);
      if (n !== undefined) push(samples.store, n, cpu);
    }
  } finally {
    for (const store of stores) store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

let run: Promise<{ ns: number[]; samples: Samples }> | undefined;

/** Both curves come from one run: whichever is measured first starts it. */
function measureOnce(): Promise<{ ns: number[]; samples: Samples }> {
  run ??= (async () => {
    const ns = points();
    const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
    const samples: Samples = { pure: new Map(), store: new Map(), bare: new Map(), stateBytes: new Map() };
    const discarded: Samples = { pure: new Map(), store: new Map(), bare: new Map(), stateBytes: new Map() };
    pureConversation(partiesFor(a, b), partiesFor(b, a), [WARM_UP], discarded, false);
    for (let r = 0; r < PURE_REPEATS; r++) pureConversation(partiesFor(a, b), partiesFor(b, a), ns, samples, r === 0);
    await storedConversation({ alice: a, bob: b }, [WARM_UP], discarded);
    await storedConversation({ alice: a, bob: b }, ns, samples);
    return { ns, samples };
  })();
  return run;
}

const microseconds = (map: Map<number, number[]>, ns: number[]): Point[] => ns.map((n) => ({ n, value: median(map.get(n)!) }));

export const stepCurve: CurveModule = {
  async measure(): Promise<Curve> {
    const { ns, samples } = await measureOnce();
    const pure = microseconds(samples.pure, ns);
    const stored = microseconds(samples.store, ns);
    const bare = microseconds(samples.bare, ns);
    const growth = (series: Point[]) => series[series.length - 1]!.value / series[0]!.value;
    // Against the bare crypto timed beside each point, so that what the machine's load does to all of them cancels out.
    const relative = (series: Point[]) => growth(series) / growth(bare);
    const verdict = (label: string, series: Point[]) =>
      `${label}: message ${ns[ns.length - 1]!.toLocaleString('en-US')} costs ${growth(series).toFixed(2)}x message ${ns[0]}, ${relative(series).toFixed(2)}x against the baseline beside each (target at most ${TARGET_GROWTH}x: ${relative(series) <= TARGET_GROWTH ? 'met' : 'not met'}).`;
    return {
      id: 'conversation-step',
      title: 'Conversation length: the cost of message N',
      axes: { x: 'message N of one conversation', y: 'CPU µs per message' },
      series: [
        { label: 'pure steps, send + receive + both states encoded, CPU µs', points: pure },
        { label: 'Conversations over the sealed SQLite store, CPU µs', points: stored },
      ],
      baseline: { label: 'bare crypto of one message (2 X25519, AES-CTR, HMAC), CPU µs', points: bare },
      notes: [
        `One conversation, Alice and Bob in turns (both rotate with every message), ${PAYLOAD.length}-byte payloads, ${MINUTES_PER_MESSAGE} minutes between messages; each point the median over the ${WINDOW} messages ending at N (pure steps: ${PURE_REPEATS} conversations), each kind after a conversation of ${WARM_UP} messages thrown away; the stores on tmpfs, so that disk flushes, the same at every N, do not drown the step. CPU time of the process (user + system), not wall time: on 2 cores shared with other sessions' builds and tests, wall time measured the scheduler more than the step.`,
        verdict('Pure steps', pure),
        verdict('Over the store', stored),
      ],
    };
  },
};

export const stateCurve: CurveModule = {
  async measure(): Promise<Curve> {
    const { ns, samples } = await measureOnce();
    const bytes = ns.map((n) => ({ n, value: samples.stateBytes.get(n)! }));
    const fresh = samples.stateBytes.get(0)!;
    const at100 = bytes.find((p) => p.n === 100)?.value;
    const largest = Math.max(...bytes.filter((p) => p.n >= 100).map((p) => p.value));
    return {
      id: 'conversation-state',
      title: 'Conversation length: the stored session state after message N',
      axes: { x: 'message N of one conversation', y: 'bytes' },
      series: [{ label: "Alice's state as the store encodes it, bytes", points: bytes }],
      baseline: { label: 'the same session just established, bytes', points: ns.map((n) => ({ n, value: fresh })) },
      notes: [
        "The conversation of conversation-step, Alice's state encoded as the store writes it (before sealing) after message N; the run's time is counted there.",
        'Every list and map in the state is bounded (docs/PROTOCOL.md §11.6; test/protocol/state-bounds.test.ts plays a correspondent growing each).',
        at100 === undefined
          ? 'Flat after 100 messages: not measured in this run.'
          : `From message 100 on, at most ${((largest / at100 - 1) * 100).toFixed(1)} % above its size at message 100 (target: flat).`,
      ],
    };
  },
};

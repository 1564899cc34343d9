// Two processes hammer Alice's store through the Conversation API at once, one sending and
// one receiving: no update may be lost and no counter reused (compare-and-swap on the
// session revision, conflicts retried by the caller).
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { toHex } from '../../src/crypto/bytes.ts';
import type { Conversation } from '../../src/protocol/context.ts';
import { pairKey } from '../../src/protocol/state.ts';
import { MemorySessionStore, type SessionStore } from '../../src/protocol/store.ts';
import { decodeSealed } from '../../src/protocol/wire.ts';
import { openAccountStore } from '../../src/store/index.ts';
import { conversationOver, identity, str, TestEnv, text } from '../../kit/parties.ts';
import {
  INBOX_DIR,
  SENT_DIR,
  serializeIdentity,
  SETUP_FILE,
  STORE_FILE,
  type SharedSetup,
  type WorkerReport,
} from './conversation-worker.ts';
import { startWorker, tempDir } from './helpers.ts';

const COUNT = 100;
const worker = fileURLToPath(new URL('./conversation-worker.ts', import.meta.url));

async function sendOk(from: Conversation, payload: string): Promise<Uint8Array> {
  const result = await from.send(text(payload));
  assert.equal(result.kind, 'encrypted', `send ${payload}: ${result.kind === 'error' ? result.code : ''}`);
  return (result as { message: Uint8Array }).message;
}

async function receivePlaintext(to: Conversation, bytes: Uint8Array, what: string): Promise<string> {
  const result = await to.receive(bytes);
  assert.equal(result.kind, 'plaintext', `${what}: ${result.kind === 'error' ? `${result.code}: ${result.message}` : result.kind}`);
  assert.equal(result.outgoing.length, 0, `${what}: no protocol message expected`);
  return str((result as { plaintext: Uint8Array }).plaintext);
}

/** A copy of a session in a store of its own, so that deliveries to it leave the original alone. */
async function copyOf(store: SessionStore, local: string, peer: string): Promise<MemorySessionStore> {
  const stored = await store.load(local, peer);
  assert.ok(stored);
  const copy = new MemorySessionStore();
  await copy.save(local, peer, stored.state, 0);
  return copy;
}

const triple = (bytes: Uint8Array) => {
  const { message } = decodeSealed(bytes);
  return { sender: message.senderKeyId, recipient: message.recipientKeyId, counter: message.counter };
};

describe('conversation concurrency', () => {
  it(
    `one process sends ${COUNT} messages while another receives ${COUNT} on the same store: no update lost, no counter reused`,
    { timeout: 60_000 },
    async (t) => {
      const began = performance.now();
      const dir = tempDir();
      const storePath = join(dir, STORE_FILE);
      const env = new TestEnv();
      const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
      const setup: SharedSetup = { time: env.time, alice: serializeIdentity(a), bob: serializeIdentity(b) };
      writeFileSync(join(dir, SETUP_FILE), JSON.stringify(setup));
      const aliceFp = toHex(a.fingerprint);
      const bobFp = toHex(b.fingerprint);

      // An established session (first mail, reply, data each way): Alice's in SQLite, Bob's in memory.
      const aliceStore = openAccountStore(storePath, { passphrase: null });
      const bobStore = new MemorySessionStore();
      const alice = conversationOver(aliceStore, a, b, env);
      const bob = conversationOver(bobStore, b, a, env);
      assert.equal(await receivePlaintext(bob, await sendOk(alice, 'hello'), 'first mail'), 'hello');
      assert.equal(await receivePlaintext(alice, await sendOk(bob, 'hi'), 'reply'), 'hi');
      assert.equal(await receivePlaintext(bob, await sendOk(alice, 'a-data'), 'data to Bob'), 'a-data');
      assert.equal(await receivePlaintext(alice, await sendOk(bob, 'b-data'), 'data to Alice'), 'b-data');
      // One more from Alice, announcing her next key: Bob's batch goes to that key, so Alice's
      // first delivery rotates her keys under the sending process's feet.
      assert.equal(await receivePlaintext(bob, await sendOk(alice, 'a-next'), 'second data to Bob'), 'a-next');
      assert.equal((await alice.state())?.kind, 'established');
      assert.equal((await bob.state())?.kind, 'established');
      const base = aliceStore.loadSession(aliceFp, bobFp)!.revision;
      aliceStore.close();

      // Bob's batch, all sent before Alice reads any: one key pair, distinct counters.
      mkdirSync(join(dir, INBOX_DIR));
      const inbox: Uint8Array[] = [];
      for (let i = 0; i < COUNT; i++) {
        const bytes = await sendOk(bob, `r-${i}`);
        inbox.push(bytes);
        writeFileSync(join(dir, INBOX_DIR, `${i}.bin`), bytes);
      }
      const inboxTriples = inbox.map(triple);
      assert.equal(new Set(inboxTriples.map((x) => `${x.sender}:${x.recipient}`)).size, 1, "Bob's batch shares one key pair");
      assert.equal(new Set(inboxTriples.map((x) => x.counter)).size, COUNT, "Bob's batch has distinct counters");
      const setupMs = performance.now() - began;

      // Both workers on Alice's store at once.
      const workersBegan = performance.now();
      const workers = (['send', 'receive'] as const).map((role) => startWorker<WorkerReport>(worker, [dir, role, String(COUNT)], role));
      await Promise.all(workers.map((w) => w.ready));
      for (const w of workers) w.child.stdin.end('go\n');
      const [sender, receiver] = await Promise.all(workers.map((w) => w.exited));
      assert.ok(sender && receiver);
      const workersMs = performance.now() - workersBegan;
      const verifyBegan = performance.now();

      // (a) Every one of Bob's messages was delivered exactly once, with its own plaintext...
      assert.equal(receiver.done, COUNT);
      assert.deepEqual(
        receiver.plaintexts,
        Array.from({ length: COUNT }, (_, i) => `r-${i}`),
      );
      // ...and Alice's stored state remembers every delivery: none of the receives was lost.
      const store = openAccountStore(storePath, { passphrase: null });
      const final = store.loadSession(aliceFp, bobFp);
      assert.ok(final);
      const again = conversationOver(store, a, b, env);
      for (let i = 0; i < COUNT; i++) {
        const result = await again.receive(inbox[i]!);
        assert.equal(result.kind === 'error' ? result.code : result.kind, 'replay', `Bob's message ${i} delivered a second time`);
      }
      assert.equal(store.loadSession(aliceFp, bobFp)!.revision, final.revision, 'a refused replay saves nothing');
      store.close();

      // (b) No counter reused among Alice's sends...
      assert.equal(sender.done, COUNT);
      const sent = Array.from({ length: COUNT }, (_, i) => new Uint8Array(readFileSync(join(dir, SENT_DIR, `${i}.bin`))));
      const sentTriples = sent.map(triple);
      const keys = sentTriples.map((x) => `${x.sender}:${x.recipient}:${x.counter}`);
      assert.equal(new Set(keys).size, COUNT, 'every (sender key, recipient key, counter) is used once');
      // ...none lost either: under each key pair the counters run on without a gap, up to the
      // counter the final state holds for that pair.
      assert.equal(final.state.kind, 'established');
      const sendCounters = final.state.kind === 'established' ? final.state.keys.sendCounters : {};
      const byPair = new Map<string, typeof sentTriples>();
      for (const x of sentTriples) {
        const pair = pairKey(x.sender, x.recipient);
        byPair.set(pair, [...(byPair.get(pair) ?? []), x]);
      }
      for (const [pair, group] of byPair) {
        const counters = group.map((x) => x.counter);
        assert.deepEqual(
          counters,
          Array.from({ length: counters.length }, (_, i) => counters[0]! + i),
          `counters of pair ${pair} in send order`,
        );
        assert.equal(sendCounters[pair], counters.at(-1), `the stored counter of pair ${pair}`);
      }
      // ...and Bob accepts every one, each exactly once, in order and shuffled (on copies of his session).
      const inOrder = conversationOver(await copyOf(bobStore, bobFp, aliceFp), b, a, env);
      for (let i = 0; i < COUNT; i++) assert.equal(await receivePlaintext(inOrder, sent[i]!, `Alice's message ${i} in order`), `s-${i}`);
      for (let i = 0; i < COUNT; i++) {
        const result = await inOrder.receive(sent[i]!);
        assert.equal(result.kind === 'error' ? result.code : result.kind, 'replay', `Alice's message ${i} accepted twice`);
      }
      const order = Array.from({ length: COUNT }, (_, i) => i);
      for (let i = COUNT - 1; i > 0; i--) {
        const j = randomInt(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const shuffled = conversationOver(await copyOf(bobStore, bobFp, aliceFp), b, a, env);
      const seen = new Map<number, string>();
      for (const i of order)
        seen.set(i, await receivePlaintext(shuffled, sent[i]!, `Alice's message ${i} shuffled (order ${order.join(',')})`));
      assert.deepEqual(
        [...seen].sort(([x], [y]) => x - y),
        Array.from({ length: COUNT }, (_, i) => [i, `s-${i}`]),
      );

      // (c) The revision counts every successful save of both workers, each handed out once.
      const saves = sender.saves + receiver.saves;
      assert.equal(sender.saves, COUNT, 'one save per send');
      assert.equal(receiver.saves, COUNT, 'one save per delivery');
      assert.equal(final.revision, base + saves, 'final revision = revision before the workers + their successful saves');
      const revisions = [...sender.revisions, ...receiver.revisions].sort((x, y) => x - y);
      assert.deepEqual(
        revisions,
        Array.from({ length: saves }, (_, i) => base + 1 + i),
      );
      assert.equal(sender.retries, sender.conflicts, 'every retry of the sender was a refused save');
      assert.equal(receiver.retries, receiver.conflicts, 'every retry of the receiver was a refused save');

      const turns = revisions.filter(
        (rev, i) => i > 0 && sender.revisions.includes(rev) !== sender.revisions.includes(revisions[i - 1]!),
      ).length;
      // The two runs overlapped (otherwise nothing above was tested under contention).
      assert.ok(turns >= 2, `the workers ran one after the other (took turns ${turns} times)`);
      t.diagnostic(
        `revision ${base} -> ${final.revision}; retries on state_conflict: send ${sender.retries}, receive ${receiver.retries}; ` +
          `the workers took turns ${turns} times; Alice sent under ${byPair.size} key pair(s)`,
      );
      t.diagnostic(
        `ms: setup ${setupMs.toFixed(0)}, workers ${workersMs.toFixed(0)} (send loop ${sender.ms.toFixed(0)}, receive loop ${receiver.ms.toFixed(0)}), ` +
          `checks ${(performance.now() - verifyBegan).toFixed(0)}`,
      );
    },
  );
});

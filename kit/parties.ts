// Test parties: real OpenPGP keys, real ring keys, a controllable clock, and a Conversation
// per side over in-memory stores.
import { createHash, randomBytes } from 'node:crypto';
import * as openpgp from 'openpgp';
import { fromHex } from '../src/crypto/bytes.ts';
import { generateRingSecret, ringPublicKey } from '../src/crypto/ring.ts';
import { OpenPgpSealer } from '../src/crypto/seal.ts';
import assert from 'node:assert/strict';
import { Conversation, type SendResult } from '../src/protocol/context.ts';
import { generateDhKeyPair, x25519PublicKey, type DhKeyPair } from '../src/protocol/keyschedule.ts';
import type { Parties, RingKeyPair } from '../src/protocol/authentication.ts';
import type { Env } from '../src/protocol/env.ts';
import { DEFAULT_POLICY, type Policy } from '../src/protocol/policy.ts';
import { MemorySessionStore, type SessionStore } from '../src/protocol/store.ts';

export interface TestIdentity {
  name: string;
  fingerprint: Uint8Array;
  ring: RingKeyPair;
  privateKey: openpgp.PrivateKey;
  publicKey: openpgp.PublicKey;
}

const identityCache = new Map<string, Promise<TestIdentity>>();

/** One identity per name per process: OpenPGP key generation is the slow part. */
export function identity(name: string): Promise<TestIdentity> {
  let cached = identityCache.get(name);
  if (!cached) {
    cached = (async () => {
      const { privateKey, publicKey } = await openpgp.generateKey({
        type: 'ecc',
        curve: 'curve25519Legacy',
        userIDs: [{ name, email: `${name}@example.org` }],
        format: 'object',
      });
      const secret = generateRingSecret();
      return {
        name,
        fingerprint: fromHex(privateKey.getFingerprint()),
        ring: { secret, public: ringPublicKey(secret) },
        privateKey,
        publicKey,
      };
    })();
    identityCache.set(name, cached);
  }
  return cached;
}

export function partiesFor(local: TestIdentity, peer: TestIdentity): Parties {
  return {
    local: { fingerprint: local.fingerprint, ringKeys: [local.ring] },
    peer: { fingerprint: peer.fingerprint, ringKeys: [peer.ring.public] },
  };
}

/** A clock the test moves by hand; randomness from node:crypto, or seeded for vectors. */
export class TestEnv implements Env {
  constructor(
    public time = 1_700_000_000_000,
    private readonly seed?: Uint8Array,
  ) {}
  private counter = 0;
  now(): number {
    return this.time;
  }
  random(length: number): Uint8Array {
    if (!this.seed) return new Uint8Array(randomBytes(length));
    // Deterministic for vectors: SHA-512(seed || counter), truncated.
    const block = createHash('sha512').update(this.seed).update(String(this.counter++)).digest();
    return new Uint8Array(block.subarray(0, length));
  }
  newDhKey(): DhKeyPair {
    if (!this.seed) return generateDhKeyPair();
    const secret = this.random(32);
    return { secret, public: x25519PublicKey(secret) };
  }
  advance(ms: number): void {
    this.time += ms;
  }
}

export interface Pair {
  alice: Conversation;
  bob: Conversation;
  aliceStore: MemorySessionStore;
  bobStore: MemorySessionStore;
  env: TestEnv;
  ids: { alice: TestIdentity; bob: TestIdentity };
}

/** `local`'s Conversation with `peer` over `store`. */
export function conversationOver(
  store: SessionStore,
  local: TestIdentity,
  peer: TestIdentity,
  env: Env,
  policy: Policy = DEFAULT_POLICY,
): Conversation {
  return new Conversation({
    store,
    parties: partiesFor(local, peer),
    peerEncryptionKey: peer.publicKey,
    sealer: new OpenPgpSealer([local.privateKey]),
    env,
    policy,
  });
}

export async function conversationPair(policy: Policy = DEFAULT_POLICY, env = new TestEnv()): Promise<Pair> {
  const [a, b] = await Promise.all([identity('alice'), identity('bob')]);
  const aliceStore = new MemorySessionStore();
  const bobStore = new MemorySessionStore();
  const alice = conversationOver(aliceStore, a, b, env, policy);
  const bob = conversationOver(bobStore, b, a, env, policy);
  return { alice, bob, aliceStore, bobStore, env, ids: { alice: a, bob: b } };
}

export const text = (s: string): Uint8Array => new TextEncoder().encode(s);
export const str = (b: Uint8Array): string => new TextDecoder().decode(b);

/** The message of a successful send; fails the test with the error otherwise. */
export function sent(result: SendResult): Uint8Array {
  if (result.kind === 'error') assert.fail(`${result.code}: ${result.message}`);
  return result.message;
}

/**
 * The basic exchange every SessionStore must carry: first mail, reply, five data messages each
 * way, and the first mail refused when it comes again.
 */
export async function assertExchange(alice: Conversation, bob: Conversation): Promise<void> {
  const first = sent(await alice.send(text('hello bob')));
  const r1 = await bob.receive(first);
  assert.equal(r1.kind === 'plaintext' && str(r1.plaintext), 'hello bob');
  assert.equal((await bob.state())?.kind, 'responding');

  const r2 = await alice.receive(sent(await bob.send(text('hi alice'))));
  assert.equal(r2.kind === 'plaintext' && str(r2.plaintext), 'hi alice');
  assert.equal((await alice.state())?.kind, 'established');

  for (let i = 0; i < 5; i++) {
    const ra = await bob.receive(sent(await alice.send(text(`a${i}`))));
    assert.equal(ra.kind === 'plaintext' && str(ra.plaintext), `a${i}`);
    const rb = await alice.receive(sent(await bob.send(text(`b${i}`))));
    assert.equal(rb.kind === 'plaintext' && str(rb.plaintext), `b${i}`);
  }
  assert.equal((await bob.state())?.kind, 'established');
  assert.equal((await bob.receive(first)).kind, 'error');
}
